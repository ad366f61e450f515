package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/oauth2"
)

// fixture is a provider on a real bbolt file behind a real HTTP server on
// loopback. There is no browser here: a test takes the pending request id
// from the login redirect and calls Provider.Approve itself, which is what
// the web UI does after the passkey sign-in and consent page (the browser
// half is the web UI's end-to-end test).
type fixture struct {
	p         *oauth.Provider
	srv       *httptest.Server
	env       *vaulttest.Env
	patient   vault.User
	clinician vault.User

	mu     sync.Mutex
	now    time.Time
	grants map[string]bool // the ledger's answer for each app grant id
	// served, when set (the benchmarks), gets the time the provider's
	// handler took for each request: the server-side latency.
	served func(time.Duration)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{now: time.Now(), grants: map[string]bool{}}
	f.env = vaulttest.New(t, vaulttest.Options{})
	f.patient = f.env.User(t, vault.RolePatient, "Ada")
	f.clinician = f.env.User(t, vault.RoleClinician, "Dr. Rivera")
	var h http.Handler
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		f.mu.Lock()
		served := f.served
		f.mu.Unlock()
		if served != nil {
			served(time.Since(start))
		}
	}))
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	base, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	f.p, err = oauth.New(context.Background(), oauth.Config{
		BaseURL: base, Store: f.env.Store.OAuth(), Sealer: f.env.Vault.Master(), Users: f.env.Vault,
		GrantActive: func(grantID, patient, client string, now time.Time) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.grants[grantID] && patient == f.patient.ID
		},
		Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	h = f.p.Handler()
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fixture) setGrant(id string, active bool) {
	f.mu.Lock()
	f.grants[id] = active
	f.mu.Unlock()
}

const redirectURI = "http://127.0.0.1:8000/hub/oauth_callback"

// client registers a client and returns its oauth2 config.
func (f *fixture) client(t testing.TB, confidential bool, scopes ...string) *oauth2.Config {
	t.Helper()
	info, secret, err := f.p.AddClient(context.Background(), oauth.NewClient{Name: "Hub", RedirectURIs: []string{redirectURI}, Confidential: confidential})
	if err != nil {
		t.Fatal(err)
	}
	if confidential != (secret != "") {
		t.Fatalf("confidential %v, secret %q", confidential, secret)
	}
	iss := f.p.Issuer()
	return &oauth2.Config{ClientID: info.ID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/auth/authorize", TokenURL: iss + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// location GETs u and returns the redirect's target.
func location(t testing.TB, u string) *url.URL {
	t.Helper()
	resp, err := noFollow.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s, want a redirect", u, resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// begin starts an authorization and returns the pending request's id.
func (f *fixture) begin(t testing.TB, cfg *oauth2.Config, verifier string, extra ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.p.Issuer())}, extra...)
	loc := location(t, cfg.AuthCodeURL("state-123", opts...))
	if loc.Path != "/oauth/authorize" || loc.Query().Get("id") == "" {
		t.Fatalf("login redirect %s, want the web UI's /oauth/authorize?id=", loc)
	}
	return loc.Query().Get("id")
}

// code approves a pending request and follows the callback to the code.
func (f *fixture) code(t testing.TB, id string, a oauth.Approval) string {
	t.Helper()
	cb, err := f.p.Approve(context.Background(), id, a)
	if err != nil {
		t.Fatal(err)
	}
	loc := location(t, cb)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		t.Fatalf("callback sent the browser to %s", loc)
	}
	if loc.Query().Get("state") != "state-123" || loc.Query().Get("code") == "" {
		t.Fatalf("client redirect %s lacks code or state", loc)
	}
	return loc.Query().Get("code")
}

// post sends a form to an endpoint (with Basic auth for a confidential
// client) and returns the status, headers and JSON body.
func post(t testing.TB, u string, cfg *oauth2.Config, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cfg != nil && cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	} else if cfg != nil && form.Get("client_assertion") == "" {
		form.Set("client_id", cfg.ClientID)
		req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		req.ContentLength = int64(len(form.Encode()))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("POST %s: %d %q is not JSON", u, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, body
}

func (f *fixture) exchange(t testing.TB, cfg *oauth2.Config, code, verifier string) (int, http.Header, map[string]any) {
	return post(t, f.p.Issuer()+"/auth/token", cfg, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}})
}

