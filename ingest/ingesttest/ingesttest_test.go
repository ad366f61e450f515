package ingesttest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// recorder is a testing.TB that records failures; Fatal stops the check
// as it stops a test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (r *recorder) Helper()             {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.Errorf("%s", fmt.Sprint(args...)); runtime.Goexit() }

// fails runs check against a recorder and reports whether it failed.
func fails(t *testing.T, check func(testing.TB)) bool {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return len(r.failed) > 0
}

// lines is a small well-behaved parser: a number per line is a glucose
// reading at that minute, "skip" a skip, "bad" malformed input.
func lines(in io.Reader, o ingest.Options, sink ingest.Sink) error {
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		pos := ingest.Pos{Line: n}
		switch txt := sc.Text(); txt {
		case "skip":
			if err := sink.Skipped(ingest.Skip{Pos: pos, Type: "note", Reason: "not a reading"}); err != nil {
				return err
			}
		case "bad":
			return ingest.Errorf(pos, "bad_value", "the line is not a number")
		default:
			p, err := omh.Parse(fmt.Appendf(nil, `{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":100,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-01-01T00:%02s:00Z"}}}`, txt))
			if err != nil {
				return ingest.PointError(pos, err)
			}
			if err := sink.Reading(ingest.Item{Point: p, Pos: pos}); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

const input = "1\nskip\n2\n3\n"

func TestChecksPassAGoodParser(t *testing.T) {
	for name, check := range map[string]func(testing.TB){
		"MustParse": func(t testing.TB) {
			s := MustParse(t, lines, []byte(input), ingest.Options{})
			CheckLen(t, s.Items, 3)
			CheckSkips(t, s.Skips, []ingest.Skip{{Pos: ingest.Pos{Line: 2}, Type: "note", Reason: "not a reading"}})
			if fmt.Sprint(s.Order) != "[1 2 3 4]" {
				t.Errorf("order %v", s.Order)
			}
		},
		"CheckDeterministic": func(t testing.TB) { CheckDeterministic(t, lines, []byte(input), ingest.Options{}) },
		"CheckStops":         func(t testing.TB) { CheckStops(t, lines, []byte(input), 0, 2, 9) },
		"CheckErr": func(t testing.TB) {
			_, err := Parse(lines, []byte("1\nbad\n"), ingest.Options{})
			CheckErr(t, err, "bad_value", ingest.Pos{Line: 2}, "bad")
		},
		"NoLeak": func(t testing.TB) {
			s := MustParse(t, lines, []byte(input), ingest.Options{})
			NoLeak(t, s.Skips, nil, "secret")
		},
	} {
		if fails(t, check) {
			t.Errorf("%s fails a parser that does what it should", name)
		}
	}
}

// sloppy breaks every promise CheckStops checks: it goes on after the
// sink fails, and wraps a read error.
func sloppy(in io.Reader, o ingest.Options, sink ingest.Sink) error {
	var first error
	err := lines(in, o, sinkFunc(func(it ingest.Item) error {
		if err := sink.Reading(it); err != nil && first == nil {
			first = err
		}
		return nil
	}))
	if err != nil && !errors.Is(err, first) {
		return fmt.Errorf("reading: %w", err)
	}
	return first
}

type sinkFunc func(ingest.Item) error

func (f sinkFunc) Reading(it ingest.Item) error { return f(it) }
func (f sinkFunc) Skipped(ingest.Skip) error    { return nil }

// counter gives another point each time it parses.
func counter() ingest.Parser {
	n := 0
	return func(in io.Reader, o ingest.Options, sink ingest.Sink) error {
		n++
		return lines(strings.NewReader(fmt.Sprint(n)), o, sink)
	}
}

func TestChecksFailABadParser(t *testing.T) {
	for name, check := range map[string]func(testing.TB){
		"CheckStops, sink error ignored": func(t testing.TB) { CheckStops(t, sloppy, []byte(input)) },
		"CheckStops, errors wrapped": func(t testing.TB) {
			CheckStops(t, func(in io.Reader, o ingest.Options, sink ingest.Sink) error {
				if err := lines(in, o, sink); err != nil {
					return fmt.Errorf("reading: %w", err)
				}
				return nil
			}, []byte(input), 3)
		},
		"CheckDeterministic, points differ":  func(t testing.TB) { CheckDeterministic(t, counter(), []byte(input), ingest.Options{}) },
		"CheckDeterministic, nothing parsed": func(t testing.TB) { CheckDeterministic(t, lines, []byte("skip\n"), ingest.Options{}) },
		"MustParse, malformed":               func(t testing.TB) { MustParse(t, lines, []byte("bad\n"), ingest.Options{}) },
		"CheckLen":                           func(t testing.TB) { CheckLen(t, MustParse(t, lines, []byte(input), ingest.Options{}).Items, 2) },
		"CheckSkips": func(t testing.TB) {
			CheckSkips(t, MustParse(t, lines, []byte(input), ingest.Options{}).Skips, []ingest.Skip{{Pos: ingest.Pos{Line: 2}, Type: "note", Reason: "other"}})
		},
		"CheckErr, not an *ingest.Error": func(t testing.TB) { CheckErr(t, errors.New("x"), "bad_value", ingest.Pos{}) },
		"CheckErr, other code": func(t testing.TB) {
			CheckErr(t, ingest.Errorf(ingest.Pos{Line: 2}, "bad_time", "no time"), "bad_value", ingest.Pos{Line: 2})
		},
		"CheckErr, other place": func(t testing.TB) {
			CheckErr(t, ingest.Errorf(ingest.Pos{Line: 3}, "bad_value", "no value"), "bad_value", ingest.Pos{Line: 2})
		},
		"CheckErr, repeats a value": func(t testing.TB) {
			CheckErr(t, ingest.Errorf(ingest.Pos{Line: 2}, "bad_value", "value 12x7 is not a number"), "bad_value", ingest.Pos{Line: 2}, "12x7")
		},
		"CheckErr, upper case": func(t testing.TB) {
			CheckErr(t, ingest.Errorf(ingest.Pos{Line: 2}, "bad_value", "Not a number"), "bad_value", ingest.Pos{Line: 2})
		},
		"NoLeak": func(t testing.TB) {
			NoLeak(t, []ingest.Skip{{Type: "Jane's note"}}, nil, "Jane")
		},
	} {
		if !fails(t, check) {
			t.Errorf("%s passes", name)
		}
	}
}

func TestFailReader(t *testing.T) {
	broken := errors.New("broken")
	got, err := io.ReadAll(&FailReader{Data: []byte("abc"), Err: broken})
	if string(got) != "abc" || err != broken {
		t.Fatalf("%q, %v", got, err)
	}
}
