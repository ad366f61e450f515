package omh

import (
	"errors"
	"strings"
	"testing"
)

const (
	okHeader = `{"uuid":"` + testUUID + `","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"` + testTime + `"}`
	okBody   = `{"blood_glucose":{"value":120,"unit":"mg/dL"},` + dtFrame + `}`
)

func point(header, body string) string { return `{"header":` + header + `,"body":` + body + `}` }

func glucoseHeader(extra string) string {
	return `{"uuid":"` + testUUID + `","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"` + testTime + `"` + extra + `}`
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		name, in    string
		code, field string
	}{
		// malformed_json
		{"truncated", `{"header":`, CodeMalformedJSON, ""},
		{"not JSON", `header: body`, CodeMalformedJSON, ""},
		{"empty", ``, CodeMalformedJSON, ""},
		{"two values", point(okHeader, okBody) + ` {}`, CodeMalformedJSON, ""},
		{"invalid UTF-8", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"note":"`+"\xff"+`",`+dtFrame+`}`), CodeMalformedJSON, ""},
		{"lone surrogate", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"note":"\ud800",`+dtFrame+`}`), CodeMalformedJSON, ""},
		{"repeated name", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"blood_glucose":{"value":1,"unit":"mg/dL"},`+dtFrame+`}`), CodeMalformedJSON, ""},
		{"too deep", point(okHeader, `{"x":`+strings.Repeat("[", 400)+strings.Repeat("]", 400)+`}`), CodeMalformedJSON, ""},

		// unknown_schema
		{"unknown name", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"foo","version":"1.0"}}`, okBody), CodeUnknownSchema, "header.schema_id"},
		{"other namespace", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"acme","name":"blood-glucose","version":"4.0"}}`, okBody), CodeUnknownSchema, "header.schema_id"},
		{"unknown version", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"blood-glucose","version":"9.0"}}`, okBody), CodeUnknownSchema, "header.schema_id.version"},
		{"version with no schema", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"blood-glucose","version":"5.0"}}`, okBody), CodeUnknownSchema, "header.schema_id.version"},
		{"fragment schema", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"unit-value","version":"1.0"}}`, `{"value":1,"unit":"mg"}`), CodeUnknownSchema, "header.schema_id"},
		{"not an official schema", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"blood-sugar","version":"1.0"}}`, okBody), CodeUnknownSchema, "header.schema_id"},

		// missing_time_frame
		{"no time frame", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"}}`), CodeMissingTimeFrame, "body.effective_time_frame"},
		{"empty time frame", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{}}`), CodeMissingTimeFrame, "body.effective_time_frame"},

		// bad_unit
		{"glucose unit", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg"},`+dtFrame+`}`), CodeBadUnit, "body.blood_glucose.unit"},
		{"unit not a string", point(okHeader, `{"blood_glucose":{"value":120,"unit":5},`+dtFrame+`}`), CodeBadUnit, "body.blood_glucose.unit"},
		{"mass unit case that could mean mega", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"body-weight","version":"3.0"}}`, `{"body_weight":{"value":70,"unit":"Mg"},`+dtFrame+`}`), CodeBadUnit, "body.body_weight.unit"},
		{"duration unit", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"start_date_time":"`+testTime+`","duration":{"value":1,"unit":"fortnight"}}}}`), CodeBadUnit, "body.effective_time_frame.time_interval.duration.unit"},

		// invalid_header
		{"no header", `{"body":` + okBody + `}`, CodeInvalidHeader, "header"},
		{"header not an object", point(`[]`, okBody), CodeInvalidHeader, "header"},
		{"no schema_id", point(`{"uuid":"`+testUUID+`"}`, okBody), CodeInvalidHeader, "header.schema_id"},
		{"schema_id without name", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","version":"4.0"}}`, okBody), CodeInvalidHeader, "header.schema_id.name"},
		{"uuid not a string", point(`{"uuid":5,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody), CodeInvalidHeader, "header.uuid"},
		{"modality", point(glucoseHeader(`,"modality":"guessed"`), okBody), CodeInvalidHeader, "header.modality"},
		{"acquisition rate", point(glucoseHeader(`,"acquisition_rate":{"value":1,"unit":"per day"}`), okBody), CodeInvalidHeader, "header.acquisition_rate"},
		{"datasheets not an array", point(glucoseHeader(`,"external_datasheets":{}`), okBody), CodeInvalidHeader, "header.external_datasheets"},
		{"datasheet without reference", point(glucoseHeader(`,"external_datasheets":[{"datasheet_type":"x"}]`), okBody), CodeInvalidHeader, "header.external_datasheets[0].datasheet_reference"},
		{"x_vault member", point(glucoseHeader(`,"x_vault":{"other":1}`), okBody), CodeInvalidHeader, "header.x_vault"},
		// A header mixing the dialects is refused, whichever it is read as.
		{"OMH header with an IEEE member", point(`{"id":"a","creation_date_time":"`+testTime+`","modality":"sensed","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody), CodeInvalidHeader, "header"},
		{"IEEE header with id", point(glucoseHeader(`,"id":"a"`), okBody), CodeInvalidHeader, "header"},
		{"IEEE header with OMH provenance", point(glucoseHeader(`,"acquisition_provenance":{"source_name":"Dexcom"}`), okBody), CodeInvalidHeader, "header"},
		{"uuid only, with OMH provenance", point(`{"uuid":"`+testUUID+`","acquisition_provenance":{"source_name":"Dexcom","modality":"sensed"},"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody), CodeInvalidHeader, "header"},
		{"provenance without source_name", point(`{"id":"a","creation_date_time":"`+testTime+`","acquisition_provenance":{},"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody), CodeInvalidHeader, "header.acquisition_provenance.source_name"},

		// invalid_value
		{"not an object", `[1,2]`, CodeInvalidValue, ""},
		{"no body", `{"header":` + okHeader + `}`, CodeInvalidValue, "body"},
		{"body not an object", point(okHeader, `[]`), CodeInvalidValue, "body"},
		{"missing measurement", point(okHeader, `{`+dtFrame+`}`), CodeInvalidValue, "body.blood_glucose"},
		{"missing value", point(okHeader, `{"blood_glucose":{"unit":"mg/dL"},`+dtFrame+`}`), CodeInvalidValue, "body.blood_glucose.value"},
		{"value a string", point(okHeader, `{"blood_glucose":{"value":"120","unit":"mg/dL"},`+dtFrame+`}`), CodeInvalidValue, "body.blood_glucose.value"},
		{"bad enum", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"specimen_source":"blood",`+dtFrame+`}`), CodeInvalidValue, "body.specimen_source"},
		{"both date_time and interval", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"date_time":"`+testTime+`","time_interval":{"start_date_time":"`+testTime+`","end_date_time":"`+testTime+`"}}}`), CodeInvalidValue, "body.effective_time_frame"},
		{"interval with start only", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"start_date_time":"`+testTime+`"}}}`), CodeInvalidValue, "body.effective_time_frame.time_interval"},
		{"interval over-full", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"start_date_time":"`+testTime+`","end_date_time":"`+testTime+`","duration":{"value":1,"unit":"h"}}}}`), CodeInvalidValue, "body.effective_time_frame.time_interval"},
		{"step count at an instant", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"step-count","version":"3.0"}}`, `{"step_count":{"value":5,"unit":"steps"},`+dtFrame+`}`), CodeInvalidValue, "body.effective_time_frame.time_interval"},
		{"awakenings not an integer", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"sleep-episode","version":"1.1"}}`, `{"number_of_awakenings":1.5,`+tiFrame+`}`), CodeInvalidValue, "body.number_of_awakenings"},
		{"awakenings with a rounding fraction", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"sleep-episode","version":"1.1"}}`, `{"number_of_awakenings":1.0000000000000001,`+tiFrame+`}`), CodeInvalidValue, "body.number_of_awakenings"},
		{"main sleep not a boolean", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"sleep-episode","version":"1.1"}}`, `{"is_main_sleep":"yes",`+tiFrame+`}`), CodeInvalidValue, "body.is_main_sleep"},
		{"legacy user_notes", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"heart-rate","version":"1.1"}}`, `{"heart_rate":{"value":60,"unit":"beats/min"},"user_notes":5,`+dtFrame+`}`), CodeInvalidValue, "body.user_notes"},
		{"legacy bare step count", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"step-count","version":"2.0"}}`, `{"step_count":{"value":5,"unit":"steps"},`+tiFrame+`}`), CodeInvalidValue, "body.step_count"},

		// invalid_time
		{"no offset", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-03-04T08:15:00"}}`), CodeInvalidTime, "body.effective_time_frame.date_time"},
		{"no such day", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-02-29T08:15:00Z"}}`), CodeInvalidTime, "body.effective_time_frame.date_time"},
		{"bad start", point(okHeader, `{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"start_date_time":"yesterday","end_date_time":"`+testTime+`"}}}`), CodeInvalidTime, "body.effective_time_frame.time_interval.start_date_time"},
		{"header member repeated", point(glucoseHeader(`,"source_creation_date_time":"2025-03-04"`), okBody), CodeMalformedJSON, ""},
		{"header creation time format", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2025-03-04"}`, okBody), CodeInvalidTime, "header.source_creation_date_time"},
		{"part of day", point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"}}`, `{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"date":"2025-03-04","part_of_day":"night"}}}`), CodeInvalidTime, "body.effective_time_frame.time_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %s", p.AppendJSON(nil))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Code != tc.code || e.Field != tc.field {
				t.Errorf("got %s at %q (%s), want %s at %q", e.Code, e.Field, e.Message, tc.code, tc.field)
			}
			if e.Message == "" || e.Error() == "" || strings.ToLower(e.Error()[:1]) != e.Error()[:1] {
				t.Errorf("bad message %q", e.Error())
			}
		})
	}
}