func (f *fixture) introspect(t testing.TB, cfg *oauth2.Config, token string) map[string]any {
	t.Helper()
	status, _, body := post(t, f.p.Issuer()+"/auth/introspect", cfg, url.Values{"token": {token}})
	if status != http.StatusOK {
		t.Fatalf("introspect: %d %v", status, body)
	}
	return body
}

func wantInactive(t *testing.T, what string, body map[string]any) {
	t.Helper()
	if len(body) != 1 || body["active"] != false {
		t.Fatalf("%s: introspection %v, want exactly {\"active\":false}", what, body)
	}
}

// TestDiscovery: go-oidc reads the OpenID configuration (issuer = the FHIR
// base); the SMART configuration is JSON whatever Accept says, open to any
// origin, with absolute URLs and S256 only.
func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, f.p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Methods []string `json:"code_challenge_methods_supported"`
		Resp    []string `json:"response_types_supported"`
	}
	if err := prov.Claims(&meta); err != nil || !slices.Equal(meta.Methods, []string{"S256"}) || !slices.Equal(meta.Resp, []string{"code"}) {
		t.Fatalf("openid-configuration: %+v, %v", meta, err)
	}
	req, _ := http.NewRequest(http.MethodGet, f.p.Issuer()+"/.well-known/smart-configuration", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var smart map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&smart); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("smart-configuration: %d, %v", resp.StatusCode, resp.Header)
	}
	if smart["issuer"] != f.p.Issuer() || smart["token_endpoint"] != f.p.Issuer()+"/auth/token" {
		t.Fatalf("smart-configuration: %v", smart)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"} {
		if u, _ := smart[k].(string); !strings.HasPrefix(u, f.srv.URL+"/fhir/") {
			t.Errorf("%s = %v, want an absolute URL under the FHIR base", k, smart[k])
		}
	}
	if m, _ := json.Marshal(smart["code_challenge_methods_supported"]); string(m) != `["S256"]` {
		t.Fatalf("code_challenge_methods_supported = %s", m)
	}
	// The EHR launch works (TestEHRLaunch); encounters and Backend
	// Services do not exist here, and are not claimed.
	caps, _ := json.Marshal(smart["capabilities"])
	for _, c := range []string{`"launch-ehr"`, `"context-ehr-patient"`, `"context-banner"`} {
		if !strings.Contains(string(caps), c) {
			t.Fatalf("capabilities lack %s: %s", c, caps)
		}
	}
	if strings.Contains(string(caps), "encounter") || strings.Contains(string(caps), "client-confidential-asymmetric-backend") {
		t.Fatalf("capabilities claim what is not served: %s", caps)
	}
}

