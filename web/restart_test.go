package web

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/web/webstore"
)

// passkeySignIn signs in with a software passkey (the discoverable
// sign-in, over HTTP) and returns the session cookie and its CSRF token,
// read from the page as the browser's script reads it.
func (f *fixture) passkeySignIn(t *testing.T, a *consenttest.Authenticator) (cookie, csrf string) {
	t.Helper()
	ch, cer := challengeOf(t, f.jsonPost("/webauthn/signin/begin", "", "", "", []byte(`{}`)))
	r := f.jsonPost("/webauthn/signin/finish", "", "", cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in finish: %d %s", r.StatusCode, body(t, r))
	}
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after sign-in")
	}
	return cookie, f.pageCSRF(t, cookie)
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// pageCSRF returns the CSRF token a signed-in page carries.
func (f *fixture) pageCSRF(t *testing.T, cookie string) string {
	t.Helper()
	r := f.do(req{path: "/passkeys", cookie: cookie})
	b := body(t, r)
	m := csrfMeta.FindStringSubmatch(b)
	if r.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("passkeys page: %d, CSRF token found: %v", r.StatusCode, m != nil)
	}
	return m[1]
}

// secretForms are the ways a 256-bit base64url secret could be written
// into a file: as sent, its raw bytes, hex, and standard base64.
func secretForms(t *testing.T, s string) map[string][]byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %.6q… is not 32 base64url bytes: %v", s, err)
	}
	return map[string][]byte{
		"as sent": []byte(s), "raw": raw, "hex": []byte(hex.EncodeToString(raw)),
		"HEX": []byte(strings.ToUpper(hex.EncodeToString(raw))), "base64": []byte(base64.StdEncoding.EncodeToString(raw)),
	}
}

// checkNotInFile fails if any form of the secrets is in the file; it also
// checks the file holds the session's key (the id's SHA-256), so a scan
// that can see nothing does not pass.
func checkNotInFile(t *testing.T, path, sessionCookie string, secrets map[string]string) {
	t.Helper()
	db, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if h := hashOf(sessionCookie); !bytes.Contains(db, h[:]) {
		t.Fatal("the session's hashed id is not in the file: the scan sees nothing")
	}
	for name, s := range secrets {
		for form, b := range secretForms(t, s) {
			if bytes.Contains(db, b) {
				t.Errorf("the %s (%s) is in the database file", name, form)
			}
		}
	}
}

// TestRestartKeepsSessionsAndCeremonies: a session and ceremonies begun
// before a restart (the store closed, the same file opened by a new
// server) work after it, once; the session's id and CSRF token are
// nowhere in the file.
func TestRestartKeepsSessionsAndCeremonies(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.patient.ID)
	cookie, csrf := f.passkeySignIn(t, a)
	// Begun before the restart: a grant (a passkey step-up in the session)
	// and a second browser's sign-in.
	grantCh, grantCer := f.beginGrant(t, cookie, csrf, testForm(f))
	signCh, signCer := challengeOf(t, f.jsonPost("/webauthn/signin/begin", "", "", "", []byte(`{}`)))

	f.restart()

	if r := f.do(req{path: "/", cookie: cookie}); r.StatusCode != http.StatusOK {
		t.Fatalf("the session after a restart: %d", r.StatusCode)
	}
	if got := f.pageCSRF(t, cookie); got != csrf {
		t.Fatal("the session's CSRF token changed across the restart")
	}
	id := base64.RawURLEncoding.EncodeToString(a.ID)
	if r := f.do(req{method: http.MethodPost, path: "/passkeys/" + id + "/rename", cookie: cookie, ctype: formType,
		body: "label=Renamed&csrf=" + url.QueryEscape(csrf), headers: map[string]string{"Origin": f.base}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a form with the session's token after the restart: %d %s", r.StatusCode, body(t, r))
	}
	// The grant's ceremony finishes on the new server, once.
	grant := a.ResponseJSON(a.Sign(grantCh, consenttest.Options{}))
	r := f.jsonPost("/webauthn/grant/finish", cookie, csrf, grantCer, grant)
	var res map[string]string
	if r.StatusCode != http.StatusOK || json.NewDecoder(r.Body).Decode(&res) != nil {
		t.Fatalf("grant finish after the restart: %d", r.StatusCode)
	}
	if g, err := f.led.Grant(res["grant"]); err != nil || !g.Signed {
		t.Fatalf("grant %+v %v", g, err)
	}
	if r := f.jsonPost("/webauthn/grant/finish", cookie, csrf, grantCer, grant); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("the grant's ceremony finished twice: %d", r.StatusCode)
	}
	// So does the sign-in, into a new session.
	r = f.jsonPost("/webauthn/signin/finish", "", "", signCer, a.ResponseJSON(a.Sign(signCh, consenttest.Options{})))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in begun before the restart: %d %s", r.StatusCode, body(t, r))
	}
	var second string
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie {
			second = c.Value
		}
	}
	if second == "" || second == cookie {
		t.Fatal("no new session from the sign-in begun before the restart")
	}
	checkNotInFile(t, filepath.Join(f.dir, "vault.db"), cookie, map[string]string{"session id": cookie, "CSRF token": csrf, "second session id": second})

	// Sign-out still deletes it, restart or not.
	if r := f.post("/signout", cookie, "csrf="+url.QueryEscape(csrf)); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", r.StatusCode)
	}
	f.restart()
	if r := f.do(req{path: "/", cookie: cookie}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a signed-out session after a restart: %d", r.StatusCode)
	}
	if r := f.do(req{path: "/", cookie: second}); r.StatusCode != http.StatusOK {
		t.Fatalf("the other session after a second restart: %d", r.StatusCode)
	}
}

