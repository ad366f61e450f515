package omhjson

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

func point(i int) string {
	ts := fmt.Sprintf("2025-01-01T00:%02d:00Z", i%60)
	return fmt.Sprintf(`{"header":{"uuid":"6a1e0d52-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, i, 90+i, ts)
}

func TestParse(t *testing.T) {
	three := []string{point(0), point(1), point(2)}
	for name, in := range map[string]string{
		"array":           "[" + strings.Join(three, ",") + "]",
		"array, spaced":   "\ufeff \n[\n " + strings.Join(three, ",\n ") + "\n]\n",
		"ndjson":          strings.Join(three, "\n") + "\n",
		"concatenated":    strings.Join(three, ""),
		"ndjson, no last": strings.Join(three, "\n"),
	} {
		c := &ingesttest.Sink{}
		if err := Parse(strings.NewReader(in), ingest.Options{}, c); err != nil || len(c.Items) != 3 {
			t.Errorf("%s: %d points, %v", name, len(c.Items), err)
			continue
		}
		if c.Items[2].Pos.Element != "point[2]" || c.Items[2].Point.Schema.String() != "omh:blood-glucose:4.0" {
			t.Errorf("%s: %+v", name, c.Items[2].Pos)
		}
	}
	c := &ingesttest.Sink{}
	if err := Parse(strings.NewReader(point(7)), ingest.Options{}, c); err != nil || len(c.Items) != 1 {
		t.Fatalf("one point: %d, %v", len(c.Items), err)
	}
}

func TestParseRefusals(t *testing.T) {
	bad := strings.Replace(point(2), `"mg/dL"`, `"furlongs"`, 1)
	for name, tc := range map[string]struct {
		in, code, element string
	}{
		"empty":             {"  \n", "empty_file", ""},
		"empty array":       {"[]", "", ""},
		"not JSON":          {point(0) + "\n{oops", "bad_json", "point[1]"},
		"bad unit":          {"[" + point(0) + "," + point(1) + "," + bad + "]", "bad_unit", "point[2]"},
		"not an object":     {"[1]", "invalid_value", "point[0]"},
		"after the array":   {"[" + point(0) + "] x", "bad_json", "point[1]"},
		"cut short":         {"[" + point(0) + "," + point(1)[:40], "bad_json", "point[1]"},
		"a point too large": {`[{"header":{},"body":{"x":"` + strings.Repeat("y", MaxPoint+10) + `"}}]`, "bad_json", "point[0]"},
	} {
		c := &ingesttest.Sink{}
		err := Parse(strings.NewReader(tc.in), ingest.Options{}, c)
		if tc.code == "" {
			if err != nil || len(c.Items) != 0 {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		var ie *ingest.Error
		if !errors.As(err, &ie) || ie.Code != tc.code || ie.Pos.Element != tc.element {
			t.Errorf("%s: %v (%+v), want %s at %q", name, err, ie, tc.code, tc.element)
			continue
		}
		if strings.Contains(ie.Message, "furlongs") || strings.Contains(ie.Message, "yyyy") {
			t.Errorf("%s: the message repeats a value: %s", name, ie.Message)
		}
	}
}

func TestSniff(t *testing.T) {
	for in, want := range map[string]bool{
		point(0):                         true,
		"[" + point(0) + "]":             true,
		`{"resourceType":"Observation"}`: false,
		`[{"sgv":100,"date":1}]`:         false,
		"uuid,schema,time\n":             false,
	} {
		if Sniff([]byte(in)) != want {
			t.Errorf("Sniff(%.40q) = %v", in, !want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(point(0))
	f.Add("[" + point(1) + "," + point(2) + "]")
	f.Add(point(3) + "\n" + point(4))
	f.Fuzz(func(t *testing.T, in string) {
		c := ingesttest.Fuzz(t, Parse, []byte(in), ingest.Options{})
		if c == nil {
			return
		}
		for _, it := range c.Items {
			if it.Point == nil || !strings.HasPrefix(it.Pos.Element, "point[") {
				t.Fatalf("item %+v", it)
			}
		}
	})
}
