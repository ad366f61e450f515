package web

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/internal/clientgone/clientgonetest"
	"github.com/jupyterhealth/vault/web/webstore"
)

// canary is in the text of every failure these tests inject: the log must
// hold it, and no response may.
const canary = "canary-b7e2c9-internal-detail"

var errCanary = errors.New("disk on fire: " + canary)

// failingStore is the web's real store (bbolt) that fails one chosen
// method, once armed, with errCanary.
type failingStore struct {
	Store
	method atomic.Value // string: the method that fails
}

func (s *failingStore) arm(method string) { s.method.Store(method) }

func (s *failingStore) fails(method string) bool {
	m, _ := s.method.Load().(string)
	return m == method
}

func (s *failingStore) Invite(ctx context.Context, h [32]byte) (webstore.Invite, error) {
	if s.fails("Invite") {
		return webstore.Invite{}, errCanary
	}
	return s.Store.Invite(ctx, h)
}

func (s *failingStore) Session(ctx context.Context, h [32]byte) (webstore.Session, error) {
	if s.fails("Session") {
		return webstore.Session{}, errCanary
	}
	return s.Store.Session(ctx, h)
}

func (s *failingStore) DeleteSession(ctx context.Context, h [32]byte) error {
	if s.fails("DeleteSession") {
		return errCanary
	}
	return s.Store.DeleteSession(ctx, h)
}

func (s *failingStore) PutCeremony(ctx context.Context, c webstore.Ceremony, max int) error {
	if s.fails("PutCeremony") {
		return errCanary
	}
	return s.Store.PutCeremony(ctx, c, max)
}

func (s *failingStore) SpendChallenge(ctx context.Context, sp webstore.SpentChallenge, max int) error {
	if s.fails("SpendChallenge") {
		return errCanary
	}
	return s.Store.SpendChallenge(ctx, sp, max)
}

func (s *failingStore) Credentials(ctx context.Context, userID string) ([]webstore.Credential, error) {
	if s.fails("Credentials") {
		return nil, errCanary
	}
	return s.Store.Credentials(ctx, userID)
}

func (s *failingStore) UseRecoveryCode(ctx context.Context, h [32]byte, open func([]byte) (string, error)) (string, error) {
	if s.fails("UseRecoveryCode") {
		return "", errCanary
	}
	return s.Store.UseRecoveryCode(ctx, h, open)
}

func (s *failingStore) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []webstore.RecoveryCode) error {
	if s.fails("ReplaceRecoveryCodes") {
		return errCanary
	}
	return s.Store.ReplaceRecoveryCodes(ctx, userID, codes)
}

// failingLedger is the ledger's real store that, once armed, refuses
// every transaction with errCanary: a failed append or read on a healthy
// disk.
type failingLedger struct {
	consent.Store
	armed atomic.Bool
}

func (s *failingLedger) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	if s.armed.Load() {
		return errCanary
	}
	return s.Store.Update(ctx, fn)
}

func (s *failingLedger) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	if s.armed.Load() {
		return errCanary
	}
	return s.Store.View(ctx, fn)
}

// errFixture is a listening fixture whose web store and ledger store can
// be made to fail.
type errFixture struct {
	*fixture
	store  *failingStore
	ledger *failingLedger
}

func newErrFixture(t *testing.T, perMin int) *errFixture {
	t.Helper()
	ef := &errFixture{store: &failingStore{}}
	ef.fixture = newFixture(t, fixtureOpts{listen: true, clock: true, perMin: perMin,
		cfgTweak: func(c *Config) {
			ef.store.Store = c.Store
			c.Store = ef.store
		},
		wrapLedger: func(s consent.Store) consent.Store {
			ef.ledger = &failingLedger{Store: s}
			return ef.ledger
		},
	})
	return ef
}

// call is one request to the fixture's server over loopback HTTP.
type call struct {
	method, path string
	cookie       string // the session cookie's value
	csrf         string // sent in the form, or as X-CSRF-Token without one
	form         url.Values
	json         string // a JSON body (Content-Type application/json)
	origin       bool   // send the vault's own Origin
	headers      map[string]string
}