// No error message may repeat a submitted value: the canaries below sit
// where a careless message would quote them.
func TestErrorsNeverEchoValues(t *testing.T) {
	const num, str = "987.654", "CANARY-xyz"
	hdr := func(extra string) string { return glucoseHeader(extra) }
	schemaHdr := func(ns, name, ver string) string {
		return `{"uuid":"` + testUUID + `","schema_id":{"namespace":"` + ns + `","name":"` + name + `","version":"` + ver + `"}}`
	}
	inputs := []string{
		`{"header": CANARY-xyz}`,
		`{"header":{"x":"CANARY-xyz"}, 987.654}`,
		`{"CANARY-xyz":987.654,"CANARY-xyz":1}`,
		point(okHeader, `{"blood_glucose":{"value":"987.654","unit":"mg/dL"},`+dtFrame+`}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"CANARY-xyz"},`+dtFrame+`}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":987.654},`+dtFrame+`}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"mg/dL"},"specimen_source":"CANARY-xyz",`+dtFrame+`}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"mg/dL"},"temporal_relationship_to_meal":987.654,`+dtFrame+`}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"mg/dL"},"effective_time_frame":{"date_time":"CANARY-xyz"}}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"mg/dL"},"effective_time_frame":{"date_time":987.654}}`),
		point(okHeader, `{"blood_glucose":{"value":987.654,"unit":"mg/dL"},"effective_time_frame":{"time_interval":{"start_date_time":"CANARY-xyz","duration":{"value":987.654,"unit":"CANARY-xyz"}}}}`),
		point(okHeader, `{"blood_glucose":{"value":987.654e999,"unit":"mg/dL"},`+dtFrame+`}`),
		point(schemaHdr("omh", str, "1.0"), okBody),
		point(schemaHdr(str, "blood-glucose", "4.0"), okBody),
		point(schemaHdr("omh", "blood-glucose", str), okBody),
		point(schemaHdr("omh", "blood-glucose", num), okBody),
		point(`{"uuid":987.654,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody),
		point(hdr(`,"modality":"CANARY-xyz"`), okBody),
		point(hdr(`,"acquisition_rate":{"value":987.654,"unit":"CANARY-xyz"}`), okBody),
		point(hdr(`,"external_datasheets":[{"datasheet_reference":987.654}]`), okBody),
		point(hdr(`,"external_datasheets":["CANARY-xyz"]`), okBody),
		point(hdr(`,"x_vault":{"normalised":[987.654]}`), okBody),
		point(`{"uuid":"`+testUUID+`","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"CANARY-xyz"}`, okBody),
		point(`{"id":"CANARY-xyz","creation_date_time":"CANARY-xyz","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody),
		point(`{"id":"x","acquisition_provenance":{"source_name":987.654},"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody),
		point(schemaHdr("omh", "sleep-episode", "1.1"), `{"number_of_awakenings":987.654,`+tiFrame+`}`),
		point(schemaHdr("omh", "sleep-episode", "1.1"), `{"is_main_sleep":"CANARY-xyz",`+tiFrame+`}`),
		point(schemaHdr("omh", "physical-activity", "1.2"), `{"activity_name":987.654,`+dtFrame+`}`),
		point(schemaHdr("omh", "heart-rate", "2.0"), `{"heart_rate":{"value":987.654,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"date":"CANARY-xyz","part_of_day":"CANARY-xyz"}}}`),
	}
	for i, in := range inputs {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("input %d was accepted", i)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("input %d: %T", i, err)
		}
		for _, s := range []string{e.Error(), e.Field} {
			if strings.Contains(s, num) || strings.Contains(s, str) || strings.Contains(s, "987") {
				t.Errorf("input %d: error repeats a submitted value: %q", i, s)
			}
		}
	}
}

func TestParseSchemaID(t *testing.T) {
	tests := []struct {
		in   string
		want SchemaID
		ok   bool
	}{
		{"omh:blood-glucose:4.0", SchemaID{"omh", "blood-glucose", "4.0"}, true},
		{"omh:blood-glucose", SchemaID{"omh", "blood-glucose", ""}, true},
		{"omh", SchemaID{}, false},
		{"omh:blood-glucose:4.0:x", SchemaID{}, false},
		{"omh::4.0", SchemaID{}, false},
		{"omh:blood glucose:4.0", SchemaID{}, false},
		{"", SchemaID{}, false},
	}
	for _, tc := range tests {
		got, err := ParseSchemaID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSchemaID(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
	if got := Supported(); len(got) != 10 || got[0].String() != "omh:blood-glucose:4.0" || got[9].String() != "omh:sleep-episode:1.1" {
		t.Errorf("Supported() = %v", got)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"omh:blood-glucose:3.0", "omh:blood-glucose:4.0", true},
		{"omh:blood-glucose", "omh:blood-glucose:4.0", true},
		{"omh:step-count:2.0", "omh:step-count:3.0", true},
		{"omh:blood-glucose:2.0", "omh:blood-glucose:2.0", true},
		{"omh:blood-glucose:5.0", "", false},
		{"omh:unit-value:1.0", "", false},
		{"omh:header:1.2", "", false},
		{"omh:medication-prescription:2.0", "omh:medication-prescription:2.0", true}, // no time frame: filed by the header's time
		{"ieee:survey", "ieee:survey:1.0", true},
		{"omh:medication:1.0", "", false},   // a part of medication-prescription
		{"ieee:survey-item:1.0", "", false}, // a part of survey
		{"omh:blood-sugar:1.0", "", false},
		{"omh:rr-interval:1.0", "omh:rr-interval:1.0", true},
		{"omh:rr-interval", "omh:rr-interval:1.0", true},
		{"omh:rr-interval:1.x", "", false},
	} {
		id, _ := ParseSchemaID(tc.in)
		got, ok := CanonicalSchema(id)
		if ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("CanonicalSchema(%s) = %v, %v", tc.in, got, ok)
		}
	}
}

// TestIEEEHeaderKeepsHarmlessOMHMembers: the members an IEEE header may
// carry from OMH 1.x, as real data does, are kept, not refused: a
// creation_date_time (JupyterHealth Exchange writes one), and an
// acquisition_provenance with only members the OMH mapping leaves in place
// (the vault's own canonical form of an OMH header).
func TestIEEEHeaderKeepsHarmlessOMHMembers(t *testing.T) {
	for name, extra := range map[string]string{
		"creation_date_time":       `,"creation_date_time":"` + testTime + `"`,
		"leftover provenance":      `,"acquisition_provenance":{"source_data_point_id":"x7"}`,
		"provenance not an object": `,"acquisition_provenance":"x"`,
	} {
		p, err := Parse([]byte(point(glucoseHeader(extra), okBody)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if again, err := Parse(p.AppendJSON(nil)); err != nil || string(again.AppendJSON(nil)) != string(p.AppendJSON(nil)) {
			t.Errorf("%s: the canonical form does not parse back to itself: %v", name, err)
		}
	}
}
