package fhir_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/jupyterhealth/vault/oauth"
)

// pageTimes collects the server-side time of each request (in the
// handler: decide, read, decrypt, render, log, write) and the process's
// CPU time, and reports them: p50 and p99 of the server time, the CPU
// per op (user + system, every goroutine: server, client and the
// runtime), which the machine's other load does not inflate.
type pageTimes struct {
	mu    sync.Mutex
	times []time.Duration
	cpu0  time.Duration
}

func (p *pageTimes) start(f *fixture) {
	fn := func(d time.Duration) {
		p.mu.Lock()
		p.times = append(p.times, d)
		p.mu.Unlock()
	}
	f.served.Store(&fn)
	p.cpu0 = cpuTime()
}

func (p *pageTimes) report(b *testing.B, ops int) {
	cpu := cpuTime() - p.cpu0
	p.mu.Lock()
	defer p.mu.Unlock()
	slices.Sort(p.times)
	if len(p.times) == 0 || ops == 0 {
		return
	}
	b.ReportMetric(float64(p.times[len(p.times)/2].Microseconds())/1000, "srv-p50-ms")
	b.ReportMetric(float64(p.times[len(p.times)*99/100].Microseconds())/1000, "srv-p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(ops), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkObservationPage: one page of 1,000 CGM Observations, decided,
// read, decrypted, rendered and logged (one ledger transaction), over
// loopback. It reports the p99 of the pages it timed at the client
// (p99-ms) and in the handler (srv-p99-ms), and the CPU per page.
func BenchmarkObservationPage(b *testing.B) {
	f := newFixture(b, 0)
	f.start = time.Now().UTC().AddDate(0, 0, -30)
	f.ingest(b, f.patient.ID, f.start, 8640, 5*time.Minute, "b")
	f.grant(b, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(b, f.clin.ID, "user/*.rs", oauth.Approval{})
	path := "/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&_count=1000"
	var times []time.Duration
	var pt pageTimes
	b.ResetTimer()
	pt.start(f)
	for b.Loop() {
		t0 := time.Now()
		if st, _, body := f.get(b, path, tok); st != 200 {
			b.Fatal(st, string(body))
		}
		times = append(times, time.Since(t0))
	}
	pt.report(b, len(times))
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPatientYear: a patient-year of CGM (105,120 readings) paged
// through by a client on loopback, 1,000 a page. The client reads each
// page with a streaming JSON reader (jsontext, which checks the whole
// page's syntax), counting the entries and taking the next link;
// encoding/json's Unmarshal of a 1 MB page alone costs about 10 ms of
// client CPU, more than the server's page.
func BenchmarkPatientYear(b *testing.B) {
	f := newFixture(b, 0)
	f.start = time.Now().UTC().AddDate(-1, 0, 0)
	f.ingest(b, f.patient.ID, f.start, 105120, 5*time.Minute, "y")
	f.grant(b, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(b, f.clin.ID, "user/*.rs", oauth.Approval{})
	var pt pageTimes
	b.ResetTimer()
	pt.start(f)
	ops := 0
	for b.Loop() {
		next, n := f.base+"/Observation?patient="+oauth.FHIRID(f.patient.ID)+"&_count=1000", 0
		for next != "" {
			st, _, body := f.get(b, next, tok)
			if st != 200 {
				b.Fatal(st, string(body))
			}
			var k int
			k, next = readPage(b, body)
			n += k
		}
		if n != 105120 {
			b.Fatalf("%d readings, want 105120", n)
		}
		ops++
	}
	pt.report(b, ops)
}

// readPage reads a searchset Bundle as a streaming client does: every
// token (so the page is well-formed JSON), the entries counted, the next
// link kept.
func readPage(b *testing.B, page []byte) (entries int, next string) {
	dec := jsontext.NewDecoder(bytes.NewReader(page))
	fail := func(err error) {
		b.Helper()
		b.Fatalf("page: %v", err)
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		fail(err)
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			fail(err)
		}
		switch name.String() {
		case "entry":
			if _, err := dec.ReadToken(); err != nil {
				fail(err)
			}
			for dec.PeekKind() != ']' {
				if err := dec.SkipValue(); err != nil {
					fail(err)
				}
				entries++
			}
			if _, err := dec.ReadToken(); err != nil {
				fail(err)
			}
		case "link":
			v, err := dec.ReadValue()
			if err != nil {
				fail(err)
			}
			var links []struct{ Relation, URL string }
			if err := json.Unmarshal(v, &links); err != nil {
				fail(err)
			}
			for _, l := range links {
				if l.Relation == "next" {
					next = l.URL
				}
			}
		default:
			if err := dec.SkipValue(); err != nil {
				fail(err)
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		fail(err)
	}
	if _, err := dec.ReadToken(); err == nil {
		b.Fatal("page: data after the Bundle")
	}
	return entries, next
}
