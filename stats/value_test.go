package stats

import (
	"fmt"
	"math"
	"testing"

	"github.com/jupyterhealth/vault/omh"
)

// stored returns a reading as the vault stores it: parsed by omh and
// written back by AppendJSON, the canonical form (vault/readings.go seals
// exactly these bytes).
func stored(t testing.TB, doc string) []byte {
	t.Helper()
	p, err := omh.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return p.AppendJSON(nil)
}

const at = `"effective_time_frame":{"date_time":"2024-03-10T08:15:00-04:00"}`

func header(name, version string) string {
	return fmt.Sprintf(`{"schema_id":{"namespace":"omh","name":%q,"version":%q},"source_creation_date_time":"2024-03-10T08:20:00-04:00","modality":"sensed"}`, name, version)
}

// TestUnitValueStoredForm: every unit-value of the supported schemas, in
// the stored form, is read straight from the bytes and agrees with the
// JSON decode.
func TestUnitValueStoredForm(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		key   string
		value float64
		unit  string
	}{
		{`{"header":` + header("blood-glucose", "4.0") + `,"body":{"blood_glucose":{"value":101,"unit":"mg/dL"},"specimen_source":"interstitial fluid",` + at + `}}`, "blood_glucose", 101, "mg/dL"},
		{`{"header":` + header("blood-glucose", "4.0") + `,"body":{` + at + `,"blood_glucose":{"unit":"mmol/L","value":5.55}}}`, "blood_glucose", 5.55, "mmol/L"},
		{`{"header":` + header("heart-rate", "2.0") + `,"body":{"heart_rate":{"value":72.5,"unit":"beats/min"},` + at + `}}`, "heart_rate", 72.5, "beats/min"},
		{`{"header":` + header("step-count", "3.0") + `,"body":{"step_count":{"value":1234,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-10T08:00:00-04:00","end_date_time":"2024-03-10T09:00:00-04:00"}}}}`, "step_count", 1234, "steps"},
		{`{"header":` + header("step-count", "2.0") + `,"body":{"step_count":987,"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-10T08:00:00-04:00","end_date_time":"2024-03-10T09:00:00-04:00"}}}}`, "step_count", 987, "steps"},
		{`{"header":` + header("blood-pressure", "4.0") + `,"body":{"systolic_blood_pressure":{"value":118.5,"unit":"mmHg"},"diastolic_blood_pressure":{"value":76,"unit":"mmHg"},` + at + `}}`, "systolic_blood_pressure", 118.5, "mmHg"},
		{`{"header":` + header("blood-pressure", "4.0") + `,"body":{"systolic_blood_pressure":{"value":118.5,"unit":"mmHg"},"diastolic_blood_pressure":{"value":76,"unit":"mmHg"},` + at + `}}`, "diastolic_blood_pressure", 76, "mmHg"},
		{`{"header":` + header("body-weight", "3.0") + `,"body":{"body_weight":{"value":71.26,"unit":"kg"},` + at + `}}`, "body_weight", 71.26, "kg"},
		{`{"header":` + header("oxygen-saturation", "2.0") + `,"body":{"oxygen_saturation":{"value":97,"unit":"%"},` + at + `}}`, "oxygen_saturation", 97, "%"},
		{`{"header":` + header("respiratory-rate", "2.0") + `,"body":{"respiratory_rate":{"value":14,"unit":"breaths/min"},` + at + `}}`, "respiratory_rate", 14, "breaths/min"},
		{`{"header":` + header("body-temperature", "4.0") + `,"body":{"body_temperature":{"value":36.6,"unit":"C"},` + at + `}}`, "body_temperature", 36.6, "C"},
	} {
		b := stored(t, tc.doc)
		qv, qu, qok := quickUnitValue(b, tc.key)
		if !qok {
			t.Errorf("the stored form is not read straight from the bytes: %s", b)
		}
		dv, du, dok := decodeUnitValue(b, tc.key)
		if qv != dv || qu != du || qok != dok {
			t.Errorf("%s: quick %v %q %v, decoded %v %q %v", b, qv, qu, qok, dv, du, dok)
		}
		if v, u, ok := UnitValue(b, tc.key); !ok || v != tc.value || u != tc.unit {
			t.Errorf("%s: %v %q %v, want %v %q", b, v, u, ok, tc.value, tc.unit)
		}
	}
}

