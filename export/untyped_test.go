package export_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

// untypedRaw are points of schemas the vault stores without a typed model
// (as *omh.Document): one with no typed model at all, an IEEE 1752 one, an
// older version of a typed schema, one whose strings hold the characters a
// line reader may split on, and two of schemas that define no
// effective_time_frame, filed by the header's creation time (an IEEE
// survey, an OMH 1.x medication prescription).
var untypedRaw = []string{
	`{"header":{"uuid":"00000000-0000-4000-8000-0000000000a1","schema_id":{"namespace":"omh","name":"rr-interval","version":"1.0"},"source_creation_date_time":"2026-01-02T00:00:00Z","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"Polar H10"}]},"body":{"rr_interval":{"value":812,"unit":"ms"},"effective_time_frame":{"date_time":"2026-01-02T07:00:00-05:00"}}}`,
	`{"header":{"uuid":"00000000-0000-4000-8000-0000000000a2","schema_id":{"namespace":"ieee","name":"sleep-stage-summary","version":"1.0"},"source_creation_date_time":"2026-01-02T00:00:00Z"},"body":{"sleep_stage_summary":{"total_sleep_time":{"value":412,"unit":"min"}},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-01T23:00:00Z","end_date_time":"2026-01-02T07:00:00Z"}}}}`,
	`{"header":{"uuid":"00000000-0000-4000-8000-0000000000a3","schema_id":{"namespace":"omh","name":"blood-glucose","version":"2.0"},"source_creation_date_time":"2026-01-02T00:00:00Z"},"body":{"blood_glucose":{"value":5.4,"unit":"mmol/L"},"specimen_source":"plasma","effective_time_frame":{"date_time":"2026-01-02T07:00:00Z"}}}`,
	`{"header":{"uuid":"00000000-0000-4000-8000-0000000000a4","schema_id":{"namespace":"ieee","name":"food-entry","version":"0.1"},"source_creation_date_time":"2026-01-02T00:00:00Z"},"body":{"food_name":"soup\u2028and\u0085bread\u2029\u007f, \"quoted\"\nnext","food_amount":{"value":300,"unit":"mL"},"effective_time_frame":{"date_time":"2026-01-02T12:00:00Z"}}}`,
	`{"header":{"uuid":"00000000-0000-4000-8000-0000000000a5","schema_id":{"namespace":"ieee","name":"survey","version":"1.0"},"source_creation_date_time":"2026-01-02T08:30:00-05:00"},"body":{"items":[{"question":{"text":"How did you sleep?"},"answers":[{"value":"well"}]}],"delivery_details":{"end_status":"completed"}}}`,
	`{"header":{"id":"00000000-0000-4000-8000-0000000000a6","schema_id":{"namespace":"omh","name":"medication-prescription","version":"2.0"},"creation_date_time":"2026-01-02T09:15:00Z"},"body":{"medication":{"generic_name":"atenolol","strength":[{"value":50,"unit":"mg"}]},"schedule":[{"medication_dose":{"dose":{"value":1,"unit":"tablet"}},"dose_duration":{"duration":{"value":30,"unit":"d"}},"dose_recurrence":{"dose_prn_trigger":"pain"}}]}}`,
}

func untypedPoints(t testing.TB) []*omh.Point {
	t.Helper()
	var out []*omh.Point
	for _, raw := range untypedRaw {
		p, err := omh.Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%v\n%s", err, raw)
		}
		if _, ok := p.Body.(*omh.Document); !ok {
			t.Fatalf("%s is %T, want *omh.Document", p.Schema, p.Body)
		}
		out = append(out, p)
	}
	return out
}

// checkAttachment: an untyped reading's Observation is coded with its
// schema id in the OMH code system and carries the stored point, base64,
// in the R5 valueAttachment extension, with no other value.
func checkAttachment(t testing.TB, line []byte, schema string, point []byte) {
	t.Helper()
	o := decodeObs(t, line)
	if str(o, "code", "coding", 0, "system") != omh.CodeSystem || str(o, "code", "coding", 0, "code") != schema || get(o, "code", "coding", 1) != nil {
		t.Fatalf("code %v, want %s|%s", get(o, "code"), omh.CodeSystem, schema)
	}
	if get(o, "valueQuantity") != nil || get(o, "dataAbsentReason") != nil || get(o, "component") != nil || get(o, "category") != nil {
		t.Fatalf("an untyped reading has a typed value or category: %s", line)
	}
	if str(o, "extension", 0, "url") != "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value" || get(o, "extension", 1) != nil {
		t.Fatalf("extension %v", get(o, "extension"))
	}
	if ct := str(o, "extension", 0, "valueAttachment", "contentType"); ct != "application/json" {
		t.Fatalf("contentType %q", ct)
	}
	data, err := base64.StdEncoding.DecodeString(str(o, "extension", 0, "valueAttachment", "data"))
	if err != nil || !bytes.Equal(data, point) {
		t.Fatalf("attachment %q (%v), want the stored point %s", data, err, point)
	}
}

