package fhirobs

// The test files in testdata are written for these tests, each in the shape
// of public examples:
//
//   - vitals-searchset.json: a searchset Bundle of the FHIR R4 vital signs
//     examples (observation-example-heart-rate, -bloodpressure, -bodyweight,
//     -body-temperature, -respiratory-rate; hl7.org/fhir/R4/observation-
//     vitalsigns.html) and US Core's observation-satO2-fiO2 (SpO2 with a
//     3151-8 inhaled oxygen flow rate component), with a Patient, a lab
//     result, a lone systolic pressure, an entered-in-error reading, the R4
//     heart-rate example with its date-only effectiveDateTime, and a
//     transaction-response style entry without a resource.
//   - bulk.ndjson: FHIR Bulk Data NDJSON (one resource a line) in the shape
//     Synthea writes (UUID ids, offsets), glucose in each of the six LOINC
//     codes (2339-0 and 15074-8 as Synthea and the R4 f001 example; 41653-7
//     and 14743-9 glucometer; 99504-3 and 105272-9 as the HL7 CGM IG's
//     sensor reading profiles, with the IG's "mg/dl" unit text), steps over a
//     period and as a daily total, a sleep duration, a weight without an
//     offset, Fahrenheit, and the older 55284-4 blood pressure panel.
//   - jhe-searchset.json: JupyterHealth Exchange's GET /fhir/r5/Observation
//     answer as its README shows it: OMH-coded Observations whose
//     valueAttachment.data is the whole point, serialised by Python's
//     json.dumps and base64-encoded with line breaks every 76 characters
//     (base64.encodebytes); the blood-glucose point follows the template of
//     JHE's iglu seed command; the third is the body-only attachment of the
//     README's upload example; the fourth a schema the vault does not store
//     (no such OMH schema exists); the fifth a body-only omh:rr-interval:1.0,
//     a schema the vault stores without a typed model, imported as it is.
//
// Each has a .golden file listing what Parse hands the sink; run
// go test ./ingest/fhirobs -run TestFiles -update to rewrite them after
// checking the difference.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

var update = flag.Bool("update", false, "rewrite the .golden files")

// transcript lists readings and skips in input order.
type transcript struct {
	lines []string
}

func (t *transcript) Reading(it ingest.Item) error {
	t.lines = append(t.lines, fmt.Sprintf("reading %s\n  %s", it.Pos, it.Point.AppendJSON(nil)))
	return nil
}

func (t *transcript) Skipped(s ingest.Skip) error {
	t.lines = append(t.lines, fmt.Sprintf("skip %s: %s: %s", s.Pos, s.Type, s.Reason))
	return nil
}

