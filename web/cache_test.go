package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// TestDashboardCache: the dashboard's daily series come from memory once
// read; a reading stored by any path (here vault.Ingest, as the API
// does) shows once the record count is checked again, and not before;
// the cache holds only what the pages need, never on disk.
func TestDashboardCache(t *testing.T) {
	// The server's clock stands still: the dashboard draws its 14 days
	// back from now, so two pages a moment apart may differ by a rounding
	// of the chart's x axis, which is not what this test compares.
	f := newFixture(t, fixtureOpts{days: 3, clock: true})
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
