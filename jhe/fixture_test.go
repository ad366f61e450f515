package jhe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/jhe"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/oauth/oauthtest"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
)

type fixture struct {
	srv     *httptest.Server
	jhe     string // srv.URL + "/jhe": JHE_URL
	env     *vaulttest.Env
	v       *vault.Vault
	ledger  *consent.Ledger
	store   *storetest.FlakyLedger
	p       *oauth.Provider
	patient vault.User
	other   vault.User
	clin    vault.User
	vc      string // the clinician's vc_ token
	start   time.Time
}

// The native API's upload limits in these tests, small so the tests can
// reach them: the JupyterHealth Exchange uploads share them.
const (
	testMaxBatch = 5
	testMaxBody  = 16 << 10
)

const redirect = "http://localhost:8000/hub/oauth_callback"

// newFixture: a vault on a real bbolt file, the real ledger, OAuth
// provider, the native API (whose upload path the surface's uploads
// take), the FHIR API and this surface on one loopback server, mounted as
// cmd/vault mounts them. Ada has `days` days of 5-minute CGM readings
// (values 60 + i%200 mg/dL) and hourly heart rate.
func newFixture(t testing.TB, days int) *fixture {
	t.Helper()
	f := &fixture{}
	f.env = vaulttest.New(t, vaulttest.Options{})
	f.v = f.env.Vault
	f.patient = f.env.User(t, vault.RolePatient, "Ada Lovelace")
	f.other = f.env.User(t, vault.RolePatient, "Bo Other")
	f.clin = f.env.User(t, vault.RoleClinician, "Sofia Rivera")
	f.vc = f.env.Token(t, f.clin.ID, vault.TokenClinician)
	f.store = &storetest.FlakyLedger{Store: f.env.Store.Ledger()}
	var err error
	if f.ledger, err = consent.Open(f.store, f.v.Master(), consent.Options{Origin: "vault.test"}); err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.srv.Close)
	f.jhe = f.srv.URL + "/jhe"
	base, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if f.p, err = oauth.New(context.Background(), oauth.Config{BaseURL: base, Store: f.env.Store.OAuth(), Sealer: f.v.Master(), Users: f.v,
		GrantActive: f.ledger.AppGrantActive}); err != nil {
		t.Fatal(err)
	}
	fs, err := fhir.New(fhir.Config{BaseURL: base, Tokens: f.p, Clients: f.p, Records: f.v, Ledger: f.ledger, Sealer: f.v.Master()})
	if err != nil {
		t.Fatal(err)
	}
	native := api.New(api.Config{Vault: f.v, Ledger: f.ledger, MaxBatch: testMaxBatch, MaxBodyBytes: testMaxBody})
	js, err := jhe.New(jhe.Config{BaseURL: base, Reads: fs, OAuth: f.p, Accounts: f.v, Uploads: native})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", native.Echo())
	mux.Handle("/fhir/auth/", f.p.Handler())
	mux.Handle("/fhir/.well-known/", f.p.Handler())
	mux.Handle("/fhir/", fs.Handler())
	mux.Handle("/jhe/", js.Handler())
	h = mux
	f.start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	if days > 0 {
		var pts []*omh.Point
		for i := range days * 288 {
			at := f.start.Add(time.Duration(i) * 5 * time.Minute)
			pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL","specimen_source":"interstitial fluid"},"effective_time_frame":{"date_time":%q}}}`,
				uuidOf("g", i), at.Format(time.RFC3339), 60+i%200, at.Format(time.RFC3339))))
		}
		for i := range days * 24 {
			at := f.start.Add(time.Duration(i) * time.Hour)
			pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":%q},"body":{"heart_rate":{"value":%d,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`,
				uuidOf("h", i), at.Format(time.RFC3339), 60+i%30, at.Format(time.RFC3339))))
		}
		for len(pts) > 0 {
			n := min(len(pts), 5000)
			if _, err := f.v.Ingest(context.Background(), f.patient.ID, pts[:n]); err != nil {
				t.Fatal(err)
			}
			pts = pts[n:]
		}
	}
	return f
}

func uuidOf(prefix string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(prefix, i)))
	return fmt.Sprintf("%x-%x-4%x-8%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])[:36]
}