// TestSessionTouchGranularity: a request writes the session's last-seen
// time only when the stored one is a minute old or more; the idle timeout
// counts from the stored time, so it ends a session at most a minute
// early, never late.
func TestSessionTouchGranularity(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	cookie, _ := f.signIn(f.patient.ID)
	h := hashOf(cookie)
	start := f.clock.Now()
	stored := func() webstore.Session {
		t.Helper()
		row, err := f.srv.store.Session(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		return row
	}
	open := func(what string) {
		t.Helper()
		if r := f.do(req{path: "/passkeys", cookie: cookie}); r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", what, r.StatusCode)
		}
	}
	for _, tc := range []struct {
		advance  time.Duration
		lastSeen time.Duration // since start, after the request
	}{
		{0, 0},
		{30 * time.Second, 0},
		{29 * time.Second, 0}, // 59 s: still no write
		{time.Second, time.Minute},
		{59 * time.Second, time.Minute},
		{2 * time.Second, 2*time.Minute + time.Second},
		{58 * time.Second, 2*time.Minute + time.Second}, // used at +2m59s
	} {
		f.clock.Advance(tc.advance)
		open("a request")
		row := stored()
		if want := start.Add(tc.lastSeen); !row.LastSeen.Equal(want) {
			t.Fatalf("at +%v: last seen +%v, want +%v", f.clock.Now().Sub(start), row.LastSeen.Sub(start), tc.lastSeen)
		}
		if want := row.LastSeen.Add(DefaultIdleTimeout); !row.Expires.Equal(want) {
			t.Fatalf("expires %v after last seen, want the idle timeout", row.Expires.Sub(row.LastSeen))
		}
	}
	// Last written at +2m1s, last used at +2m59s: the idle timeout counts
	// from +2m1s, so the session ends 58 s before a full idle period.
	f.clock.Advance(DefaultIdleTimeout - 58*time.Second)
	if r := f.do(req{path: "/passkeys", cookie: cookie}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the idle timeout from the stored time: %d", r.StatusCode)
	}
	if _, err := f.srv.store.Session(t.Context(), h); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("an expired session is still stored: %v", err)
	}
}

// TestOldInvitesAdopted: an invite stored the way earlier versions did (its
// user and expiry only sealed) is completed when the server starts, so it
// still works, and is swept and forgotten with its user like any other.
func TestOldInvitesAdopted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	link, err := f.srv.NewInvite(f.patient.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := hashOf(strings.TrimPrefix(link, f.base+"/enrol/"))
	row, err := f.srv.store.Invite(t.Context(), h)
	if err != nil || row.UserID != f.patient.ID {
		t.Fatalf("invite row %+v %v", row, err)
	}
	row.UserID, row.Expires = "", time.Time{} // as an earlier version stored it
	if err := f.srv.store.ReleaseInvite(t.Context(), row); err != nil {
		t.Fatal(err)
	}
	junk := webstore.Invite{Hash: hashOf("junk"), Sealed: []byte("not sealed")}
	if err := f.srv.store.ReleaseInvite(t.Context(), junk); err != nil {
		t.Fatal(err)
	}
	f.restart()
	got, err := f.srv.store.Invite(t.Context(), h)
	if err != nil || got.UserID != f.patient.ID || got.Expires.IsZero() {
		t.Fatalf("the old invite after a start: %+v %v", got, err)
	}
	if _, err := f.srv.store.Invite(t.Context(), junk.Hash); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("an invite that does not open was kept: %v", err)
	}
	if !f.srv.InviteUsable(link, f.patient.ID) {
		t.Fatal("the adopted invite does not work")
	}
	if err := f.srv.ForgetUser(f.patient.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.store.Invite(t.Context(), h); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("ForgetUser left the adopted invite: %v", err)
	}
}
