package export_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/fhir/go/jsonformat"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

// FuzzEncoders: for any point omh.Parse accepts, stored in canonical form,
// no encoder panics and each writes exactly one line ending in '\n' (fhir
// and csv with no other line-breaking character either), except that fhir
// refuses, writing nothing, exactly the schemas Supports refuses. A fhir
// line is an Observation the R4 library accepts, a csv line one record of
// ten cells. A reading without a typed model (an *omh.Document) is
// carried whole: fhir's attachment decodes to the stored point, csv's body
// cell is its body's JSON. fhir and csv write the same bytes for the point as submitted
// as for its canonical form: they depend on the reading, not its spelling.
//
//	go test ./export -run '^$' -fuzz FuzzEncoders -fuzztime 60s
func FuzzEncoders(f *testing.F) {
	for _, c := range encCaseTable() {
		f.Add([]byte(c.raw))
	}
	for _, raw := range untypedRaw {
		f.Add([]byte(raw))
	}
	// The example points, when shared/ is there (seeding does not skip:
	// TestFHIRExamples and TestCSVRoundTrip report a missing shared/).
	shared := os.Getenv("VAULT_SHARED_DIR")
	if shared == "" {
		shared = filepath.Join("..", "..", "shared")
	}
	files, err := filepath.Glob(filepath.Join(shared, "schemas", "examples", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	u := encR4(f)
	f.Fuzz(func(t *testing.T, in []byte) { checkEncoders(t, u, in) })
}

// checkEncoders is FuzzEncoders' property for one input.
func checkEncoders(t *testing.T, u *jsonformat.Unmarshaller, in []byte) {
	p, err := omh.Parse(in)
	if err != nil {
		return
	}
	canon := p.AppendJSON(nil)
	prefix := []byte("prev\n")
	for _, format := range export.Formats() {
		enc, err := export.NewEncoder(format, encPatient)
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.AppendRecord(bytes.Clone(prefix), canon)
		if format == "fhir" && !export.Supports("fhir", p.Schema.String()) {
			if !errors.Is(err, export.ErrUnsupported) || !bytes.Equal(out, prefix) {
				t.Fatalf("fhir on %s: %q, %v; want ErrUnsupported, nothing written", p.Schema, out, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, canon)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("%s: dst's bytes changed", format)
		}
		rec := out[len(prefix):]
		oneLine(t, format, rec)
		switch format {
		case "fhir":
			if !json.Valid(rec) {
				t.Fatalf("fhir: not JSON: %s", rec)
			}
			if _, err := parseR4Observation(u, rec[:len(rec)-1]); err != nil {
				t.Fatalf("fhir: not a valid R4 Observation: %v\n%s\nfrom %s", err, rec, canon)
			}
			if _, ok := p.Body.(*omh.Document); ok {
				checkAttachment(t, rec[:len(rec)-1], p.Schema.String(), canon)
			}
		case "csv":
			recs := readCSV(t, rec)
			if len(recs) != 1 {
				t.Fatalf("csv: %d records in %q", len(recs), rec)
			}
			if doc, ok := p.Body.(*omh.Document); ok {
				checkBodyCell(t, recs[0], doc.JSON())
			} else if recs[0][9] != "" {
				t.Fatalf("csv: typed %s has a body cell %q", p.Schema, recs[0][9])
			}
		}
		if format != "omh" {
			again, err := enc.AppendRecord(nil, in)
			if err != nil || !bytes.Equal(again, rec) {
				t.Fatalf("%s: the submitted point gives %q (%v), its canonical form %q", format, again, err, rec)
			}
		}
	}
}

// FuzzEncoderFields reaches the encoders with points omh.Parse accepts more
// often than byte mutations do: the fuzzer picks a schema, a value, a unit,
// the time text (a date_time, or an interval's start and end or duration)
// and a source text, and the point is built from them. Points Parse refuses
// are skipped; the property is FuzzEncoders'.
//
//	go test ./export -run '^$' -fuzz FuzzEncoderFields -fuzztime 60s
func FuzzEncoderFields(f *testing.F) {
	f.Add(uint8(0), 104.0, uint8(0), "2026-01-02T15:04:05Z", "", 0.0, "Dexcom G7", uint8(0))
	f.Add(uint8(1), 72.5, uint8(0), "2016-12-31T23:59:60Z", "", 0.0, "=1+2", uint8(1))
	f.Add(uint8(2), 1e21, uint8(0), "2026-01-02T00:00:00+14:30", "2026-01-03T00:00:00-12:00", 0.0, "a\nb\u2028", uint8(2))
	f.Add(uint8(8), math.Copysign(0, -1), uint8(3), "0001-01-01T00:00:00.123456789123Z", "", 1e-9, "", uint8(3))
	f.Add(uint8(9), 420.0, uint8(5), "2026-01-01T23:00:00+01:00", "", 7.5, "\t@x", uint8(4))
	f.Add(uint8(10), 812.0, uint8(0), "2026-01-02T15:04:05Z", "", 0.0, "a\u2028b\u0085c\x7f", uint8(0))
	f.Add(uint8(11), 5.4, uint8(1), "2026-01-02T15:04:05Z", "2026-01-02T15:09:05Z", 0.0, "", uint8(2))
	u := encR4(f)
	f.Fuzz(func(t *testing.T, schema uint8, value float64, unit uint8, start, end string, dur float64, source string, extra uint8) {
		in := fieldPoint(schema, value, unit, start, end, dur, source, extra)
		if in == nil {
			return
		}
		checkEncoders(t, u, in)
	})
}

// fieldPoint builds a point from fuzzed fields (nil when they do not make
// JSON).
func fieldPoint(schema uint8, value float64, unit uint8, start, end string, dur float64, source string, extra uint8) []byte {
	pick := func(xs ...string) string { return xs[int(unit)%len(xs)] }
	uv := func(u string) map[string]any { return map[string]any{"value": value, "unit": u} }
	var tf map[string]any
	switch {
	case end != "":
		tf = map[string]any{"time_interval": map[string]any{"start_date_time": start, "end_date_time": end}}
	case dur != 0:
		key := "start_date_time"
		if extra%2 == 1 {
			key = "end_date_time"
		}
		tf = map[string]any{"time_interval": map[string]any{key: start, "duration": map[string]any{"value": dur, "unit": pick("sec", "min", "h", "d", "Mo", "yr", "ms")}}}
	default:
		tf = map[string]any{"date_time": start}
	}
	specimens := []string{"", "interstitial fluid", "capillary blood", "urine"}
	var name, version string
	body := map[string]any{"effective_time_frame": tf}
	switch schema % 12 {
	case 0:
		name, version = "blood-glucose", "4.0"
		body["blood_glucose"] = uv(pick("mg/dL", "mmol/L", "MGDL"))
		if s := specimens[int(extra)%len(specimens)]; s != "" {
			body["specimen_source"] = s
		}
	case 1:
		name, version = "heart-rate", "2.0"
		body["heart_rate"] = uv("beats/min")
	case 2:
		name, version = "step-count", "3.0"
		body["step_count"] = uv("steps")
	case 3:
		name, version = "blood-pressure", "4.0"
		body["systolic_blood_pressure"] = uv("mmHg")
		body["diastolic_blood_pressure"] = map[string]any{"value": dur, "unit": "mmHg"}
	case 4:
		name, version = "body-weight", "3.0"
		body["body_weight"] = uv(pick("kg", "lb", "g", "oz", "Ton", "Metric Ton", "ug", "gr"))
	case 5:
		name, version = "oxygen-saturation", "2.0"
		body["oxygen_saturation"] = uv("%")
		if extra%2 == 0 {
			body["supplemental_oxygen_flow_rate"] = map[string]any{"value": dur, "unit": "L/min"}
		}
	case 6:
		name, version = "respiratory-rate", "2.0"
		body["respiratory_rate"] = uv("breaths/min")
	case 7:
		name, version = "body-temperature", "4.0"
		body["body_temperature"] = uv(pick("C", "F", "K"))
	case 8:
		name, version = "physical-activity", "1.2"
		body["activity_name"] = source
		body["distance"] = uv(pick("km", "mi", "m"))
	case 9:
		name, version = "sleep-episode", "1.1"
		if extra%2 == 0 {
			body["total_sleep_time"] = uv(pick("min", "h", "sec"))
		}
	case 10: // no typed model: the generic forms
		name, version = "rr-interval", "1.0"
		body["rr_interval"] = uv(pick("ms", "sec", "min"))
		body["user_notes"] = source
	case 11: // an older version of a typed schema, stored as it is
		name, version = "blood-glucose", "2.0"
		body["blood_glucose"] = uv(pick("mg/dL", "mmol/L"))
		if s := specimens[int(extra)%len(specimens)]; s != "" {
			body["specimen_source"] = s
		}
	}
	header := map[string]any{
		"uuid":                      "00000000-0000-4000-8000-000000000001",
		"schema_id":                 map[string]any{"namespace": "omh", "name": name, "version": version},
		"source_creation_date_time": "2026-01-02T00:00:00Z",
	}
	if source != "" {
		header["external_datasheets"] = []any{map[string]any{"datasheet_type": pick("", "manufacturer", "source_name"), "datasheet_reference": source}}
	}
	b, err := json.Marshal(map[string]any{"header": header, "body": body})
	if err != nil {
		return nil
	}
	return b
}
