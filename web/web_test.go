package web

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// checkHeaders asserts the security headers every response carries.
func checkHeaders(t *testing.T, what string, r *http.Response) {
	t.Helper()
	h := r.Header
	want := map[string]string{
		"Content-Security-Policy": csp,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	for _, part := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(h.Get("Content-Security-Policy"), part) {
			t.Errorf("%s: CSP lacks %s", what, part)
		}
	}
	if strings.Contains(h.Get("Content-Security-Policy"), "unsafe") {
		t.Errorf("%s: CSP allows something unsafe", what)
	}
	if h.Get("Strict-Transport-Security") != "" {
		t.Errorf("%s: HSTS sent over plain http", what)
	}
}

// TestSecurityHeadersEveryPage: CSP and the other headers on every page,
// signed in or not, and on errors and assets; no inline script or style
// in any page.
func TestSecurityHeadersEveryPage(t *testing.T) {
	f := newFixture(t, fixtureOpts{days: 2})
	f.grant(f.patient.ID, f.clin.ID)
	pc, _ := f.signIn(f.patient.ID)
	cc, _ := f.signIn(f.clin.ID)
	link, err := f.srv.NewInvite(t.Context(), f.other.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	lu := mustURL(t, link)
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\sstyle=|<style|\son[a-z]+=`)
	cases := []struct {
		name, path, cookie string
		status             int
	}{
		{"sign-in", "/signin", "", 200},
		{"home signed out", "/", "", 303},
		{"enrol", lu.Path, "", 200},
		{"bad invite", "/enrol/vi_nope", "", 410},
		{"dashboard", "/", pc, 200},
		{"passkeys", "/passkeys", pc, 200},
		{"clinician home", "/", cc, 200},
		{"clinician patients", "/patients", cc, 200},
		{"consent", "/consent", pc, 200},
		{"upload", "/upload", pc, 200},
		{"access log", "/access-log", pc, 200},
		{"clinician consent", "/consent", cc, 404},
		{"clinician upload", "/upload", cc, 404},
		{"clinician access log", "/access-log", cc, 404},
		{"not found", "/nope", "", 404},
		{"static css", "/static/app.css", "", 200},
		{"static js", "/static/webauthn.js", "", 200},
	}
	for _, tc := range cases {
		r := f.do(req{path: tc.path, cookie: tc.cookie})
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.status)
		}
		checkHeaders(t, tc.name, r)
		b := body(t, r)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") && r.StatusCode < 300 || r.StatusCode >= 400 {
			if m := inline.FindString(b); m != "" {
				t.Errorf("%s: inline script or style %q", tc.name, m)
			}
			if !strings.Contains(b, `<html lang="en">`) || !strings.Contains(b, `name="viewport"`) {
				t.Errorf("%s: page lacks lang or viewport", tc.name)
			}
			if strings.Contains(b, "http://") && !strings.Contains(b, `xmlns="http://www.w3.org/2000/svg"`) {
				t.Errorf("%s: page refers to another origin", tc.name)
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", tc.name, r.Header.Get("Cache-Control"))
			}
		}
	}
	// HSTS only when the browser reaches the vault over TLS.
	fs := newFixture(t, fixtureOpts{baseURL: "https://vault.example.org"})
	if r := fs.do(req{path: "/signin"}); !strings.HasPrefix(r.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("https base URL: no HSTS")
	}
}

func TestBaseURLChecks(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, bad := range []string{"http://127.0.0.1:8080", "http://[::1]:8080", "http://vault.example.org", "ftp://localhost", "https://localhost/vault"} {
		u := mustURL(t, bad)
		if _, err := New(Config{Vault: f.v, Ledger: f.led, Store: f.st.Web(), BaseURL: u}); err == nil {
			t.Errorf("%s accepted as a base URL", bad)
		}
	}
	u := mustURL(t, "https://vault.example.org")
	if s, err := New(Config{Vault: f.v, Ledger: f.led, Store: f.st.Web(), BaseURL: u}); err != nil || s.rpID != "vault.example.org" || s.origin != "https://vault.example.org" {
		t.Fatalf("https base URL: %v", err)
	}
}

// TestAuthRedirects: pages need a session; JSON and form endpoints refuse
// without one.
func TestAuthRedirects(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, p := range []string{"/", "/passkeys", "/patients", "/consent", "/upload", "/access-log"} {
		r := f.do(req{path: p})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
			t.Errorf("GET %s signed out: %d %q", p, r.StatusCode, r.Header.Get("Location"))
		}
		r = f.do(req{path: p, cookie: "forged-session-id"})
		if r.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s with a forged cookie: %d", p, r.StatusCode)
		}
	}
	r := f.do(req{method: "POST", path: "/signout", ctype: "application/x-www-form-urlencoded", body: "csrf=x"})
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /signout signed out: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/webauthn/passkeys/begin", ctype: "application/json", body: "{}", headers: map[string]string{"Origin": f.base}})
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /webauthn/passkeys/begin signed out: %d", r.StatusCode)
	}
	// Signed in, the sign-in page sends you home.
	c, _ := f.signIn(f.patient.ID)
	if r := f.do(req{path: "/signin", cookie: c}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Errorf("GET /signin signed in: %d", r.StatusCode)
	}
}

// TestCSRF: every state-changing request of a session needs its token and
// must come from the vault's origin.
func TestCSRF(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c, tok := f.signIn(f.patient.ID)
	_, otherTok := f.signIn(f.other.ID)
	id := base64.RawURLEncoding.EncodeToString(f.addCred(f.patient.ID, "Phone"))
	f.addCred(f.patient.ID, "Laptop")
	form := "application/x-www-form-urlencoded"
	posts := []struct{ path, body string }{
		{"/signout", ""},
		{"/passkeys/" + id + "/rename", "label=New"},
		{"/passkeys/" + id + "/remove", ""},
	}
	for _, p := range posts {
		for name, b := range map[string]string{
			"missing token":             p.body,
			"wrong token":               p.body + "&csrf=" + strings.Repeat("A", len(tok)),
			"another session's token":   p.body + "&csrf=" + otherTok,
			"empty token":               p.body + "&csrf=",
			"token in the query":        p.body,
			"right token, other Origin": p.body + "&csrf=" + url.QueryEscape(tok),
		} {
			path := p.path
			hdr := map[string]string{}
			if name == "token in the query" {
				path += "?csrf=" + url.QueryEscape(tok)
			}
			if name == "right token, other Origin" {
				hdr["Origin"] = "https://evil.example"
			}
			r := f.do(req{method: "POST", path: path, cookie: c, ctype: form, body: b, headers: hdr})
			if r.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s, %s: %d, want 403", p.path, name, r.StatusCode)
			}
		}
		r := f.do(req{method: "POST", path: p.path, cookie: c, ctype: form, body: p.body + "&csrf=" + url.QueryEscape(tok), headers: map[string]string{"Sec-Fetch-Site": "cross-site"}})
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s cross-site: %d", p.path, r.StatusCode)
		}
	}
	// Nothing changed.
	recs := f.creds(f.patient.ID)
	if len(recs) != 2 || recs[0].Label != "Phone" {
		t.Fatalf("a refused request changed the passkeys: %+v", recs)
	}
	if _, ok := f.srv.sessions.get(t.Context(), c); !ok {
		t.Fatal("a refused sign-out ended the session")
	}
	// JSON endpoints: the header token, and the Origin.
	json := "application/json"
	r := f.do(req{method: "POST", path: "/webauthn/passkeys/begin", cookie: c, ctype: json, body: "{}", headers: map[string]string{"Origin": f.base}})
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("passkeys/begin without a token: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/webauthn/passkeys/begin", cookie: c, ctype: json, body: "{}", headers: map[string]string{"X-CSRF-Token": tok}})
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("passkeys/begin without Origin: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/webauthn/passkeys/begin", cookie: c, ctype: "text/plain", body: "{}", headers: map[string]string{"X-CSRF-Token": tok, "Origin": f.base}})
	if r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("passkeys/begin as text/plain: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/webauthn/signin/begin", ctype: json, body: "{}", headers: map[string]string{"Origin": "https://evil.example"}})
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("signin/begin from another origin: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/webauthn/passkeys/begin", cookie: c, ctype: json, body: "{}", headers: map[string]string{"X-CSRF-Token": tok, "Origin": f.base}})
	if r.StatusCode != http.StatusOK {
		t.Errorf("passkeys/begin with token and Origin: %d %s", r.StatusCode, body(t, r))
	}
	// With the right token, it works.
	r = f.do(req{method: "POST", path: "/passkeys/" + id + "/rename", cookie: c, ctype: form, body: "label=Renamed&csrf=" + url.QueryEscape(tok), headers: map[string]string{"Origin": f.base, "Sec-Fetch-Site": "same-origin"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("rename with the token: %d %s", r.StatusCode, body(t, r))
	}
	recs = f.creds(f.patient.ID)
	if recs[0].Label != "Renamed" {
		t.Fatalf("rename did not happen: %q", recs[0].Label)
	}
}

// TestCookieFlags: the session and ceremony cookies are __Host-, Secure,
// HttpOnly, SameSite=Strict, Path=/.
func TestCookieFlags(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r := f.do(req{method: "POST", path: "/webauthn/signin/begin", ctype: "application/json", body: "{}", headers: map[string]string{"Origin": f.base}})
	if r.StatusCode != 200 {
		t.Fatalf("signin/begin: %d %s", r.StatusCode, body(t, r))
	}
	check := func(c *http.Cookie) {
		t.Helper()
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s: %+v", c.Name, c)
		}
	}
	var cer *http.Cookie
	for _, c := range r.Cookies() {
		check(c)
		if c.Name == CeremonyCookie {
			cer = c
		}
	}
	if cer == nil || cer.MaxAge <= 0 || cer.MaxAge > 300 {
		t.Fatalf("ceremony cookie: %+v", cer)
	}
	// The session cookie, as startSession writes it.
	w := &recorder{h: http.Header{}}
	hr := httptest.NewRequest("GET", f.base+"/", nil)
	if err := f.srv.startSession(w, hr, session{UserID: f.patient.ID, Role: "patient"}); err != nil {
		t.Fatal(err)
	}
	resp := http.Response{Header: w.h}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != SessionCookie {
		t.Fatalf("session cookies: %+v", cs)
	}
	check(cs[0])
	if raw := w.h.Get("Set-Cookie"); !strings.Contains(raw, "SameSite=Strict") || !strings.Contains(raw, "Secure") || !strings.Contains(raw, "HttpOnly") {
		t.Fatalf("Set-Cookie %q", raw)
	}
	if len(cs[0].Value) < 43 {
		t.Fatalf("session id too short: %d characters", len(cs[0].Value))
	}
	// The store keeps the session under the hash of its id, and the id
	// itself nowhere.
	if _, err := f.srv.store.Session(t.Context(), hashOf(cs[0].Value)); err != nil {
		t.Fatalf("no session under the id's hash: %v", err)
	}
	db, err := os.ReadFile(filepath.Join(f.dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(cs[0].Value)) {
		t.Fatal("the session id is in the database file")
	}
}

type recorder struct{ h http.Header }

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(int)             {}

// TestSessionTimeoutsAndSignOut: idle and absolute timeouts end a session;
// after sign-out the old cookie is worthless; a new sign-in gets a new id.
func TestSessionTimeoutsAndSignOut(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	c, _ := f.signIn(f.patient.ID)
	if r := f.do(req{path: "/passkeys", cookie: c}); r.StatusCode != 200 {
		t.Fatalf("fresh session: %d", r.StatusCode)
	}
	f.clock.Advance(29 * time.Minute)
	if r := f.do(req{path: "/passkeys", cookie: c}); r.StatusCode != 200 {
		t.Fatalf("after 29 idle minutes: %d", r.StatusCode)
	}
	f.clock.Advance(30 * time.Minute)
	if r := f.do(req{path: "/passkeys", cookie: c}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("after 30 idle minutes: %d", r.StatusCode)
	}
	// Absolute: active every 20 minutes, still ends at 12 hours.
	c, _ = f.signIn(f.patient.ID)
	for range 35 {
		f.clock.Advance(20 * time.Minute)
		if r := f.do(req{path: "/passkeys", cookie: c}); r.StatusCode != 200 {
			t.Fatalf("active session ended early")
		}
	}
	f.clock.Advance(20 * time.Minute) // 12h
	if r := f.do(req{path: "/passkeys", cookie: c}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("session outlived 12 hours: %d", r.StatusCode)
	}
	// Sign-out.
	c, tok := f.signIn(f.patient.ID)
	r := f.do(req{method: "POST", path: "/signout", cookie: c, ctype: "application/x-www-form-urlencoded", body: "csrf=" + url.QueryEscape(tok)})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?bye=1" {
		t.Fatalf("sign-out: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cleared bool
	for _, ck := range r.Cookies() {
		cleared = cleared || ck.Name == SessionCookie && ck.MaxAge < 0
	}
	if !cleared {
		t.Fatal("sign-out did not clear the cookie")
	}
	for _, p := range []string{"/", "/passkeys"} {
		if r := f.do(req{path: p, cookie: c}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s after sign-out: %d", p, r.StatusCode)
		}
	}
	if r := f.do(req{method: "POST", path: "/signout", cookie: c, ctype: "application/x-www-form-urlencoded", body: "csrf=" + url.QueryEscape(tok)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST with the old session: %d", r.StatusCode)
	}
	// A new sign-in replaces the browser's session with a new id.
	old, _ := f.signIn(f.patient.ID)
	w := &recorder{h: http.Header{}}
	hr := httptest.NewRequest("GET", f.base+"/", nil)
	hr.AddCookie(&http.Cookie{Name: SessionCookie, Value: old})
	if err := f.srv.startSession(w, hr, session{UserID: f.patient.ID, Role: "patient"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.srv.sessions.get(t.Context(), old); ok {
		t.Fatal("the session before sign-in survived it")
	}
}

// TestRateLimit: the sign-in and enrolment endpoints allow perMin requests
// a minute per address, then 429 until the bucket refills.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, perMin: 5})
	hdr := map[string]string{"Origin": f.base}
	for i := range 5 {
		r := f.do(req{method: "POST", path: "/webauthn/signin/begin", ctype: "application/json", body: "{}", headers: hdr})
		if r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, r.StatusCode)
		}
	}
	for _, p := range []req{
		{method: "POST", path: "/webauthn/signin/begin", ctype: "application/json", body: "{}", headers: hdr},
		{method: "POST", path: "/webauthn/signin/finish", ctype: "application/json", body: "{}", headers: hdr},
		{method: "POST", path: "/webauthn/enrol/begin", ctype: "application/json", body: "{}", headers: hdr},
		{path: "/enrol/vi_guess"},
	} {
		r := f.do(p)
		if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s over the limit: %d", p.path, r.StatusCode)
		}
		checkHeaders(t, "429", r)
	}
	// Other pages are not limited.
	if r := f.do(req{path: "/signin"}); r.StatusCode != 200 {
		t.Fatalf("sign-in page limited: %d", r.StatusCode)
	}
	// Another address has its own budget.
	hr := req{method: "POST", path: "/webauthn/signin/begin", ctype: "application/json", body: "{}", headers: hdr}
	f.h = addrHandler(f.h, "198.51.100.7:999")
	if r := f.do(hr); r.StatusCode != 200 {
		t.Fatalf("another address: %d", r.StatusCode)
	}
	f.h = f.srv.Handler()
	f.clock.Advance(13 * time.Second) // 5 a minute: one more after 12 s
	if r := f.do(hr); r.StatusCode != 200 {
		t.Fatalf("after refill: %d", r.StatusCode)
	}
	if r := f.do(hr); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second after refill: %d", r.StatusCode)
	}
}

// TestRateLimitTrustedProxies: over a real loopback connection, the
// limiter keys on X-Forwarded-For only when the peer is a trusted proxy
// (Config.TrustedProxies, as for the API); otherwise on the peer.
func TestRateLimitTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    int // the second forwarded address's first request
	}{
		{"no trusted proxies", nil, http.StatusTooManyRequests},
		{"an untrusted peer", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, http.StatusTooManyRequests},
		{"a trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{listen: true, perMin: 3, cfgTweak: func(c *Config) { c.TrustedProxies = tc.trusted }})
			begin := func(xff string) int {
				t.Helper()
				r, err := http.NewRequest("POST", "http://"+f.addr+"/webauthn/signin/begin", strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Origin", f.base)
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("X-Forwarded-For", xff)
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for i := range 3 {
				if st := begin("198.51.100.1"); st != http.StatusOK {
					t.Fatalf("request %d: %d", i, st)
				}
			}
			if st := begin("198.51.100.1"); st != http.StatusTooManyRequests {
				t.Fatalf("fourth request: %d, want 429", st)
			}
			if st := begin("198.51.100.2"); st != tc.want {
				t.Fatalf("another forwarded address: %d, want %d", st, tc.want)
			}
		})
	}
}

func addrHandler(h http.Handler, addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { r.RemoteAddr = addr; h.ServeHTTP(w, r) })
}

// TestInvites: a link works until it expires or is used; the token is
// stored only hashed and sealed; making one is a ledger entry.
func TestInvites(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	n0 := f.size()
	link, err := f.srv.NewInvite(t.Context(), f.patient.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, f.base+"/enrol/"+InvitePrefix) {
		t.Fatalf("link %q", link)
	}
	token := strings.TrimPrefix(link, f.base+"/enrol/")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, InvitePrefix))
	if err != nil || len(raw) != 32 {
		t.Fatalf("token carries %d bytes: %v", len(raw), err)
	}
	if n1 := f.size(); n1 != n0+1 {
		t.Fatalf("no ledger entry for the invite")
	}
	e := f.entry(n0)
	if e.Kind != consent.KindAdmin || e.Admin.Action != "invite" || e.Patient != f.patient.ID {
		t.Fatalf("invite entry %+v", e)
	}
	if _, err := f.srv.NewInvite(t.Context(), "pt_nobody", 0); err == nil {
		t.Fatal("invite for an unknown user")
	}
	if _, err := f.srv.NewInvite(t.Context(), f.patient.ID, 31*24*time.Hour); err == nil {
		t.Fatal("invite beyond the longest lifetime")
	}
	path := "/enrol/" + token
	r := f.do(req{path: path})
	if b := body(t, r); r.StatusCode != 200 || !strings.Contains(b, "Create your passkey") || !strings.Contains(b, patientName) {
		t.Fatalf("valid invite page: %d", r.StatusCode)
	}
	begin := func(tok string) int {
		r := f.do(req{method: "POST", path: "/webauthn/enrol/begin", ctype: "application/json", body: `{"token":"` + tok + `","label":"Phone"}`, headers: map[string]string{"Origin": f.base}})
		return r.StatusCode
	}
	if st := begin(token); st != 200 {
		t.Fatalf("begin with a valid invite: %d", st)
	}
	if st := begin(token + "x"); st != http.StatusGone {
		t.Fatalf("begin with a wrong token: %d", st)
	}
	// Expiry: 72 hours by default.
	f.clock.Advance(72*time.Hour - time.Second)
	if r := f.do(req{path: path}); r.StatusCode != 200 {
		t.Fatalf("invite before expiry: %d", r.StatusCode)
	}
	f.clock.Advance(time.Second)
	r = f.do(req{path: path})
	if b := body(t, r); r.StatusCode != http.StatusGone || !strings.Contains(b, "expired or has been used") {
		t.Fatalf("expired invite: %d", r.StatusCode)
	}
	if st := begin(token); st != http.StatusGone {
		t.Fatalf("begin with an expired invite: %d", st)
	}
	// Single use: a claim takes it; a second claim fails; release returns it.
	link2, err := f.srv.NewInvite(t.Context(), f.patient.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok2 := strings.TrimPrefix(link2, f.base+"/enrol/")
	h := hashOf(tok2)
	_, row, err := f.srv.invites.claim(t.Context(), h, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.srv.invites.claim(t.Context(), h, f.clock.Now()); err == nil {
		t.Fatal("an invite was claimed twice")
	}
	if r := f.do(req{path: "/enrol/" + tok2}); r.StatusCode != http.StatusGone {
		t.Fatalf("used invite page: %d", r.StatusCode)
	}
	if st := begin(tok2); st != http.StatusGone {
		t.Fatalf("begin with a used invite: %d", st)
	}
	if err := f.srv.invites.release(t.Context(), row); err != nil {
		t.Fatal(err)
	}
	if r := f.do(req{path: "/enrol/" + tok2}); r.StatusCode != 200 {
		t.Fatalf("released invite: %d", r.StatusCode)
	}
	// The token, its raw bytes and the names are nowhere on disk or in
	// the logs.
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	db := f.dbFile()
	for _, secret := range []string{token, tok2, string(raw), patientName, clinicianName, "Phone"} {
		if bytes.Contains(db, []byte(secret)) {
			t.Errorf("%.12q… is on disk", secret)
		}
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("%.12q… is in the logs", secret)
		}
	}
}

// TestOtherUsersPages: a passkey of another user can't be renamed or
// removed by URL; a patient can't open the clinician page; the last
// passkey can't be removed.
func TestOtherUsersPages(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	theirs := base64.RawURLEncoding.EncodeToString(f.addCred(f.other.ID, "Their phone"))
	f.addCred(f.other.ID, "Their laptop")
	mine := base64.RawURLEncoding.EncodeToString(f.addCred(f.patient.ID, "My phone"))
	c, tok := f.signIn(f.patient.ID)
	form := "application/x-www-form-urlencoded"
	for _, p := range []string{"/passkeys/" + theirs + "/rename", "/passkeys/" + theirs + "/remove", "/passkeys/!!!/remove"} {
		r := f.do(req{method: "POST", path: p, cookie: c, ctype: form, body: "label=Mine&csrf=" + url.QueryEscape(tok)})
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, r.StatusCode)
		}
	}
	recs := f.creds(f.other.ID)
	if len(recs) != 2 || recs[0].Label != "Their phone" {
		t.Fatalf("another user's passkeys changed: %+v", recs)
	}
	r := f.do(req{path: "/passkeys", cookie: c})
	if b := body(t, r); strings.Contains(b, "Their phone") || !strings.Contains(b, "My phone") {
		t.Fatal("passkeys page shows another user's passkey")
	}
	if r := f.do(req{path: "/patients", cookie: c}); r.StatusCode != http.StatusNotFound {
		t.Fatalf("patient opened /patients: %d", r.StatusCode)
	}
	r = f.do(req{method: "POST", path: "/passkeys/" + mine + "/remove", cookie: c, ctype: form, body: "csrf=" + url.QueryEscape(tok)})
	if b := body(t, r); r.StatusCode != http.StatusConflict || !strings.Contains(b, "only passkey") {
		t.Fatalf("removing the last passkey: %d", r.StatusCode)
	}
}

// TestClinicianPatients: a clinician sees the patients who granted them
// access, and no one else.
func TestClinicianPatients(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	c, _ := f.signIn(f.clin.ID)
	r := f.do(req{path: "/", cookie: c})
	b := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, patientName) || !strings.Contains(b, ">Blood glucose<") || !strings.Contains(b, ">Treatment<") {
		t.Fatalf("clinician home: %d\n%s", r.StatusCode, b)
	}
	// The same words as the patient's consent page: no raw schema id or
	// purpose code, and the grant said to be made without a passkey.
	if strings.Contains(b, "omh:blood-glucose") || strings.Contains(b, "TREAT") || !strings.Contains(b, "made without a passkey (with an API token, or seeded by the demo)") {
		t.Fatalf("clinician home shows codes, or a wrong signature note:\n%s", b)
	}
	if strings.Contains(b, otherName) {
		t.Fatal("a patient without a grant is listed")
	}
}

// TestDashboard: the chart, the IG figures, the latest readings.
func TestDashboard(t *testing.T) {
	f := newFixture(t, fixtureOpts{days: 14})
	c, _ := f.signIn(f.patient.ID)
	start := time.Now()
	r := f.do(req{path: "/", cookie: c})
	took := time.Since(start)
	b := body(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("dashboard: %d", r.StatusCode)
	}
	for _, want := range []string{`<svg class="chart"`, `class="band"`, "Time in range", "GMI", "Mean glucose", "(CV)", "Heart rate", "72 beats/min", "118/76 mmHg", "5234 steps", patientName} {
		if !strings.Contains(b, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`<path class="line" d="([^"]*)"`).FindStringSubmatch(b); m == nil || strings.Count(m[1], "M") != 2 {
		t.Error("the chart joins readings across the sensor gap")
	}
	if len(b) > 200<<10 {
		t.Errorf("dashboard is %d KB, over 200 KB", len(b)>>10)
	}
	t.Logf("dashboard: %d KB in %v (cold)", len(b)>>10, took)
}

