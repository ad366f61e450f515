package fhir_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

// BenchmarkObservationPage: one page of 1,000 CGM Observations, decided,
// logged (two ledger appends), read, decrypted and rendered, over
// loopback. It reports the p99 of the pages it timed.
func BenchmarkObservationPage(b *testing.B) {
	f := newFixture(b, 0)
	f.start = time.Now().UTC().AddDate(0, 0, -30)
	f.ingest(b, f.patient.ID, f.start, 8640, 5*time.Minute, "b")
	f.grant(b, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(b, f.clin.ID, "user/*.rs", oauth.Approval{})
	path := "/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&_count=1000"
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if st, _, body := f.get(b, path, tok); st != 200 {
			b.Fatal(st, string(body))
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPatientYear: a patient-year of CGM (105,120 readings) paged
// through by a client on loopback, 1,000 a page.
func BenchmarkPatientYear(b *testing.B) {
	f := newFixture(b, 0)
	f.start = time.Now().UTC().AddDate(-1, 0, 0)
	f.ingest(b, f.patient.ID, f.start, 105120, 5*time.Minute, "y")
	f.grant(b, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(b, f.clin.ID, "user/*.rs", oauth.Approval{})
	b.ResetTimer()
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
	}
}
