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
// id Accepted lists that has no typed model, offline. They are the 57
// data-point bodies (schemas defining effective_time_frame) of the
// embedded set that no typed model reads; docs/api.md lists them.
func TestEveryEmbeddedSchemaCompiles(t *testing.T) {
	n := 0
	for _, id := range Accepted() {
		if Typed(id) {
			continue
		}
		if _, err := official().compiled(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		n++
	}
	if n != 57 {
		t.Fatalf("%d generic schemas accepted, want 57", n)
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