func (ef *errFixture) send(t *testing.T, c call) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	ctype := ""
	switch {
	case c.form != nil:
		if c.csrf != "" && !c.form.Has("csrf") {
			c.form.Set("csrf", c.csrf)
		}
		body, ctype = strings.NewReader(c.form.Encode()), "application/x-www-form-urlencoded"
	case c.json != "":
		body, ctype = strings.NewReader(c.json), "application/json"
	}
	req, err := http.NewRequest(c.method, ef.base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.origin {
		req.Header.Set("Origin", ef.base)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.cookie})
	}
	if c.csrf != "" && c.form == nil {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestEveryFailurePath drives each way a web request can fail on the real
// server (bbolt file, loopback HTTP) and checks what the person is told:
// the status, the stable code (JSON's "code", or the error page's), the
// message; that no response holds the text of an internal failure; and that
// the log holds its cause, under the route's pattern.
func TestEveryFailurePath(t *testing.T) {
	const (
		page = iota // the error page
		form        // the form again, with its message
		js          // {code, message}
	)
	type tc struct {
		name   string
		perMin int
		// prepare makes the state and arms any failure, and returns the
		// request.
		prepare func(t *testing.T, f *errFixture) call
		status  int
		code    string
		as      int
		message string // a part of the message the person sees
		cause   bool   // an injected failure: the log must hold errCanary
	}
	patient := func(f *errFixture) (string, string) { return f.signIn(f.patient.ID) }
	jsonCall := func(path, body string) call { return call{method: "POST", path: path, json: body, origin: true} }
	for _, c := range []tc{
		// The guards.
		{name: "no such page", prepare: func(t *testing.T, f *errFixture) call { return call{method: "GET", path: "/no/such/page"} },
			status: 404, code: "not_found", as: page, message: "There is no page at this address"},
		{name: "signed out, a form", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/tokens", form: url.Values{"days": {"180"}}, origin: true}
		}, status: 401, code: "signed_out", as: page, message: "Your session has ended"},
		{name: "signed out, JSON", prepare: func(t *testing.T, f *errFixture) call { return jsonCall("/webauthn/grant/begin", `{}`) },
			status: 401, code: "signed_out", as: js, message: "Your session has ended"},
		{name: "session expired", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.clock.Advance(DefaultIdleTimeout + time.Minute)
			return call{method: "POST", path: "/tokens", cookie: cookie, csrf: csrf, origin: true, form: url.Values{"days": {"180"}}}
		}, status: 401, code: "signed_out", as: page, message: "Your session has ended"},
		{name: "no CSRF token", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			return call{method: "POST", path: "/tokens", cookie: cookie, origin: true, form: url.Values{"days": {"180"}}}
		}, status: 403, code: "csrf", as: page, message: "could not be verified"},
		{name: "cross-site form", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			return call{method: "POST", path: "/tokens", cookie: cookie, form: url.Values{"days": {"180"}, "csrf": {csrf}}, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}}
		}, status: 403, code: "csrf", as: page, message: "could not be verified"},
		{name: "no CSRF token, JSON", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			c := jsonCall("/webauthn/grant/begin", `{}`)
			c.cookie = cookie
			return c
		}, status: 403, code: "csrf", as: js, message: "could not be verified"},
		{name: "another origin, JSON", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/webauthn/signin/begin", json: `{}`, headers: map[string]string{"Origin": "https://evil.example"}}
		}, status: 403, code: "bad_origin", as: js, message: "did not come from the vault's own pages"},
		{name: "not JSON", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/webauthn/signin/begin", origin: true, form: url.Values{"a": {"b"}}}
		}, status: 415, code: "bad_content_type", as: js, message: "application/json"},
		{name: "recovery sign-in without Origin", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/signin/recovery", form: url.Values{"code": {"x"}}}
		}, status: 403, code: "bad_origin", as: page, message: "did not come from the vault's own pages"},
		{name: "a clinician's page, as a patient", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			return call{method: "GET", path: "/clinician/keys", cookie: cookie}
		}, status: 404, code: "not_found", as: page, message: "There is no page at this address"},
		{name: "a patient's JSON, as a clinician", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := f.signIn(f.clin.ID)
			c := jsonCall("/webauthn/grant/begin", `{}`)
			c.cookie, c.csrf = cookie, csrf
			return c
		}, status: 404, code: "not_found", as: js, message: "Only a patient can do this."},
		{name: "not a recent sign-in", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.clock.Advance(RecentSignIn + time.Minute)
			return call{method: "POST", path: "/tokens", cookie: cookie, csrf: csrf, origin: true, form: url.Values{"days": {"180"}}}
		}, status: 403, code: "sign_in_again", as: page, message: "needs a recent sign-in"},
		{name: "rate limited, a page", perMin: 1, prepare: func(t *testing.T, f *errFixture) call {
			f.send(t, call{method: "GET", path: "/enrol/vi_first"})
			return call{method: "GET", path: "/enrol/vi_second"}
		}, status: 429, code: "rate_limited", as: page, message: "Too many attempts"},
		{name: "rate limited, JSON", perMin: 1, prepare: func(t *testing.T, f *errFixture) call {
			f.send(t, jsonCall("/webauthn/signin/begin", `{}`))
			return jsonCall("/webauthn/signin/begin", `{}`)
		}, status: 429, code: "rate_limited", as: js, message: "Too many attempts"},

		// The handlers' refusals.
		{name: "not the JSON expected", prepare: func(t *testing.T, f *errFixture) call { return jsonCall("/webauthn/enrol/begin", `{"token":`) },
			status: 400, code: "bad_json", as: js, message: "not the JSON this endpoint expects"},
		{name: "a bad passkey name", prepare: func(t *testing.T, f *errFixture) call {
			return jsonCall("/webauthn/enrol/begin", `{"token":"vi_x","label":"a\u0007b"}`)
		}, status: 400, code: "bad_label", as: js, message: "A passkey's name is at most"},
		{name: "unknown invite, the page", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "GET", path: "/enrol/vi_unknown-token-4242"}
		},
			status: 410, code: "invite_invalid", as: page, message: "expired or has been used"},
		{name: "unknown invite, JSON", prepare: func(t *testing.T, f *errFixture) call {
			return jsonCall("/webauthn/enrol/begin", `{"token":"vi_unknown-token-4242","label":""}`)
		}, status: 410, code: "invite_invalid", as: js, message: "expired or has been used"},
		{name: "expired invite", prepare: func(t *testing.T, f *errFixture) call {
			link, err := f.srv.NewInvite(t.Context(), f.patient.ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(2 * time.Hour)
			return call{method: "GET", path: strings.TrimPrefix(link, f.base)}
		}, status: 410, code: "invite_invalid", as: page, message: "expired or has been used"},
		{name: "no ceremony to finish", prepare: func(t *testing.T, f *errFixture) call { return jsonCall("/webauthn/signin/finish", `{}`) },
			status: 400, code: "no_ceremony", as: js, message: "expired or was already used"},
		{name: "a form too big to read", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/signin/recovery", origin: true, form: url.Values{"code": {strings.Repeat("a", maxFormBody)}}}
		}, status: 400, code: "bad_form", as: page, message: "The form could not be read"},
		{name: "a wrong recovery code", prepare: func(t *testing.T, f *errFixture) call {
			return call{method: "POST", path: "/signin/recovery", origin: true, form: url.Values{"code": {"aaaaa-aaaaa-aaaaa-aaaaa-aaaaaa"}}}
		}, status: 401, as: form, message: "That recovery code did not work"},
		{name: "a lifetime not offered", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			return call{method: "POST", path: "/tokens", cookie: cookie, csrf: csrf, origin: true, form: url.Values{"days": {"7"}}}
		}, status: 400, as: form, message: "Choose how long the token lasts from the list."},

		// The web store fails.
		{name: "session store down, a page", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			f.store.arm("Session")
			return call{method: "GET", path: "/consent", cookie: cookie}
		}, status: 503, code: "unavailable", as: page, message: "could not check your sign-in", cause: true},
		{name: "session store down, JSON", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.store.arm("Session")
			c := jsonCall("/webauthn/grant/begin", `{}`)
			c.cookie, c.csrf = cookie, csrf
			return c
		}, status: 503, code: "unavailable", as: js, message: "could not check your sign-in", cause: true},
		{name: "invite store down", prepare: func(t *testing.T, f *errFixture) call {
			f.store.arm("Invite")
			return call{method: "GET", path: "/enrol/vi_some-token-4242"}
		}, status: 503, code: "unavailable", as: page, message: "could not be checked just now", cause: true},
		{name: "ceremony store down", prepare: func(t *testing.T, f *errFixture) call {
			link, err := f.srv.NewInvite(t.Context(), f.patient.ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f.store.arm("PutCeremony")
			return jsonCall("/webauthn/enrol/begin", `{"token":"`+strings.TrimPrefix(link, f.base+"/enrol/")+`","label":""}`)
		}, status: 500, code: "internal", as: js, message: "Something went wrong on the vault", cause: true},
		{name: "spent-challenge store down", prepare: func(t *testing.T, f *errFixture) call {
			a := f.softPasskey(f.patient.ID)
			ch, cer := challengeOf(t, f.jsonPost("/webauthn/signin/begin", "", "", "", []byte(`{}`)))
			f.store.arm("SpendChallenge")
			c := jsonCall("/webauthn/signin/finish", string(a.ResponseJSON(a.Sign(ch, consenttest.Options{}))))
			c.headers = map[string]string{"Cookie": CeremonyCookie + "=" + cer}
			return c
		}, status: 500, code: "internal", as: js, message: "Something went wrong on the vault", cause: true},
		{name: "passkeys unreadable", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			f.store.arm("Credentials")
			return call{method: "GET", path: "/passkeys", cookie: cookie}
		}, status: 500, code: "unavailable", as: page, message: "Your passkeys could not be read", cause: true},
		{name: "recovery codes unreadable", prepare: func(t *testing.T, f *errFixture) call {
			f.store.arm("UseRecoveryCode")
			return call{method: "POST", path: "/signin/recovery", origin: true, form: url.Values{"code": {"aaaaa-aaaaa-aaaaa-aaaaa-aaaaaa"}}}
		}, status: 503, code: "unavailable", as: page, message: "could not check the code", cause: true},
		{name: "recovery codes not stored", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.store.arm("ReplaceRecoveryCodes")
			return call{method: "POST", path: "/account/recovery-codes", cookie: cookie, csrf: csrf, origin: true}
		}, status: 503, code: "unavailable", as: page, message: "could not be made just now", cause: true},
		{name: "sign-out not stored", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.store.arm("DeleteSession")
			return call{method: "POST", path: "/signout", cookie: cookie, csrf: csrf, origin: true}
		}, status: 503, code: "unavailable", as: page, message: "could not be signed out", cause: true},

		// The ledger fails.
		{name: "revoke not recorded", prepare: func(t *testing.T, f *errFixture) call {
			f.grant(f.patient.ID, f.clin.ID)
			gs := f.grants(f.patient.ID)
			if len(gs) != 1 {
				t.Fatalf("grants: %+v", gs)
			}
			cookie, csrf := patient(f)
			f.ledger.armed.Store(true)
			return call{method: "POST", path: "/consent/" + gs[0].ID + "/revoke", cookie: cookie, csrf: csrf, origin: true}
		}, status: 503, code: "unavailable", as: page, message: "could not be revoked just now", cause: true},
		{name: "token mint not recorded", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := patient(f)
			f.ledger.armed.Store(true)
			return call{method: "POST", path: "/tokens", cookie: cookie, csrf: csrf, origin: true, form: url.Values{"days": {"180"}}}
		}, status: 503, code: "unavailable", as: page, message: "The token could not be made", cause: true},
		{name: "ledger unreadable", prepare: func(t *testing.T, f *errFixture) call {
			cookie, _ := patient(f)
			f.grant(f.patient.ID, f.clin.ID) // an entry past the newest checkpoint
			f.ledger.armed.Store(true)
			return call{method: "GET", path: "/ledger", cookie: cookie}
		}, status: 500, code: "unavailable", as: page, message: "The ledger could not be read", cause: true},
		{name: "key removal not recorded", prepare: func(t *testing.T, f *errFixture) call {
			cookie, csrf := f.signIn(f.clin.ID)
			f.ledger.armed.Store(true)
			return call{method: "POST", path: "/clinician/keys/fp_0123456789abcdef0123456789abcdef/remove", cookie: cookie, csrf: csrf, origin: true}
		}, status: 503, code: "unavailable", as: page, message: "could not be removed just now", cause: true},

		// A template fails.
		{name: "template failure", prepare: func(t *testing.T, f *errFixture) call {
			f.srv.pages.pages["signin"] = failingTemplate(t)
			return call{method: "GET", path: "/signin"}
		}, status: 500, code: "internal", as: page, message: "Something went wrong on the vault", cause: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newErrFixture(t, c.perMin)
			req := c.prepare(t, f)
			resp, b := f.send(t, req)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			switch c.as {
			case js:
				var e errorBody
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("Content-Type %q: %s", ct, b)
				}
				if err := json.Unmarshal([]byte(b), &e); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
				if e.Code != c.code || !strings.Contains(e.Message, c.message) {
					t.Fatalf("got %+v, want code %s and a message with %q", e, c.code, c.message)
				}
			case page:
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Fatalf("Content-Type %q: %s", ct, b)
				}
				if !strings.Contains(b, "<code>"+c.code+"</code>") || !strings.Contains(b, template.HTMLEscapeString(c.message)) {
					t.Fatalf("the error page does not show code %s and %q:\n%s", c.code, c.message, b)
				}
			case form:
				if !strings.Contains(b, `role="alert">`+template.HTMLEscapeString(c.message)) || !strings.Contains(b, "<form") {
					t.Fatalf("the form does not show %q:\n%s", c.message, b)
				}
			}
			if strings.Contains(b, canary) || strings.Contains(b, "disk on fire") {
				t.Fatalf("the response holds the internal error's text:\n%s", b)
			}
			logs := f.logs.String()
			if c.cause != strings.Contains(logs, canary) {
				t.Fatalf("the log holds the cause: %v, want %v\n%s", !c.cause, c.cause, logs)
			}
			if c.as != form && !strings.Contains(logs, `"code":"`+c.code+`"`) {
				t.Fatalf("no log line with code %s:\n%s", c.code, logs)
			}
			for _, secret := range []string{req.cookie, req.csrf, "unknown-token-4242", "some-token-4242", patientName, clinicianName} {
				if secret != "" && strings.Contains(logs, secret) {
					t.Fatalf("the log holds a secret or a name (%q):\n%s", secret, logs)
				}
			}
		})
	}
}

