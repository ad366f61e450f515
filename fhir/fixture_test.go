package fhir_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/oauth/oauthtest"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
)

type fixture struct {
	srv       *httptest.Server
	base      string // srv.URL + "/fhir"
	v         *vault.Vault
	ledger    *consent.Ledger
	store     *storetest.FlakyLedger
	p         *oauth.Provider
	patient   vault.User
	other     vault.User
	clin      vault.User
	otherClin vault.User
	start     time.Time // the first reading
	now       atomic.Pointer[time.Time]
	skew      atomic.Int64 // the provider's clock runs this far ahead
	// served, when set, gets each request's time in the handler (the
	// benchmarks' server-side figure).
	served atomic.Pointer[func(time.Duration)]
}

const redirect = "http://localhost:8000/app/callback"

// newFixture: a vault on a real bbolt file, the real ledger, the real
// OAuth provider and the FHIR API on one loopback server, as cmd/vault
// mounts them; Ada has `days` days of 5-minute CGM readings and hourly
// heart rate.
func newFixture(t testing.TB, days int) *fixture {
	t.Helper()
	f := &fixture{}
	e := vaulttest.New(t, vaulttest.Options{})
	f.v = e.Vault
	f.patient = e.User(t, vault.RolePatient, "Ada Lovelace")
	f.other = e.User(t, vault.RolePatient, "Bo")
	f.clin = e.User(t, vault.RoleClinician, "Dr. Rivera")
	f.otherClin = e.User(t, vault.RoleClinician, "Dr. Other")
	f.store = &storetest.FlakyLedger{Store: e.Store.Ledger()}
	var err error
	if f.ledger, err = consent.Open(f.store, e.Vault.Master(), consent.Options{Origin: "vault.test"}); err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		if fn := f.served.Load(); fn != nil {
			(*fn)(time.Since(t0))
		}
	}))
	t.Cleanup(f.srv.Close)
	f.base = f.srv.URL + "/fhir"
	base, _ := url.Parse(f.srv.URL)
	if f.p, err = oauth.New(context.Background(), oauth.Config{BaseURL: base, Store: e.Store.OAuth(), Sealer: e.Vault.Master(), Users: e.Vault,
		GrantActive: f.ledger.AppGrantActive, Now: func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }}); err != nil {
		t.Fatal(err)
	}
	fs, err := fhir.New(fhir.Config{BaseURL: base, Tokens: f.p, Clients: f.p, Records: e.Vault, Ledger: f.ledger, Sealer: e.Vault.Master(),
		Now: func() time.Time {
			if n := f.now.Load(); n != nil {
				return *n
			}
			return time.Now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/auth/", f.p.Handler())
	mux.Handle("/fhir/.well-known/", f.p.Handler())
	mux.Handle("/fhir/", fs.Handler())
	h = mux
	f.start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	if days > 0 {
		f.ingest(t, f.patient.ID, f.start, days*288, 5*time.Minute, "g")
		var pts []*omh.Point
		for i := range days * 24 {
			at := f.start.Add(time.Duration(i) * time.Hour)
			pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":%q},"body":{"heart_rate":{"value":%d,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`,
				uuidOf("h", i), at.Format(time.RFC3339), 60+i%30, at.Format(time.RFC3339))))
		}
		if _, err := f.v.Ingest(t.Context(), f.patient.ID, pts); err != nil {
			t.Fatal(err)
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

// ingest stores n CGM readings every step from start; tag makes their
// uuids distinct from another call's.
func (f *fixture) ingest(t testing.TB, patient string, start time.Time, n int, step time.Duration, tag string) {
	t.Helper()
	var pts []*omh.Point
	flush := func() {
		if _, err := f.v.Ingest(context.Background(), patient, pts); err != nil {
			t.Fatal(err)
		}
		pts = pts[:0]
	}
	for i := range n {
		at := start.Add(time.Duration(i) * step)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL","specimen_source":"interstitial fluid"},"effective_time_frame":{"date_time":%q}}}`,
			uuidOf(tag, i), at.Format(time.RFC3339Nano), 60+i%200, at.Format(time.RFC3339Nano))))
		if len(pts) == 5000 {
			flush()
		}
	}
	if len(pts) > 0 {
		flush()
	}
}

