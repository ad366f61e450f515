package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// providerAuthorizer is the real provider as the web UI sees it: the same
// adapter as cmd/vault's webAuthorizer (package main, which a test of web
// cannot import).
type providerAuthorizer struct{ p *oauth.Provider }

func providerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, oauth.ErrNoRequest):
		return fmt.Errorf("%w: %v", ErrAuthRequestGone, err)
	case errors.Is(err, oauth.ErrNoClient):
		return fmt.Errorf("%w: %v", ErrAuthClientGone, err)
	case errors.Is(err, oauth.ErrWrongRole), errors.Is(err, oauth.ErrBadApproval):
		return fmt.Errorf("%w: %v", ErrAuthRefused, err)
	}
	return err
}

func (a providerAuthorizer) Pending(ctx context.Context, id string) (AuthRequest, error) {
	p, err := a.p.Pending(ctx, id)
	if err != nil {
		return AuthRequest{}, providerErr(err)
	}
	return AuthRequest{ID: p.ID, ClientID: p.Client.ID, ClientName: p.Client.Name, Scopes: p.Scopes,
		Patient: p.Patient, User: p.User, Schemas: p.Schemas, Offline: p.Offline, Expires: p.Expires}, nil
}

func (a providerAuthorizer) Approve(ctx context.Context, id string, ap AuthApproval) (string, error) {
	u, err := a.p.Approve(ctx, id, oauth.Approval{UserID: ap.UserID, GrantID: ap.GrantID, Schemas: ap.Schemas, Session: ap.Session})
	return u, providerErr(err)
}

func (a providerAuthorizer) Deny(ctx context.Context, id string) (string, error) {
	u, err := a.p.Deny(ctx, id)
	return u, providerErr(err)
}

func (a providerAuthorizer) ClientName(ctx context.Context, clientID string) (string, error) {
	c, err := a.p.Client(ctx, clientID)
	if err != nil {
		return "", providerErr(err)
	}
	return c.Name, nil
}

func (a providerAuthorizer) RevokeUserClient(ctx context.Context, userID, clientID string) error {
	return providerErr(a.p.RevokeUserClient(ctx, userID, clientID))
}

// clientSite is an OAuth client's web site on another origin than the
// vault's (http://127.0.0.1:PORT, while the vault is
// http://localhost:PORT: another site). /cb is its redirect URI: it
// records each query it is sent and shows a page (h1#cb). /start?to=URL
// is its page with a link (a#go) to URL, to arrive at the vault from
// another site.
type clientSite struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []url.Values
}

func newClientSite(t *testing.T) *clientSite {
	t.Helper()
	c := &clientSite{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cb", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.got = append(c.got, r.URL.Query())
		c.mu.Unlock()
		fmt.Fprint(w, `<!doctype html><title>client</title><h1 id="cb">Back at the client</h1>`)
	})
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>client</title><h1>Client</h1><a id="go" href="%s">Sign in with the vault</a>`, html.EscapeString(r.URL.Query().Get("to")))
	})
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *clientSite) redirectURI() string { return c.srv.URL + "/cb" }

// arrivals is how many times the browser came back to the redirect URI.
func (c *clientSite) arrivals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// last is the query of the browser's last arrival at the redirect URI.
func (c *clientSite) last(t *testing.T) url.Values {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) == 0 {
		t.Fatal("the browser never came back to the client's redirect URI")
	}
	return c.got[len(c.got)-1]
}

// oauthClient registers a client with the real provider and returns its
// x/oauth2 configuration.
func (f *fixture) oauthClient(t *testing.T, name, redirect string, confidential bool, scopes ...string) *oauth2.Config {
	t.Helper()
	info, secret, err := f.prov.AddClient(t.Context(), oauth.NewClient{Name: name, RedirectURIs: []string{redirect}, Confidential: confidential})
	if err != nil {
		t.Fatal(err)
	}
	iss := f.prov.Issuer()
	style := oauth2.AuthStyleInParams
	if confidential {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{ClientID: info.ID, ClientSecret: secret, RedirectURL: redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/auth/authorize", TokenURL: iss + "/auth/token", AuthStyle: style}}
}

// authURL is the authorization request x/oauth2 builds: PKCE S256, and
// aud the FHIR base.
func (f *fixture) authURL(cfg *oauth2.Config, state, verifier string) string {
	return cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.prov.Issuer()))
}

// introspect asks the provider about a token, as the confidential client
// rs (client_secret_basic), and returns its answer.
func (f *fixture) introspect(t *testing.T, rs *oauth2.Config, token string) map[string]any {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), "POST", f.prov.Issuer()+"/auth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(url.QueryEscape(rs.ClientID), url.QueryEscape(rs.ClientSecret))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("introspection: %d", resp.StatusCode)
	}
	return out
}

// userinfo is the status of GET userinfo with an access token.
func (f *fixture) userinfo(t *testing.T, token string) int {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), "GET", f.prov.Issuer()+"/auth/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// enrolInBrowser enrols a user's passkey in the browser's virtual
// authenticator from an invite and signs out again.
func (f *fixture) enrolInBrowser(t *testing.T, ctx context.Context, userID string) {
	t.Helper()
	link, err := f.srv.NewInvite(t.Context(), userID, 0)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#enrol-form")),
		chromedp.SendKeys(chromedp.CSS("#label"), "Test passkey"),
		chromedp.Click(chromedp.CSS("#enrol-form button")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"] button`)),
	)
	if s, ok := f.browserSession(t, ctx); !ok || s.UserID != userID {
		t.Fatalf("not signed in after enrolment: %+v", s)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
}

