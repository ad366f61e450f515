package fhir_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
)

// TestSearchPaging: date prefixes at the edges, _count limits, _sort, and
// a cursor followed while readings arrive: no reading lost or repeated.
func TestSearchPaging(t *testing.T) {
	f := newFixture(t, 1) // 288 CGM readings, 5 minutes apart
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	q := "/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&code=https://w3id.org/openmhealth|omh:blood-glucose"
	count := func(t *testing.T, extra string) int {
		t.Helper()
		st, _, b := f.get(t, q+"&_count=1000&"+extra, tok)
		if st != 200 {
			t.Fatalf("%s: %d %s", extra, st, b)
		}
		return len(decodeBundle(t, b).Entry)
	}
	edge := f.start.Add(100 * 5 * time.Minute) // the 101st reading's time
	e := url.QueryEscape(edge.Format(time.RFC3339))
	for _, tc := range []struct {
		date string
		want int
	}{
		{"eq" + e, 1}, {e, 1}, {"ge" + e, 188}, {"gt" + e, 187}, {"le" + e, 101}, {"lt" + e, 100},
		{"ge" + e + "&date=lt" + url.QueryEscape(edge.Add(time.Hour).Format(time.RFC3339)), 12},
		{"eq" + f.start.Format("2006-01-02"), 288},
	} {
		if got := count(t, "date="+tc.date); got != tc.want {
			t.Errorf("date=%s: %d readings, want %d", tc.date, got, tc.want)
		}
	}
	for _, bad := range []string{"_count=0", "_count=1001", "_count=x", "_sort=value", "date=2026-13", "date=xx2026", "subject:missing=true"} {
		st, _, b := f.get(t, q+"&"+bad, tok)
		if st != 400 {
			t.Errorf("%s: %d %s", bad, st, b)
		}
	}
	st, _, b := f.get(t, q+"&_count=7", tok)
	if st != 200 || len(decodeBundle(t, b).Entry) != 7 {
		t.Fatalf("_count=7: %d %d", st, len(decodeBundle(t, b).Entry))
	}
	// _sort: -date is newest first, date oldest first.
	for _, sort := range []string{"date", "-date"} {
		st, _, b := f.get(t, q+"&_count=50&_sort="+sort, tok)
		if st != 200 {
			t.Fatal(st)
		}
		var prev time.Time
		for i, en := range decodeBundle(t, b).Entry {
			at := effective(t, en.Resource)
			if i > 0 && ((sort == "date" && !at.After(prev)) || (sort == "-date" && !at.Before(prev))) {
				t.Fatalf("_sort=%s: %s after %s", sort, at, prev)
			}
			prev = at
		}
	}

	// Follow the cursor while readings arrive, before, inside and after
	// the part already read: every reading read once; the ones after the
	// cursor's place (ascending) all show up.
	for _, sort := range []string{"date", "-date"} {
		t.Run(sort, func(t *testing.T) {
			seen := map[string]int{}
			next := f.base + q + "&_count=40&_sort=" + sort
			pages := 0
			for next != "" {
				st, _, b := f.get(t, next, tok)
				if st != 200 {
					t.Fatalf("page %d: %d %s", pages, st, b)
				}
				bd := decodeBundle(t, b)
				for _, en := range bd.Entry {
					seen[en.FullURL]++
				}
				if pages == 2 {
					// New readings at 1-second offsets across the whole day.
					f.ingest(t, f.patient.ID, f.start.Add(time.Second), 288, 5*time.Minute, "late-"+sort)
				}
				next = bd.next()
				pages++
			}
			for id, n := range seen {
				if n != 1 {
					t.Fatalf("%s read %d times", id, n)
				}
			}
			if len(seen) < 288 {
				t.Fatalf("%d readings seen, fewer than the 288 there before", len(seen))
			}
		})
	}

	// A cursor is bound to its sign-in and its search: another token, an
	// edited search or a forged cursor are refused.
	st, _, b = f.get(t, q+"&_count=5", tok)
	if st != 200 {
		t.Fatal(st)
	}
	next := decodeBundle(t, b).next()
	other, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	u, _ := url.Parse(next)
	cur := u.Query().Get("_cursor")
	for name, try := range map[string]struct{ url, tok string }{
		"another sign-in":  {next, other},
		"an edited search": {f.base + q + "&_count=6&_cursor=" + cur, tok},
		"a forged cursor":  {f.base + q + "&_count=5&_cursor=" + strings.Repeat("A", len(cur)), tok},
	} {
		st, _, b := f.get(t, try.url, try.tok)
		if st != 400 || outcomeCode(t, b) != "bad_cursor" {
			t.Errorf("%s: %d %s", name, st, b)
		}
	}
}

// TestAccessLog: each read that carries readings is one access in the
// patient's log (start and end, format fhir, the count), and with the
// ledger unwritable reads are refused with no data.
func TestAccessLog(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	app, info := f.token(t, f.patient.ID, "patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:blood-glucose"}})
	pt := oauth.FHIRID(f.patient.ID)
	before := len(mustAccesses(t, f.ledger, f.patient.ID))
	st, _, b := f.get(t, "/Observation?patient="+pt+"&_count=10", tok)
	if st != 200 {
		t.Fatal(st, string(b))
	}
	id := strings.TrimPrefix(decodeBundle(t, b).Entry[0].FullURL, f.base)
	for _, path := range []string{id, "/Observation/$cgm-summary?patient=" + pt} {
		if st, _, b := f.get(t, path, tok); st != 200 {
			t.Fatal(path, st, string(b))
		}
	}
	if st, _, b := f.get(t, "/Observation?_count=3", app); st != 200 {
		t.Fatal(st, string(b))
	}
	acc := mustAccesses(t, f.ledger, f.patient.ID)
	if len(acc)-before != 4 {
		t.Fatalf("%d accesses logged, want 4", len(acc)-before)
	}
	wantRecords := []int64{3, 288, 1, 10} // newest first
	for i, a := range acc[:4] {
		if a.Format != "fhir" || a.End == nil || a.Incomplete || a.Records != wantRecords[i] {
			t.Errorf("access %d: %+v", i, a)
		}
	}
	if acc[0].App != info.ID || acc[0].Clinician != "" || acc[1].Clinician != f.clin.ID {
		t.Errorf("parties: %+v / %+v", acc[0], acc[1])
	}
	// The ledger unwritable: no data, 503, nothing logged.
	f.store.FailWrites.Store(true)
	n := len(mustAccesses(t, f.ledger, f.patient.ID))
	st, _, b = f.get(t, "/Observation?patient="+pt+"&_count=10", tok)
	f.store.FailWrites.Store(false)
	if st != 503 || outcomeCode(t, b) != "access_log_unavailable" || strings.Contains(string(b), "Observation/") {
		t.Fatalf("ledger down: %d %s", st, b)
	}
	if len(mustAccesses(t, f.ledger, f.patient.ID)) != n {
		t.Fatal("a refused read was logged")
	}
}

// mustAccesses is a patient's whole access log, newest first; a read
// error fails the test.
func mustAccesses(t testing.TB, l *consent.Ledger, patient string) []consent.AccessState {
	t.Helper()
	as, err := l.Accesses(patient, 0)
	if err != nil {
		t.Fatal(err)
	}
	return as
}