// samples are the test files, testdata/*.json and *.ndjson, by path.
func samples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.*json")
	if err != nil || len(files) < 3 {
		t.Fatalf("test files missing: %v %v", files, err)
	}
	m := map[string][]byte{}
	for _, f := range files {
		if m[f], err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestFiles: each test file gives what its .golden file lists, the same
// canonical bytes when parsed again, and points that round-trip.
func TestFiles(t *testing.T) {
	ny := ingesttest.NewYork(t)
	for f, data := range samples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var tr transcript
			if err := Parse(bytes.NewReader(data), ingest.Options{Location: ny}, &tr); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			ingesttest.CheckDeterministic(t, Parse, data, ingest.Options{Location: ny})
			got := strings.Join(tr.lines, "\n") + "\n"
			golden := strings.TrimSuffix(f, filepath.Ext(f)) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Parse(%s) differs from %s:\n%s", f, golden, diffLines(string(want), got))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// obs writes one Observation with status final and the members given.
func obs(members string) string {
	return `{"resourceType":"Observation","status":"final",` + members + `}`
}

func loinc(code string) string {
	return `"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]}`
}

func ucum(value, code string) string {
	return `"valueQuantity":{"value":` + value + `,"system":"http://unitsofmeasure.org","code":"` + code + `"}`
}

func unitText(value, unit string) string {
	return `"valueQuantity":{"value":` + value + `,"unit":"` + unit + `"}`
}

const at1 = `"effectiveDateTime":"2024-05-01T08:00:00+02:00"`
const frame1 = `"effective_time_frame":{"date_time":"2024-05-01T08:00:00+02:00"}`
const period1 = `"effectivePeriod":{"start":"2024-05-01T22:00:00Z","end":"2024-05-02T06:30:00Z"}`
const interval1 = `"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T22:00:00Z","end_date_time":"2024-05-02T06:30:00Z"}}`

func parseOne(t *testing.T, in string, loc *time.Location) (*ingesttest.Sink, error) {
	t.Helper()
	return ingesttest.Parse(Parse, []byte(in), ingest.Options{Location: loc})
}

// body returns a point's canonical body.
func body(p *omh.Point) string {
	s := string(p.AppendJSON(nil))
	i := strings.Index(s, `,"body":`)
	return s[i+len(`,"body":`) : len(s)-1]
}

// TestMapping covers every supported code and unit, one Observation each.
func TestMapping(t *testing.T) {
	bp := func(unit string) string {
		return `"component":[` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"` + unit + `"}},` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"` + unit + `"}}]`
	}
	bpBody := `{"systolic_blood_pressure":{"value":120,"unit":"mmHg"},"diastolic_blood_pressure":{"value":80,"unit":"mmHg"},` + frame1 + `}`
	cases := []struct {
		name, in, schema, body string
	}{
		{"heart rate /min", obs(loinc("8867-4") + "," + at1 + "," + ucum("72", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"heart rate {beats}/min", obs(loinc("8867-4") + "," + at1 + "," + ucum("72", "{beats}/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"heart rate text bpm", obs(loinc("8867-4") + "," + at1 + "," + unitText("72", "BPM")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"heart rate by pulse oximetry 8889-8", obs(loinc("8889-8") + "," + at1 + "," + ucum("72", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"heart rate over a period", obs(loinc("8867-4") + "," + period1 + "," + ucum("61.5", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":61.5,"unit":"beats/min"},` + interval1 + `}`},
		{"respiratory rate", obs(loinc("9279-1") + "," + at1 + "," + ucum("16", "/min")), "omh:respiratory-rate:2.0",
			`{"respiratory_rate":{"value":16,"unit":"breaths/min"},` + frame1 + `}`},
		{"respiratory rate text", obs(loinc("9279-1") + "," + at1 + "," + unitText("16", "breaths/minute")), "omh:respiratory-rate:2.0",
			`{"respiratory_rate":{"value":16,"unit":"breaths/min"},` + frame1 + `}`},
		{"blood pressure 85354-9", obs(loinc("85354-9") + "," + at1 + "," + bp("mm[Hg]")), "omh:blood-pressure:4.0", bpBody},
		{"blood pressure 55284-4", obs(loinc("55284-4") + "," + at1 + "," + bp("mm[Hg]")), "omh:blood-pressure:4.0", bpBody},
		{"blood pressure components in any order", obs(loinc("85354-9") + "," + at1 + `,"component":[` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm Hg"}},` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8478-0"}]},"valueQuantity":{"value":93,"unit":"mm Hg"}},` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg"}}]`),
			"omh:blood-pressure:4.0", bpBody},
		{"body weight kg", obs(loinc("29463-7") + "," + at1 + "," + ucum("70.25", "kg")), "omh:body-weight:3.0",
			`{"body_weight":{"value":70.25,"unit":"kg"},` + frame1 + `}`},
		{"body weight g", obs(loinc("29463-7") + "," + at1 + "," + ucum("70250", "g")), "omh:body-weight:3.0",
			`{"body_weight":{"value":70250,"unit":"g"},` + frame1 + `}`},
		{"body weight [lb_av]", obs(loinc("29463-7") + "," + at1 + "," + ucum("155", "[lb_av]")), "omh:body-weight:3.0",
			`{"body_weight":{"value":155,"unit":"lb"},` + frame1 + `}`},
		{"body weight [oz_av]", obs(loinc("29463-7") + "," + at1 + "," + ucum("2480", "[oz_av]")), "omh:body-weight:3.0",
			`{"body_weight":{"value":2480,"unit":"oz"},` + frame1 + `}`},
		{"body weight text lbs", obs(loinc("29463-7") + "," + at1 + "," + unitText("155", "lbs")), "omh:body-weight:3.0",
			`{"body_weight":{"value":155,"unit":"lb"},` + frame1 + `}`},
		{"body weight measured 3141-9", obs(loinc("3141-9") + "," + at1 + "," + ucum("70", "kg")), "omh:body-weight:3.0",
			`{"body_weight":{"value":70,"unit":"kg"},` + frame1 + `}`},
		{"SpO2 59408-5 is pulse oximetry", obs(loinc("59408-5") + "," + at1 + "," + ucum("97", "%")), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":97,"unit":"%"},"measurement_method":"pulse oximetry",` + frame1 + `}`},
		{"SpO2 2708-6 alone names no method", obs(loinc("2708-6") + "," + at1 + "," + ucum("97", "%")), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":97,"unit":"%"},` + frame1 + `}`},
		{"SpO2 with room air flow 0", obs(loinc("2708-6") + "," + at1 + "," + ucum("97", "%") +
			`,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"3151-8"}]},"valueQuantity":{"value":0,"unit":"L/min"}}]`), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":97,"unit":"%"},"supplemental_oxygen_flow_rate":{"value":0,"unit":"L/min"},` + frame1 + `}`},
		{"body temperature Cel", obs(loinc("8310-5") + "," + at1 + "," + ucum("36.8", "Cel")), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":36.8,"unit":"C"},` + frame1 + `}`},
		{"body temperature [degF]", obs(loinc("8310-5") + "," + at1 + "," + ucum("98.2", "[degF]")), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":98.2,"unit":"F"},` + frame1 + `}`},
		{"body temperature K", obs(loinc("8310-5") + "," + at1 + "," + ucum("310", "K")), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":310,"unit":"K"},` + frame1 + `}`},
		{"body temperature text °C", obs(loinc("8310-5") + "," + at1 + "," + unitText("36.8", "°C")), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":36.8,"unit":"C"},` + frame1 + `}`},
		{"steps {steps}", obs(loinc("55423-8") + "," + period1 + "," + ucum("5123", "{steps}")), "omh:step-count:3.0",
			`{"step_count":{"value":5123,"unit":"steps"},` + interval1 + `}`},
		{"steps UCUM 1", obs(loinc("55423-8") + "," + period1 + "," + ucum("5123", "1")), "omh:step-count:3.0",
			`{"step_count":{"value":5123,"unit":"steps"},` + interval1 + `}`},
		{"steps without unit", obs(loinc("55423-8") + "," + period1 + `,"valueQuantity":{"value":5123}`), "omh:step-count:3.0",
			`{"step_count":{"value":5123,"unit":"steps"},` + interval1 + `}`},
		{"steps valueInteger", obs(loinc("55423-8") + "," + period1 + `,"valueInteger":5123`), "omh:step-count:3.0",
			`{"step_count":{"value":5123,"unit":"steps"},` + interval1 + `}`},
		{"steps in 24 hours 41950-7", obs(loinc("41950-7") + "," + period1 + "," + ucum("5123", "{steps}")), "omh:step-count:3.0",
			`{"step_count":{"value":5123,"unit":"steps"},` + interval1 + `}`},
		{"CGM 99504-3 mg/dL", obs(loinc("99504-3") + "," + at1 + "," + ucum("120", "mg/dL")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":120,"unit":"mg/dL"},"specimen_source":"interstitial fluid",` + frame1 + `}`},
		{"CGM 105272-9 mmol/L", obs(loinc("105272-9") + "," + at1 + "," + ucum("6.7", "mmol/L")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":6.7,"unit":"mmol/L"},"specimen_source":"interstitial fluid",` + frame1 + `}`},
		{"fingerstick 41653-7", obs(loinc("41653-7") + "," + at1 + "," + ucum("104", "mg/dL")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":104,"unit":"mg/dL"},"specimen_source":"capillary blood",` + frame1 + `}`},
		{"fingerstick 14743-9", obs(loinc("14743-9") + "," + at1 + "," + ucum("5.8", "mmol/L")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":5.8,"unit":"mmol/L"},"specimen_source":"capillary blood",` + frame1 + `}`},
		{"blood 2339-0", obs(loinc("2339-0") + "," + at1 + "," + ucum("99", "mg/dL")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":99,"unit":"mg/dL"},` + frame1 + `}`},
		{"blood 15074-8", obs(loinc("15074-8") + "," + at1 + "," + ucum("5.5", "mmol/L")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":5.5,"unit":"mmol/L"},` + frame1 + `}`},
		{"glucose unit decides, code the specimen", obs(loinc("2339-0") + "," + at1 + "," + unitText("5.5", "mmol/l")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":5.5,"unit":"mmol/L"},` + frame1 + `}`},
		{"glucose the vault exports by text", obs(`"code":{"text":"Glucose in urine"},` + at1 + "," + ucum("15", "mg/dL")), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":15,"unit":"mg/dL"},"specimen_source":"urine",` + frame1 + `}`},
		{"sleep duration", obs(loinc("93832-4") + "," + period1 + "," + ucum("7.5", "h")), "omh:sleep-episode:1.1",
			`{"total_sleep_time":{"value":7.5,"unit":"h"},` + interval1 + `}`},
		{"first known LOINC coding wins", obs(`"code":{"coding":[{"system":"http://snomed.info/sct","code":"364075005"},{"system":"http://loinc.org","code":"8480-6"},{"system":"http://loinc.org","code":"8867-4"}]},` + at1 + "," + ucum("72", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"amended", strings.Replace(obs(loinc("8867-4")+","+at1+","+ucum("72", "/min")), `"final"`, `"amended"`, 1), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"corrected", strings.Replace(obs(loinc("8867-4")+","+at1+","+ucum("72", "/min")), `"final"`, `"corrected"`, 1), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"effectiveInstant", obs(loinc("8867-4") + `,"effectiveInstant":"2024-05-01T08:00:00+02:00",` + ucum("72", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"period without end is its start", obs(loinc("8867-4") + `,"effectivePeriod":{"start":"2024-05-01T08:00:00+02:00"},` + ucum("72", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
		{"value with exponent", obs(loinc("8867-4") + "," + at1 + "," + ucum("7.2e1", "/min")), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":72,"unit":"beats/min"},` + frame1 + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(tc.in), ingest.Options{})
			if len(c.Items) != 1 || len(c.Skips) != 0 {
				t.Fatalf("got %d readings, skips %v; want one reading", len(c.Items), c.Skips)
			}
			p := c.Items[0].Point
			if p.Schema.String() != tc.schema {
				t.Errorf("schema %s, want %s", p.Schema, tc.schema)
			}
			if got := body(p); got != tc.body {
				t.Errorf("body\n got %s\nwant %s", got, tc.body)
			}
			if c.Items[0].Pos != (ingest.Pos{Line: 1, Element: "Observation"}) {
				t.Errorf("pos %+v", c.Items[0].Pos)
			}
		})
	}
}

// TestIdentity: Observation.id becomes the uuid when it is one, else the
// source id the vault derives the uuid from; device becomes the datasheet.
func TestIdentity(t *testing.T) {
	base := loinc("8867-4") + "," + at1 + "," + ucum("72", "/min")
	cases := []struct {
		name, in, uuid, sourceID string
		ds                       []omh.Datasheet
	}{
		{"uuid id", obs(`"id":"6E3DB887-4A20-4222-9998-2972AF6FB091",` + base), "6e3db887-4a20-4222-9998-2972af6fb091", "", nil},
		{"server id", obs(`"id":"63416",` + base), "", "63416", nil},
		{"no id", obs(base), "", "", nil},
		{"device display", obs(base + `,"device":{"reference":"Device/1","display":"Apple Watch"}`), "", "",
			[]omh.Datasheet{{Type: "source_name", Reference: "Apple Watch"}}},
		{"device reference", obs(base + `,"device":{"reference":"Device/1"}`), "", "",
			[]omh.Datasheet{{Type: "device", Reference: "Device/1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseOne(t, tc.in, nil)
			if err != nil || len(c.Items) != 1 {
				t.Fatalf("Parse: %v, %d readings", err, len(c.Items))
			}
			p := c.Items[0].Point
			if p.UUID != tc.uuid || p.SourceID != tc.sourceID {
				t.Errorf("uuid %q source id %q, want %q %q", p.UUID, p.SourceID, tc.uuid, tc.sourceID)
			}
			ds := p.Header().ExternalDatasheets
			if len(ds) != len(tc.ds) {
				t.Fatalf("datasheets %+v, want %+v", ds, tc.ds)
			}
			for i := range ds {
				if ds[i].Type != tc.ds[i].Type || ds[i].Reference != tc.ds[i].Reference {
					t.Errorf("datasheet %+v, want %+v", ds[i], tc.ds[i])
				}
			}
		})
	}
}

func TestSkips(t *testing.T) {
	hr := loinc("8867-4") + "," + ucum("72", "/min")
	cases := []struct {
		name, in, typ, reason string
	}{
		{"other resource", `{"resourceType":"Patient","id":"p1","status":5}`, "Patient", "not an Observation"},
		{"unknown code", obs(loinc("2093-3") + "," + at1 + "," + ucum("6.3", "mmol/L")), "http://loinc.org|2093-3", "no Open mHealth schema"},
		{"unknown code is not checked further", `{"resourceType":"Observation","code":{"coding":[{"system":"http://snomed.info/sct","code":"27113001"}]},"status":7}`, "http://snomed.info/sct|27113001", "no Open mHealth schema"},
		{"no coding", obs(`"code":{"text":"Mood"},` + at1), "Observation", "no Open mHealth schema"},
		{"lone diastolic", obs(loinc("8462-4") + "," + at1 + "," + ucum("80", "mm[Hg]")), "http://loinc.org|8462-4", "on its own"},
		{"preliminary", strings.Replace(obs(hr+","+at1), "final", "preliminary", 1), "http://loinc.org|8867-4", "status preliminary"},
		{"entered-in-error", strings.Replace(obs(hr+","+at1), "final", "entered-in-error", 1), "http://loinc.org|8867-4", "status entered-in-error"},
		{"cancelled", strings.Replace(obs(hr+","+at1), "final", "cancelled", 1), "http://loinc.org|8867-4", "status cancelled"},
		{"date only", obs(hr + `,"effectiveDateTime":"2024-05-01"`), "http://loinc.org|8867-4", "only a date"},
		{"month only", obs(hr + `,"effectiveDateTime":"2024-05"`), "http://loinc.org|8867-4", "only a date"},
		{"period of dates", obs(hr + `,"effectivePeriod":{"start":"2024-05-01","end":"2024-05-02"}`), "http://loinc.org|8867-4", "given in dates"},
		{"period without start", obs(hr + `,"effectivePeriod":{"end":"2024-05-01T08:00:00Z"}`), "http://loinc.org|8867-4", "no start"},
		{"no effective", obs(hr), "http://loinc.org|8867-4", "no effective time"},
		{"timing", obs(hr + `,"effectiveTiming":{"event":["2024-05-01T08:00:00Z"]}`), "http://loinc.org|8867-4", "effectiveTiming"},
		{"steps at an instant", obs(loinc("55423-8") + "," + at1 + "," + ucum("300", "{steps}")), "http://loinc.org|55423-8", "needs an interval"},
		{"steps period without end", obs(loinc("55423-8") + `,"effectivePeriod":{"start":"2024-05-01T08:00:00Z"},` + ucum("300", "{steps}")), "http://loinc.org|55423-8", "no end"},
		{"sleep on a date", obs(loinc("93832-4") + `,"effectiveDateTime":"2024-05-01",` + ucum("400", "min")), "http://loinc.org|93832-4", "only a date"},
		{"data absent", obs(loinc("8867-4") + "," + at1 + `,"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"asked-unknown"}]}`), "http://loinc.org|8867-4", "dataAbsentReason"},
		{"string value", obs(loinc("8867-4") + "," + at1 + `,"valueString":"72"`), "http://loinc.org|8867-4", "no valueQuantity"},
		{"comparator", obs(loinc("2339-0") + "," + at1 + `,"valueQuantity":{"value":400,"comparator":">","unit":"mg/dL"}`), "http://loinc.org|2339-0", "comparator"},
		{"quantity without value", obs(loinc("2339-0") + "," + at1 + `,"valueQuantity":{"unit":"mg/dL"}`), "http://loinc.org|2339-0", "no value"},
		{"panel without diastolic", obs(loinc("85354-9") + "," + at1 + `,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg"}}]`), "http://loinc.org|85354-9", "lacks"},
		{"panel component without value", obs(loinc("85354-9") + "," + at1 + `,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"dataAbsentReason":{"text":"x"}}]`), "http://loinc.org|85354-9", "no valueQuantity"},
		{"OMH schema the vault lacks", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:heart-rate-variability:1.0"}]},"valueAttachment":{"data":"e30="}`), "https://w3id.org/openmhealth|omh:heart-rate-variability:1.0", "no Open mHealth schema"},
		{"OMH fragment, not a data point", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:unit-value:1.0"}]},"valueAttachment":{"data":"e30="}`), "https://w3id.org/openmhealth|omh:unit-value:1.0", "no Open mHealth schema"},
		{"OMH code not a schema id", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"blood glucose"}]},"valueAttachment":{"data":"e30="}`), "https://w3id.org/openmhealth|blood glucose", "not an Open mHealth schema id"},
		{"OMH attachment by url", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"url":"https://example.org/p.json"}`), "https://w3id.org/openmhealth|omh:blood-glucose:4.0", "not fetch"},
		{"OMH attachment not JSON", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"contentType":"application/pdf","data":"e30="}`), "https://w3id.org/openmhealth|omh:blood-glucose:4.0", "not application/json"},
		{"bundle entry without resource", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}}]}`, "entry", "no resource"},
		{"nested Bundle", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","type":"collection"}}]}`, "Bundle", "not an Observation"},
		{"List before its resourceType", `{"entry":[],"resourceType":"List"}`, "List", "not an Observation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(tc.in), ingest.Options{})
			if len(c.Items) != 0 || len(c.Skips) != 1 {
				t.Fatalf("got %d readings, skips %+v; want one skip", len(c.Items), c.Skips)
			}
			s := c.Skips[0]
			if s.Type != tc.typ || !strings.Contains(s.Reason, tc.reason) {
				t.Errorf("skip %q %q, want type %q and a reason with %q", s.Type, s.Reason, tc.typ, tc.reason)
			}
		})
	}
}

// TestErrors: every malformed case is an *ingest.Error with a stable code,
// a position, and a message without the value found there. The inputs hold
// the marker 7391 (or SECRET) where a value would leak.
func TestErrors(t *testing.T) {
	hr := loinc("8867-4") + "," + ucum("7391", "/min")
	cases := []struct {
		name, in string
		code     string
		pos      ingest.Pos
	}{
		{"empty", "", "bad_json", ingest.Pos{}},
		{"white space only", "\n\n  \n", "bad_json", ingest.Pos{}},
		{"not JSON", "SECRET 7391", "bad_json", ingest.Pos{Line: 1}},
		{"array", `[{"resourceType":"Observation"}]`, "bad_json", ingest.Pos{Line: 1}},
		{"no resourceType", `{"status":"SECRET"}`, "bad_json", ingest.Pos{Line: 1}},
		{"resourceType not a string", `{"resourceType":7391}`, "bad_json", ingest.Pos{Line: 1, Element: "resourceType"}},
		{"cut short", `{"resourceType":"Observation","status":"final","valueQuantity":{"value":7391`, "bad_json", ingest.Pos{Line: 1}},
		{"second NDJSON line broken", obs(hr+","+at1) + "\n" + `{"resourceType":"Observation",SECRET}` + "\n", "bad_json", ingest.Pos{Line: 2}},
		{"repeated member", `{"resourceType":"Observation","status":"final","status":"SECRET",` + hr + "," + at1 + `}`, "bad_json", ingest.Pos{Line: 1, Element: "Observation"}},
		{"invalid UTF-8", obs(hr + "," + at1 + `,"note":[{"text":"SECRET` + "\xff" + `"}]`), "bad_json", ingest.Pos{Line: 1, Element: "Observation"}},
		{"no status", `{"resourceType":"Observation",` + hr + "," + at1 + `}`, "bad_value", ingest.Pos{Line: 1, Element: "Observation.status"}},
		{"status not a code", strings.Replace(obs(hr+","+at1), "final", "SECRET", 1), "bad_value", ingest.Pos{Line: 1, Element: "Observation.status"}},
		{"status not a string", strings.Replace(obs(hr+","+at1), `"final"`, `7391`, 1), "bad_json", ingest.Pos{Line: 1, Element: "Observation.status"}},
		{"no code", obs(at1 + "," + ucum("7391", "/min")), "bad_value", ingest.Pos{Line: 1, Element: "Observation.code"}},
		{"coding not an array", obs(`"code":{"coding":{"code":"SECRET"}},` + at1), "bad_json", ingest.Pos{Line: 1, Element: "Observation.code.coding"}},
		{"bad id", obs(`"id":"SECRET 7391",` + hr + "," + at1), "bad_value", ingest.Pos{Line: 1, Element: "Observation.id"}},
		{"unknown UCUM unit", obs(loinc("8867-4") + "," + at1 + "," + ucum("7391", "SECRET")), "bad_unit", ingest.Pos{Line: 1, Element: "Observation.valueQuantity"}},
		{"unknown unit text", obs(loinc("29463-7") + "," + at1 + "," + unitText("7391", "stone")), "bad_unit", ingest.Pos{Line: 1, Element: "Observation.valueQuantity"}},
		{"kPa blood pressure", obs(loinc("85354-9") + "," + at1 + `,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":7391,"system":"http://unitsofmeasure.org","code":"kPa"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":10,"system":"http://unitsofmeasure.org","code":"kPa"}}]`),
			"bad_unit", ingest.Pos{Line: 1, Element: "Observation.component[0].valueQuantity"}},
		{"glucose without unit", obs(loinc("2339-0") + "," + at1 + `,"valueQuantity":{"value":7391}`), "bad_unit", ingest.Pos{Line: 1, Element: "Observation.valueQuantity"}},
		{"flow rate unit", obs(loinc("59408-5") + "," + at1 + "," + ucum("97", "%") + `,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"3151-8"}]},"valueQuantity":{"value":7391,"unit":"SECRET"}}]`),
			"bad_unit", ingest.Pos{Line: 1, Element: "Observation.component[0].valueQuantity"}},
		{"value a string", obs(loinc("8867-4") + "," + at1 + `,"valueQuantity":{"value":"7391","unit":"/min"}`), "bad_json", ingest.Pos{Line: 1, Element: "Observation.valueQuantity.value"}},
		{"value beyond float64", obs(loinc("8867-4") + "," + at1 + "," + ucum("7391e400", "/min")), "invalid_value", ingest.Pos{Line: 1, Element: "Observation"}},
		{"bad dateTime", obs(hr + `,"effectiveDateTime":"7391-13-01T00:00:00Z"`), "bad_time", ingest.Pos{Line: 1, Element: "Observation.effectiveDateTime"}},
		{"dateTime with comma fraction", obs(hr + `,"effectiveDateTime":"2024-05-01T08:00:00,7391Z"`), "bad_time", ingest.Pos{Line: 1, Element: "Observation.effectiveDateTime"}},
		{"dateTime without seconds", obs(hr + `,"effectiveDateTime":"2024-05-01T08:00"`), "bad_time", ingest.Pos{Line: 1, Element: "Observation.effectiveDateTime"}},
		{"bad period end", obs(hr + `,"effectivePeriod":{"start":"2024-05-01T08:00:00Z","end":"SECRET"}`), "bad_time", ingest.Pos{Line: 1, Element: "Observation.effectivePeriod.end"}},
		{"period ends before it starts", obs(loinc("55423-8") + "," + ucum("7391", "{steps}") + `,"effectivePeriod":{"start":"2024-05-01T08:00:00Z","end":"2024-05-01T07:00:00Z"}`), "bad_time", ingest.Pos{Line: 1, Element: "Observation.effectivePeriod"}},
		{"two effective[x]", obs(hr + "," + at1 + `,"effectiveInstant":"2024-05-01T08:00:00Z"`), "bad_json", ingest.Pos{Line: 1, Element: "Observation"}},
		{"entry not an array", `{"resourceType":"Bundle","entry":{"resource":{}}}`, "bad_json", ingest.Pos{Line: 1}},
		{"entry not an object", `{"resourceType":"Bundle","entry":[7391]}`, "bad_json", ingest.Pos{Line: 1, Element: "entry[0]"}},
		{"bad entry deep in a bundle", "{\"resourceType\":\"Bundle\",\"entry\":[\n{\"resource\":" + obs(hr+","+at1) + "},\n{\"resource\":" + obs(loinc("8867-4")+","+at1+","+ucum("7391", "SECRET")) + "}]}",
			"bad_unit", ingest.Pos{Line: 3, Element: "entry[1].resource.valueQuantity"}},
		{"OMH without attachment", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]}`), "bad_value", ingest.Pos{Line: 1, Element: "Observation.valueAttachment"}},
		{"OMH attachment not base64", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"data":"SECRET!7391"}`), "bad_value", ingest.Pos{Line: 1, Element: "Observation.valueAttachment.data"}},
		{"OMH attachment not a JSON object", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"data":"U0VDUkVUIDczOTE="}`), "bad_json", ingest.Pos{Line: 1, Element: "Observation.valueAttachment.data"}},
		{"OMH attachment of two base64 characters (fuzz f0befd2ea364947f)", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-pressure:2.0"}]},"valueAttachment":{"data":"00"}`), "bad_json", ingest.Pos{Line: 1, Element: "Observation.valueAttachment.data"}},
		{"OMH attachment trailing data", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"data":"` + b64(`{"x":1},{"y":7391}`) + `"}`), "bad_json", ingest.Pos{Line: 1, Element: "Observation.valueAttachment.data"}},
		{"OMH point invalid", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"data":"` +
			b64(`{"header":{"uuid":"3f1c2b7e-9a4d-4e21-8c55-0d2f6a9b1e34","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":7391,"unit":"SECRET"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}}`) + `"}`),
			"bad_unit", ingest.Pos{Line: 1, Element: "Observation.valueAttachment.data"}},
		{"OMH point of another schema", obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:heart-rate:2.0"}]},"valueAttachment":{"data":"` +
			b64(`{"header":{"uuid":"3f1c2b7e-9a4d-4e21-8c55-0d2f6a9b1e34","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":7391,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}}`) + `"}`),
			"bad_value", ingest.Pos{Line: 1, Element: "Observation.code"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOne(t, tc.in, nil)
			ingesttest.CheckErr(t, err, tc.code, tc.pos, "7391", "SECRET", "stone", "kPa")
		})
	}
}

func b64(s string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	for i := 0; i < len(s); i += 3 {
		var n uint32
		k := min(3, len(s)-i)
		for j := 0; j < 3; j++ {
			n <<= 8
			if j < k {
				n |= uint32(s[i+j])
			}
		}
		for j := 0; j < 4; j++ {
			if j <= k {
				b.WriteByte(enc[n>>(18-6*j)&63])
			} else {
				b.WriteByte('=')
			}
		}
	}
	return b.String()
}

// TestTimes: offsets kept as given; local times read in the patient's zone
// with its offset written; partial dates as whole local days for steps.
func TestTimes(t *testing.T) {
	kolkata := calendartest.Location(t, "Asia/Kolkata")
	ny := ingesttest.NewYork(t)
	hr := loinc("8867-4") + "," + ucum("72", "/min") + ","
	steps := loinc("55423-8") + "," + ucum("100", "{steps}") + ","
	cases := []struct {
		name, in string
		loc      *time.Location
		frame    string
		instant  time.Time
	}{
		{"offset kept", obs(hr + `"effectiveDateTime":"2024-05-01T08:00:00.250-07:00"`), kolkata,
			`{"date_time":"2024-05-01T08:00:00.250-07:00"}`, time.Date(2024, 5, 1, 15, 0, 0, 250e6, time.UTC)},
		{"Z kept", obs(hr + `"effectiveDateTime":"2024-05-01T08:00:00Z"`), kolkata,
			`{"date_time":"2024-05-01T08:00:00Z"}`, time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)},
		{"no offset: the patient's zone", obs(hr + `"effectiveDateTime":"2024-05-01T08:00:00"`), kolkata,
			`{"date_time":"2024-05-01T08:00:00+05:30"}`, time.Date(2024, 5, 1, 2, 30, 0, 0, time.UTC)},
		{"no offset with fraction", obs(hr + `"effectiveDateTime":"2024-01-15T08:00:00.5"`), ny,
			`{"date_time":"2024-01-15T08:00:00.5-05:00"}`, time.Date(2024, 1, 15, 13, 0, 0, 5e8, time.UTC)},
		{"no offset in summer time", obs(hr + `"effectiveDateTime":"2024-07-15T08:00:00"`), ny,
			`{"date_time":"2024-07-15T08:00:00-04:00"}`, time.Date(2024, 7, 15, 12, 0, 0, 0, time.UTC)},
		{"no offset, no zone: UTC", obs(hr + `"effectiveDateTime":"2024-07-15T08:00:00"`), nil,
			`{"date_time":"2024-07-15T08:00:00Z"}`, time.Date(2024, 7, 15, 8, 0, 0, 0, time.UTC)},
		{"steps on a date: the local day", obs(steps + `"effectiveDateTime":"2024-05-02"`), kolkata,
			`{"time_interval":{"start_date_time":"2024-05-02T00:00:00+05:30","end_date_time":"2024-05-03T00:00:00+05:30"}}`, time.Date(2024, 5, 1, 18, 30, 0, 0, time.UTC)},
		{"steps on the day summer time starts", obs(steps + `"effectiveDateTime":"2024-03-10"`), ny,
			`{"time_interval":{"start_date_time":"2024-03-10T00:00:00-05:00","end_date_time":"2024-03-11T00:00:00-04:00"}}`, time.Date(2024, 3, 10, 5, 0, 0, 0, time.UTC)},
		{"steps in a month", obs(steps + `"effectiveDateTime":"2024-02"`), ny,
			`{"time_interval":{"start_date_time":"2024-02-01T00:00:00-05:00","end_date_time":"2024-03-01T00:00:00-05:00"}}`, time.Date(2024, 2, 1, 5, 0, 0, 0, time.UTC)},
		{"steps over dates: the end day is included", obs(steps + `"effectivePeriod":{"start":"2024-05-01","end":"2024-05-07"}`), ny,
			`{"time_interval":{"start_date_time":"2024-05-01T00:00:00-04:00","end_date_time":"2024-05-08T00:00:00-04:00"}}`, time.Date(2024, 5, 1, 4, 0, 0, 0, time.UTC)},
		{"steps local period", obs(steps + `"effectivePeriod":{"start":"2024-05-01T09:00:00","end":"2024-05-01T10:00:00"}`), ny,
			`{"time_interval":{"start_date_time":"2024-05-01T09:00:00-04:00","end_date_time":"2024-05-01T10:00:00-04:00"}}`, time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseOne(t, tc.in, tc.loc)
			if err != nil || len(c.Items) != 1 {
				t.Fatalf("Parse: %v, %d readings, skips %v", err, len(c.Items), c.Skips)
			}
			p := c.Items[0].Point
			b := body(p)
			i := strings.Index(b, `"effective_time_frame":`)
			if got := b[i+len(`"effective_time_frame":`) : len(b)-1]; got != tc.frame {
				t.Errorf("frame\n got %s\nwant %s", got, tc.frame)
			}
			if !p.Time.Equal(tc.instant) {
				t.Errorf("time %v, want %v", p.Time, tc.instant)
			}
		})
	}
}

func TestLines(t *testing.T) {
	hr := obs(loinc("8867-4") + "," + at1 + "," + ucum("72", "/min"))
	in := "\xef\xbb\xbf" + hr + "\n\n" + `{"resourceType":"Patient"}` + "\r\n" + hr + "\n"
	c := ingesttest.MustParse(t, Parse, []byte(in), ingest.Options{})
	if len(c.Items) != 2 || c.Items[0].Pos.Line != 1 || c.Items[1].Pos.Line != 4 || len(c.Skips) != 1 || c.Skips[0].Pos.Line != 3 {
		t.Errorf("readings %+v skips %+v", c.Items, c.Skips)
	}
	// A pretty-printed single Observation is one resource.
	pretty := "{\n  \"resourceType\": \"Observation\",\n  \"status\": \"final\",\n  " + loinc("8867-4") + ",\n  " + at1 + ",\n  " + ucum("72", "/min") + "\n}\n"
	if c, err := parseOne(t, pretty, nil); err != nil || len(c.Items) != 1 || c.Items[0].Pos.Line != 1 {
		t.Errorf("pretty: %v %+v", err, c.Items)
	}
}

func TestSniff(t *testing.T) {
	for _, f := range []string{"vitals-searchset.json", "bulk.ndjson", "jhe-searchset.json"} {
		data := ingesttest.ReadFile(t, f)
		if !Sniff(data[:min(len(data), 512)]) {
			t.Errorf("Sniff(%s) = false", f)
		}
	}
	for _, s := range []string{"", `[{"sgv":120}]`, `{"header":{},"body":{}}`, "Device,Timestamp\n", `{"resourceType"`[:5]} {
		if Sniff([]byte(s)) {
			t.Errorf("Sniff(%q) = true", s)
		}
	}
	if !Sniff([]byte("\xef\xbb\xbf\n {\"resourceType\":\"Bundle\"")) {
		t.Error("Sniff with a BOM = false")
	}
}

// TestStops: a sink's or a reader's error stops the parse, in a Bundle and
// in NDJSON.
func TestStops(t *testing.T) {
	bundle := ingesttest.ReadFile(t, "vitals-searchset.json")
	ingesttest.CheckStops(t, Parse, bundle, 0, 1, 100, len(bundle)/2, len(bundle)-1)
	bulk := ingesttest.ReadFile(t, "bulk.ndjson")
	ingesttest.CheckStops(t, Parse, bulk, 0, len(bulk)/2, len(bulk)-1)
}

// bundleReader generates a searchset Bundle of n heart rate entries
// without holding it.
type bundleReader struct {
	n, i int
	buf  []byte
	done bool
}

func (g *bundleReader) Read(b []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.done:
			return 0, io.EOF
		case g.i == 0:
			g.buf = append(g.buf, `{"resourceType":"Bundle","type":"searchset","entry":[`...)
		case g.i > g.n:
			g.buf = append(g.buf, "]}"...)
			g.done = true
		}
		if g.i >= 1 && g.i <= g.n {
			if g.i > 1 {
				g.buf = append(g.buf, ",\n"...)
			}
			g.buf = fmt.Appendf(g.buf, `{"fullUrl":"urn:uuid:x","resource":{"resourceType":"Observation","id":"hr-%d","status":"final",`+
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
				`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},`+
				`"subject":{"reference":"Patient/example"},"effectiveDateTime":"2024-05-01T%02d:%02d:%02dZ",`+
				`"valueQuantity":{"value":%d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}}`,
				g.i, g.i/3600%24, g.i/60%60, g.i%60, 50+g.i%70)
		}
		g.i++
	}
	n := copy(b, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestStreaming: a Bundle bigger than MaxResource parses, since it is read
// entry by entry; one entry bigger than MaxResource is refused.
func TestStreaming(t *testing.T) {
	const n = 40000 // about 19 MB
	var c ingesttest.Count
	if err := Parse(&bundleReader{n: n}, ingest.Options{}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Readings != n {
		t.Errorf("%d readings, want %d", c.Readings, n)
	}
	big := `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","note":[{"text":"` + strings.Repeat("x", MaxResource+1) + `"}]}}]}`
	var ie *ingest.Error
	if err := Parse(strings.NewReader(big), ingest.Options{}, &c); !errors.As(err, &ie) || ie.Code != "bad_json" {
		t.Errorf("oversized entry: %v", err)
	}
	big = `{"resourceType":"Observation","note":[{"text":"` + strings.Repeat("x", MaxResource/2) + `"}],"text":{"div":"` + strings.Repeat("x", MaxResource/2) + `"}}`
	if err := Parse(strings.NewReader(big), ingest.Options{}, &c); !errors.As(err, &ie) || ie.Code != "bad_json" {
		t.Errorf("oversized resource: %v", err)
	}
}

// TestShapes: member order and nesting the walker must cope with.
func TestShapes(t *testing.T) {
	hr := obs(loinc("8867-4") + "," + at1 + "," + ucum("72", "/min"))
	cases := []struct {
		name     string
		in       string
		readings int
		skips    int
	}{
		{"resourceType last in an Observation", `{"status":"final",` + loinc("8867-4") + "," + at1 + "," + ucum("72", "/min") + `,"resourceType":"Observation"}`, 1, 0},
		{"entry before resourceType", `{"type":"collection","entry":[{"resource":` + hr + `},{"resource":` + hr + `}],"resourceType":"Bundle"}`, 2, 0},
		{"entry after other members", `{"resourceType":"Bundle","id":"b","meta":{"lastUpdated":"2024-05-01T00:00:00Z"},"type":"searchset","total":1,"link":[{"relation":"self","url":"x"}],"entry":[{"fullUrl":"urn:uuid:1","resource":` + hr + `,"search":{"mode":"match"}}]}`, 1, 0},
		{"resource before fullUrl", `{"resourceType":"Bundle","entry":[{"resource":` + hr + `,"fullUrl":"urn:uuid:1"}]}`, 1, 0},
		{"empty Bundle", `{"resourceType":"Bundle","type":"searchset","total":0}`, 0, 0},
		{"empty entry array", `{"resourceType":"Bundle","entry":[]}`, 0, 0},
		{"NDJSON of Bundles", `{"resourceType":"Bundle","entry":[{"resource":` + hr + `}]}` + "\n" + `{"resourceType":"Bundle","entry":[{"resource":` + hr + `}]}` + "\n", 2, 0},
		{"resources back to back", hr + hr + "  " + hr, 3, 0},
		{"an Observation with an entry member", `{"resourceType":"Observation","entry":[1],"status":"final",` + loinc("8867-4") + "," + at1 + "," + ucum("72", "/min") + `}`, 1, 0},
		{"escaped resourceType", `{"resourceType":"Obs\u0065rvation","status":"final",` + loinc("8867-4") + "," + at1 + "," + ucum("72", "/min") + `}`, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(tc.in), ingest.Options{})
			if len(c.Items) != tc.readings || len(c.Skips) != tc.skips {
				t.Errorf("%d readings, %d skips %+v; want %d, %d", len(c.Items), len(c.Skips), c.Skips, tc.readings, tc.skips)
			}
		})
	}
}