// oauthBrowserFixture is the whole stack for the OAuth browser tests: the
// web UI and the real provider on one loopback server and one bbolt file,
// the client's site on another origin, and Chromium with a virtual
// authenticator.
func oauthBrowserFixture(t *testing.T) (context.Context, cdpwebauthn.AuthenticatorID, *fixture, *clientSite) {
	t.Helper()
	ctx := browser(t)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000, oauth: true})
	return ctx, authenticator(t, ctx), f, newClientSite(t)
}

// TestBrowserPatientAuthorizesApp: in real Chromium with a virtual
// authenticator and the real provider, a public SMART app asks (PKCE,
// aud) for launch/patient, openid, fhirUser, offline_access and
// patient/Observation.rs; the signed-out patient signs in with her
// passkey on the way, unticks heart rate on the consent page and signs
// with her passkey; the browser comes back to the app's redirect URI with
// a code and the state; x/oauth2 exchanges it with the verifier: the
// granted scope lacks heart rate, the response names the patient, and
// the app grant is in her ledger, signed, and the ledger verifies. Her
// consent page's Revoke needs its confirmation (one click revokes
// nothing); once revoked, introspection of the access token says
// inactive and a refresh is invalid_grant, at once.
func TestBrowserPatientAuthorizesApp(t *testing.T) {
	ctx, _, f, site := oauthBrowserFixture(t)
	f.enrolInBrowser(t, ctx, f.patient.ID)
	app := f.oauthClient(t, "Glucose Insights", site.redirectURI(), false, "launch/patient", "openid", "fhirUser", "offline_access", "patient/Observation.rs")
	rs := f.oauthClient(t, "Resource server", "http://localhost/unused", true)

	verifier := oauth2.GenerateVerifier()
	run(t, ctx, chromedp.Navigate(f.authURL(app, "st-patient", verifier)), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, f.base+"/signin?next=%2Foauth%2Fauthorize%3Fid%3D") {
		t.Fatalf("signed out, the request went to %s", loc)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS("#oauth-form")))
	asked := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#oauth-form input[name="schemas"]:checked')].map(i => i.value)`))
	if len(asked) != len(oauth.AllSchemas()) || !slices.Contains(asked, "omh:heart-rate") || !slices.Contains(asked, "omh:blood-glucose") {
		t.Fatalf("the consent page offers %v", asked)
	}
	if h := get(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); h != "Allow Glucose Insights to read your data?" {
		t.Fatalf("consent page heading %q", h)
	}
	n0 := len(f.appGrants(f.patient.ID))
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`#oauth-form input[value="omh:heart-rate"]`)),
		chromedp.Click(chromedp.CSS("#allow")),
		chromedp.WaitVisible(chromedp.CSS("#cb")),
	)
	q := site.last(t)
	if q.Get("state") != "st-patient" || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("back at the client with %v", q)
	}

	tok, err := app.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	scope, _ := tok.Extra("scope").(string)
	granted := strings.Fields(scope)
	if patient, _ := tok.Extra("patient").(string); patient != oauth.FHIRID(f.patient.ID) {
		t.Fatalf("token response patient %q, want %q", patient, oauth.FHIRID(f.patient.ID))
	}
	if tok.RefreshToken == "" || !slices.Contains(granted, "launch/patient") || slices.Contains(granted, "patient/Observation.rs") ||
		strings.Contains(scope, "8867-4") || !strings.Contains(scope, "observation-category|laboratory") {
		t.Fatalf("granted scope without heart rate expected, got %q", scope)
	}
	gs := f.appGrants(f.patient.ID)
	if len(gs) != n0+1 {
		t.Fatalf("app grants: %+v", gs)
	}
	g := gs[len(gs)-1]
	if g.App != app.ClientID || !g.Signed || g.RevokeIndex != nil || slices.Contains(g.Schemas, "omh:heart-rate") || !slices.Contains(g.Schemas, "omh:blood-glucose") {
		t.Fatalf("app grant %+v", g)
	}
	if vr, err := f.led.Verify(nil); err != nil || vr.SignedGrants != 1 {
		t.Fatalf("ledger verify: %v (%d signed grants)", err, vr.SignedGrants)
	}
	if in := f.introspect(t, rs, tok.AccessToken); in["active"] != true || in["client_id"] != app.ClientID || in["sub"] != f.patient.ID {
		t.Fatalf("introspection before revoke: %v", in)
	}

	// Revoke on /consent: the first click opens the confirmation only.
	form := `form[action="/consent/apps/` + g.ID + `/revoke"]`
	run(t, ctx, chromedp.Navigate(f.base+"/consent"), chromedp.WaitVisible(chromedp.CSS("#apps-h")))
	if get(t, ctx, chromedp.Evaluate[bool](`document.querySelector('`+form+` button').checkVisibility()`)) {
		t.Fatal("the app's revoke button is visible before the confirmation opens")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`details:has(`+form+`) summary`)), chromedp.WaitVisible(chromedp.CSS(form+" button")))
	if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/consent" || f.grantState(g.ID).RevokeIndex != nil || !f.led.AppGrantActive(g.ID, f.patient.ID, app.ClientID, time.Now()) {
		t.Fatalf("one click revoked the app grant (at %s)", loc)
	}
	if in := f.introspect(t, rs, tok.AccessToken); in["active"] != true {
		t.Fatalf("one click ended the token: %v", in)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(form+" button")), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if f.grantState(g.ID).RevokeIndex == nil {
		t.Fatal("the app grant is not revoked")
	}
	if in := f.introspect(t, rs, tok.AccessToken); len(in) != 1 || in["active"] != false {
		t.Fatalf("introspection after revoke: %v", in)
	}
	_, err = app.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("refresh after revoke: %v", err)
	}
	if vr, err := f.led.Verify(nil); err != nil || vr.SignedGrants != 1 {
		t.Fatalf("ledger verify after revoke: %v", err)
	}
}

