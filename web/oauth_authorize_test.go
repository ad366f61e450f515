package web

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
)

// testAuthorizer is an in-test Authorizer standing in for the OAuth
// provider (package oauth, built on another branch) in these handler
// tests: it holds pending requests and records each answer. The browser
// test with the real provider is in oauth_e2e_test.go once the provider is
// merged.
type testAuthorizer struct {
	mu       sync.Mutex
	pending  map[string]AuthRequest
	approved map[string]AuthApproval
	denied   []string
	revoked  [][2]string // user, client
	failNext error       // returned by the next Approve
	down     bool        // Pending fails as a broken store would
}

func newTestAuthorizer() *testAuthorizer {
	return &testAuthorizer{pending: map[string]AuthRequest{}, approved: map[string]AuthApproval{}}
}

func (a *testAuthorizer) add(p AuthRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending[p.ID] = p
}

func (a *testAuthorizer) Pending(_ context.Context, id string) (AuthRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return AuthRequest{}, errors.New("provider store down")
	}
	p, ok := a.pending[id]
	if !ok {
		return AuthRequest{}, ErrAuthRequestGone
	}
	return p, nil
}

func (a *testAuthorizer) Approve(_ context.Context, id string, ap AuthApproval) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.failNext; err != nil {
		a.failNext = nil
		return "", err
	}
	if _, ok := a.pending[id]; !ok {
		return "", ErrAuthRequestGone
	}
	delete(a.pending, id)
	a.approved[id] = ap
	return "https://app.example/cb?code=code-" + id + "&state=s1", nil
}

func (a *testAuthorizer) Deny(_ context.Context, id string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[id]; !ok {
		return "", ErrAuthRequestGone
	}
	delete(a.pending, id)
	a.denied = append(a.denied, id)
	return "https://app.example/cb?error=access_denied&state=s1", nil
}

func (a *testAuthorizer) ClientName(_ context.Context, id string) (string, error) {
	if id == "app_glucose" {
		return "Glucose Insights", nil
	}
	return "", ErrAuthClientGone
}

func (a *testAuthorizer) RevokeUserClient(_ context.Context, user, client string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = append(a.revoked, [2]string{user, client})
	return nil
}

func (a *testAuthorizer) approval(id string) (AuthApproval, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ap, ok := a.approved[id]
	return ap, ok
}

func (a *testAuthorizer) revokes() [][2]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.revoked)
}

func newOAuthFixture(t *testing.T) (*fixture, *testAuthorizer) {
	t.Helper()
	a := newTestAuthorizer()
	f := newFixture(t, fixtureOpts{cfgTweak: func(c *Config) { c.Authorizer = a }})
	return f, a
}

// hubClient is the name of the sign-in test's client: a canary that must
// not reach the database file in plaintext.
const hubClient = "Riverside JupyterHub"

func appRequest(id string) AuthRequest {
	return AuthRequest{ID: id, ClientID: "app_glucose", ClientName: "Glucose Insights", Scopes: []string{"launch/patient", "patient/Observation.rs"},
		Patient: true, Schemas: []string{"omh:blood-glucose", "omh:heart-rate", "omh:step-count"}, Offline: true, Expires: time.Now().Add(10 * time.Minute)}
}

func hubRequest(id string) AuthRequest {
	return AuthRequest{ID: id, ClientID: "hub_1", ClientName: hubClient, Scopes: []string{"openid", "fhirUser", "user/Observation.rs"},
		User: true, Schemas: []string{"omh:blood-glucose"}, Expires: time.Now().Add(10 * time.Minute)}
}

func formPost(path, cookie, body string) req {
	return req{method: "POST", path: path, cookie: cookie, ctype: "application/x-www-form-urlencoded", body: body,
		headers: map[string]string{"Sec-Fetch-Site": "same-origin"}}
}

func TestSafeNext(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"/oauth/authorize?id=abc", true},
		{"/consent", true},
		{"", false},
		{"consent", false},
		{"https://evil.example/", false},
		{"//evil.example/x", false},
		{"/\\evil.example", false},
		{"/a\\b", false},
		{"/a\nb", false},
		{"/a\tb", false},
		{"javascript:alert(1)", false},
		{"/" + strings.Repeat("a", maxNextPath), false},
	}
	for _, tc := range cases {
		got, ok := safeNext(tc.in)
		if ok != tc.ok || (ok && got != tc.in) || (!ok && got != "") {
			t.Errorf("safeNext(%q) = %q, %v; want ok %v", tc.in, got, ok, tc.ok)
		}
	}
}

