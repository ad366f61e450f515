package fhirobs_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/fhirobs"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/omh"
)

// roundTripBodies are bodies of every schema the importer reads, in every
// unit and coding the export writes.
var roundTripBodies = []struct{ name, version, body string }{
	{"heart-rate", "2.0", `{"heart_rate":{"value":61,"unit":"beats/min"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00.125+05:30"}}`},
	{"heart-rate", "2.0", `{"heart_rate":{"value":58.5,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T01:00:00Z","end_date_time":"2024-05-01T01:05:00Z"}}}`},
	{"respiratory-rate", "2.0", `{"respiratory_rate":{"value":14,"unit":"breaths/min"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00-07:00"}}`},
	{"blood-pressure", "4.0", `{"systolic_blood_pressure":{"value":121,"unit":"mmHg"},"diastolic_blood_pressure":{"value":79.5,"unit":"mmHg"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"oxygen-saturation", "2.0", `{"oxygen_saturation":{"value":96,"unit":"%"},"measurement_method":"pulse oximetry","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"oxygen-saturation", "2.0", `{"oxygen_saturation":{"value":93,"unit":"%"},"supplemental_oxygen_flow_rate":{"value":2,"unit":"L/min"},"measurement_method":"pulse oximetry","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"body-temperature", "4.0", `{"body_temperature":{"value":36.9,"unit":"C"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"body-temperature", "4.0", `{"body_temperature":{"value":98.4,"unit":"F"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"body-temperature", "4.0", `{"body_temperature":{"value":310.05,"unit":"K"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"step-count", "3.0", `{"step_count":{"value":4321,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T00:00:00-04:00","end_date_time":"2024-05-02T00:00:00-04:00"}}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":120,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":6.7,"unit":"mmol/L"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"2024-05-01T08:05:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":6.7,"unit":"mmol/L"},"specimen_source":"interstitial fluid","effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T08:00:00Z","end_date_time":"2024-05-01T08:15:00Z"}}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":104,"unit":"mg/dL"},"specimen_source":"capillary blood","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":5.8,"unit":"mmol/L"},"specimen_source":"capillary blood","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":99,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":5.5,"unit":"mmol/L"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":15,"unit":"mg/dL"},"specimen_source":"urine","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"blood-glucose", "4.0", `{"blood_glucose":{"value":1.1,"unit":"mmol/L"},"specimen_source":"saliva","effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`},
	{"sleep-episode", "1.1", `{"total_sleep_time":{"value":402,"unit":"min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T23:10:00-04:00","end_date_time":"2024-05-02T06:40:00-04:00"}}}`},
	{"sleep-episode", "1.1", `{"total_sleep_time":{"value":6.5,"unit":"h"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T23:10:00Z","end_date_time":"2024-05-02T06:40:00Z"}}}`},
}

// roundTripPoints makes a point of each body, and a body-weight in every
// mass unit the schema knows, each with a uuid (which the export writes as
// Observation.id), a source_name datasheet (written as device.display) and
// source_creation_date_time equal to the reading's time (which the
// importer sets so), so that each must come back byte for byte.
func roundTripPoints() []string {
	bodies := roundTripBodies
	for _, u := range []string{"kg", "g", "lb", "oz", "mg", "ug", "ng", "pg", "fg", "Metric Ton", "gr", "Ton"} {
		bodies = append(bodies, struct{ name, version, body string }{"body-weight", "3.0",
			`{"body_weight":{"value":70.5,"unit":"` + u + `"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`})
	}
	var out []string
	for i, b := range bodies {
		t := b.body[strings.Index(b.body, `date_time":"`)+len(`date_time":"`):]
		t = t[:strings.IndexByte(t, '"')]
		out = append(out, fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-%012x","schema_id":{"namespace":"omh","name":%q,"version":%q},`+
			`"source_creation_date_time":%q,"external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Dexcom G7"}]},"body":%s}`,
			i, b.name, b.version, t, b.body))
	}
	return out
}

// TestRoundTrip: the vault's fhir export of a point imports back to the
// same canonical point: uuid, time, values, units and specimen.
func TestRoundTrip(t *testing.T) {
	enc, err := export.NewEncoder(export.FormatFHIR, "pt_01hzabc")
	if err != nil {
		t.Fatal(err)
	}
	var ndjson []byte
	var want []string
	for _, s := range roundTripPoints() {
		p, err := omh.Parse([]byte(s))
		if err != nil {
			t.Fatalf("test point does not parse: %v\n%s", err, s)
		}
		canon := p.AppendJSON(nil)
		if ndjson, err = enc.AppendRecord(ndjson, canon); err != nil {
			t.Fatalf("export: %v\n%s", err, s)
		}
		want = append(want, string(canon))
	}
	var c ingesttest.Sink
	if err := fhirobs.Parse(bytes.NewReader(ndjson), ingest.Options{}, &c); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Skips) > 0 {
		t.Errorf("skipped: %+v", c.Skips)
	}
	if len(c.Items) != len(want) {
		t.Fatalf("%d readings, want %d", len(c.Items), len(want))
	}
	lines := bytes.Split(ndjson, []byte("\n"))
	for i, it := range c.Items {
		if got := string(it.Point.AppendJSON(nil)); got != want[i] {
			t.Errorf("point %d does not come back:\n got %s\nwant %s\nfhir %s", i, got, want[i], lines[i])
		}
		if it.Pos.Line != i+1 {
			t.Errorf("point %d at line %d", i, it.Pos.Line)
		}
	}
}

// TestRoundTripDuration: an interval given as start and duration comes
// back as start and end, the same reading.
func TestRoundTripDuration(t *testing.T) {
	enc, err := export.NewEncoder(export.FormatFHIR, "pt_01hzabc")
	if err != nil {
		t.Fatal(err)
	}
	in := `{"header":{"uuid":"6e3db887-4a20-4222-9998-2972af6fb091","schema_id":{"namespace":"omh","name":"step-count","version":"3.0"}},"body":{"step_count":{"value":300,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T09:00:00+02:00","duration":{"value":15,"unit":"min"}}}}}`
	p, err := omh.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	line, err := enc.AppendRecord(nil, p.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	var c ingesttest.Sink
	if err := fhirobs.Parse(bytes.NewReader(line), ingest.Options{}, &c); err != nil || len(c.Items) != 1 {
		t.Fatalf("Parse: %v %+v", err, c.Skips)
	}
	q := c.Items[0].Point
	got := q.Body.(*omh.StepCount)
	ti := got.EffectiveTimeFrame.TimeInterval
	if q.UUID != p.UUID || !q.Time.Equal(p.Time) || got.StepCount.Value != 300 || got.StepCount.Unit != "steps" ||
		ti == nil || ti.EndDateTime.Text != "2024-05-01T09:15:00+02:00" {
		t.Errorf("got %s", q.AppendJSON(nil))
	}
}
