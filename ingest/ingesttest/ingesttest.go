// Package ingesttest holds what the importers' tests share: sinks that keep,
// count or refuse what a parser hands them, a reader that breaks, and the
// checks every parser must pass whatever its format.
//
// A format's test reads its sample files with [ReadFile], parses them into
// a [Sink] with [Parse] or [MustParse], and checks the points with
// [CheckRoundTrip] (a point's canonical bytes parse back to themselves) and
// [CheckDeterministic], its refusals with [CheckErr] (an [*ingest.Error] at
// the right place that never repeats a value from the file), and that it
// stops on a sink's or a reader's error with [CheckStops]. Its fuzz target
// hands each input to [Fuzz], its benchmark to [BenchParse].
//
// It is a test helper: only _test.go files import it.
package ingesttest

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

// Sink keeps everything a parser hands it, in order.
type Sink struct {
	Items []ingest.Item
	Skips []ingest.Skip
	Order []int // the line of each reading and skip, in the order the sink saw them
}

func (s *Sink) Reading(it ingest.Item) error {
	s.Items = append(s.Items, it)
	s.Order = append(s.Order, it.Pos.Line)
	return nil
}

func (s *Sink) Skipped(sk ingest.Skip) error {
	s.Skips = append(s.Skips, sk)
	s.Order = append(s.Order, sk.Pos.Line)
	return nil
}

// Count counts what a parser hands it and keeps nothing: for benchmarks
// and inputs too large to keep.
type Count struct{ Readings, Skips int }

func (c *Count) Reading(ingest.Item) error { c.Readings++; return nil }
func (c *Count) Skipped(ingest.Skip) error { c.Skips++; return nil }

// FailOn returns Err from its N-th call, reading or skip, and counts its
// calls, so a test can check the parser stopped there.
type FailOn struct {
	N, Calls int
	Err      error
}

func (f *FailOn) Reading(ingest.Item) error { return f.call() }
func (f *FailOn) Skipped(ingest.Skip) error { return f.call() }
func (f *FailOn) call() error {
	if f.Calls++; f.Calls == f.N {
		return f.Err
	}
	return nil
}

// FailReader returns Data, then Err in place of io.EOF.
type FailReader struct {
	Data []byte
	Err  error
}

func (f *FailReader) Read(p []byte) (int, error) {
	if len(f.Data) == 0 {
		return 0, f.Err
	}
	n := copy(p, f.Data)
	f.Data = f.Data[n:]
	return n, nil
}

// Parse runs parse on in with o into a new Sink.
func Parse(parse ingest.Parser, in []byte, o ingest.Options) (*Sink, error) {
	s := &Sink{}
	err := parse(bytes.NewReader(in), o, s)
	return s, err
}