// TestAuthorizeSignInHandOff: signed out, /oauth/authorize goes to
// /signin with the request as a safe return path, which the sign-in page
// hands to its script and the sign-in ceremony keeps sealed; an unsafe
// return path is dropped. A browser arriving cross-site (whose SameSite
// cookie stays behind) gets one same-origin hop first.
func TestAuthorizeSignInHandOff(t *testing.T) {
	f, a := newOAuthFixture(t)
	a.add(appRequest("req1"))
	self := "/oauth/authorize?id=req1"
	r := f.do(req{path: self})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?next="+url.QueryEscape(self) {
		t.Fatalf("signed out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = f.do(req{path: self, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	b := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, `<meta http-equiv="refresh" content="0;url=/oauth/authorize?id=req1&amp;hop=1">`) {
		t.Fatalf("cross-site arrival: %d\n%s", r.StatusCode, b)
	}
	r = f.do(req{path: self + "&hop=1", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/signin?next=") {
		t.Fatalf("after the hop, still signed out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}

	b = body(t, f.do(req{path: "/signin?next=" + url.QueryEscape(self)}))
	if !strings.Contains(b, `data-next="/oauth/authorize?id=req1"`) {
		t.Fatalf("sign-in page does not carry the return path:\n%s", b)
	}
	for _, bad := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example"} {
		if b := body(t, f.do(req{path: "/signin?next=" + url.QueryEscape(bad)})); strings.Contains(b, "data-next") {
			t.Errorf("sign-in page carries %q", bad)
		}
	}
	// The sign-in ceremony seals the return path; an unsafe one is dropped.
	for _, tc := range []struct{ next, want string }{{self, self}, {"https://evil.example/", ""}, {"//evil.example", ""}} {
		r := f.jsonPost("/webauthn/signin/begin", "", "", "", mustJSONBody(t, map[string]string{"next": tc.next}))
		if r.StatusCode != 200 {
			t.Fatalf("signin begin: %d %s", r.StatusCode, body(t, r))
		}
		var cer string
		for _, c := range r.Cookies() {
			if c.Name == CeremonyCookie {
				cer = c.Value
			}
		}
		c, err := f.srv.cers.openSignin(cer)
		if err != nil || c.Next != tc.want {
			t.Errorf("sealed next for %q: %q, %v", tc.next, c.Next, err)
		}
	}
	// Signed in, /signin?next= goes straight there.
	sess, _ := f.signIn(f.patient.ID)
	r = f.do(req{path: "/signin?next=" + url.QueryEscape(self), cookie: sess})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != self {
		t.Fatalf("signed in: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = f.do(req{path: "/signin?next=" + url.QueryEscape("//evil.example"), cookie: sess})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("signed in, unsafe next: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}

// TestAuthorizeRefusals: a missing, unknown or answered request, the
// wrong role, a provider that is down, and a vault with no provider each
// get a clear error page with a stable code, and nothing is answered.
func TestAuthorizeRefusals(t *testing.T) {
	f, a := newOAuthFixture(t)
	a.add(appRequest("app1"))
	a.add(hubRequest("hub1"))
	login := hubRequest("login1")
	login.Schemas, login.Scopes = nil, []string{"openid", "profile"}
	a.add(login)
	pt, _ := f.signIn(f.patient.ID)
	cl, _ := f.signIn(f.clin.ID)
	cases := []struct {
		name, path, cookie string
		status             int
		code               string
	}{
		{"no id", "/oauth/authorize", pt, 400, "oauth_bad_request"},
		{"id too long", "/oauth/authorize?id=" + strings.Repeat("x", maxAuthRequestID+1), pt, 400, "oauth_bad_request"},
		{"unknown id", "/oauth/authorize?id=nope", pt, 400, "oauth_request_gone"},
		{"app request, clinician", "/oauth/authorize?id=app1", cl, 403, "wrong_role"},
		{"user/ scopes, patient", "/oauth/authorize?id=hub1", pt, 403, "wrong_role"},
	}
	for _, tc := range cases {
		r := f.do(req{path: tc.path, cookie: tc.cookie})
		b := body(t, r)
		if r.StatusCode != tc.status || !strings.Contains(b, tc.code) {
			t.Errorf("%s: %d, want %d %s\n%s", tc.name, r.StatusCode, tc.status, tc.code, b)
		}
	}
	// OpenID alone signs clinicians in, not patients.
	if r := f.do(req{path: "/oauth/authorize?id=login1", cookie: pt}); r.StatusCode != 403 {
		t.Errorf("openid-only, patient: %d", r.StatusCode)
	}
	if r := f.do(req{path: "/oauth/authorize?id=login1", cookie: cl}); r.StatusCode != 200 {
		t.Errorf("openid-only, clinician: %d", r.StatusCode)
	}
	a.mu.Lock()
	a.down = true
	a.mu.Unlock()
	if r := f.do(req{path: "/oauth/authorize?id=app1", cookie: pt}); r.StatusCode != 503 {
		t.Errorf("provider down: %d", r.StatusCode)
	}
	if len(a.approved) != 0 || len(a.denied) != 0 {
		t.Fatalf("answered: %v %v", a.approved, a.denied)
	}
	// No provider configured: the pages are not there.
	off := newFixture(t, fixtureOpts{})
	s, _ := off.signIn(off.patient.ID)
	if r := off.do(req{path: "/oauth/authorize?id=x", cookie: s}); r.StatusCode != 404 {
		t.Errorf("no provider: %d", r.StatusCode)
	}
}

// TestClinicianSignInRemembered: the first time a client signs a
// clinician in she is asked (Allow and Deny are CSRF-protected forms);
// her Allow is remembered, sealed, and the next request is approved at
// once; removing the client on the apps page forgets it and ends its
// tokens.
func TestClinicianSignInRemembered(t *testing.T) {
	f, a := newOAuthFixture(t)
	a.add(hubRequest("h1"))
	cl, csrf := f.signIn(f.clin.ID)
	r := f.do(req{path: "/oauth/authorize?id=h1", cookie: cl})
	b := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, "Sign in to "+hubClient) || !strings.Contains(b, "read what patients have granted you") || !strings.Contains(b, `action="/oauth/authorize/allow"`) {
		t.Fatalf("first time: %d\n%s", r.StatusCode, b)
	}
	// Without the CSRF token, or from another site: refused, nothing
	// answered or remembered.
	if r := f.do(formPost("/oauth/authorize/allow", cl, "id=h1")); r.StatusCode != http.StatusForbidden {
		t.Fatalf("allow without csrf: %d", r.StatusCode)
	}
	cross := formPost("/oauth/authorize/allow", cl, "id=h1&csrf="+url.QueryEscape(csrf))
	cross.headers = map[string]string{"Sec-Fetch-Site": "cross-site"}
	if r := f.do(cross); r.StatusCode != http.StatusForbidden {
		t.Fatalf("allow cross-site: %d", r.StatusCode)
	}
	if _, ok := a.approval("h1"); ok {
		t.Fatal("approved without a CSRF token")
	}
	r = f.do(formPost("/oauth/authorize/allow", cl, "id=h1&csrf="+url.QueryEscape(csrf)))
	b = body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, `content="0;url=https://app.example/cb?code=code-h1&amp;state=s1"`) {
		t.Fatalf("allow: %d\n%s", r.StatusCode, b)
	}
	if ap, ok := a.approval("h1"); !ok || ap.UserID != f.clin.ID || ap.GrantID != "" {
		t.Fatalf("approval %+v %v", ap, ok)
	}
	// Remembered: the second request goes straight back.
	a.add(hubRequest("h2"))
	r = f.do(req{path: "/oauth/authorize?id=h2", cookie: cl})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "https://app.example/cb?code=code-h2&state=s1" {
		t.Fatalf("second time: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if strings.Contains(string(f.dbFile()), hubClient) || strings.Contains(string(f.dbFile()), "hub_1") {
		t.Fatal("the remembered client is in the database file in plaintext")
	}
	// The apps page lists it; Remove forgets it and ends its tokens.
	b = body(t, f.do(req{path: "/apps", cookie: cl}))
	k := appConsentKey(f.clin.ID, "hub_1")
	action := "/apps/" + hex.EncodeToString(k[:]) + "/remove"
	if !strings.Contains(b, hubClient) || !strings.Contains(b, `action="`+action+`"`) {
		t.Fatalf("apps page:\n%s", b)
	}
	if r := f.do(formPost(action, cl, "")); r.StatusCode != http.StatusForbidden {
		t.Fatalf("remove without csrf: %d", r.StatusCode)
	}
	other, otherCSRF := f.signIn(f.patient.ID)
	if r := f.do(formPost(action, other, "csrf="+url.QueryEscape(otherCSRF))); r.StatusCode != 404 {
		t.Fatalf("another user's remove: %d", r.StatusCode)
	}
	r = f.do(formPost(action, cl, "csrf="+url.QueryEscape(csrf)))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/apps?removed=1" {
		t.Fatalf("remove: %d", r.StatusCode)
	}
	if got := a.revokes(); len(got) != 1 || got[0] != [2]string{f.clin.ID, "hub_1"} {
		t.Fatalf("RevokeUserClient calls: %v", got)
	}
	if b := body(t, f.do(req{path: "/apps", cookie: cl})); strings.Contains(b, hubClient) {
		t.Fatal("removed app still listed")
	}
	a.add(hubRequest("h3"))
	if r := f.do(req{path: "/oauth/authorize?id=h3", cookie: cl}); r.StatusCode != 200 {
		t.Fatalf("after remove, asked again: %d", r.StatusCode)
	}
	// Deny answers the provider and goes back to the client.
	r = f.do(formPost("/oauth/authorize/deny", cl, "id=h3&csrf="+url.QueryEscape(csrf)))
	if b := body(t, r); r.StatusCode != 200 || !strings.Contains(b, "error=access_denied") {
		t.Fatalf("deny: %d\n%s", r.StatusCode, b)
	}
	if r := f.do(formPost("/oauth/authorize/deny", cl, "id=h3&csrf="+url.QueryEscape(csrf))); r.StatusCode != 400 {
		t.Fatalf("deny again: %d", r.StatusCode)
	}
	// An app request cannot be allowed by the sign-in form.
	a.add(appRequest("a1"))
	pt, ptCSRF := f.signIn(f.patient.ID)
	if r := f.do(formPost("/oauth/authorize/allow", pt, "id=a1&csrf="+url.QueryEscape(ptCSRF))); r.StatusCode != 400 {
		t.Fatalf("app request through the sign-in form: %d", r.StatusCode)
	}
}

// TestPatientAuthorizesApp: the consent page lists what the app asks for
// in plain words, each unticked at will; the patient's passkey signs an
// app grant of what she kept; the provider gets the grant's id and
// schemas; her consent page lists it with Revoke, which revokes it in the
// ledger and ends the app's tokens.
func TestPatientAuthorizesApp(t *testing.T) {
	f, a := newOAuthFixture(t)
	pk := f.softPasskey(f.patient.ID)
	a.add(appRequest("p1"))
	sess, csrf := f.signIn(f.patient.ID)
	r := f.do(req{path: "/oauth/authorize?id=p1", cookie: sess})
	b := body(t, r)
	for _, want := range []string{"Allow Glucose Insights to read your data?", `value="omh:blood-glucose" checked> Blood glucose`, `value="omh:step-count" checked> Steps`, "Heart rate", "offline access", `name="expires_on"`, `action="/oauth/authorize/deny"`} {
		if !strings.Contains(b, want) {
			t.Fatalf("consent page lacks %q:\n%s", want, b)
		}
	}
	form := appGrantForm{ID: "p1", Schemas: []string{"omh:blood-glucose", "omh:step-count"}, DataFrom: "2026-01-01", ExpiresOn: time.Now().AddDate(0, 1, 0).Format(time.DateOnly)}
	// Refused forms: a type the app did not ask for, none at all.
	for name, bad := range map[string]appGrantForm{
		"not asked": {ID: "p1", Schemas: []string{"omh:blood-pressure"}, ExpiresOn: form.ExpiresOn},
		"none":      {ID: "p1", ExpiresOn: form.ExpiresOn},
		"no expiry": {ID: "p1", Schemas: form.Schemas},
		"gone":      {ID: "nope", Schemas: form.Schemas, ExpiresOn: form.ExpiresOn},
	} {
		if r := f.jsonPost("/webauthn/oauth/begin", sess, csrf, "", mustJSONBody(t, bad)); r.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, r.StatusCode, body(t, r))
		}
	}
	n0 := f.size()
	// Forged answers store nothing and approve nothing.
	theirs := f.softPasskey(f.other.ID)
	for _, tc := range forgedAssertions(pk, theirs, "another patient's passkey") {
		ch, cer := f.beginCeremony(t, "/webauthn/oauth/begin", sess, csrf, form)
		if r := f.jsonPost("/webauthn/oauth/finish", sess, csrf, cer, tc.sign(ch)); r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.status)
		}
	}
	if f.size() != n0+1 { // the other patient's passkey entry only
		t.Fatalf("ledger grew by %d on forged answers", f.size()-n0)
	}
	if _, ok := a.approval("p1"); ok {
		t.Fatal("approved on a forged answer")
	}
	ch, cer := f.beginCeremony(t, "/webauthn/oauth/begin", sess, csrf, form)
	r = f.jsonPost("/webauthn/oauth/finish", sess, csrf, cer, pk.ResponseJSON(pk.Sign(ch, consenttest.Options{})))
	var res map[string]string
	if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil || res["redirect"] != "https://app.example/cb?code=code-p1&state=s1" {
		t.Fatalf("finish: %d %v", r.StatusCode, res)
	}
	g := f.grantState(res["grant"])
	if g.App != "app_glucose" || g.Clinician != "" || g.Patient != f.patient.ID || !g.Signed || strings.Join(g.Schemas, ",") != "omh:blood-glucose,omh:step-count" || g.DataFrom.IsZero() {
		t.Fatalf("app grant %+v", g)
	}
	ap, ok := a.approval("p1")
	if !ok || ap.UserID != f.patient.ID || ap.GrantID != g.ID || strings.Join(ap.Schemas, ",") != "omh:blood-glucose,omh:step-count" {
		t.Fatalf("approval %+v", ap)
	}
	if !f.led.AppGrantActive(g.ID, f.patient.ID, "app_glucose", time.Now()) {
		t.Fatal("not active")
	}
	if vr, err := f.led.Verify(nil); err != nil || vr.SignedGrants != 1 {
		t.Fatalf("verify: %v, %d signed", err, vr.SignedGrants)
	}
	// The consent page lists it, by the app's name, with Revoke; the
	// clinician grant tables do not.
	b = body(t, f.do(req{path: "/consent", cookie: sess}))
	action := "/consent/apps/" + g.ID + "/revoke"
	if !strings.Contains(b, "Glucose Insights") || !strings.Contains(b, `action="`+action+`"`) || strings.Contains(b, `action="/consent/`+g.ID+`/revoke"`) {
		t.Fatalf("consent page:\n%s", b)
	}
	if b := body(t, f.do(req{path: "/ledger", cookie: sess})); !strings.Contains(b, "the application app_glucose") {
		t.Fatalf("ledger page does not name the app:\n%s", b)
	}
	if r := f.do(formPost(action, sess, "")); r.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke without csrf: %d", r.StatusCode)
	}
	other, otherCSRF := f.signIn(f.other.ID)
	if r := f.do(formPost(action, other, "csrf="+url.QueryEscape(otherCSRF))); r.StatusCode != 404 {
		t.Fatalf("another patient's revoke: %d", r.StatusCode)
	}
	r = f.do(formPost(action, sess, "csrf="+url.QueryEscape(csrf)))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", r.StatusCode, body(t, r))
	}
	if f.led.AppGrantActive(g.ID, f.patient.ID, "app_glucose", time.Now()) || f.grantState(g.ID).RevokeIndex == nil {
		t.Fatal("still active after revoke")
	}
	if got := a.revokes(); len(got) != 1 || got[0] != [2]string{f.patient.ID, "app_glucose"} {
		t.Fatalf("RevokeUserClient calls: %v", got)
	}
	if r := f.do(formPost(action, sess, "csrf="+url.QueryEscape(csrf))); r.StatusCode != http.StatusConflict {
		t.Fatalf("revoke again: %d", r.StatusCode)
	}
}