// TestClinicianCodeFlow: a confidential client (a JupyterHub) signs a
// clinician in: code with PKCE, ID token verified by go-oidc, userinfo,
// introspection, refresh with rotation, the reuse of a rotated refresh
// token ending the family, revocation.
func TestClinicianCodeFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := f.client(t, true, "openid", "fhirUser", "profile", "offline_access", "user/Observation.rs")
	verifier := oauth2.GenerateVerifier()
	id := f.begin(t, cfg, verifier)
	pend, err := f.p.Pending(ctx, id)
	if err != nil || !pend.User || pend.Patient || !pend.Offline || pend.Client.ID != cfg.ClientID || len(pend.Schemas) != len(oauth.AllSchemas()) {
		t.Fatalf("Pending = %+v, %v", pend, err)
	}
	code := f.code(t, id, oauth.Approval{UserID: f.clinician.ID})
	status, h, tok := f.exchange(t, cfg, code, verifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Fatalf("token response headers %v", h)
	}
	access, _ := tok["access_token"].(string)
	refresh, _ := tok["refresh_token"].(string)
	if !strings.HasPrefix(access, "vo_") || !strings.HasPrefix(refresh, "vr_") || tok["expires_in"] == nil || tok["scope"] != "openid fhirUser profile offline_access user/Observation.rs" || tok["patient"] != nil {
		t.Fatalf("token response %v", tok)
	}
	// The same code again fails.
	if status, _, body := f.exchange(t, cfg, code, verifier); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("code reuse: %d %v", status, body)
	}

	prov, err := oidc.NewProvider(ctx, f.p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
	}
	wantFHIRUser := f.p.Issuer() + "/Practitioner/" + strings.ReplaceAll(f.clinician.ID, "_", "-")
	if err := idt.Claims(&claims); err != nil || idt.Subject != f.clinician.ID || claims.FHIRUser != wantFHIRUser {
		t.Fatalf("ID token sub %q fhirUser %q, %v", idt.Subject, claims.FHIRUser, err)
	}
	ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access, TokenType: "Bearer"}))
	if err != nil || ui.Subject != f.clinician.ID {
		t.Fatalf("userinfo %+v, %v", ui, err)
	}

	in := f.introspect(t, cfg, access)
	if in["active"] != true || in["client_id"] != cfg.ClientID || in["sub"] != f.clinician.ID || in["fhirUser"] != wantFHIRUser || in["scope"] != tok["scope"] || in["iss"] != f.p.Issuer() {
		t.Fatalf("introspection %v", in)
	}
	wantInactive(t, "an unknown token", f.introspect(t, cfg, "vo_nothing"))

	// Refresh with x/oauth2: new tokens; the old refresh token, presented
	// again, ends the whole family.
	next, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil || next.RefreshToken == refresh || next.AccessToken == access || next.RefreshToken == "" {
		t.Fatalf("refresh: %+v, %v", next, err)
	}
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reusing a rotated refresh token: %v, want invalid_grant", err)
	}
	wantInactive(t, "the family's newer access token", f.introspect(t, cfg, next.AccessToken))
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err == nil {
		t.Fatal("the family's newer refresh token still works")
	}
	wantInactive(t, "the first access token", f.introspect(t, cfg, access))

	// Revocation (RFC 7009) of a fresh login's access token.
	verifier = oauth2.GenerateVerifier()
	code = f.code(t, f.begin(t, cfg, verifier), oauth.Approval{UserID: f.clinician.ID})
	_, _, tok = f.exchange(t, cfg, code, verifier)
	access = tok["access_token"].(string)
	if status, _, body := post(t, f.p.Issuer()+"/auth/revoke", cfg, url.Values{"token": {access}}); status != 200 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	wantInactive(t, "a revoked access token", f.introspect(t, cfg, access))
	if _, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access})); err == nil {
		t.Fatal("userinfo answered a revoked token")
	}
	// Revoking a refresh token ends its access tokens too.
	rt := tok["refresh_token"].(string)
	if status, _, body := post(t, f.p.Issuer()+"/auth/revoke", cfg, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}); status != 200 {
		t.Fatalf("revoke refresh: %d %v", status, body)
	}
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token(); err == nil {
		t.Fatal("a revoked refresh token still works")
	}
}

// TestPatientAppFlow: a public app asks a patient for her Observations;
// she keeps heart rate only; the token carries patient and the narrowed
// scope; when the ledger says her grant is revoked, refresh and the access
// token die.
func TestPatientAppFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := f.client(t, false, "openid", "fhirUser", "launch/patient", "offline_access", "patient/Observation.rs")
	verifier := oauth2.GenerateVerifier()
	id := f.begin(t, cfg, verifier)
	pend, err := f.p.Pending(ctx, id)
	if err != nil || !pend.Patient || pend.User || !slices.Equal(pend.Schemas, oauth.AllSchemas()) {
		t.Fatalf("Pending = %+v, %v", pend, err)
	}
	if _, err := f.p.Approve(ctx, id, oauth.Approval{UserID: f.clinician.ID}); !errors.Is(err, oauth.ErrWrongRole) {
		t.Fatalf("a clinician answering a patient app: %v, want ErrWrongRole", err)
	}
	if _, err := f.p.Approve(ctx, id, oauth.Approval{UserID: f.patient.ID, Schemas: []string{"omh:heart-rate"}}); !errors.Is(err, oauth.ErrBadApproval) {
		t.Fatalf("no grant id: %v, want ErrBadApproval", err)
	}
	if _, err := f.p.Approve(ctx, id, oauth.Approval{UserID: f.patient.ID, GrantID: "gr_app", Schemas: []string{"omh:nope"}}); !errors.Is(err, oauth.ErrBadApproval) {
		t.Fatalf("a schema not asked: %v, want ErrBadApproval", err)
	}
	f.setGrant("gr_app", true)
	code := f.code(t, id, oauth.Approval{UserID: f.patient.ID, GrantID: "gr_app", Schemas: []string{"omh:heart-rate"}})
	status, _, tok := f.exchange(t, cfg, code, verifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	wantScope := "openid fhirUser launch/patient offline_access patient/Observation.rs?code=http://loinc.org|8867-4"
	if tok["patient"] != strings.ReplaceAll(f.patient.ID, "_", "-") || tok["scope"] != wantScope {
		t.Fatalf("token response %v; want patient and scope %q", tok, wantScope)
	}
	refresh := tok["refresh_token"].(string)
	next, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if next.Extra("patient") != strings.ReplaceAll(f.patient.ID, "_", "-") {
		t.Fatalf("refresh response lacks patient: %v", next.Extra("patient"))
	}
	f.setGrant("gr_app", false) // the patient revokes the app in the ledger
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after the grant is revoked: %v, want invalid_grant", err)
	}
	conf := f.client(t, true)
	wantInactive(t, "an access token of a revoked grant", f.introspect(t, conf, next.AccessToken))
}

