package cgmcsv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// collect is a sink that keeps everything, and can fail on the n-th
// reading.
type collect struct {
	items  []ingest.Item
	skips  []ingest.Skip
	order  []int // lines in the order the sink saw them
	failAt int   // fail on this reading (1-based); 0 never
	err    error
}

func (c *collect) Reading(it ingest.Item) error {
	c.items = append(c.items, it)
	c.order = append(c.order, it.Pos.Line)
	if c.failAt > 0 && len(c.items) == c.failAt {
		return c.err
	}
	return nil
}

func (c *collect) Skipped(s ingest.Skip) error {
	c.skips = append(c.skips, s)
	c.order = append(c.order, s.Pos.Line)
	return nil
}

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	return loc
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is what a test expects of one point.
type want struct {
	line     int
	at       string // the date_time text
	value    float64
	unit     string
	specimen string
	modality string
	sheets   string // "type=ref;type=ref"
}

func checkPoints(t *testing.T, items []ingest.Item, wants []want) {
	t.Helper()
	if len(items) != len(wants) {
		for _, it := range items {
			t.Logf("line %d: %s", it.Pos.Line, it.Point.AppendJSON(nil))
		}
		t.Fatalf("got %d points, want %d", len(items), len(wants))
	}
	for i, w := range wants {
		it := items[i]
		p := it.Point
		bg, ok := p.Body.(*omh.BloodGlucose)
		if !ok {
			t.Fatalf("point %d: body %T", i, p.Body)
		}
		var sheets []string
		for _, d := range p.Header().ExternalDatasheets {
			sheets = append(sheets, d.Type+"="+d.Reference)
		}
		got := want{line: it.Pos.Line, at: bg.EffectiveTimeFrame.DateTime.Text, value: bg.BloodGlucose.Value,
			unit: bg.BloodGlucose.Unit, specimen: bg.SpecimenSource, modality: p.Header().Modality, sheets: strings.Join(sheets, ";")}
		if got != w {
			t.Errorf("point %d:\n got %+v\nwant %+v", i, got, w)
		}
		if p.UUID != "" || p.SourceID != "" {
			t.Errorf("point %d has an id (%q, %q); CSV rows have none", i, p.UUID, p.SourceID)
		}
		if p.Schema.String() != "omh:blood-glucose:4.0" {
			t.Errorf("point %d: schema %s", i, p.Schema)
		}
		at, _ := time.Parse(time.RFC3339Nano, w.at)
		if !p.Time.Equal(at) {
			t.Errorf("point %d: time %v, want %v", i, p.Time, at)
		}
	}
}

// skipWant is an expected skip: line, type and a part of the reason.
type skipWant struct {
	line   int
	typ    string
	reason string
}

func checkSkips(t *testing.T, skips []ingest.Skip, wants []skipWant) {
	t.Helper()
	if len(skips) != len(wants) {
		for _, s := range skips {
			t.Logf("%+v", s)
		}
		t.Fatalf("got %d skips, want %d", len(skips), len(wants))
	}
	for i, w := range wants {
		s := skips[i]
		if s.Pos.Line != w.line || s.Type != w.typ || !strings.Contains(s.Reason, w.reason) {
			t.Errorf("skip %d: got %+v, want line %d type %q reason containing %q", i, s, w.line, w.typ, w.reason)
		}
	}
}

// noLeak fails if any secret appears in a skip or an error.
func noLeak(t *testing.T, c *collect, err error, secrets ...string) {
	t.Helper()
	var texts []string
	for _, s := range c.skips {
		texts = append(texts, s.Type, s.Reason, s.Pos.Element)
	}
	if err != nil {
		texts = append(texts, err.Error())
	}
	for _, txt := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(txt, s) {
				t.Errorf("%q leaks %q", txt, s)
			}
		}
	}
}

// checkErr checks err is an *ingest.Error with code at line, and that its
// message holds none of the secrets (the values found in the input).
func checkErr(t *testing.T, err error, code string, line int, secrets ...string) {
	t.Helper()
	var e *ingest.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want *ingest.Error %s", err, err, code)
	}
	if e.Code != code || e.Pos.Line != line {
		t.Errorf("got %s at line %d (%v), want %s at line %d", e.Code, e.Pos.Line, e, code, line)
	}
	if e.Message == "" {
		t.Error("empty message")
	}
	for _, s := range secrets {
		if strings.Contains(e.Message, s) {
			t.Errorf("message %q repeats the value %q", e.Message, s)
		}
	}
}

// canonical returns the canonical bytes of every point, one a line.
func canonical(items []ingest.Item) []byte {
	var b []byte
	for _, it := range items {
		b = it.Point.AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

// checkRoundTrip checks every point's canonical bytes parse back to the
// same bytes.
func checkRoundTrip(t testing.TB, items []ingest.Item) {
	t.Helper()
	for _, it := range items {
		out := it.Point.AppendJSON(nil)
		p2, err := omh.Parse(out)
		if err != nil {
			t.Fatalf("line %d: canonical point does not parse: %v\n%s", it.Pos.Line, err, out)
		}
		if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) {
			t.Fatalf("line %d: not idempotent:\n%s\n%s", it.Pos.Line, out, out2)
		}
	}
}

// failReader returns data, then err.
type failReader struct {
	data []byte
	err  error
}

func (f *failReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

var _ io.Reader = (*failReader)(nil)

// utf16le encodes s as UTF-16LE with a byte order mark.
func utf16le(s string) []byte {
	b := []byte{0xFF, 0xFE}
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
			b = append(b, byte(hi), byte(hi>>8), byte(lo), byte(lo>>8))
			continue
		}
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}