// TestAppGrantNotApprovedIsRevoked: when the provider cannot take the
// approval (the request expired meanwhile, say), the grant just made is
// revoked, so no grant stands that no app holds.
func TestAppGrantNotApprovedIsRevoked(t *testing.T) {
	f, a := newOAuthFixture(t)
	pk := f.softPasskey(f.patient.ID)
	a.add(appRequest("p1"))
	sess, csrf := f.signIn(f.patient.ID)
	ch, cer := f.beginCeremony(t, "/webauthn/oauth/begin", sess, csrf, appGrantForm{ID: "p1", Schemas: []string{"omh:heart-rate"}, ExpiresOn: time.Now().AddDate(0, 0, 7).Format(time.DateOnly)})
	a.mu.Lock()
	a.failNext = ErrAuthRequestGone
	a.mu.Unlock()
	r := f.jsonPost("/webauthn/oauth/finish", sess, csrf, cer, pk.ResponseJSON(pk.Sign(ch, consenttest.Options{})))
	if b := body(t, r); r.StatusCode != 400 || !strings.Contains(b, "oauth_request_gone") {
		t.Fatalf("finish: %d %s", r.StatusCode, b)
	}
	gs := f.appGrants(f.patient.ID)
	if len(gs) != 1 || gs[0].RevokeIndex == nil {
		t.Fatalf("app grants: %+v", gs)
	}
	if d := f.led.Decide(consent.Request{Clinician: f.clin.ID, Patient: f.patient.ID, Schema: "omh:heart-rate:2.0", Now: time.Now()}); d.Permit {
		t.Fatal("a clinician decision matched an app grant")
	}
}