// MustParse is Parse of input the parser must accept: an error fails the
// test now.
func MustParse(t testing.TB, parse ingest.Parser, in []byte, o ingest.Options) *Sink {
	t.Helper()
	s, err := Parse(parse, in, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ReadFile reads testdata/name of the package under test.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Zip makes a zip archive of files (name to content): the names in first
// in that order, then the rest.
func Zip(t testing.TB, files map[string]string, first ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	done := map[string]bool{}
	for _, name := range first {
		add(name)
		done[name] = true
	}
	for name := range files {
		if !done[name] {
			add(name)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Canonical returns the canonical bytes of every point, one a line.
func Canonical(items []ingest.Item) []byte {
	var b []byte
	for _, it := range items {
		b = it.Point.AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

// CheckRoundTrip checks that every point's canonical bytes parse back to
// the same bytes: what a parser hands on is what the vault stores and
// exports.
func CheckRoundTrip(t testing.TB, items []ingest.Item) {
	t.Helper()
	for _, it := range items {
		out := it.Point.AppendJSON(nil)
		p, err := omh.Parse(out)
		if err != nil {
			t.Fatalf("%v: the canonical point does not parse: %v\n%s", it.Pos, err, out)
		}
		if again := p.AppendJSON(nil); !bytes.Equal(out, again) {
			t.Fatalf("%v: the canonical point changes when parsed again:\n%s\n%s", it.Pos, out, again)
		}
	}
}

// CheckLen fails the test now, listing the points, unless there are n.
func CheckLen(t testing.TB, items []ingest.Item, n int) {
	t.Helper()
	if len(items) == n {
		return
	}
	for _, it := range items {
		t.Logf("%v: %s", it.Pos, it.Point.AppendJSON(nil))
	}
	t.Fatalf("got %d points, want %d", len(items), n)
}

// CheckDeterministic parses in twice and checks that it finds points, the
// same canonical bytes both times, and that they round-trip
// (CheckRoundTrip). It returns the first parse.
func CheckDeterministic(t testing.TB, parse ingest.Parser, in []byte, o ingest.Options) *Sink {
	t.Helper()
	a, b := MustParse(t, parse, in, o), MustParse(t, parse, in, o)
	// Serialised only now: a point must not share memory with the
	// parser's reused buffers.
	if x, y := Canonical(a.Items), Canonical(b.Items); len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatalf("two parses differ, or found nothing:\n%s\n%s", x, y)
	}
	CheckRoundTrip(t, a.Items)
	return a
}

// CheckStops checks that parse stops where it must on in: a sink error on
// any call, reading or skip, comes back unchanged and no call follows it;
// a read error after each of cuts bytes comes back unchanged.
func CheckStops(t testing.TB, parse ingest.Parser, in []byte, cuts ...int) {
	t.Helper()
	all := MustParse(t, parse, in, ingest.Options{})
	calls := len(all.Items) + len(all.Skips)
	if calls == 0 {
		t.Fatal("the input gives no call to fail on")
	}
	stop := errors.New("sink full")
	for n := 1; n <= calls; n++ {
		s := &FailOn{N: n, Err: stop}
		if err := parse(bytes.NewReader(in), ingest.Options{}, s); err != stop {
			t.Fatalf("sink failing on call %d of %d: got %v, want its error unchanged", n, calls, err)
		}
		if s.Calls != n {
			t.Fatalf("sink failing on call %d: the parser went on to call it %d times", n, s.Calls)
		}
	}
	broken := errors.New("disk on fire")
	for _, n := range cuts {
		if err := parse(&FailReader{Data: in[:n], Err: broken}, ingest.Options{}, &Sink{}); err != broken {
			t.Errorf("read error after %d bytes: got %v, want it unchanged", n, err)
		}
	}
}

// BenchParse reports parse's speed on in, which holds rows readings, in
// bytes/s and rows/s.
func BenchParse(b *testing.B, parse ingest.Parser, in []byte, o ingest.Options, rows int) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var c Count
		if err := parse(bytes.NewReader(in), o, &c); err != nil {
			b.Fatal(err)
		}
		if c.Readings != rows {
			b.Fatalf("%d readings, want %d", c.Readings, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// CheckComplete checks that err is an *ingest.Error with a code and a
// one-line message that starts in lower case, and returns it.
func CheckComplete(t testing.TB, err error) *ingest.Error {
	t.Helper()
	var e *ingest.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want an *ingest.Error", err, err)
	}
	if e.Code == "" || e.Message == "" || strings.ContainsRune(e.Message, '\n') {
		t.Fatalf("incomplete error %#v", e)
	}
	if first := e.Message[:1]; first != strings.ToLower(first) {
		t.Errorf("message %q starts in upper case", e.Message)
	}
	return e
}

// CheckErr checks that err is a complete *ingest.Error with code at pos
// whose message repeats none of secrets (values from the input).
func CheckErr(t testing.TB, err error, code string, pos ingest.Pos, secrets ...string) {
	t.Helper()
	e := CheckComplete(t, err)
	if e.Code != code || e.Pos != pos {
		t.Errorf("got %s at %+v (%v), want %s at %+v", e.Code, e.Pos, e, code, pos)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(e.Error(), s) {
			t.Errorf("message %q repeats the value %q", e.Error(), s)
		}
	}
}

// NoLeak fails if any of secrets appears in a skip or in err.
func NoLeak(t testing.TB, skips []ingest.Skip, err error, secrets ...string) {
	t.Helper()
	var texts []string
	for _, s := range skips {
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

// Fuzz parses in and checks what every parser promises for any input: it
// does not panic, an error it returns is a complete *ingest.Error (the
// input is in memory and the sink never fails, so no other error can
// come), and every point it hands on round-trips (CheckRoundTrip). It
// returns the sink for the format's own checks, or nil after an error.
func Fuzz(t *testing.T, parse ingest.Parser, in []byte, o ingest.Options) *Sink {
	t.Helper()
	s, err := Parse(parse, in, o)
	if err != nil {
		CheckComplete(t, err)
		return nil
	}
	CheckRoundTrip(t, s.Items)
	return s
}

// NewYork is America/New_York, the zone the tests read local times in: it
// has daylight saving time.
func NewYork(t testing.TB) *time.Location {
	t.Helper()
	return calendartest.Location(t, "America/New_York")
}

// CheckSkips checks the skips are want, in order.
func CheckSkips(t testing.TB, got, want []ingest.Skip) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("skips\n got %+v\nwant %+v", got, want)
	}
}
