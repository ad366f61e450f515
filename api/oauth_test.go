package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/oauth/oauthtest"
	"github.com/jupyterhealth/vault/vault"
)

// lateOAuth lets the fixture's API server take a provider built after it
// (the provider needs the fixture's store).
type lateOAuth struct{ p *oauth.Provider }

func (l *lateOAuth) ClinicianToken(ctx context.Context, tok string) (vault.Token, error) {
	return l.p.ClinicianToken(ctx, tok)
}

// oauthToken runs the code flow against a real provider on loopback
// (oauthtest.CodeFlow: Approve is called directly with the pending id from
// the login redirect; the browser half is the web UI's end-to-end test)
// and returns the access token.
func oauthToken(t *testing.T, p *oauth.Provider, user string, approval oauth.Approval, scopes string) string {
	t.Helper()
	approval.UserID = user
	tok, _ := oauthtest.CodeFlow(t, p, "http://localhost:8000/hub/oauth_callback", scopes, approval, nil)
	return tok
}

// TestOAuthTokenOnClinicianAPI: a clinician's OAuth access token with a
// user/ Observation scope works like a vc_ token on the patient list and
// the export (consent still decides), and nowhere else; other OAuth
// tokens work nowhere.
func TestOAuthTokenOnClinicianAPI(t *testing.T) {
	late := &lateOAuth{}
	f := newFixture(t, api.Config{OAuth: late})
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	p, err := oauth.New(context.Background(), oauth.Config{BaseURL: base, Store: f.store.OAuth(), Sealer: f.v.Master(), Users: f.v,
		GrantActive: func(string, string, string, time.Time) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	h, late.p = p.Handler(), p

	clinTok := oauthToken(t, p, f.clinID, oauth.Approval{}, "openid fhirUser user/Observation.rs")
	loginOnly := oauthToken(t, p, f.clinID, oauth.Approval{}, "openid fhirUser")
	patientTok := oauthToken(t, p, f.patient.ID, oauth.Approval{GrantID: "gr_app", Schemas: []string{"omh:heart-rate"}}, "patient/Observation.rs")

	// Before any grant: the same answers as the vc_ token.
	for _, path := range []string{"/api/v1/clinician/patients", "/api/v1/patients/" + f.patient.ID + "/export"} {
		stVC, bVC := f.do(t, "GET", path, f.clin, "", nil)
		stOA, bOA := f.do(t, "GET", path, clinTok, "", nil)
		if stVC != stOA || (stVC != 200 && errBody(t, bVC).Code != errBody(t, bOA).Code) {
			t.Errorf("%s: vc_ %d %s, OAuth %d %s", path, stVC, bVC, stOA, bOA)
		}
	}
	// A grant to the clinician: the OAuth token sees the patient.
	exp := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:heart-rate"}, DataFrom: "2025-01-01T00:00:00Z", ExpiresAt: exp, Purpose: "TREAT"})
	if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "application/json", gb); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	if st, b := f.do(t, "GET", "/api/v1/clinician/patients", clinTok, "", nil); st != 200 || !bytes.Contains(b, []byte(f.patient.ID)) {
		t.Fatalf("patients with the OAuth token: %d %s", st, b)
	}
	// Nowhere else, and no other OAuth token.
	for _, tc := range []struct {
		name, path, tok string
	}{
		{"clinician keys", "/api/v1/clinician/keys", clinTok},
		{"clinicians directory", "/api/v1/clinicians", clinTok},
		{"a sign-in without user/ scopes", "/api/v1/clinician/patients", loginOnly},
		{"a patient app's token", "/api/v1/clinician/patients", patientTok},
		{"a patient app's token on readings", "/api/v1/readings", patientTok},
		{"an unknown token", "/api/v1/clinician/patients", "vo_unknown"},
	} {
		if st, b := f.do(t, "GET", tc.path, tc.tok, "", nil); st != 401 {
			t.Errorf("%s: %d %s, want 401", tc.name, st, b)
		}
	}
	// Ending the clinician's tokens for the client ends API access too.
	if err := p.RevokeUser(context.Background(), f.clinID); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.do(t, "GET", "/api/v1/clinician/patients", clinTok, "", nil); st != 401 {
		t.Fatalf("a revoked OAuth token: %d", st)
	}
}