// failingTemplate is a page template whose execution fails with errCanary.
func failingTemplate(t *testing.T) *template.Template {
	t.Helper()
	tpl, err := template.New("layout.html").Funcs(template.FuncMap{"boom": func() (string, error) { return "", errCanary }}).Parse(`<p>{{boom}}</p>`)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestErrorPageFailure: when the error page's own template fails too, the
// answer is still a 500 with the generic message, as plain text, and the
// log holds both causes.
func TestErrorPageFailure(t *testing.T) {
	f := newErrFixture(t, 0)
	f.srv.pages.pages["signin"] = failingTemplate(t)
	f.srv.pages.pages["error"] = failingTemplate(t)
	resp, b := f.send(t, call{method: "GET", path: "/signin"})
	if resp.StatusCode != 500 || strings.TrimSpace(b) != errInternal.Message || strings.Contains(b, canary) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	logs := f.logs.String()
	if strings.Count(logs, canary) != 2 || !strings.Contains(logs, "web error page failed") {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestErrorAfterResponseBegan: an error a handler returns after it has
// begun its response is logged, and nothing is written over the response.
func TestErrorAfterResponseBegan(t *testing.T) {
	f := newErrFixture(t, 0)
	rt := route{pattern: "GET /half", who: anyone, h: func(w http.ResponseWriter, r *http.Request, _ session) error {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "half a page")
		return errCanary
	}}
	m := http.NewServeMux()
	m.Handle(rt.pattern, f.srv.serve(rt))
	hs := httptest.NewServer(m)
	defer hs.Close()
	f.base = hs.URL
	resp, b := f.send(t, call{method: "GET", path: "/half"})
	if resp.StatusCode != 200 || b != "half a page" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "after its response began") || !strings.Contains(logs, canary) {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestRoutesGuarded: every route that changes something is guarded
// against cross-site requests: with the session's CSRF token when it has a
// session, by its Origin when it has none.
func TestRoutesGuarded(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	seen := map[string]bool{}
	for _, rt := range f.srv.routeTable() {
		if seen[rt.pattern] {
			t.Errorf("%s twice", rt.pattern)
		}
		seen[rt.pattern] = true
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			if rt.pattern != "/" {
				t.Errorf("%s has no method", rt.pattern)
			}
			continue
		}
		if method == "GET" {
			if rt.guards&(csrf|csrfMultipart|origin|jsonAPI|recent) != 0 {
				t.Errorf("%s: a GET needs none of these guards", rt.pattern)
			}
			continue
		}
		switch {
		case rt.who >= signedIn && rt.guards&(csrf|csrfMultipart) == 0:
			t.Errorf("%s changes something in a session without a CSRF check", rt.pattern)
		case rt.who < signedIn && rt.guards&(origin|jsonAPI) == 0:
			t.Errorf("%s changes something without a session and without an Origin check", rt.pattern)
		}
		if (rt.guards&jsonAPI != 0) != strings.HasPrefix(path, "/webauthn/") {
			t.Errorf("%s: JSON exactly on /webauthn/", rt.pattern)
		}
	}
}

// TestClientGoneIsNotAnError: a page whose client closes the connection
// while the handler waits on the store is logged as abandoned
// (client_closed_request, 499), not as the vault's failure (it was a "web
// request failed" ERROR line and a 500).
func TestClientGoneIsNotAnError(t *testing.T) {
	f := newErrFixture(t, 0)
	a := clientgonetest.New()
	rt := route{pattern: "GET /gone", who: anyone, h: func(_ http.ResponseWriter, r *http.Request, _ session) error {
		return a.Wait(r)
	}}
	a.Run(t, f.srv.serve(rt))
	logs := f.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, `"code":"client_closed_request"`) {
		t.Fatalf("log:\n%s", logs)
	}
}
