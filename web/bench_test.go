package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/demo"
)

// benchVault is one patient-year of the demo's synthetic data (5-minute
// CGM and heart rate, hourly steps, blood pressure twice a week: about
// 220,000 readings) in a real vault, with the demo's grant, hub key and
// access log, shared by the page benchmarks. Seeding takes a while, so it
// is made once.
var benchVault struct {
	once    sync.Once
	f       *fixture
	patient string
	clin    string
	err     error
}

func benchFixture(b *testing.B) (*fixture, string, string) {
	benchVault.once.Do(func() {
		// The fixture outlives the benchmark that made it: its temp dir is
		// removed when the test binary's first benchmark ends, which is
		// after every page benchmark ran (they share one top level).
		f := newFixture(b, fixtureOpts{})
		res, err := demo.Seed(context.Background(), f.v, demo.Options{Dir: f.dir, Days: 365, BaseURL: f.base, Ledger: f.led})
		if err != nil {
			benchVault.err = err
			return
		}
		benchVault.f, benchVault.patient, benchVault.clin = f, res.Credentials.PatientID, res.Credentials.ClinicianID
		b.Logf("seeded %d readings", res.Added)
	})
	if benchVault.err != nil {
		b.Fatal(benchVault.err)
	}
	return benchVault.f, benchVault.patient, benchVault.clin
}

// BenchmarkPages renders each page over a patient-year, cold (the
// daily-aggregate cache emptied before every request) and warm, and
// reports p50 and p99 in milliseconds, and the dashboard's size.
//
//	go test -run '^$' -bench Pages -benchtime 200x ./web
func BenchmarkPages(b *testing.B) {
	f, patient, clin := benchFixture(b)
	ps, _ := f.signIn(patient)
	cs, _ := f.signIn(clin)
	pages := []struct {
		name, path, sess string
	}{
		{"dashboard", "/", ps},
		{"consent", "/consent", ps},
		{"access-log", "/access-log", ps},
		{"upload", "/upload", ps},
		{"passkeys", "/passkeys", ps},
		{"ledger", "/ledger", ps},
		{"tokens", "/tokens", ps},
		{"account", "/account", ps},
		{"patients", "/patients", cs},
		{"clinician-keys", "/clinician/keys", cs},
		{"clinician-tokens", "/clinician/tokens", cs},
		{"export-builder", "/clinician/export?patient=" + patient + "&schema=omh:blood-glucose&schema=omh:heart-rate", cs},
	}
	for _, p := range pages {
		for _, mode := range []string{"cold", "warm"} {
			b.Run(p.name+"/"+mode, func(b *testing.B) {
				get := func() *httptest.ResponseRecorder {
					hr := httptest.NewRequest(http.MethodGet, f.base+p.path, nil)
					hr.AddCookie(&http.Cookie{Name: SessionCookie, Value: p.sess})
					w := httptest.NewRecorder()
					f.h.ServeHTTP(w, hr)
					return w
				}
				if w := get(); w.Code != 200 {
					b.Skipf("%s: %d", p.path, w.Code)
				}
				times := make([]time.Duration, 0, b.N)
				size := 0
				b.ResetTimer()
				for range b.N {
					if mode == "cold" {
						b.StopTimer()
						f.srv.cache.reset()
						b.StartTimer()
					}
					t0 := time.Now()
					w := get()
					times = append(times, time.Since(t0))
					size = w.Body.Len()
				}
				b.StopTimer()
				slices.Sort(times)
				q := func(p float64) float64 {
					return float64(times[min(len(times)-1, int(p*float64(len(times))))].Microseconds()) / 1000
				}
				b.ReportMetric(q(0.50), "p50-ms")
				b.ReportMetric(q(0.99), "p99-ms")
				b.ReportMetric(float64(size)/1024, "KB")
				if p.name == "dashboard" && size > 200<<10 {
					b.Errorf("the dashboard is %d bytes, over 200 KB", size)
				}
			})
		}
	}
}

// BenchmarkSessionLookup is what every signed-in request pays to find its
// session: a read transaction and an AEAD open (no write: the last-seen
// time is written at most once a minute).
func BenchmarkSessionLookup(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	cookie, _ := f.signIn(f.patient.ID)
	for b.Loop() {
		if _, err := f.srv.sessions.lookup(b.Context(), cookie); err != nil {
			b.Fatal(err)
		}
	}
}
