package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/web/webstore"
)

// failureCounts counts what the server reports to OnSignInFailure.
type failureCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *failureCounts) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method]++
}

func (c *failureCounts) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// loopbackClient is an HTTP client whose connections leave from a
// loopback address of its own, 127.0.1.n: the server sees a client address
// of its own for each n, as it would for clients on the internet.
func loopbackClient(n int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(n))}}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// postJSON posts as the page's script does, over the fixture's listener,
// with the session and ceremony cookies when given.
func (f *fixture) postJSON(t *testing.T, c *http.Client, path, sess, csrf, cer string, body []byte) *http.Response {
	t.Helper()
	hr, err := http.NewRequest(http.MethodPost, "http://"+f.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	f.asPageScript(hr, sess, csrf, cer)
	r, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Body.Close() })
	return r
}

func cookieOf(r *http.Response, name string) string {
	for _, c := range r.Cookies() {
		if c.Name == name && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// TestSignInFloodLocksNobodyOut: sign-in begins from many client
// addresses, each within its rate limit and together far past the
// ceremony limit, leave the honest user's sign-in, enrolment and grant
// signing working; a replayed or expired sign-in is refused; refusals are
// counted and logged. Real server on loopback, real bbolt file.
func TestSignInFloodLocksNobodyOut(t *testing.T) {
	const (
		maxCeremonies = 8
		addrs         = 40
		perAddr       = 5 // within DefaultAuthPerMinute
	)
	counts := &failureCounts{}
	f := newFixture(t, fixtureOpts{listen: true, clock: true, cfgTweak: func(c *Config) {
		c.MaxCeremonies = maxCeremonies
		c.OnSignInFailure = counts.add
	}})
	a := f.softPasskey(f.patient.ID)

	// The flood: 200 unauthenticated begins from 40 addresses.
	var wg sync.WaitGroup
	statuses := make([]int, addrs*perAddr)
	for i := range addrs {
		wg.Go(func() {
			c := loopbackClient(10 + i)
			for j := range perAddr {
				hr, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+f.addr+"/webauthn/signin/begin", strings.NewReader(`{}`))
				if err != nil {
					panic(err)
				}
				hr.Header.Set("Content-Type", "application/json")
				hr.Header.Set("Origin", f.base)
				r, err := c.Do(hr)
				if err != nil {
					t.Errorf("flood request: %v", err)
					return
				}
				r.Body.Close()
				statuses[i*perAddr+j] = r.StatusCode
			}
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("flood begin %d (address %d): %d", i, i/perAddr, st)
		}
	}

	honest := loopbackClient(1)
	signIn := func() (ch []byte, cer string, assertion []byte) {
		t.Helper()
		ch, cer = challengeOf(t, f.postJSON(t, honest, "/webauthn/signin/begin", "", "", "", []byte(`{}`)))
		return ch, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))
	}

	// The honest user signs in. The sealed challenge is a modest cookie.
	_, cer, assertion := signIn()
	if len(cer) > 1024 {
		t.Fatalf("the sealed sign-in challenge is a %d-byte cookie", len(cer))
	}
	r := f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer, assertion)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in during the flood: %d %s", r.StatusCode, body(t, r))
	}
	sess := cookieOf(r, SessionCookie)
	if sess == "" {
		t.Fatal("no session cookie after sign-in")
	}
	f.pageCSRF(t, sess) // the session opens a page

	// The same sealed challenge and assertion again: refused, counted.
	r = f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer, assertion)
	if b := body(t, r); r.StatusCode != http.StatusBadRequest || !strings.Contains(b, `"no_ceremony"`) || cookieOf(r, SessionCookie) != "" {
		t.Fatalf("a replayed sign-in: %d %s", r.StatusCode, b)
	}
	if n := counts.get("bad_challenge"); n != 1 {
		t.Fatalf("bad_challenge counted %d times after a replay, want 1", n)
	}
	// So is a second assertion over the same challenge, freshly signed.
	ch2, cer2, _ := signIn()
	r = f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer2, a.ResponseJSON(a.Sign(ch2, consenttest.Options{})))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("a second sign-in: %d %s", r.StatusCode, body(t, r))
	}
	r = f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer2, a.ResponseJSON(a.Sign(ch2, consenttest.Options{})))
	if r.StatusCode != http.StatusBadRequest || cookieOf(r, SessionCookie) != "" {
		t.Fatalf("a new assertion over a spent challenge: %d %s", r.StatusCode, body(t, r))
	}
	if n := counts.get("bad_challenge"); n != 2 {
		t.Fatalf("bad_challenge counted %d times, want 2", n)
	}

	// A sealed challenge past its life: refused, counted, however good the
	// assertion.
	_, cer3, late := signIn()
	f.clock.Advance(SignInTimeout)
	r = f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer3, late)
	if r.StatusCode != http.StatusBadRequest || cookieOf(r, SessionCookie) != "" {
		t.Fatalf("an expired sign-in challenge: %d %s", r.StatusCode, body(t, r))
	}
	// A forged or truncated cookie likewise.
	_, cer4, forged := signIn()
	r = f.postJSON(t, honest, "/webauthn/signin/finish", "", "", cer4[:len(cer4)-4], forged)
	if r.StatusCode != http.StatusBadRequest || cookieOf(r, SessionCookie) != "" {
		t.Fatalf("a truncated sign-in cookie: %d %s", r.StatusCode, body(t, r))
	}
	if n := counts.get("bad_challenge"); n != 4 {
		t.Fatalf("bad_challenge counted %d times, want 4", n)
	}
	if sess = f.refreshSession(t, honest, a); sess == "" {
		t.Fatal("no session")
	}
	csrf := f.pageCSRF(t, sess)

	// Enrolment from an invite begins.
	link, err := f.srv.NewInvite(t.Context(), f.other.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(link, f.base+"/enrol/")
	if r := f.postJSON(t, loopbackClient(2), "/webauthn/enrol/begin", "", "", "", []byte(`{"token":"`+tok+`","label":"Phone"}`)); r.StatusCode != http.StatusOK || cookieOf(r, CeremonyCookie) == "" {
		t.Fatalf("enrolment begin during the flood: %d %s", r.StatusCode, body(t, r))
	}

	// The grant is signed.
	form := testForm(f)
	gch, gcer := ceremonyOf(t, f.postJSON(t, honest, "/webauthn/grant/begin", sess, csrf, "", mustJSONBody(t, form)), true)
	r = f.postJSON(t, honest, "/webauthn/grant/finish", sess, csrf, gcer, a.ResponseJSON(a.Sign(gch, consenttest.Options{})))
	var res map[string]string
	if r.StatusCode != http.StatusOK || json.NewDecoder(r.Body).Decode(&res) != nil {
		t.Fatalf("grant during the flood: %d", r.StatusCode)
	}
	if g := f.grantState(res["grant"]); !g.Signed {
		t.Fatalf("grant %+v not signed", g)
	}
	if n := counts.get("ceremony_full"); n != 0 {
		t.Fatalf("ceremony_full counted %d times before the table was full", n)
	}

	// The ceremonies of signed-in users have their own bound, which only
	// they reach: full, a begin is 503 busy, logged and counted.
	for i := range maxCeremonies {
		r := f.postJSON(t, honest, "/webauthn/grant/begin", sess, csrf, "", mustJSONBody(t, form))
		if i < maxCeremonies-1 && r.StatusCode != http.StatusOK {
			t.Fatalf("grant begin %d: %d %s", i, r.StatusCode, body(t, r))
		}
	}
	r = f.postJSON(t, honest, "/webauthn/grant/begin", sess, csrf, "", mustJSONBody(t, form))
	if b := body(t, r); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, `"busy"`) {
		t.Fatalf("a begin past the ceremony limit: %d %s", r.StatusCode, b)
	}
	if n := counts.get("ceremony_full"); n < 1 {
		t.Fatal("a full ceremony table is not counted")
	}
	if !strings.Contains(f.logs.String(), "too many in flight") {
		t.Fatal("a full ceremony table is not logged")
	}
	// Sign-in still works: it needs no room in that table.
	if f.refreshSession(t, honest, a) == "" {
		t.Fatal("no session")
	}
	for _, s := range []string{"challenge answered already", "sign-in challenge expired", "no sealed sign-in challenge"} {
		if !strings.Contains(f.logs.String(), s) {
			t.Errorf("the log does not say %q", s)
		}
	}
}

