package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// TestQuickValues: the cache's fast value readers agree with the full
// decode on the vault's stored form, and fall back to it on anything else.
func TestQuickValues(t *testing.T) {
	f := newFixture(t, fixtureOpts{days: 1})
	n := 0
	for _, name := range []string{"blood-glucose", "heart-rate", "step-count"} {
		for r, err := range f.v.Readings(context.Background(), f.patient.ID, schemaID(name), time.Time{}, time.Time{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			var want, got float64
			var wok, gok bool
			switch name {
			case "blood-glucose":
				want, wok = glucoseOf(r.JSON)
				got, gok = glucoseValue(r.JSON)
				if _, _, quick := quickUnitValue(r.JSON, "blood_glucose"); !quick {
					t.Fatalf("the stored form is not the quick one: %s", r.JSON)
				}
			case "heart-rate":
				want, wok = readingValue(r.JSON, "heart_rate", "")
				got, gok = heartRateValue(r.JSON)
			case "step-count":
				want, wok = readingValue(r.JSON, "step_count", "")
				got, gok = stepsValue(r.JSON)
			}
			if want != got || wok != gok || !gok {
				t.Fatalf("%s: %v %v, want %v %v", name, got, gok, want, wok)
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d readings", n)
	}
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{`{"body":{"blood_glucose":{"unit":"mg/dL","value":101}}}`, 101, true},                                                             // other order: decoded
		{`{"body":{"blood_glucose":{"value":5.5,"unit":"mmol/L"}}}`, 5.5 * mgdlPerMmol, true},                                              // converted
		{`{"body":{"blood_glucose":{"value":99,"unit":"mg\u002fdL"}}}`, 99, true},                                                          // an escape: decoded
		{`{"body":{"blood_glucose":{"value":99,"unit":"g/L"}}}`, 0, false},                                                                 // unknown unit
		{`{"header":{"x":{"blood_glucose":{"value":1,"unit":"mg/dL"}}},"body":{"blood_glucose":{"value":120,"unit":"mg/dL"}}}`, 120, true}, // twice: decoded
		{`{"body":{"blood_glucose":{"value":"NaN","unit":"mg/dL"}}}`, 0, false},
	} {
		got, ok := glucoseValue([]byte(tc.in))
		if ok != tc.ok || ok && fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestDashboardCache: the dashboard's daily series come from memory once
// read; a reading stored by any path (here vault.Ingest, as the API
// does) shows once the record count is checked again, and not before;
// the cache holds only what the pages need, never on disk.
func TestDashboardCache(t *testing.T) {
	f := newFixture(t, fixtureOpts{days: 3})
	sess, _ := f.signIn(f.patient.ID)
	page := func() string { return body(t, f.do(req{path: "/", cookie: sess})) }
	first := page()
	f.srv.cache.mu.Lock()
	e := f.srv.cache.m[f.patient.ID]
	days := len(e.days)
	f.srv.cache.mu.Unlock()
	if days < 15 {
		t.Fatalf("%d cached days, want the 15 local days the window touches for each series", days)
	}
	if again := page(); again != first {
		t.Fatal("a warm dashboard differs from the cold one")
	}
	// A new reading, stored as the API would: hidden until the next count
	// check, then shown.
	f.srv.cache.checkEvery = time.Hour
	at := time.Now().Add(-2 * time.Minute).UTC().Format(time.RFC3339)
	p, err := omh.Parse(fmt.Appendf(nil, `{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":399,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, at, at))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Ingest(context.Background(), f.patient.ID, []*omh.Point{p}); err != nil {
		t.Fatal(err)
	}
	if b := page(); strings.Contains(b, "399 mg/dL") {
		t.Fatal("the new reading shows before the count was checked (the test's premise)")
	}
	f.srv.cache.checkEvery = 0
	if b := page(); !strings.Contains(b, "399 mg/dL") {
		t.Fatal("the new reading does not show after the count changed")
	}
	// invalidate drops the patient at once.
	f.srv.cache.checkEvery = time.Hour
	f.srv.cache.invalidate(f.patient.ID)
	f.srv.cache.mu.Lock()
	_, ok := f.srv.cache.m[f.patient.ID]
	f.srv.cache.mu.Unlock()
	if ok {
		t.Fatal("invalidate left the entry")
	}
}

// TestCacheEviction: at most cacheMaxPatients entries, the least recently
// used going first.
func TestCacheEviction(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.srv.cache
	for i := range cacheMaxPatients + 5 {
		if _, err := c.entry(t.Context(), fmt.Sprintf("pt_%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) != cacheMaxPatients {
		t.Fatalf("%d entries", len(c.m))
	}
	if _, ok := c.m["pt_0"]; ok {
		t.Fatal("the oldest entry was kept")
	}
}