// TestBrowserClinicianSignsInForClient: in real Chromium with the real
// provider, a clinician signs in for a confidential client (openid
// fhirUser profile user/Observation.rs): the first time the sign-in page
// asks and Allow sends a code back, which the client exchanges; the
// second request goes straight back to the redirect URI with a code, no
// page shown; Remove on /apps ends the token at once (introspection
// inactive, userinfo 401) and the next request asks again.
func TestBrowserClinicianSignsInForClient(t *testing.T) {
	ctx, _, f, site := oauthBrowserFixture(t)
	f.enrolInBrowser(t, ctx, f.clin.ID)
	hub := f.oauthClient(t, "Riverside JupyterHub", site.redirectURI(), true, "openid", "fhirUser", "profile", "user/Observation.rs")
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"] button`)))

	// The first time: the sign-in page, then Allow.
	verifier := oauth2.GenerateVerifier()
	run(t, ctx, chromedp.Navigate(f.authURL(hub, "st-1", verifier)), chromedp.WaitVisible(chromedp.CSS("#allow")))
	if h := get(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); h != "Sign in to Riverside JupyterHub?" {
		t.Fatalf("sign-in page heading %q", h)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#cb")))
	q := site.last(t)
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("back at the client with %v", q)
	}
	tok, err := hub.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if idt, _ := tok.Extra("id_token").(string); idt == "" || !strings.Contains(fmt.Sprint(tok.Extra("scope")), "user/Observation.rs") {
		t.Fatalf("token response: scope %v, id token %q", tok.Extra("scope"), idt)
	}
	if st := f.userinfo(t, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo: %d", st)
	}

	// The second time: remembered, straight back with a code (the only
	// document the browser loads is the client's page, and history gains
	// one entry).
	hist0 := get(t, ctx, chromedp.NavigationEntries())
	n := site.arrivals()
	verifier2 := oauth2.GenerateVerifier()
	run(t, ctx, chromedp.Navigate(f.authURL(hub, "st-2", verifier2)), chromedp.WaitVisible(chromedp.CSS("#cb")))
	hist1 := get(t, ctx, chromedp.NavigationEntries())
	if site.arrivals() != n+1 || len(hist1.Entries) != len(hist0.Entries)+1 || !strings.HasPrefix(hist1.Entries[len(hist1.Entries)-1].URL, site.redirectURI()+"?") {
		t.Fatalf("the remembered sign-in showed a page: history %d → %d entries", len(hist0.Entries), len(hist1.Entries))
	}
	q = site.last(t)
	tok2, err := hub.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier2))
	if q.Get("state") != "st-2" || err != nil {
		t.Fatalf("second exchange: %v (%v)", err, q)
	}

	// Remove on /apps: the tokens stop working at once, and the next
	// request asks again.
	run(t, ctx, chromedp.Navigate(f.base+"/apps"), chromedp.WaitVisible(chromedp.CSS("#signin-apps-h")))
	if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "Riverside JupyterHub") {
		t.Fatalf("apps page: %q", txt)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`main form[action^="/apps/"] button`)), chromedp.WaitNotPresent(chromedp.CSS(`main form[action^="/apps/"]`)))
	get(t, ctx, chromedp.Poll[bool](`document.querySelector('main').innerText.includes('No application signs you in')`))
	for i, at := range []string{tok.AccessToken, tok2.AccessToken} {
		if st := f.userinfo(t, at); st != http.StatusUnauthorized {
			t.Fatalf("userinfo with token %d after Remove: %d", i, st)
		}
		if in := f.introspect(t, hub, at); len(in) != 1 || in["active"] != false {
			t.Fatalf("introspection of token %d after Remove: %v", i, in)
		}
	}
	n = site.arrivals()
	run(t, ctx, chromedp.Navigate(f.authURL(hub, "st-3", oauth2.GenerateVerifier())), chromedp.WaitVisible(chromedp.CSS("#allow")))
	if site.arrivals() != n {
		t.Fatal("after Remove the client got an answer without asking")
	}
}