// refreshSession signs in again with a passkey over c and returns the new
// session.
func (f *fixture) refreshSession(t *testing.T, c *http.Client, a *consenttest.Authenticator) string {
	t.Helper()
	ch, cer := challengeOf(t, f.postJSON(t, c, "/webauthn/signin/begin", "", "", "", []byte(`{}`)))
	r := f.postJSON(t, c, "/webauthn/signin/finish", "", "", cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %s", r.StatusCode, body(t, r))
	}
	return cookieOf(r, SessionCookie)
}

// TestSpentChallengeOutlivesItsExpiry: a replay let in just before its
// challenge expires cannot win because a sweep at the expiry dropped the
// challenge's spent row meanwhile. The row outlives the challenge by
// spentChallengeGrace, and a spend at or past the expiry is refused.
func TestSpentChallengeOutlivesItsExpiry(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	cs := f.srv.cers
	c := signinChallenge{Data: webauthn.SessionData{Challenge: "answered-once"}, Expires: f.clock.Now().Add(SignInTimeout)}
	if err := cs.spendSignin(t.Context(), c); err != nil {
		t.Fatalf("the first answer: %v", err)
	}
	// The challenge expires; another sign-in's spend sweeps expired rows.
	f.clock.Advance(SignInTimeout + time.Second)
	other := signinChallenge{Data: webauthn.SessionData{Challenge: "someone else"}, Expires: f.clock.Now().Add(SignInTimeout)}
	if err := cs.spendSignin(t.Context(), other); err != nil {
		t.Fatalf("another sign-in: %v", err)
	}
	// The replay, let in by openSignin before the expiry, reaches its spend
	// now: refused.
	if err := cs.spendSignin(t.Context(), c); !errors.Is(err, errChallengeExpired) {
		t.Fatalf("a replay spending after the expiry: %v, want errChallengeExpired", err)
	}
	// And the row is still there, whoever asks the store.
	h := sha256.Sum256([]byte("jhvault/web-signin-spent/v1|" + c.Data.Challenge))
	now := f.clock.Now()
	err := cs.store.SpendChallenge(t.Context(), webstore.SpentChallenge{Hash: h, Created: now, Expires: now.Add(time.Minute)}, MaxSpentChallenges)
	if !errors.Is(err, webstore.ErrExists) {
		t.Fatalf("the spent row was swept at the challenge's expiry: spending it again gave %v", err)
	}
}
