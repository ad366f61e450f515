package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
)

// TestAccessLogPages: with 1,500 accesses, the default page says more
// exist, and walking the pages returns every access exactly once, newest
// first; bad paging parameters are refused.
func TestAccessLogPages(t *testing.T) {
	e := newExportEnv(t)
	var want []int64
	var batch []consent.Entry
	flush := func() {
		first, err := e.ledger.Append(batch...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			want = append(want, first+int64(i))
		}
		batch = batch[:0]
	}
	for range 1500 {
		a := consent.New(consent.KindAccessStart, e.clinID, time.Now())
		a.Patient, a.Clinician = e.patient.ID, e.clinID
		a.Access = &consent.Access{Grants: []string{e.grantID}, Schemas: []string{"omh:blood-glucose:4.0"}, Format: "omh", Recipient: e.fp}
		if batch = append(batch, a); len(batch) == 500 {
			flush()
		}
	}
	slices.Reverse(want)

	page := func(t *testing.T, query string) api.AccessLogPage {
		t.Helper()
		st, b := e.do(t, "GET", "/api/v1/access-log"+query, e.ptok, "", nil)
		var p api.AccessLogPage
		if st != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("access log%s: %d %.300s", query, st, b)
		}
		return p
	}
	first := page(t, "")
	if len(first.Accesses) != api.DefaultAccessLogLimit || first.Next == nil || *first.Next != first.Accesses[len(first.Accesses)-1].Start {
		t.Fatalf("first page: %d accesses, next %v: it must say more exist", len(first.Accesses), first.Next)
	}
	for _, limit := range []int{0, 1, 7, api.MaxAccessLogLimit} {
		t.Run("limit="+strconv.Itoa(limit), func(t *testing.T) {
			var got []int64
			query := ""
			if limit > 0 {
				query = "?limit=" + strconv.Itoa(limit)
			}
			p := page(t, query)
			for pages := 1; ; pages++ {
				if pages > len(want) {
					t.Fatal("the walk does not end")
				}
				if n := len(p.Accesses); n == 0 || limit > 0 && n > limit || n > api.MaxAccessLogLimit {
					t.Fatalf("page %d has %d accesses", pages, n)
				}
				for _, a := range p.Accesses {
					if a.Patient != e.patient.ID || a.ClinicianName != "Dr. Rivera" {
						t.Fatalf("access %d: %+v", a.Start, a)
					}
					got = append(got, a.Start)
				}
				if p.Next == nil {
					break
				}
				sep := "?"
				if query != "" {
					sep = query + "&"
				}
				p = page(t, sep+"before="+strconv.FormatInt(*p.Next, 10))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("walked %d accesses, want %d, each once, newest first", len(got), len(want))
			}
		})
	}
	for _, c := range []struct{ query, code string }{
		{"?limit=0", "bad_limit"},
		{"?limit=" + strconv.Itoa(api.MaxAccessLogLimit+1), "bad_limit"},
		{"?limit=ten", "bad_limit"},
		{"?before=0", "bad_cursor"},
		{"?before=-3", "bad_cursor"},
		{"?before=x", "bad_cursor"},
	} {
		if st, b := e.do(t, "GET", "/api/v1/access-log"+c.query, e.ptok, "", nil); st != 400 || errBody(t, b).Code != c.code {
			t.Errorf("%s: %d %s, want 400 %s", c.query, st, b, c.code)
		}
	}
	// Another patient's log stays empty.
	st, b := e.do(t, "GET", "/api/v1/access-log", e.other, "", nil)
	if st != 200 || string(b) != `{"accesses":[]}`+"\n" {
		t.Fatalf("another patient's log: %d %s", st, b)
	}
}

// TestExportRateLimitPerGrant: a burst of exports on one grant, then the
// next is refused with 429 export_rate_limited and Retry-After, nothing
// logged; another grant's export still goes through.
func TestExportRateLimitPerGrant(t *testing.T) {
	e := newExportEnv(t)
	gb, err := json.Marshal(api.GrantRequest{Clinician: e.clinID, Schemas: []string{"omh:heart-rate"},
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	if err != nil {
		t.Fatal(err)
	}
	if st, b := e.do(t, "POST", "/api/v1/grants", e.ptok, "", gb); st != 201 {
		t.Fatalf("second grant: %d %s", st, b)
	}
	glucose := e.exportURL(e.patient.ID, "schema=omh:blood-glucose")
	for i := range api.DefaultExportBurstPerGrant {
		if st, b := e.do(t, "GET", glucose, e.clin, "", nil); st != 200 {
			t.Fatalf("export %d of the burst: %d %.200s", i+1, st, b)
		}
	}
	logged := len(mustAccesses(t, e.ledger, e.patient.ID))
	req, err := http.NewRequest("GET", e.srv.URL+glucose, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.clin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body api.ErrorBody
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	retry, rerr := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || err != nil || body.Code != "export_rate_limited" || rerr != nil || retry < 1 || retry > int(api.DefaultExportIntervalPerGrant/time.Second) {
		t.Fatalf("export past the burst: %d %+v, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if n := len(mustAccesses(t, e.ledger, e.patient.ID)); n != logged {
		t.Fatalf("a refused export logged an access: %d, then %d", logged, n)
	}
	if st, b := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:heart-rate"), e.clin, "", nil); st != 200 {
		t.Fatalf("another grant's export: %d %.200s", st, b)
	}
	if mb := e.scrape(t); !slices.Contains(strings.Split(string(mb), "\n"), `vault_exports_total{format="omh",outcome="rate_limited"} 1`) {
		t.Error("the refusal is not counted in vault_exports_total")
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