// grant appends a clinician grant from patient to clinician.
func (f *fixture) grant(t testing.TB, patient, clinician string, schemas []string, from time.Time, allowFHIR bool) consent.GrantState {
	t.Helper()
	r := consent.GrantRequest{Clinician: clinician, Schemas: schemas, FHIR: allowFHIR}
	if !from.IsZero() {
		r.DataFrom = from.UTC().Format(time.RFC3339)
	}
	return vaulttest.Grant(t, f.ledger, patient, r)
}

func (f *fixture) revoke(t testing.TB, g consent.GrantState) { vaulttest.Revoke(t, f.ledger, g) }

// revokeBetweenPages reads the first page of the search u under tok,
// revokes g, and checks that the page its next link names is then 403
// revoked: consent is decided again on every page.
func (f *fixture) revokeBetweenPages(t *testing.T, u, tok string, g consent.GrantState) {
	t.Helper()
	st, _, b := f.get(t, u, tok)
	if st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	next := decodeBundle(t, b).next()
	if next == "" {
		t.Fatal("no next page")
	}
	f.revoke(t, g)
	if st, _, b := f.get(t, next, tok); st != 403 || outcomeCode(t, b) != "revoked" {
		t.Errorf("after the revoke: %d %s", st, b)
	}
}

// fhirReadsLogged counts the FHIR reads by clinician in the patient's
// access log that served schema and finished.
func (f *fixture) fhirReadsLogged(t *testing.T, clinician, schema string) int {
	t.Helper()
	n := 0
	for _, a := range mustAccesses(t, f.ledger, f.patient.ID) {
		if a.Clinician == clinician && slices.Contains(a.Schemas, schema) && a.Format == "fhir" && a.End != nil {
			n++
		}
	}
	return n
}

// token runs the code flow against the real provider on loopback
// (oauthtest.CodeFlow: Approve is called with the pending id, as the web UI
// would) and returns the access token and the client. An approval whose
// GrantID is "app" gets a fresh app grant for its schemas.
func (f *fixture) token(t testing.TB, user, scopes string, approval oauth.Approval) (string, oauth.ClientInfo) {
	t.Helper()
	approval.UserID = user
	return oauthtest.CodeFlow(t, f.p, redirect, scopes, approval, func(c oauth.ClientInfo, a *oauth.Approval) {
		if a.GrantID == "app" {
			a.GrantID = oauthtest.AppGrant(t, f.ledger, user, c.ID, a.Schemas)
		}
	})
}

// get fetches an absolute URL or a path under the FHIR base.
func (f *fixture) get(t testing.TB, u, token string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = f.base + u
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
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

// bundle is the part of a searchset the tests read.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

func (b bundle) next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

func decodeBundle(t testing.TB, b []byte) bundle {
	t.Helper()
	var out bundle
	if err := json.Unmarshal(b, &out); err != nil || out.ResourceType != "Bundle" || out.Type != "searchset" {
		t.Fatalf("not a searchset: %v %.300s", err, b)
	}
	return out
}

// outcomeCode is an OperationOutcome's vault error code.
func outcomeCode(t testing.TB, b []byte) string {
	t.Helper()
	var o struct {
		ResourceType string
		Issue        []struct {
			Details struct{ Coding []struct{ Code string } }
		}
	}
	if err := json.Unmarshal(b, &o); err != nil || o.ResourceType != "OperationOutcome" || len(o.Issue) == 0 || len(o.Issue[0].Details.Coding) == 0 {
		t.Fatalf("not an OperationOutcome: %v %.300s", err, b)
	}
	return o.Issue[0].Details.Coding[0].Code
}
