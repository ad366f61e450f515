package jhe_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// ingestFood stores n hourly ieee:food-entry:0.1 readings from start (the
// stock client's Code.FOOD_ENTRY), and n/10 ieee:sleep-stage-summary:1.0
// nights.
func (f *fixture) ingestFood(t *testing.T, start time.Time, n int) {
	t.Helper()
	var pts []*omh.Point
	for i := range n {
		at := start.Add(time.Duration(i)*time.Hour + 30*time.Minute).Format(time.RFC3339)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"food-entry","version":"0.1"},"source_creation_date_time":%q},"body":{"food_name":"soup %d","food_amount":{"value":%d,"unit":"mL"},"effective_time_frame":{"date_time":%q}}}`,
			uuidOf("food", i), at, i, 100+i, at)))
	}
	for i := range n / 10 {
		night := start.Add(time.Duration(i) * 24 * time.Hour)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"sleep-stage-summary","version":"1.0"},"source_creation_date_time":%q},"body":{"sleep_stage_summary":{"total_sleep_time":{"value":%d,"unit":"min"}},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
			uuidOf("sleep", i), night.Format(time.RFC3339), 400+i, night.Format(time.RFC3339), night.Add(7*time.Hour).Format(time.RFC3339))))
	}
	if _, err := f.v.Ingest(t.Context(), f.patient.ID, pts); err != nil {
		t.Fatal(err)
	}
}

// TestUntypedSchemaReads: the stock client's ieee:food-entry:0.1 code
// reads the readings stored without a typed model exactly as typed ones:
// each Observation coded with the schema id and carrying the stored point
// base64, newest first, paged, under a vc_ token and an OAuth token alike;
// a study or an unfiltered search includes them when the grant covers the
// schema; a schema the grant does not cover (ieee:sleep-stage-summary:1.0)
// is 403 schema_not_granted, a granular scope 403 scope; every page is in
// the access log with the schema; a revoke between two pages stops the
// second.
func TestUntypedSchemaReads(t *testing.T) {
	f := newFixture(t, 1) // 288 CGM readings, 24 heart rates
	f.ingestFood(t, f.start, 25)
	g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose", "ieee:food-entry"}, time.Time{}, time.Time{}, true)
	pt := oauth.FHIRID(f.patient.ID)
	food := url.QueryEscape("https://w3id.org/openmhealth|ieee:food-entry:0.1")
	want := f.storedNewestFirst(t, f.patient.ID, "ieee:food-entry:0.1")
	if len(want) != 25 {
		t.Fatalf("%d food entries stored, want 25", len(want))
	}
	oauthTok := f.oauthToken(t, f.clin.ID, "openid fhirUser user/*.rs", oauth.Approval{})
	before, err := f.ledger.Accesses(f.patient.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{f.vc, oauthTok} {
		obs, nexts := f.allPages(t, "/FHIR/R5/Observation?patient="+pt+"&code="+food+"&_count=10", tok)
		for _, o := range obs {
			if len(o.Code.Coding) != 1 || o.Code.Coding[0].System != omh.CodeSystem || o.Code.Coding[0].Code != "ieee:food-entry:0.1" || o.ValueAttachment.ContentType != "application/json" {
				t.Fatalf("observation %+v", o)
			}
		}
		if pages := len(nexts) + 1; pages != 3 || len(obs) != len(want) {
			t.Fatalf("%d readings in %d pages, want %d in 3", len(obs), pages, len(want))
		}
		sameReadings(t, obs, want)
	}
	after, err := f.ledger.Accesses(f.patient.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	added := after[:len(after)-len(before)]
	if len(added) != 6 {
		t.Fatalf("%d accesses logged, want 6 (one per page)", len(added))
	}
	for _, a := range added {
		if a.Format != "jhe" || a.End == nil || !slices.Equal(a.Schemas, []string{"ieee:food-entry:0.1"}) || !slices.Equal(a.Grants, []string{g.ID}) {
			t.Errorf("access %+v", a)
		}
	}

	// A study and an unfiltered search include them; sleep is not granted.
	codes := func(t *testing.T, q string) map[string]int {
		t.Helper()
		st, b := f.get(t, "/FHIR/R5/Observation?"+q+"&_count=1000", f.vc)
		if st != 200 {
			t.Fatalf("%s: %d %s", q, st, b)
		}
		obs, next := searchset(t, b)
		if next != "" {
			t.Fatalf("%s: more than a page", q)
		}
		by := map[string]int{}
		for _, o := range obs {
			by[o.Code.Coding[0].Code]++
		}
		return by
	}
	wantAll := fmt.Sprint(map[string]int{"omh:blood-glucose:4.0": 288, "ieee:food-entry:0.1": 25})
	for _, q := range []string{"patient=" + pt, studyParam + "=" + oauth.FHIRID(g.ID), "patient=" + pt + "&code=" + bgCode + "," + food} {
		if got := fmt.Sprint(codes(t, q)); got != wantAll {
			t.Errorf("%s: %s, want %s", q, got, wantAll)
		}
	}
	narrow := f.oauthToken(t, f.clin.ID, "openid user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", oauth.Approval{})
	for _, tc := range []struct{ q, tok, code string }{
		{"patient=" + pt + "&code=" + url.QueryEscape("https://w3id.org/openmhealth|ieee:sleep-stage-summary:1.0"), f.vc, "schema_not_granted"},
		{studyParam + "=" + oauth.FHIRID(g.ID) + "&code=ieee:sleep-stage-summary:1.0", f.vc, "schema_not_granted"},
		{"patient=" + pt + "&code=" + food, narrow, "scope"},
	} {
		st, b := f.get(t, "/FHIR/R5/Observation?"+tc.q, tc.tok)
		if _, code := detail(t, b); st != 403 || code != tc.code {
			t.Errorf("%s: %d %s, want 403 %s", tc.q, st, code, tc.code)
		}
	}

	// A revoke between two pages stops the second.
	st, b := f.get(t, "/FHIR/R5/Observation?patient="+pt+"&code="+food+"&_count=10", f.vc)
	_, next := searchset(t, b)
	if st != 200 || next == "" {
		t.Fatalf("first page: %d, next %q", st, next)
	}
	f.revoke(t, g)
	st, b = f.get(t, next, f.vc)
	if _, code := detail(t, b); st != 403 || code != "revoked" {
		t.Errorf("after the revoke: %d %s", st, code)
	}
}

// TestUntimedSchemaUploadAndRead: a reading of a schema that defines no
// effective_time_frame (ieee:survey:1.0) goes through /jhe as the others:
// uploaded as JupyterHealth Exchange takes it (201, then 409 duplicate),
// refused with its detail when its header has no creation time (nothing
// stored), filed by that time, so the grant's window clips by it, and read
// back by the stock client's search with effectiveDateTime at that time and
// the stored point in valueAttachment.
func TestUntimedSchemaUploadAndRead(t *testing.T) {
	f := newFixture(t, 0)
	vp := f.env.Token(t, f.patient.ID, vault.TokenPatient)
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	survey := func(uuid string, created time.Time) string {
		c := ""
		if !created.IsZero() {
			c = fmt.Sprintf(`,"source_creation_date_time":%q`, created.Format(time.RFC3339))
		}
		return fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"survey","version":"1.0"}%s},"body":{"items":[{"question":{"text":"Pain today?"},"answers":[{"value":3}]}],"delivery_details":{"end_status":"completed"}}}`, uuid, c)
	}
	upload := func(point string) (int, []byte) {
		obs := strings.Replace(observationJSON(point, ""), bgSchema, "ieee:survey:1.0", 1)
		st, _, b := f.post(t, "/FHIR/R5/Observation", vp, "application/fhir+json", []byte(obs))
		return st, b
	}
	const early, late = "0b6c1f3e-2a4d-4c5e-8f60-7a8b9c0d1e2f", "1c7d2a4f-3b5e-4d6f-9a71-8b9c0d1e2f3a"
	for _, p := range []struct {
		id string
		at time.Time
	}{{early, at}, {late, at.Add(2 * time.Hour)}} {
		if st, b := upload(survey(p.id, p.at)); st != http.StatusCreated {
			t.Fatalf("upload: %d %s", st, b)
		}
	}
	if st, b := upload(survey(late, at.Add(2*time.Hour))); st != http.StatusConflict {
		t.Fatalf("re-sent: %d %s, want 409", st, b)
	}
	st, b := upload(survey("2d8e3b5a-4c6f-4e70-8b82-9cad1e2f3a4b", time.Time{}))
	if _, code := detail(t, b); st != http.StatusBadRequest || code != omh.CodeMissingTimeFrame {
		t.Fatalf("no creation time: %d %s, want 400 missing_time_frame", st, b)
	}
	n := 0
	for _, err := range f.v.Readings(t.Context(), f.patient.ID, "ieee:survey:1.0", time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d surveys stored, want 2", n)
	}

	// The grant's data starts between the two: only the later one is read.
	f.grant(t, f.patient.ID, []string{"ieee:survey"}, at.Add(time.Hour), time.Time{}, true)
	st, b = f.get(t, "/FHIR/R5/Observation?patient="+oauth.FHIRID(f.patient.ID)+"&code="+url.QueryEscape("https://w3id.org/openmhealth|ieee:survey:1.0"), f.vc)
	if st != 200 {
		t.Fatalf("search: %d %s", st, b)
	}
	var bu struct {
		Entry []struct {
			Resource struct {
				EffectiveDateTime string `json:"effectiveDateTime"`
				ValueAttachment   struct{ Data string }
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bu); err != nil {
		t.Fatal(err)
	}
	if len(bu.Entry) != 1 || bu.Entry[0].Resource.EffectiveDateTime != at.Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("search: %s, want the later survey at its creation time", b)
	}
	raw, err := base64.StdEncoding.DecodeString(bu.Entry[0].Resource.ValueAttachment.Data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := omh.Parse([]byte(survey(late, at.Add(2*time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want.AppendJSON(nil)) {
		t.Fatalf("attachment %s, want the stored point %s", raw, want.AppendJSON(nil))
	}
}