// TestRequestChecks: what authorize and the token endpoint refuse.
func TestRequestChecks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := f.client(t, true, "openid", "user/Observation.rs")
	iss := f.p.Issuer()
	authErr := func(t *testing.T, q url.Values) url.Values {
		t.Helper()
		loc := location(t, iss+"/auth/authorize?"+q.Encode())
		if loc.Path == "/oauth/authorize" {
			t.Fatalf("authorize accepted %v", q)
		}
		return loc.Query()
	}
	base := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {cfg.ClientID}, "redirect_uri": {redirectURI}, "scope": {"openid user/Observation.rs"},
			"state": {"s"}, "aud": {iss}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(q url.Values)
		error string
	}{
		{"plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"no challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"aud mismatch", func(q url.Values) { q.Set("aud", "https://other.example/fhir") }, "invalid_request"},
		{"aud missing with resource scopes", func(q url.Values) { q.Del("aud") }, "invalid_request"},
		{"misordered scope", func(q url.Values) { q.Set("scope", "openid user/Observation.sr") }, "invalid_scope"},
		{"EHR launch without its launch id", func(q url.Values) { q.Set("scope", "openid launch user/Observation.rs") }, "invalid_request"},
		{"EHR launch with an unknown launch id", func(q url.Values) { q.Set("scope", "openid launch user/Observation.rs"); q.Set("launch", "vl_unknown") }, "invalid_request"},
		{"patient and user", func(q url.Values) { q.Set("scope", "patient/Observation.rs user/Observation.rs") }, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := base()
			tc.edit(q)
			got := authErr(t, q)
			if got.Get("error") != tc.error || got.Get("state") != "s" {
				t.Fatalf("error %v, want %s with the state", got, tc.error)
			}
		})
	}
	t.Run("redirect mismatch", func(t *testing.T) {
		q := base()
		q.Set("redirect_uri", "http://127.0.0.1:8000/elsewhere")
		resp, err := noFollow.Get(iss + "/auth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("an unregistered redirect_uri: %d, want a 4xx answered here (never a redirect)", resp.StatusCode)
		}
	})
	// At the token endpoint.
	for _, tc := range []struct {
		name string
		form func(code, verifier string) url.Values
	}{
		{"missing verifier", func(code, _ string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
		}},
		{"wrong verifier", func(code, _ string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {oauth2.GenerateVerifier()}}
		}},
		{"redirect mismatch", func(code, v string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:8000/elsewhere"}, "code_verifier": {v}}
		}},
	} {
		t.Run("token/"+tc.name, func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID})
			status, _, body := post(t, iss+"/auth/token", cfg, tc.form(code, v))
			if status != 400 || body["error"] != "invalid_grant" {
				t.Fatalf("%d %v, want 400 invalid_grant", status, body)
			}
			// A failed exchange spends the code.
			if status, _, _ := f.exchange(t, cfg, code, v); status != 400 {
				t.Fatalf("the code works after a failed exchange: %d", status)
			}
		})
	}
	t.Run("wrong client secret", func(t *testing.T) {
		bad := *cfg
		bad.ClientSecret = "vs_wrong"
		v := oauth2.GenerateVerifier()
		code := f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID})
		if status, _, body := f.exchange(t, &bad, code, v); status != 401 && status != 400 {
			t.Fatalf("%d %v", status, body)
		}
	})
	t.Run("deny", func(t *testing.T) {
		id := f.begin(t, cfg, oauth2.GenerateVerifier())
		to, err := f.p.Deny(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(to)
		if u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "state-123" {
			t.Fatalf("deny sends the browser to %s", to)
		}
		if _, err := f.p.Pending(ctx, id); !errors.Is(err, oauth.ErrNoRequest) {
			t.Fatalf("a denied request is still pending: %v", err)
		}
	})
	t.Run("patient for a clinician sign-in", func(t *testing.T) {
		id := f.begin(t, cfg, oauth2.GenerateVerifier())
		if _, err := f.p.Approve(ctx, id, oauth.Approval{UserID: f.patient.ID}); !errors.Is(err, oauth.ErrWrongRole) {
			t.Fatalf("%v, want ErrWrongRole", err)
		}
	})
}