// TestSessionsEndWithTheirUserAndPasskey: a patient deleted by the admin
// (not through the web UI) is signed out at once; removing a passkey ends
// the sessions that signed in with it, and only those.
func TestSessionsEndWithTheirUserAndPasskey(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	lost := f.addCred(f.patient.ID, "lost phone")
	kept := f.addCred(f.patient.ID, "laptop")
	idLost, _, err := f.srv.sessions.create(t.Context(), session{UserID: f.patient.ID, Role: vault.RolePatient, Credential: lost})
	if err != nil {
		t.Fatal(err)
	}
	idKept, sk, err := f.srv.sessions.create(t.Context(), session{UserID: f.patient.ID, Role: vault.RolePatient, Credential: kept})
	if err != nil {
		t.Fatal(err)
	}
	csrf := sk.CSRF
	if r := f.do(req{path: "/", cookie: idLost}); r.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: %d", r.StatusCode)
	}
	r := f.do(req{method: http.MethodPost, path: "/passkeys/" + base64.RawURLEncoding.EncodeToString(lost) + "/remove", cookie: idKept,
		body: "csrf=" + csrf, ctype: "application/x-www-form-urlencoded", headers: map[string]string{"Origin": f.base}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", r.StatusCode, body(t, r))
	}
	if r := f.do(req{path: "/", cookie: idLost}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a session of the removed passkey still works: %d", r.StatusCode)
	}
	// The removal is on the record, for vault ledger verify.
	n := f.size()
	if e, _, err := f.led.Entry(n - 1); err != nil || e.Kind != consent.KindPasskeyRemoved || e.Patient != f.patient.ID || !bytes.Equal(e.Passkey.CredentialID, lost) {
		t.Fatalf("last ledger entry %+v %v, want the passkey's removal", e, err)
	}
	if r := f.do(req{path: "/", cookie: idKept}); r.StatusCode != http.StatusOK {
		t.Fatalf("the other session ended too: %d", r.StatusCode)
	}
	// Deleted elsewhere: the next request is signed out.
	if err := consent.DeletePatient(t.Context(), f.v, f.led, "admin", f.patient.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := f.do(req{path: "/consent", cookie: idKept}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a deleted patient's session still opens pages: %d", r.StatusCode)
	}
}

// TestSensitiveActionsNeedRecentSignIn: making a token or recovery codes,
// and adding or removing a passkey, work soon after sign-in and are refused
// later in the same session, so a browser left open gives no lasting way in.
func TestSensitiveActionsNeedRecentSignIn(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	c, csrf := f.signIn(f.patient.ID)
	form := func(path string) *http.Response {
		return f.do(req{method: http.MethodPost, path: path, cookie: c, body: "csrf=" + csrf + "&days=30",
			ctype: "application/x-www-form-urlencoded", headers: map[string]string{"Origin": f.base}})
	}
	if r := form("/tokens"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a token right after sign-in: %d", r.StatusCode)
	}
	f.clock.Advance(RecentSignIn + time.Minute)
	for _, path := range []string{"/tokens", "/account/recovery-codes", "/passkeys/AAAA/remove"} {
		r := form(path)
		if b := body(t, r); r.StatusCode != http.StatusForbidden || !strings.Contains(b, "recent sign-in") {
			t.Errorf("%s later in the session: %d", path, r.StatusCode)
		}
	}
	r := f.do(req{method: http.MethodPost, path: "/webauthn/passkeys/begin", cookie: c, ctype: "application/json", body: "{}",
		headers: map[string]string{"Origin": f.base, "X-CSRF-Token": csrf}})
	if b := body(t, r); r.StatusCode != http.StatusForbidden || !strings.Contains(b, "sign_in_again") {
		t.Errorf("adding a passkey later in the session: %d %s", r.StatusCode, b)
	}
	// The page itself still opens: only the action waits for a new sign-in.
	if r := f.do(req{path: "/tokens", cookie: c}); r.StatusCode != http.StatusOK {
		t.Errorf("the tokens page: %d", r.StatusCode)
	}
}

// TestSignInFailuresReported: refused sign-ins reach OnSignInFailure (the
// admin's metric), by method.
func TestSignInFailuresReported(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	f := newFixture(t, fixtureOpts{perMin: 3, cfgTweak: func(c *Config) {
		c.OnSignInFailure = func(m string) { mu.Lock(); got[m]++; mu.Unlock() }
	}})
	for range 4 {
		f.do(req{method: http.MethodPost, path: "/signin/recovery", body: "code=aaaaa-bbbbb-ccccc-ddddd-eeeeee",
			ctype: "application/x-www-form-urlencoded", headers: map[string]string{"Origin": f.base}})
	}
	mu.Lock()
	defer mu.Unlock()
	if got["recovery_code"] != 3 || got["rate_limited"] != 1 {
		t.Fatalf("reported %v, want 3 recovery_code and 1 rate_limited", got)
	}
}