// TestBrowserCrossSiteArrival: the client's page on another site
// (http://127.0.0.1:PORT, the vault being http://localhost:PORT) links to
// the authorization URL. The browser does not send the SameSite=Strict
// session cookie on that cross-site navigation and its redirects, yet a
// signed-in clinician who allowed the client before comes straight back
// with a code: the web UI's one same-origin hop carries the cookie.
func TestBrowserCrossSiteArrival(t *testing.T) {
	ctx, _, f, site := oauthBrowserFixture(t)
	f.enrolInBrowser(t, ctx, f.clin.ID)
	hub := f.oauthClient(t, "Riverside JupyterHub", site.redirectURI(), true, "openid", "fhirUser", "user/Observation.rs")
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"] button`)))

	start := func(state, verifier string) {
		t.Helper()
		run(t, ctx, chromedp.Navigate(site.srv.URL+"/start?to="+url.QueryEscape(f.authURL(hub, state, verifier))),
			chromedp.WaitVisible(chromedp.CSS("#go")), chromedp.Click(chromedp.CSS("#go")))
	}
	// The first arrival: the sign-in page (signed in, so no passkey), Allow.
	v1 := oauth2.GenerateVerifier()
	start("x-1", v1)
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#allow")))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, f.base+"/oauth/authorize?id=") || !strings.HasSuffix(loc, "&hop=1") {
		t.Fatalf("the cross-site arrival is at %s, not the hop", loc)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#cb")))
	if q := site.last(t); q.Get("state") != "x-1" || q.Get("code") == "" {
		t.Fatalf("back at the client with %v", q)
	}
	// The second: remembered, straight back through the hop.
	v2 := oauth2.GenerateVerifier()
	n := site.arrivals()
	start("x-2", v2)
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#cb")))
	q := site.last(t)
	if site.arrivals() != n+1 || q.Get("state") != "x-2" {
		t.Fatalf("back at the client with %v", q)
	}
	if _, err := hub.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(v2)); err != nil {
		t.Fatal(err)
	}
	// Signed out, the same arrival goes to the sign-in page, with the
	// request to come back to.
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: SessionCookie, URL: f.base + "/"}); err != nil {
		t.Fatal(err)
	}
	start("x-3", oauth2.GenerateVerifier())
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, f.base+"/signin?next=%2Foauth%2Fauthorize%3Fid%3D") {
		t.Fatalf("signed out, the cross-site arrival went to %s", loc)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS("#cb")))
	if q := site.last(t); q.Get("state") != "x-3" || q.Get("code") == "" {
		t.Fatalf("back at the client with %v", q)
	}
}

// pendingRequest sends an authorization request to the provider (as a
// browser would, PKCE and aud included) and returns the id of the request
// it keeps pending for the web UI: the provider's answer is a redirect to
// /oauth/authorize?id=ID.
func (f *fixture) pendingRequest(t *testing.T, cfg *oauth2.Config, state string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.authURL(cfg, state, oauth2.GenerateVerifier()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode/100 != 3 || loc.Path != "/oauth/authorize" || loc.Query().Get("id") == "" {
		t.Fatalf("authorization request: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("id")
}