func parsePoint(t testing.TB, s string) *omh.Point {
	t.Helper()
	p, err := omh.Parse([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return p
}

// grant appends a clinician grant from patient to clinician; from and to
// bound its data window when set.
func (f *fixture) grant(t testing.TB, patient string, schemas []string, from, to time.Time, allowFHIR bool) consent.GrantState {
	t.Helper()
	r := consent.GrantRequest{Clinician: f.clin.ID, Schemas: schemas, FHIR: allowFHIR}
	if !from.IsZero() {
		r.DataFrom = from.UTC().Format(time.RFC3339)
	}
	if !to.IsZero() {
		r.DataTo = to.UTC().Format(time.RFC3339)
	}
	return vaulttest.Grant(t, f.ledger, patient, r)
}

func (f *fixture) revoke(t testing.TB, g consent.GrantState) { vaulttest.Revoke(t, f.ledger, g) }

// oauthToken runs the code flow against the real provider on loopback, as
// a JupyterHub does (oauthtest.CodeFlow; Approve stands for the clinician's
// passkey sign-in), and returns the access token. An approval whose
// GrantID is "app" gets a fresh app grant for its schemas.
func (f *fixture) oauthToken(t testing.TB, user, scopes string, approval oauth.Approval) string {
	t.Helper()
	approval.UserID = user
	tok, _ := oauthtest.CodeFlow(t, f.p, redirect, scopes, approval, func(c oauth.ClientInfo, a *oauth.Approval) {
		if a.GrantID == "app" {
			a.GrantID = oauthtest.AppGrant(t, f.ledger, user, c.ID, a.Schemas)
		}
	})
	return tok
}

// get sends what jupyterhealth-client sends: a GET whose only header is
// Authorization: Bearer TOKEN (no Accept, no User-Agent). u is absolute
// or a path under JHE_URL, its query already encoded.
func (f *fixture) get(t testing.TB, u, token string) (int, []byte) {
	t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = f.jhe + u
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "") // Go's client sends none then
	st, _, b := send(t, req)
	return st, b
}

// send sends req and reads the whole answer.
func send(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON is get decoding a 200 answer into out.
func (f *fixture) getJSON(t testing.TB, u, token string, out any) {
	t.Helper()
	st, b := f.get(t, u, token)
	if st != 200 {
		t.Fatalf("GET %s: %d %s", u, st, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %.300s", u, err, b)
	}
}

// detail is an error answer's detail and code; it fails unless detail is
// there.
func detail(t testing.TB, b []byte) (string, string) {
	t.Helper()
	var e struct {
		Detail *string `json:"detail"`
		Code   string  `json:"code"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Detail == nil || *e.Detail == "" || e.Code == "" {
		t.Fatalf("not an error with detail and code: %v %.300s", err, b)
	}
	return *e.Detail, e.Code
}

// bundle is what the client reads of a searchset.
type bundle struct {
	ResourceType string             `json:"resourceType"`
	Type         string             `json:"type"`
	Link         *[]json.RawMessage `json:"link"`
	Entry        *[]struct {
		Resource observation `json:"resource"`
	} `json:"entry"`
}

type observation struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Code         struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"code"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	ValueAttachment struct {
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
	} `json:"valueAttachment"`
}

// storedNewestFirst is the patient's stored readings of schema, newest
// first: what a search for them must return.
func (f *fixture) storedNewestFirst(t *testing.T, patient, schema string) [][]byte {
	t.Helper()
	var want [][]byte
	for r, err := range f.v.Readings(t.Context(), patient, schema, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.JSON)
	}
	slices.Reverse(want)
	return want
}

// allPages follows a search from first through its next links under tok,
// failing on a page that is not 200, and returns every page's
// observations in order and the next links it followed.
func (f *fixture) allPages(t *testing.T, first, tok string) (obs []observation, nexts []string) {
	t.Helper()
	for next := first; next != ""; {
		st, b := f.get(t, next, tok)
		if st != 200 {
			t.Fatalf("page %d: %d %s", len(nexts), st, b)
		}
		page, n := searchset(t, b)
		obs = append(obs, page...)
		if n != "" {
			nexts = append(nexts, n)
		}
		next = n
	}
	return obs, nexts
}

// sameReadings fails unless the observations carry want's readings, in
// order and byte for byte (valueAttachment, base64).
func sameReadings(t *testing.T, obs []observation, want [][]byte) {
	t.Helper()
	if len(obs) != len(want) {
		t.Fatalf("%d readings, want %d", len(obs), len(want))
	}
	for i, o := range obs {
		raw, err := base64.StdEncoding.DecodeString(o.ValueAttachment.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want[i]) {
			t.Fatalf("reading %d:\n got %s\nwant %s", i, raw, want[i])
		}
	}
}

// searchset decodes a Bundle the way the client reads one: entry and link
// must both be there (the client raises KeyError otherwise).
func searchset(t testing.TB, b []byte) (entries []observation, next string) {
	t.Helper()
	var bu bundle
	if err := json.Unmarshal(b, &bu); err != nil || bu.ResourceType != "Bundle" || bu.Type != "searchset" {
		t.Fatalf("not a searchset: %v %.300s", err, b)
	}
	if bu.Entry == nil || bu.Link == nil {
		t.Fatalf("a searchset without entry or link: %.300s", b)
	}
	for _, e := range *bu.Entry {
		entries = append(entries, e.Resource)
	}
	for _, raw := range *bu.Link {
		var l struct{ Relation, URL string }
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		if l.Relation == "next" {
			next = l.URL
		}
	}
	return entries, next
}
