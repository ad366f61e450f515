package omh

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// roundTripInputs returns the examples (when the shared directory is there),
// the normalisation cases and the generated corpus.
func roundTripInputs(t testing.TB) [][]byte {
	var ins [][]byte
	files, _ := filepath.Glob(filepath.Join(sharedDirOrEmpty(), "schemas", "examples", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b)
	}
	valid, mutated := corpus()
	for _, g := range append(valid, mutated...) {
		ins = append(ins, g.JSON())
	}
	ins = append(ins, []byte(point(`{"id":"reading-7","creation_date_time":"2025-03-04T09:00:00Z","schema_id":{"namespace":"omh","name":"step-count","version":"2.0"},"acquisition_provenance":{"source_name":"Fitbit","source_data_point_id":"x1"}}`,
		`{"step_count":512,"effective_time_frame":{"time_interval":{"end_date_time":"2025-03-04T09:00:00+05:30","duration":{"value":1.5,"unit":"H"}}}}`)))
	return ins
}

// sharedDirOrEmpty is sharedDir without the skip, for tests that can run
// without the examples.
func sharedDirOrEmpty() string {
	if dir := os.Getenv("VAULT_SHARED_DIR"); dir != "" {
		return dir
	}
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "shared")
}

func TestRoundTrip(t *testing.T) {
	n := 0
	for _, in := range roundTripInputs(t) {
		p1, err := Parse(in)
		if err != nil {
			continue
		}
		n++
		out1 := p1.AppendJSON(nil)
		p2, err := Parse(out1)
		if err != nil {
			t.Fatalf("canonical output does not parse: %v\n%s", err, out1)
		}
		out2 := p2.AppendJSON(nil)
		if !bytes.Equal(out1, out2) {
			t.Fatalf("not idempotent:\n%s\n%s", out1, out2)
		}
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("points differ:\n%#v\n%#v", p1, p2)
		}
		if again := p1.AppendJSON(nil); !bytes.Equal(out1, again) {
			t.Fatalf("AppendJSON is not deterministic")
		}
	}
	if n < 300 {
		t.Errorf("only %d inputs parsed", n)
	}
	t.Logf("%d points round-tripped", n)
}

func TestReadingTime(t *testing.T) {
	tests := []struct {
		frame string
		want  string
	}{
		{`{"date_time":"2025-03-04T08:15:00.25-08:00"}`, "2025-03-04T08:15:00.25-08:00"},
		{`{"date_time":"2025-03-04t08:15:00z"}`, "2025-03-04T08:15:00Z"},
		{`{"date_time":"2016-12-31T23:59:60Z"}`, "2017-01-01T00:00:00Z"},
		{`{"time_interval":{"start_date_time":"2025-03-04T07:00:00+05:30","end_date_time":"2025-03-04T08:00:00+05:30"}}`, "2025-03-04T07:00:00+05:30"},
		{`{"time_interval":{"start_date_time":"2025-03-04T07:00:00Z","duration":{"value":2,"unit":"h"}}}`, "2025-03-04T07:00:00Z"},
		{`{"time_interval":{"end_date_time":"2025-03-04T08:00:00-08:00","duration":{"value":90,"unit":"min"}}}`, "2025-03-04T06:30:00-08:00"},
		{`{"time_interval":{"end_date_time":"2025-03-31T08:00:00Z","duration":{"value":1,"unit":"Mo"}}}`, "2025-03-03T08:00:00Z"},
		{`{"time_interval":{"end_date_time":"2025-03-04T08:00:00Z","duration":{"value":1500,"unit":"ps"}}}`, "2025-03-04T07:59:59.999999998Z"},
	}
	for _, tc := range tests {
		p, err := Parse([]byte(point(okHeader, `{"blood_glucose":{"value":99,"unit":"mg/dL"},"effective_time_frame":`+tc.frame+`}`)))
		if err != nil {
			t.Errorf("%s: %v", tc.frame, err)
			continue
		}
		if got := p.Time.Format(time.RFC3339Nano); got != tc.want {
			t.Errorf("%s: time %s, want %s", tc.frame, got, tc.want)
		}
	}
}

func TestSetUUID(t *testing.T) {
	p, err := Parse([]byte(point(`{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}}`, okBody)))
	if err != nil {
		t.Fatal(err)
	}
	if p.UUID != "" {
		t.Fatalf("uuid %q", p.UUID)
	}
	p.SetUUID("0B0C0D0E-0000-4000-8000-000000000000")
	out := p.AppendJSON(nil)
	p2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if p2.UUID != "0b0c0d0e-0000-4000-8000-000000000000" || !bytes.Equal(p2.AppendJSON(nil), out) {
		t.Errorf("uuid %q\n%s", p2.UUID, out)
	}
}

// Parse runs on many goroutines at once (go test -race checks the sharing).
func TestParseConcurrently(t *testing.T) {
	ins := roundTripInputs(t)
	want := make([][]byte, len(ins))
	for i, in := range ins {
		if p, err := Parse(in); err == nil {
			want[i] = p.AppendJSON(nil)
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range ins {
				j := (i + w*97) % len(ins)
				p, err := Parse(ins[j])
				if (err == nil) != (want[j] != nil) {
					t.Errorf("input %d: inconsistent result %v", j, err)
					return
				}
				if err == nil && !bytes.Equal(p.AppendJSON(nil), want[j]) {
					t.Errorf("input %d: different output", j)
					return
				}
			}
		})
	}
	wg.Wait()
}
