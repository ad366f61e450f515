package omh

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	testUUID = "5f3c1e2a-8b4d-4c6e-9f0a-1b2c3d4e5f60"
	testTime = "2025-03-04T08:15:00-08:00"
)

// ieeePoint wraps a body in a valid IEEE header declaring schema.
func ieeePoint(schema, body string) string {
	p := strings.SplitN(schema, ":", 3)
	return fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":%q,"name":%q,"version":%q},"source_creation_date_time":%q},"body":%s}`,
		testUUID, p[0], p[1], p[2], testTime, body)
}

const dtFrame = `"effective_time_frame":{"date_time":"` + testTime + `"}`
const tiFrame = `"effective_time_frame":{"time_interval":{"start_date_time":"2025-03-04T07:00:00-08:00","end_date_time":"2025-03-04T08:00:00-08:00"}}`

// Normalisations: each input breaks the schema it declares, and the vault
// accepts it, records a note, and stores a schema-valid canonical form.
func TestNormalisationsAreSchemaValid(t *testing.T) {
	o := newOfficialSchemas(t)
	tests := []struct {
		name, schema, body, note string
		// rawValid: the submitted body is valid under its declared schema
		// (a legacy version, say) and the deviation is elsewhere.
		rawValid bool
	}{
		{"glucose MGDL", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":120,"unit":"MGDL"},` + dtFrame + `}`, `unit "MGDL" normalised to "mg/dL"`, false},
		{"glucose mg/dl", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":120,"unit":"mg/dl"},` + dtFrame + `}`, `unit "mg/dl" normalised to "mg/dL"`, false},
		{"glucose MG/DL", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":120,"unit":"MG/DL"},` + dtFrame + `}`, `unit "MG/DL" normalised to "mg/dL"`, false},
		{"glucose MMOLL", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":6.5,"unit":"MMOLL"},` + dtFrame + `}`, `unit "MMOLL" normalised to "mmol/L"`, false},
		{"glucose mmol/l", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":6.5,"unit":"mmol/l"},` + dtFrame + `}`, `unit "mmol/l" normalised to "mmol/L"`, false},
		{"heart rate BPM", "omh:heart-rate:2.0", `{"heart_rate":{"value":61,"unit":"BPM"},` + dtFrame + `}`, `unit "BPM" normalised to "beats/min"`, false},
		{"heart rate Beats/Min", "omh:heart-rate:2.0", `{"heart_rate":{"value":61,"unit":"Beats/Min"},` + dtFrame + `}`, `unit "Beats/Min" normalised to "beats/min"`, false},
		{"steps STEPS", "omh:step-count:3.0", `{"step_count":{"value":1200,"unit":"STEPS"},` + tiFrame + `}`, `unit "STEPS" normalised to "steps"`, false},
		{"bp mm[Hg]", "omh:blood-pressure:4.0", `{"systolic_blood_pressure":{"value":120,"unit":"mm[Hg]"},"diastolic_blood_pressure":{"value":80,"unit":"MMHG"},` + dtFrame + `}`, `unit "mm[Hg]" normalised to "mmHg"`, false},
		{"weight KG", "omh:body-weight:3.0", `{"body_weight":{"value":70.2,"unit":"KG"},` + dtFrame + `}`, `unit "KG" normalised to "kg"`, false},
		{"weight lbs", "omh:body-weight:3.0", `{"body_weight":{"value":154,"unit":"lbs"},` + dtFrame + `}`, `unit "lbs" normalised to "lb"`, false},
		{"spo2 flow l/min", "omh:oxygen-saturation:2.0", `{"oxygen_saturation":{"value":97,"unit":"%"},"supplemental_oxygen_flow_rate":{"value":2,"unit":"l/min"},` + dtFrame + `}`, `unit "l/min" normalised to "L/min"`, false},
		{"respiratory BREATHS/MIN", "omh:respiratory-rate:2.0", `{"respiratory_rate":{"value":14,"unit":"BREATHS/MIN"},` + dtFrame + `}`, `unit "BREATHS/MIN" normalised to "breaths/min"`, false},
		{"temperature c", "omh:body-temperature:4.0", `{"body_temperature":{"value":37.1,"unit":"c"},` + dtFrame + `}`, `unit "c" normalised to "C"`, false},
		{"temperature °F", "omh:body-temperature:4.0", `{"body_temperature":{"value":98.6,"unit":"°F"},` + dtFrame + `}`, `unit "°F" normalised to "F"`, false},
		{"activity KCAL and KM", "omh:physical-activity:1.2", `{"activity_name":"run","distance":{"value":5,"unit":"KM"},"kcal_burned":{"value":300,"unit":"KCAL"},` + dtFrame + `}`, `unit "KM" normalised to "km"`, false},
		{"interval duration MIN", "omh:heart-rate:2.0", `{"heart_rate":{"value":61,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2025-03-04T07:00:00Z","duration":{"value":5,"unit":"MIN"}}}}`, `unit "MIN" normalised to "min"`, false},
		{"sleep duration s", "omh:sleep-episode:1.1", `{"total_sleep_time":{"value":25200,"unit":"s"},` + tiFrame + `}`, `unit "s" normalised to "sec"`, false},
		{"blood glucose 3.0", "omh:blood-glucose:3.0", `{"blood_glucose":{"value":120,"unit":"mg/dL"},` + dtFrame + `}`, `schema omh:blood-glucose:3.0 stored as 4.0`, true},
		{"step count 2.0 bare number", "omh:step-count:2.0", `{"step_count":1200,` + tiFrame + `}`, `step_count given as a bare number`, true},
		{"heart rate 1.1 user_notes", "omh:heart-rate:1.1", `{"heart_rate":{"value":61,"unit":"beats/min"},"user_notes":"after coffee",` + dtFrame + `}`, `schema omh:heart-rate:1.1 stored as 2.0`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, _ := ParseSchemaID(tc.schema)
			if err := validate(o.body(t, id), []byte(tc.body)); (err == nil) != tc.rawValid {
				t.Fatalf("raw body schema-valid = %v, want %v (%v)", err == nil, tc.rawValid, firstLine(err))
			}
			p, err := Parse([]byte(ieeePoint(tc.schema, tc.body)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.HasPrefix(n, tc.note) }) {
				t.Errorf("notes %q lack %q", p.Notes, tc.note)
			}
			checkCanonical(t, o, p, tc.name)
		})
	}
}

// Headers: both dialects and the common gaps end in a canonical IEEE header.
func TestHeaderNormalisations(t *testing.T) {
	o := newOfficialSchemas(t)
	body := `{"blood_glucose":{"value":120,"unit":"mg/dL"},` + dtFrame + `}`
	tests := []struct {
		name, header     string
		uuid, sourceID   string
		notes            []string
		creation, source string // want source_creation_date_time, datasheet_reference of a source_name item
	}{
		{
			name:   "omh 1.x with uuid id and provenance",
			header: `{"id":"0B0C0D0E-1111-4222-8333-444455556666","creation_date_time":"2025-03-04T09:00:00Z","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"acquisition_provenance":{"source_name":"Dexcom G7","source_creation_date_time":"2025-03-04T08:16:00-08:00","modality":"sensed","source_data_point_id":"abc-1"},"user_id":"u-7"}`,
			uuid:   "0b0c0d0e-1111-4222-8333-444455556666", notes: []string{noteOMHHeader},
			creation: "2025-03-04T08:16:00-08:00", source: "Dexcom G7",
		},
		{
			name:     "omh 1.x with a non-UUID id and no provenance",
			header:   `{"id":"reading-42","creation_date_time":"2025-03-04T09:00:00Z","schema_id":{"namespace":"omh","name":"blood-glucose","version":"3.0"}}`,
			sourceID: "reading-42", notes: []string{noteOMHHeader, "schema omh:blood-glucose:3.0 stored as 4.0", noteIDNotUUID, noteUUIDMissing},
			creation: "2025-03-04T09:00:00Z",
		},
		{
			name:     "ieee without uuid and creation time",
			header:   `{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"self-reported"}`,
			notes:    []string{noteUUIDMissing, noteCreationFilled},
			creation: testTime,
		},
		{
			name:     "ieee with a non-UUID uuid",
			header:   `{"uuid":"12345","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2025-03-04T09:00:00Z"}`,
			sourceID: "12345", notes: []string{noteUUIDNotUUID, noteUUIDMissing},
			creation: "2025-03-04T09:00:00Z",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(`{"header":` + tc.header + `,"body":` + body + `}`))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.UUID != tc.uuid || p.SourceID != tc.sourceID {
				t.Errorf("uuid %q source id %q, want %q %q", p.UUID, p.SourceID, tc.uuid, tc.sourceID)
			}
			if !slices.Equal(p.Notes, tc.notes) {
				t.Errorf("notes %q, want %q", p.Notes, tc.notes)
			}
			h := p.Header()
			if h.SourceCreationDateTime.Text != tc.creation {
				t.Errorf("source_creation_date_time %q, want %q", h.SourceCreationDateTime.Text, tc.creation)
			}
			if tc.source != "" && !slices.ContainsFunc(h.ExternalDatasheets, func(d Datasheet) bool { return d.Type == "source_name" && d.Reference == tc.source }) {
				t.Errorf("datasheets %+v lack source_name %q", h.ExternalDatasheets, tc.source)
			}
			checkCanonical(t, o, p, tc.name)
		})
	}
}

// Deliberate strictness: each body is valid under its schema, and the
// vault refuses it on purpose.
func TestDeliberateStrictness(t *testing.T) {
	o := newOfficialSchemas(t)
	tests := []struct {
		name, schema, body, code, why string
	}{
		{"physical activity without a time", "omh:physical-activity:1.2", `{"activity_name":"walk"}`, CodeMissingTimeFrame,
			"the vault files every reading by its time"},
		{"interval as date and part of day", "omh:heart-rate:2.0", `{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"date":"2025-03-04","part_of_day":"morning"}}}`, CodeInvalidTime,
			"no exact time to file the reading by"},
		{"number beyond float64", "omh:heart-rate:2.0", `{"heart_rate":{"value":1e400,"unit":"beats/min"},` + dtFrame + `}`, CodeInvalidValue,
			"the vault stores numbers as float64"},
		{"start before year 0", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":100,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"end_date_time":"0001-01-01T00:00:00Z","duration":{"value":2,"unit":"yr"}}}}`, CodeInvalidTime,
			"the computed start cannot be written in RFC 3339"},
		{"negative blood glucose", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":-5,"unit":"mg/dL"},` + dtFrame + `}`, CodeInvalidValue,
			"no concentration is below zero, and the vault computes statistics and the AGP on these values"},
		{"repeated member name", "omh:blood-glucose:4.0", `{"blood_glucose":{"value":100,"unit":"mg/dL","unit":"mg/dL"},` + dtFrame + `}`, CodeMalformedJSON,
			"parsers disagree on which copy wins (RFC 8259 says names SHOULD be unique)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, _ := ParseSchemaID(tc.schema)
			if err := validate(o.body(t, id), []byte(tc.body)); err != nil {
				t.Fatalf("the body should be schema-valid for this to be an exception: %v", err)
			}
			_, err := Parse([]byte(ieeePoint(tc.schema, tc.body)))
			if code(err) != tc.code {
				t.Fatalf("got %v, want %s (%s)", err, tc.code, tc.why)
			}
		})
	}
}

// Unit spellings must be unambiguous: within a set, no alias or folded
// spelling may reach two units, and no alias may equal a unit of the set.
func TestUnitSetsAreUnambiguous(t *testing.T) {
	sets := map[string]*unitSet{"glucose": glucoseUnits, "heart rate": heartRateUnits, "steps": stepUnits, "mmHg": mmHgUnits,
		"mass": massUnits, "percent": percentUnits, "flow": flowRateUnits, "breaths": breathRateUnits, "temperature": temperatureUnits,
		"length": lengthUnits, "kcal": kcalUnits, "duration": durationUnits, "hz": hzUnits}
	for name, u := range sets {
		for i, a := range u.units {
			for _, b := range u.units[i+1:] {
				if u.fold && strings.EqualFold(a, b) {
					t.Errorf("%s: %q and %q differ only in case", name, a, b)
				}
			}
		}
		for _, a := range u.aliases {
			if !slices.Contains(u.units, a.to) {
				t.Errorf("%s: alias %q maps to %q, not a unit", name, a.from, a.to)
			}
			got, _, ok := u.match([]byte(a.from))
			if !ok || got != a.to {
				t.Errorf("%s: %q matches %q, want %q", name, a.from, got, a.to)
			}
		}
	}
	// The mutation pool holds no spelling any set normalises, so corpus
	// disagreements are always bugs.
	for _, s := range mutationStrings {
		for name, u := range sets {
			if _, exact, ok := u.match([]byte(s)); ok && !exact {
				t.Errorf("mutation string %q is a %s alias", s, name)
			}
		}
	}
}

// Values outside the schema are kept verbatim, in canonical form.
func TestExtrasArePreserved(t *testing.T) {
	body := `{"blood_glucose":{"value":120,"unit":"mg/dL","meter":{"z":1,"a":[true,null,"x\u0001"]}},"zeta":1.50,"alpha":"ä\"",` + dtFrame + `}`
	p, err := Parse([]byte(ieeePoint("omh:blood-glucose:4.0", body)))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Body json.RawMessage }
	if err := json.Unmarshal(p.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"blood_glucose":{"value":120,"unit":"mg/dL","meter":{"a":[true,null,"x\u0001"],"z":1}},"effective_time_frame":{"date_time":"` + testTime + `"},"alpha":"ä\"","zeta":1.50}`
	if string(got.Body) != want {
		t.Errorf("body\n got %s\nwant %s", got.Body, want)
	}
}