// TestReaders: the series readers, on the stored form and on forms only
// the JSON decode reads.
func TestReaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func([]byte) (float64, bool)
		in   string
		want float64
		ok   bool
	}{
		{"mg/dL", GlucoseMgDL, `{"body":{"blood_glucose":{"value":101,"unit":"mg/dL"}}}`, 101, true},
		{"mmol/L converted", GlucoseMgDL, `{"body":{"blood_glucose":{"value":5.5,"unit":"mmol/L"}}}`, 5.5 * 18.0156, true}, // 99.0858
		{"other order: decoded", GlucoseMgDL, `{"body":{"blood_glucose":{"unit":"mg/dL","value":101}}}`, 101, true},
		{"an escape in the unit: decoded", GlucoseMgDL, `{"body":{"blood_glucose":{"value":99,"unit":"mg\u002fdL"}}}`, 99, true},
		{"unknown unit", GlucoseMgDL, `{"body":{"blood_glucose":{"value":99,"unit":"g/L"}}}`, 0, false},
		{"the key twice: the body's", GlucoseMgDL, `{"header":{"x":{"blood_glucose":{"value":1,"unit":"mg/dL"}}},"body":{"blood_glucose":{"value":120,"unit":"mg/dL"}}}`, 120, true},
		{"not a number", GlucoseMgDL, `{"body":{"blood_glucose":{"value":"NaN","unit":"mg/dL"}}}`, 0, false},
		{"out of range", GlucoseMgDL, `{"body":{"blood_glucose":{"value":1e999,"unit":"mg/dL"}}}`, 0, false},
		{"null", GlucoseMgDL, `{"body":{"blood_glucose":{"value":null,"unit":"mg/dL"}}}`, 0, false},
		{"no value", GlucoseMgDL, `{"body":{"blood_glucose":{"unit":"mg/dL"}}}`, 0, false},
		{"not an object", GlucoseMgDL, `{"body":{"blood_glucose":101}}`, 0, false},
		{"missing", GlucoseMgDL, `{"body":{"heart_rate":{"value":72,"unit":"beats/min"}}}`, 0, false},
		{"no body", GlucoseMgDL, `{"header":{}}`, 0, false},
		{"not JSON", GlucoseMgDL, `{"body":{"blood_glucose":{"unit":"mg/dL","value":101}`, 0, false},
		{"empty", GlucoseMgDL, ``, 0, false},
		{"heart rate", HeartRate, `{"body":{"heart_rate":{"value":72,"unit":"beats/min"}}}`, 72, true},
		{"heart rate, decoded", HeartRate, `{"body":{"heart_rate":{"unit":"beats/min","value":61.5}}}`, 61.5, true},
		{"heart rate, missing", HeartRate, `{"body":{"step_count":{"value":72,"unit":"steps"}}}`, 0, false},
		{"steps", Steps, `{"body":{"step_count":{"value":1000,"unit":"steps"}}}`, 1000, true},
		{"steps, negative is a value", Steps, `{"body":{"step_count":{"value":-3,"unit":"steps"}}}`, -3, true},
	} {
		got, ok := tc.read([]byte(tc.in))
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestToMgDL(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want float64
		ok   bool
	}{
		{120, "mg/dL", 120, true},
		{1, "mmol/L", 18.0156, true},
		{10, "mmol/L", 180.156, true},
		{3, "mmol/l", 0, false}, // the stored spelling is the schema's
		{3, "", 0, false},
	} {
		if got, ok := ToMgDL(tc.v, tc.unit); ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("ToMgDL(%v, %q) = %v %v, want %v %v", tc.v, tc.unit, got, ok, tc.want, tc.ok)
		}
	}
}
