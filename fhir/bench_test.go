package fhir_test

import (
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

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
// through by a client on loopback, 1,000 a page; the client decodes each
// page to follow its next link.
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
			bd := decodeBundle(b, body)
			n += len(bd.Entry)
			next = bd.next()
		}
		if n != 105120 {
			b.Fatalf("%d readings, want 105120", n)
		}
		ops++
	}
	pt.report(b, ops)
}
