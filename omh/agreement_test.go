package omh

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The typed models must agree with the official JSON schemas: a body is
// schema-valid exactly when Parse accepts it, apart from the deliberate
// exceptions listed in TestNormalisationsAreSchemaValid and
// TestDeliberateStrictness.

// checkCanonical asserts that p's canonical output validates against the
// canonical schemas (header-1.0 once a uuid is set, and the body schema) and
// parses back to the same bytes.
func checkCanonical(t *testing.T, o *officialSchemas, p *Point, desc string) {
	t.Helper()
	if p.UUID == "" {
		p.SetUUID("0b0c0d0e-0000-4000-8000-000000000000")
	}
	out := p.AppendJSON(nil)
	if err := o.validatePoint(t, out); err != nil {
		t.Errorf("%s: canonical output is not schema-valid: %v\n%s", desc, err, out)
	}
	p2, err := Parse(out)
	if err != nil {
		t.Errorf("%s: canonical output does not parse: %v\n%s", desc, err, out)
		return
	}
	if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) {
		t.Errorf("%s: not idempotent:\n%s\n%s", desc, out, out2)
	}
}

func TestExamplesAreSchemaValid(t *testing.T) {
	o := newOfficialSchemas(t)
	files, err := filepath.Glob(filepath.Join(sharedDir(t), "schemas", "examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	supported := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		p, perr := Parse(b)
		if _, ok := CanonicalSchema(exampleSchema(t, b)); !ok {
			var e *Error
			if !errors.As(perr, &e) || e.Code != CodeUnknownSchema {
				t.Errorf("%s: want unknown_schema, got %v", name, perr)
			}
			continue
		}
		supported++
		if perr != nil {
			t.Errorf("%s: %v", name, perr)
			continue
		}
		if len(p.Notes) != 0 {
			t.Errorf("%s: an official example needed normalising: %q", name, p.Notes)
		}
		// The example itself and its canonical form are both valid.
		if err := o.validatePoint(t, b); err != nil {
			t.Errorf("%s: the example itself is not valid: %v", name, err)
		}
		checkCanonical(t, o, p, name)
	}
	t.Logf("%d examples, %d of supported schemas", len(files), supported)
}

func exampleSchema(t *testing.T, b []byte) SchemaID {
	t.Helper()
	var dp struct {
		Header struct {
			SchemaID struct{ Namespace, Name, Version string } `json:"schema_id"`
		} `json:"header"`
	}
	if err := json.Unmarshal(b, &dp); err != nil {
		t.Fatal(err)
	}
	return SchemaID(dp.Header.SchemaID)
}

func TestSchemaAgreement(t *testing.T) {
	o := newOfficialSchemas(t)
	valid, mutated := corpus()
	all := append(append([]genPoint{}, valid...), mutated...)
	var nValid, nInvalid, agreed, exceptions int
	perSchema := map[string][2]int{}
	for _, gp := range all {
		m := lookupModel(gp.schema.Namespace, gp.schema.Name)
		lg := m.legacyVersion(gp.schema.Version)
		schemaErr := validate(o.body(t, gp.schema), gp.bodyJSON())
		if schemaErr == nil && lg != nil {
			// A legacy body must also hold once relabelled to the canonical version.
			cb, _ := json.Marshal(canonicalBody(gp.body, lg))
			schemaErr = validate(o.body(t, m.id), cb)
		}
		want := schemaErr == nil
		c := perSchema[gp.schema.Name]
		if want {
			nValid++
			c[0]++
		} else {
			nInvalid++
			c[1]++
		}
		perSchema[gp.schema.Name] = c

		p, err := Parse(gp.JSON())
		if want && deliberate(m, gp.body, err) {
			exceptions++
			t.Logf("deliberate: %s: %v", gp.desc, err)
			continue
		}
		switch {
		case want && err != nil:
			t.Errorf("%s: schema-valid but Parse refused: %v\n%s", gp.desc, err, gp.bodyJSON())
		case !want && err == nil:
			t.Errorf("%s: schema-invalid (%v) but Parse accepted\n%s", gp.desc, firstLine(schemaErr), gp.bodyJSON())
		default:
			agreed++
			if err == nil {
				checkCanonical(t, o, p, gp.desc)
			}
		}
	}
	t.Logf("corpus: %d points, %d schema-valid, %d schema-invalid, %d agreed, %d deliberate exceptions", len(all), nValid, nInvalid, agreed, exceptions)
	for name, c := range perSchema {
		t.Logf("  %-18s valid %3d  invalid %3d", name, c[0], c[1])
	}
	if nValid < 200 || nInvalid < 400 {
		t.Errorf("corpus too small: %d valid, %d invalid; want at least 200 and 400", nValid, nInvalid)
	}
}

// deliberate reports whether Parse refused a schema-valid body on purpose
// (see TestDeliberateStrictness): a physical-activity without
// effective_time_frame, an end-and-duration interval whose start falls
// outside the years RFC 3339 can write, or a negative blood glucose.
func deliberate(m *model, body map[string]any, err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	if m.id.Name == "blood-glucose" && e.Message == msgNegativeGlucose {
		return e.Code == CodeInvalidValue && e.Field == "body.blood_glucose.value"
	}
	if m.id.Name == "physical-activity" && body["effective_time_frame"] == nil {
		return e.Code == CodeMissingTimeFrame
	}
	return e.Code == CodeInvalidTime && e.Message == msgStartOutOfRange
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Hand-picked corners of the schemas (mostly of oneOf), checked the same
// way as the corpus: the official schemas decide, Parse must agree.
func TestSchemaAgreementCorners(t *testing.T) {
	o := newOfficialSchemas(t)
	const (
		bg  = `"blood_glucose":{"value":100,"unit":"mg/dL"}`
		hr  = `"heart_rate":{"value":60,"unit":"beats/min"}`
		sc  = `"step_count":{"value":60,"unit":"steps"}`
		dt  = `"2025-03-04T08:15:00Z"`
		dt2 = `"2025-03-04T09:15:00Z"`
		dur = `{"value":1,"unit":"h"}`
	)
	tests := []struct{ schema, body string }{
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"date_time":` + dt + `,"time_interval":"garbage"}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"date_time":"garbage","time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `}}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"date_time":"garbage","time_interval":"garbage"}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":"garbage","duration":` + dur + `}}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `,"duration":{"value":1,"unit":"fortnight"}}}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"time_interval":{"date":"2025-03-04","part_of_day":"morning"}}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `,"date":"2025-03-04","part_of_day":"morning"}}}`},
		{"omh:heart-rate:2.0", `{` + hr + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `,"date":"2025-03-04","part_of_day":"morning"}}}`},
		{"omh:heart-rate:2.0", `{` + hr + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `,"date":"March","part_of_day":"morning"}}}`},
		{"omh:heart-rate:2.0", `{` + hr + `,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"end_date_time":` + dt2 + `,"date":"2025-03-04","part_of_day":"noon"}}}`},
		{"omh:step-count:3.0", `{` + sc + `,"effective_time_frame":{"date_time":` + dt + `,"time_interval":"garbage"}}`},
		{"omh:step-count:3.0", `{` + sc + `,"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:step-count:3.0", `{` + sc + `,"descriptive_statistic":"count","effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:step-count:3.0", `{` + sc + `,"descriptive_statistic_denominator":"per fortnight","effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:step-count:2.0", `{"step_count":"5","effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:step-count:1.0", `{"step_count":5,"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:heart-rate:1.0", `{` + hr + `,"temporal_relationship_to_sleep":"bogus","effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:heart-rate:2.0", `{` + hr + `,"user_notes":5,"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:blood-pressure:3.0", `{"systolic_blood_pressure":{"value":120,"unit":"mmHg"},"diastolic_blood_pressure":{"value":80,"unit":"mmHg"},"temporal_relationship_to_physical_activity":"bogus","effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:blood-glucose:4.0", `{"blood_glucose":{"value":-0,"unit":"mg/dL","extra":{"x":[1,{"b":2,"a":1}]}},"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:blood-glucose:4.0", `{"blood_glucose":{"value":1e300,"unit":"mg/dL"},"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:blood-glucose:4.0", `{` + bg + `,"specimen_source":null,"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:sleep-episode:1.1", `{"number_of_awakenings":1.0,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:sleep-episode:1.1", `{"number_of_awakenings":1e2,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:sleep-episode:1.1", `{"number_of_awakenings":-3,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:sleep-episode:1.1", `{"number_of_awakenings":"3","effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:sleep-episode:1.1", `{"is_main_sleep":null,"effective_time_frame":{"time_interval":{"start_date_time":` + dt + `,"duration":` + dur + `}}}`},
		{"omh:physical-activity:1.2", `{"activity_name":"","met_value":-1,"effective_time_frame":{"date_time":` + dt + `}}`},
		{"omh:oxygen-saturation:2.0", `{"oxygen_saturation":{"value":97,"unit":"%"},"system":"arterial","effective_time_frame":{"date_time":` + dt + `}}`},
	}
	for _, dtText := range []string{
		"2016-12-31T15:59:60-08:00", "2016-12-31T23:59:60+01:00", "2016-12-31t23:59:60z", "2025-03-04T08:15:00.000000000001+23:59",
		"2025-03-04T08:15:00.Z", "2025-03-04T08:15:00+2:00", "2025-03-04T08:15:00-00:00", "2025-3-04T08:15:00Z",
		"2025-03-04T08:15:00+05:30 ", " 2025-03-04T08:15:00Z", "2024-02-29T08:15:00Z", "1900-02-29T08:15:00Z", "2000-02-29T08:15:00Z",
		"9999-12-31T23:59:59Z", "2025-03-04T08:15Z", "2025-03-04T08:15:00.5+05:30:00",
	} {
		tests = append(tests, struct{ schema, body string }{"omh:blood-glucose:4.0", `{` + bg + `,"effective_time_frame":{"date_time":"` + dtText + `"}}`})
	}
	for _, tc := range tests {
		id, _ := ParseSchemaID(tc.schema)
		m := lookupModel(id.Namespace, id.Name)
		lg := m.legacyVersion(id.Version)
		schemaErr := validate(o.body(t, id), []byte(tc.body))
		if schemaErr == nil && lg != nil {
			var body map[string]any
			if err := json.Unmarshal([]byte(tc.body), &body); err != nil {
				t.Fatal(err)
			}
			cb, _ := json.Marshal(canonicalBody(body, lg))
			schemaErr = validate(o.body(t, m.id), cb)
		}
		if strings.Contains(tc.body, `"part_of_day":"morning"`) && !strings.Contains(tc.body, "start_date_time") && schemaErr == nil {
			continue // deliberate: see TestDeliberateStrictness
		}
		p, err := Parse([]byte(ieeePoint(tc.schema, tc.body)))
		if (schemaErr == nil) != (err == nil) {
			t.Errorf("%s %s\n  schema: %v\n  Parse:  %v", tc.schema, tc.body, firstLine(schemaErr), err)
			continue
		}
		if err == nil {
			checkCanonical(t, o, p, tc.body)
		}
	}
}

// The IEEE header's own rules: a header Parse accepts validates against
// header-1.0, and one it refuses does not.
func TestHeaderAgreement(t *testing.T) {
	o := newOfficialSchemas(t)
	base := `"uuid":"` + testUUID + `","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"` + testTime + `"`
	members := []string{
		``,
		`,"modality":"sensed"`, `,"modality":"self-reported"`, `,"modality":"Sensed"`, `,"modality":null`,
		`,"acquisition_rate":{"value":1,"unit":"Hz"}`,
		`,"acquisition_rate":{"value":"1","unit":"Hz"}`,
		`,"acquisition_rate":{"value":1,"unit":"hz"}`,
		`,"acquisition_rate":{"number_of_times":2,"time_window":{"value":1,"unit":"d"}}`,
		`,"acquisition_rate":{"number_of_times":2,"time_window":{"low_value":1,"high_value":2,"unit":"d"}}`,
		`,"acquisition_rate":{"number_of_times":2,"time_window":{"value":1,"low_value":1,"high_value":2,"unit":"d"}}`,
		`,"acquisition_rate":{"number_of_times":2,"time_window":{"value":1,"unit":"fortnight"}}`,
		`,"acquisition_rate":{"number_of_times":2}`,
		`,"acquisition_rate":{"value":1,"unit":"Hz","number_of_times":2,"time_window":{"value":1,"unit":"d"}}`,
		`,"acquisition_rate":{"value":1,"unit":"Hz","number_of_times":2,"time_window":{"value":1,"unit":"fortnight"}}`,
		`,"acquisition_rate":[]`,
		`,"external_datasheets":[]`,
		`,"external_datasheets":[{"datasheet_reference":"https://example.com/x"}]`,
		`,"external_datasheets":[{"datasheet_type":"software","datasheet_reference":"iHealth","note":1}]`,
		`,"external_datasheets":[{"datasheet_type":1,"datasheet_reference":"x"}]`,
		`,"external_datasheets":[{"datasheet_type":"x"}]`,
		`,"external_datasheets":["x"]`,
		`,"x_extension":{"b":1,"a":[null]}`,
	}
	for _, m := range members {
		h := `{` + base + m + `}`
		schemaErr := validate(o.header(t), []byte(h))
		p, err := Parse([]byte(point(h, okBody)))
		if (schemaErr == nil) != (err == nil) {
			t.Errorf("%s\n  schema: %v\n  Parse:  %v", h, firstLine(schemaErr), err)
			continue
		}
		if err == nil {
			checkCanonical(t, o, p, h)
		}
	}
	// Both uuid-less and creation-less headers validate once the vault
	// has filled them.
	p, err := Parse([]byte(point(`{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody)))
	if err != nil {
		t.Fatal(err)
	}
	checkCanonical(t, o, p, "bare header")
}