// checkBodyCell: a CSV row of an untyped reading has the typed value
// columns empty and its body's JSON in the body cell (the same JSON value
// as the stored body).
func checkBodyCell(t testing.TB, rec []string, body []byte) {
	t.Helper()
	if rec[4] != "" || rec[5] != "" || rec[6] != "" || rec[7] != "" {
		t.Fatalf("an untyped reading fills value columns: %q", rec)
	}
	var got, want any
	if err := json.Unmarshal([]byte(rec[9]), &got); err != nil {
		t.Fatalf("body cell is not JSON: %v: %q", err, rec[9])
	}
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body cell %q, want %s", rec[9], body)
	}
}

// TestFHIRUntyped: every untyped reading becomes a valid R4 Observation
// carrying the stored point; its effective time is the reading's.
func TestFHIRUntyped(t *testing.T) {
	u := encR4(t)
	enc := mustEncoder(t, "fhir")
	for _, p := range untypedPoints(t) {
		t.Run(p.Schema.String(), func(t *testing.T) {
			if !export.Supports("fhir", p.Schema.String()) {
				t.Fatalf("Supports(fhir, %s) = false", p.Schema)
			}
			point := p.AppendJSON(nil)
			line, _, o := encodeFHIR(t, u, enc, point)
			checkAttachment(t, line, p.Schema.String(), point)
			if str(o, "id") != p.UUID || str(o, "subject", "reference") != "Patient/pt-nbswy3dpo5xxe3de" {
				t.Errorf("id or subject: %s", line)
			}
			eff := str(o, "effectiveDateTime")
			if eff == "" {
				eff = str(o, "effectivePeriod", "start")
			}
			if tm := parseR4Time(t, eff); !tm.Equal(p.Time) {
				t.Errorf("effective %q, want %s", eff, p.Time)
			}
			// A schema with no effective_time_frame: the header's
			// creation time, as an instant.
			if omh.FiledByCreationTime(p.Schema) {
				if want := p.Header().SourceCreationDateTime.Text; str(o, "effectiveDateTime") != want || get(o, "effectivePeriod") != nil {
					t.Errorf("effective %q %v, want effectiveDateTime %q", str(o, "effectiveDateTime"), get(o, "effectivePeriod"), want)
				}
			}
		})
	}
}

// TestCSVUntyped: every untyped reading is one CSV record with its body
// in the body column, readable back as the same JSON, on one line.
func TestCSVUntyped(t *testing.T) {
	enc := mustEncoder(t, "csv")
	var points [][]byte
	for _, p := range untypedPoints(t) {
		point := p.AppendJSON(nil)
		points = append(points, point)
		out, err := enc.AppendRecord(nil, point)
		if err != nil {
			t.Fatalf("%s: %v", p.Schema, err)
		}
		oneLine(t, "csv", out)
		rec := readCSV(t, out)[0]
		if rec[0] != p.UUID || rec[1] != p.Schema.String() || rec[2] != p.Time.UTC().Format("2006-01-02T15:04:05Z07:00") {
			t.Errorf("%s: row %q", p.Schema, rec)
		}
		checkBodyCell(t, rec, p.Body.(*omh.Document).JSON())
		if strings.ContainsAny(rec[9], "\u2028\u2029\u0085\x7f\n") {
			t.Errorf("%s: body cell keeps a line-breaking character: %q", p.Schema, rec[9])
		}
	}
	csvRoundTrip(t, points)
}

// TestSupportsEveryAcceptedSchema: omh and csv carry every schema the
// vault stores, fhir all but the typed physical-activity.
func TestSupportsEveryAcceptedSchema(t *testing.T) {
	for _, id := range omh.Accepted() {
		for _, f := range []string{"omh", "csv"} {
			if !export.Supports(f, id.String()) {
				t.Errorf("Supports(%s, %s) = false", f, id)
			}
		}
		if got, want := export.Supports("fhir", id.String()), id.String() != "omh:physical-activity:1.2"; got != want {
			t.Errorf("Supports(fhir, %s) = %v, want %v", id, got, want)
		}
	}
}
