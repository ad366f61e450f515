package omh

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEmbeddedSchemasEqualShared: the copies compiled into the binary are
// the files of ../shared/schemas, byte for byte, and nothing else.
func TestEmbeddedSchemasEqualShared(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "schemas")
	seen := 0
	err := fs.WalkDir(officialFS, "schemas", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		seen++
		got, err := officialFS.ReadFile(p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(p, "schemas/")))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the shared copy", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !strings.HasPrefix(rel, "examples") {
			shared++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != shared {
		t.Fatalf("embedded %d files, shared has %d (examples aside)", seen, shared)
	}
}

// TestEveryEmbeddedSchemaCompiles compiles the official schema of every
// id Accepted lists that has no typed model, offline. They are the 64
// data-point bodies of the embedded set that no typed model reads: the 57
// defining effective_time_frame and the 7 filed by the header's creation
// time (FiledByCreationTime); docs/api.md lists them.
func TestEveryEmbeddedSchemaCompiles(t *testing.T) {
	n, untimed := 0, 0
	for _, id := range Accepted() {
		if Typed(id) {
			continue
		}
		if _, err := official().compiled(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		n++
		if FiledByCreationTime(id) {
			untimed++
		}
	}
	if n != 64 || untimed != 7 {
		t.Fatalf("%d generic schemas accepted, %d of them filed by creation time, want 64 and 7", n, untimed)
	}
}

const (
	tf  = `"effective_time_frame":{"date_time":"2026-03-01T07:00:00-05:00"}`
	tfi = `"effective_time_frame":{"time_interval":{"start_date_time":"2026-03-01T07:00:00-05:00","end_date_time":"2026-03-01T08:00:00-05:00"}}`
)

// TestGenericSchemas: a valid point of each schema is accepted, stored in
// canonical form, and parses back to the same bytes; an invalid one is
// refused with the member named.
func TestGenericSchemas(t *testing.T) {
	for _, tc := range []struct {
		schema, valid, invalid, field string
	}{
		{"ieee:sleep-stage-summary:1.0",
			`{"sleep_stage_summary":{"total_sleep_time":{"value":412,"unit":"min"}},` + tfi + `}`,
			`{"sleep_stage_summary":{"total_sleep_time":{"value":412,"unit":"dreaming"}},` + tfi + `}`,
			"body.sleep_stage_summary.total_sleep_time.unit"},
		{"ieee:food-entry:0.1",
			`{"meal":"lunch","food_name":"lentil soup","food_amount":{"value":300,"unit":"mL"},` + tf + `}`,
			`{"food_name":"lentil soup",` + tf + `}`,
			"body.food_amount"},
		{"omh:rr-interval:1.0",
			`{"rr_interval":{"value":812,"unit":"ms"},` + tf + `}`,
			`{"rr_interval":{"value":"812","unit":"ms"},` + tf + `}`,
			"body.rr_interval.value"},
		{"omh:ambient-temperature:1.0",
			`{"ambient_temperature":{"value":21.5,"unit":"C"},` + tf + `}`,
			`{` + tf + `}`,
			"body.ambient_temperature"},
		// An older version of a typed schema that the typed model does not
		// read is a Document under its own id, never a *BloodGlucose.
		{"omh:blood-glucose:2.0",
			`{"blood_glucose":{"value":5.4,"unit":"mmol/L"},"specimen_source":"plasma",` + tf + `}`,
			`{"blood_glucose":{"value":5.4,"unit":"mg"},` + tf + `}`,
			"body.blood_glucose.unit"},
		{"ieee:physical-activity:1.0",
			`{"activity_name":"walking",` + tfi + `}`,
			`{"activity_name":7,` + tfi + `}`,
			"body.activity_name"},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			id, err := ParseSchemaID(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			mk := func(body string) []byte {
				return []byte(`{"header":{"uuid":"` + testUUID + `","schema_id":{"namespace":"` + id.Namespace + `","name":"` + id.Name + `","version":"` + id.Version + `"},"source_creation_date_time":"2026-03-01T07:01:00Z"},"body":` + body + `}`)
			}
			p, err := Parse(mk(tc.valid))
			if err != nil {
				t.Fatalf("valid point refused: %v", err)
			}
			if p.Schema != id {
				t.Fatalf("stored under %s", p.Schema)
			}
			doc, ok := p.Body.(*Document)
			if !ok || Typed(p.Schema) {
				t.Fatalf("body is %T (typed %v)", p.Body, Typed(p.Schema))
			}
			if want := "2026-03-01T12:00:00Z"; !p.Time.UTC().Equal(mustTime(t, want)) {
				t.Fatalf("time %v, want %s", p.Time, want)
			}
			out := p.AppendJSON(nil)
			if !bytes.Contains(out, doc.JSON()) || !bytes.HasPrefix(doc.JSON(), []byte(`{"`)) {
				t.Fatalf("canonical output %s lacks the body %s", out, doc.JSON())
			}
			p2, err := Parse(out)
			if err != nil {
				t.Fatalf("canonical form refused: %v", err)
			}
			if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the bytes:\n%s\n%s", out, out2)
			}
			_, err = Parse(mk(tc.invalid))
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != CodeInvalidValue || oe.Field != tc.field {
				t.Fatalf("invalid point: got %v, want invalid_value at %s", err, tc.field)
			}
			if strings.Contains(oe.Message, "dreaming") || strings.Contains(oe.Message, "812") {
				t.Fatalf("message repeats the submitted value: %s", oe.Message)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestSchemasFiledByCreationTime: a schema that defines no
// effective_time_frame (omh:medication-prescription,
// omh:patient-medication-schedule, omh:pharmacy-medication-dispensing,
// ieee:survey) is validated against its official schema and filed by the
// header's creation time, in either header dialect (an OMH 1.x header's
// acquisition_provenance.source_creation_date_time before its
// creation_date_time, as the canonical header keeps it); without that time
// the point is refused with missing_time_frame naming the header member.
func TestSchemasFiledByCreationTime(t *testing.T) {
	const (
		survey       = `{"items":[{"question":{"text":"How do you feel today?"},"answers":[{"value":"fine"}]}],"delivery_details":{"end_status":"completed"}}`
		prescription = `{"medication":{"generic_name":"atenolol","strength":[{"value":50,"unit":"mg"}]},"schedule":[{"medication_dose":{"dose":{"value":1,"unit":"tablet"}},"dose_duration":{"duration":{"value":30,"unit":"d"}},"dose_recurrence":{"dose_prn_trigger":"pain"}}]}`
		ieeeSurvey   = `"schema_id":{"namespace":"ieee","name":"survey","version":"1.0"}`
		omhPresc     = `"schema_id":{"namespace":"omh","name":"medication-prescription","version":"2.0"}`
	)
	for _, tc := range []struct {
		name, point, time, field string
	}{
		{"ieee header", `{"header":{"uuid":"` + testUUID + `",` + ieeeSurvey + `,"source_creation_date_time":"2026-03-01T07:01:00-05:00"},"body":` + survey + `}`,
			"2026-03-01T12:01:00Z", ""},
		{"omh header", `{"header":{"id":"` + testUUID + `",` + omhPresc + `,"creation_date_time":"2026-03-02T08:00:00Z"},"body":` + prescription + `}`,
			"2026-03-02T08:00:00Z", ""},
		{"omh header with a source time", `{"header":{"id":"` + testUUID + `",` + omhPresc + `,"creation_date_time":"2026-03-02T08:00:00Z","acquisition_provenance":{"source_name":"pharmacy","source_creation_date_time":"2026-03-01T18:00:00Z"}},"body":` + prescription + `}`,
			"2026-03-01T18:00:00Z", ""},
		{"ieee header without a time", `{"header":{"uuid":"` + testUUID + `",` + ieeeSurvey + `},"body":` + survey + `}`,
			"", "header.source_creation_date_time"},
		{"omh header without a time", `{"header":{"id":"` + testUUID + `",` + omhPresc + `},"body":` + prescription + `}`,
			"", "header.creation_date_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.point))
			if tc.field != "" {
				var oe *Error
				if !errors.As(err, &oe) || oe.Code != CodeMissingTimeFrame || oe.Field != tc.field {
					t.Fatalf("got %v, want missing_time_frame at %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("valid point refused: %v", err)
			}
			if !FiledByCreationTime(p.Schema) {
				t.Fatalf("%s not filed by creation time", p.Schema)
			}
			if !p.Time.UTC().Equal(mustTime(t, tc.time)) || !p.Body.TimeFrame().DateTime.Time.Equal(p.Time) || p.Body.TimeFrame().TimeInterval != nil {
				t.Fatalf("time %v, time frame %+v, want %s", p.Time, p.Body.TimeFrame(), tc.time)
			}
			out := p.AppendJSON(nil)
			if bytes.Contains(out, []byte("effective_time_frame")) {
				t.Fatalf("the stored point gained a time frame: %s", out)
			}
			p2, err := Parse(out)
			if err != nil {
				t.Fatalf("canonical form refused: %v", err)
			}
			if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) || !p2.Time.Equal(p.Time) {
				t.Fatalf("round trip changed the point:\n%s\n%s", out, out2)
			}
		})
	}
	// The body is still validated against the official schema.
	_, err := Parse([]byte(`{"header":{"uuid":"` + testUUID + `",` + ieeeSurvey + `,"source_creation_date_time":"2026-03-01T07:01:00Z"},"body":{"items":[]}}`))
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != CodeInvalidValue || oe.Field != "body.delivery_details" {
		t.Fatalf("invalid survey: got %v, want invalid_value at body.delivery_details", err)
	}
	for _, id := range []string{"omh:medication-prescription:1.0", "omh:medication-prescription:2.0", "omh:patient-medication-schedule:1.0",
		"omh:patient-medication-schedule:2.0", "omh:pharmacy-medication-dispensing:1.0", "omh:pharmacy-medication-dispensing:2.0", "ieee:survey:1.0"} {
		sid, err := ParseSchemaID(id)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := CanonicalSchema(sid); !ok || c != sid || !FiledByCreationTime(sid) {
			t.Errorf("%s: canonical %v %v, filed by creation time %v", id, c, ok, FiledByCreationTime(sid))
		}
	}
	for _, id := range []SchemaID{{"ieee", "food-entry", "0.1"}, {"omh", "blood-glucose", "4.0"}, {"omh", "medication", "1.0"}, {"ieee", "survey-item", "1.0"}, {"omh", "survey", "1.0"}} {
		if FiledByCreationTime(id) {
			t.Errorf("%s filed by creation time", id)
		}
		if _, ok := CanonicalSchema(id); ok && id.Name != "food-entry" && id.Name != "blood-glucose" {
			t.Errorf("%s, a fragment, is accepted", id)
		}
	}
}