// TestTokenLifetimes: an access token dies after its hour; a refresh token
// works only for its own client.
func TestTokenLifetimes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := f.client(t, true, "openid", "offline_access", "user/Observation.rs")
	other := f.client(t, true)
	v := oauth2.GenerateVerifier()
	_, _, tok := f.exchange(t, cfg, f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID}), v)
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	if exp, _ := tok["expires_in"].(float64); exp < 3590 || exp > 3600 {
		t.Fatalf("expires_in %v, want an hour", tok["expires_in"])
	}
	if _, err := other.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh by another client: %v, want invalid_grant", err)
	}
	if in := f.introspect(t, cfg, access); in["active"] != true {
		t.Fatalf("fresh token %v", in)
	}
	f.advance(time.Hour + time.Second)
	wantInactive(t, "an expired access token", f.introspect(t, cfg, access))
	// The refresh token (30 days) still works, for its own client.
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token(); err != nil {
		t.Fatalf("refresh after the access token expired: %v", err)
	}
}

// TestPrivateKeyJWT: a client with an ES384 key authenticates with signed
// assertions; a replayed one, one for another audience, one expiring too
// far ahead and an RS256/HS256-style algorithm are refused.
func TestPrivateKeyJWT(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	info, secret, err := f.p.AddClient(ctx, oauth.NewClient{Name: "Backend app", RedirectURIs: []string{redirectURI}, Confidential: true, JWKS: jwks})
	if err != nil || secret != "" || info.AuthMethod != "private_key_jwt" {
		t.Fatalf("AddClient: %+v %q %v", info, secret, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := f.p.Issuer() + "/auth/token"
	assertion := func(aud string, exp time.Duration, jti string) string {
		b, _ := json.Marshal(map[string]any{"iss": info.ID, "sub": info.ID, "aud": aud, "exp": f.clock().Add(exp).Unix(), "jti": jti})
		sig, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sig.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cfg := &oauth2.Config{ClientID: info.ID, RedirectURL: redirectURI, Scopes: []string{"openid", "user/Observation.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: f.p.Issuer() + "/auth/authorize", TokenURL: tokenURL}}
	exchange := func(a string) (int, map[string]any) {
		v := oauth2.GenerateVerifier()
		code := f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID})
		status, _, body := post(t, tokenURL, nil, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
		return status, body
	}
	good := assertion(tokenURL, 2*time.Minute, "jti-1")
	if status, body := exchange(good); status != 200 || body["access_token"] == nil {
		t.Fatalf("a good assertion: %d %v", status, body)
	}
	if status, body := exchange(assertion(f.p.Issuer(), 2*time.Minute, "jti-iss")); status != 200 {
		t.Fatalf("the issuer as aud: %d %v", status, body)
	}
	for name, a := range map[string]string{
		"replayed":        good,
		"other audience":  assertion("https://other.example/token", 2*time.Minute, "jti-2"),
		"too far ahead":   assertion(tokenURL, 10*time.Minute, "jti-3"),
		"expired":         assertion(tokenURL, -time.Minute, "jti-4"),
		"not a signature": "e30.e30.e30",
	} {
		if status, body := exchange(a); status != 401 || body["error"] != "invalid_client" {
			t.Errorf("%s: %d %v, want 401 invalid_client", name, status, body)
		}
	}
}
