package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/vault"
)

// softPasskey registers a software passkey for a user the way enrolment
// does (its passkey-registered ledger entry, then its record), so the
// handler tests can sign grants without a browser.
func (f *fixture) softPasskey(userID string) *consenttest.Authenticator {
	f.t.Helper()
	a := consenttest.New(f.srv.rpID, f.srv.origin)
	if recs := f.creds(userID); len(recs) > 0 {
		a.Handle = recs[0].Handle
	}
	cred := &webauthn.Credential{ID: a.ID, PublicKey: a.PublicKey(), Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: true}}
	if _, err := f.srv.register(f.t.Context(), ceremony{UserID: userID, Handle: a.Handle, Label: "Soft key"}, cred); err != nil {
		f.t.Fatal(err)
	}
	return a
}

// jsonPost posts JSON as the page's script does: from the vault's origin,
// with the session's CSRF token (when given) and the ceremony cookie
// (when given).
func (f *fixture) jsonPost(path, sess, csrf, cer string, body []byte) *http.Response {
	f.t.Helper()
	hr := httptest.NewRequest(http.MethodPost, f.base+path, bytes.NewReader(body))
	hr.RemoteAddr = "192.0.2.10:1234"
	f.asPageScript(hr, sess, csrf, cer)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, hr)
	return w.Result()
}

// asPageScript makes hr a JSON request as the page's script sends it: from
// the vault's origin, with the session's CSRF token and the session and
// ceremony cookies, each when given.
func (f *fixture) asPageScript(hr *http.Request, sess, csrf, cer string) {
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Origin", f.base)
	hr.Header.Set("Sec-Fetch-Site", "same-origin")
	if csrf != "" {
		hr.Header.Set("X-CSRF-Token", csrf)
	}
	if sess != "" {
		hr.AddCookie(&http.Cookie{Name: SessionCookie, Value: sess})
	}
	if cer != "" {
		hr.AddCookie(&http.Cookie{Name: CeremonyCookie, Value: cer})
	}
}

// beginGrant posts the consent form and returns the challenge and the
// ceremony cookie.
func (f *fixture) beginGrant(t *testing.T, sess, csrf string, form grantForm) ([]byte, string) {
	t.Helper()
	return f.beginCeremony(t, "/webauthn/grant/begin", sess, csrf, form)
}

// assertionCase is an answer to a step-up ceremony (a grant, a key) that
// the vault must refuse, with the status it refuses it with.
type assertionCase struct {
	name   string
	sign   func(ch []byte) []byte
	status int
}

// forgedAssertions are the answers every step-up's finish refuses: a bad
// signature, no user verification, another origin and no assertion at
// all, all from a (the signed-in user's passkey), and a good signature by
// other's, someone else's passkey.
func forgedAssertions(a, other *consenttest.Authenticator, otherName string) []assertionCase {
	return []assertionCase{
		{"bogus signature", func(ch []byte) []byte {
			s := a.Sign(ch, consenttest.Options{})
			s.Signature[len(s.Signature)-3] ^= 1
			return a.ResponseJSON(s)
		}, 401},
		{"user not verified", func(ch []byte) []byte { return a.ResponseJSON(a.Sign(ch, consenttest.Options{NoUV: true})) }, 401},
		{"another origin", func(ch []byte) []byte {
			return a.ResponseJSON(a.Sign(ch, consenttest.Options{Origin: "https://evil.example"}))
		}, 401},
		{otherName, func(ch []byte) []byte { return other.ResponseJSON(other.Sign(ch, consenttest.Options{})) }, 401},
		{"not an assertion", func([]byte) []byte { return []byte(`{"id":"x"}`) }, 400},
	}
}

func testForm(f *fixture) grantForm {
	return grantForm{Clinician: f.clin.ID, Schemas: []string{"omh:blood-glucose", "omh:heart-rate"}, DataFrom: "2026-01-01", DataTo: "2026-03-31",
		ExpiresOn: time.Now().AddDate(0, 1, 0).Format(time.DateOnly), Purpose: "TREAT"}
}

// TestGrantSignedWithPasskey: a grant made on the consent page is signed
// by the patient's passkey over the hash of the grant and a nonce; the
// ledger stores the assertion, marks the grant signed, and verify checks
// it against the passkey's ledger entry.
func TestGrantSignedWithPasskey(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.patient.ID)
	sess, csrf := f.signIn(f.patient.ID)
	ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
	r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
	var res map[string]string
	if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil || res["redirect"] != "/consent?granted=1" {
		t.Fatalf("grant finish: %d %v", r.StatusCode, res)
	}
	g, err := f.led.Grant(res["grant"])
	if err != nil || !g.Signed || g.Patient != f.patient.ID || g.Clinician != f.clin.ID || strings.Join(g.Schemas, ",") != "omh:blood-glucose,omh:heart-rate" {
		t.Fatalf("grant %+v (%v)", g, err)
	}
	// The days are the patient's (America/New_York): the window is
	// [1 Jan 00:00, 1 Apr 00:00) there, and the grant ends at the midnight
	// after its last day.
	ny := calendartest.Location(t, "America/New_York")
	exp, err := time.ParseInLocation(time.DateOnly, testForm(f).ExpiresOn, ny)
	if err != nil {
		t.Fatal(err)
	}
	if !g.DataFrom.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, ny)) || !g.DataTo.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, ny)) || !g.Expires.Equal(exp.AddDate(0, 0, 1)) {
		t.Fatalf("grant window %v to %v, expires %v", g.DataFrom, g.DataTo, g.Expires)
	}
	e := f.entry(g.Index)
	recs := f.creds(f.patient.ID)
	as := e.Grant.Assertion
	if as == nil || !bytes.Equal(as.CredentialID, a.ID) || as.PasskeyIndex != recs[0].LedgerIndex || len(as.Nonce) != consent.NonceSize {
		t.Fatalf("stored assertion %+v", as)
	}
	// The challenge the passkey signed is the grant's.
	if want, err := consent.GrantChallenge(e, as.Nonce); err != nil || !bytes.Equal(want, ch) {
		t.Fatal("the ceremony's challenge is not the hash of the stored grant and nonce")
	}
	res2, err := f.led.Verify(nil)
	if err != nil || res2.SignedGrants != 1 {
		t.Fatalf("verify: %v (%d signed)", err, res2.SignedGrants)
	}
	if recs[0].SignCount != 1 || recs[0].LastUsed.IsZero() {
		t.Fatalf("credential after signing: count %d", recs[0].SignCount)
	}
	// The consent page shows it, signed, with a Revoke button.
	b := body(t, f.do(req{path: "/consent", cookie: sess}))
	if !strings.Contains(b, "with your passkey") || !strings.Contains(b, `action="/consent/`+g.ID+`/revoke"`) || !strings.Contains(b, clinicianName) {
		t.Fatalf("consent page:\n%s", b)
	}
}

// TestGrantRefusals: a grant whose assertion does not verify, or that is
// not the patient's own, or that lacks its CSRF token, stores nothing.
func TestGrantRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.patient.ID)
	theirs := f.softPasskey(f.other.ID)
	sess, csrf := f.signIn(f.patient.ID)
	n0 := f.size()
	stored := func(t *testing.T) {
		t.Helper()
		if n := f.size(); n != n0 || len(f.grants(f.patient.ID)) != 0 {
			t.Fatalf("a refused grant changed the ledger: %d entries, was %d", n, n0)
		}
	}
	random := make([]byte, 32)
	rand.Read(random)
	cases := append(forgedAssertions(a, theirs, "another patient's passkey"),
		assertionCase{"another challenge", func([]byte) []byte { return a.ResponseJSON(a.Sign(random, consenttest.Options{})) }, 401},
		assertionCase{"a registration, not an assertion", func(ch []byte) []byte {
			return a.ResponseJSON(a.Sign(ch, consenttest.Options{Type: "webauthn.create"}))
		}, 401},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
			r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, tc.sign(ch))
			if r.StatusCode != tc.status {
				t.Fatalf("finish: %d %s, want %d", r.StatusCode, body(t, r), tc.status)
			}
			stored(t)
		})
	}

	t.Run("replayed", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		a := f.softPasskey(f.patient.ID)
		sess, csrf := f.signIn(f.patient.ID)
		ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
		resp := a.ResponseJSON(a.Sign(ch, consenttest.Options{}))
		if r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, resp); r.StatusCode != 200 {
			t.Fatalf("first: %d", r.StatusCode)
		}
		if r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, resp); r.StatusCode != 400 {
			t.Fatalf("replay: %d", r.StatusCode)
		}
		_, cer2 := f.beginGrant(t, sess, csrf, testForm(f))
		if r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer2, resp); r.StatusCode != 401 {
			t.Fatalf("old assertion, new challenge: %d", r.StatusCode)
		}
		if n := len(f.grants(f.patient.ID)); n != 1 {
			t.Fatalf("%d grants after a replay, want 1", n)
		}
	})

	t.Run("finished by another session", func(t *testing.T) {
		ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
		other, otherCSRF := f.signIn(f.patient.ID)
		r := f.jsonPost("/webauthn/grant/finish", other, otherCSRF, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
		if r.StatusCode != 400 {
			t.Fatalf("finish from another session: %d", r.StatusCode)
		}
		stored(t)
	})

	t.Run("csrf", func(t *testing.T) {
		b := mustJSONBody(t, testForm(f))
		if r := f.jsonPost("/webauthn/grant/begin", sess, "", "", b); r.StatusCode != 403 {
			t.Fatalf("begin without the token: %d", r.StatusCode)
		}
		_, otherCSRF := f.signIn(f.other.ID)
		if r := f.jsonPost("/webauthn/grant/begin", sess, otherCSRF, "", b); r.StatusCode != 403 {
			t.Fatalf("begin with another session's token: %d", r.StatusCode)
		}
		ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
		resp := a.ResponseJSON(a.Sign(ch, consenttest.Options{}))
		if r := f.jsonPost("/webauthn/grant/finish", sess, "", cer, resp); r.StatusCode != 403 {
			t.Fatalf("finish without the token: %d", r.StatusCode)
		}
		stored(t)
	})

	t.Run("no passkey", func(t *testing.T) {
		nf := newFixture(t, fixtureOpts{})
		ns, nc := nf.signIn(nf.patient.ID)
		b := mustJSONBody(t, testForm(nf))
		if r := nf.jsonPost("/webauthn/grant/begin", ns, nc, "", b); r.StatusCode != 409 {
			t.Fatalf("a grant without a passkey: %d", r.StatusCode)
		}
	})

	t.Run("clinician", func(t *testing.T) {
		c, ccsrf := f.signIn(f.clin.ID)
		b := mustJSONBody(t, testForm(f))
		if r := f.jsonPost("/webauthn/grant/begin", c, ccsrf, "", b); r.StatusCode != 404 {
			t.Fatalf("a clinician's grant begin: %d", r.StatusCode)
		}
	})

	bad := []struct {
		name   string
		change func(*grantForm)
		code   string
	}{
		{"no data types", func(g *grantForm) { g.Schemas = nil }, "bad_schemas"},
		{"unknown data type", func(g *grantForm) { g.Schemas = []string{"omh:mood"} }, "unknown_schema"},
		{"unknown clinician", func(g *grantForm) { g.Clinician = "cl_nobody" }, "unknown_clinician"},
		{"a patient as clinician", func(g *grantForm) { g.Clinician = f.other.ID }, "unknown_clinician"},
		{"ended already", func(g *grantForm) { g.ExpiresOn = "2020-01-01" }, "bad_expiry"},
		{"too long", func(g *grantForm) { g.ExpiresOn = "2099-01-01" }, "bad_expiry"},
		{"no end", func(g *grantForm) { g.ExpiresOn = "" }, "bad_date"},
		{"not a date", func(g *grantForm) { g.DataFrom = "01/02/2026" }, "bad_date"},
		{"window backwards", func(g *grantForm) { g.DataFrom, g.DataTo = "2026-05-01", "2026-04-01" }, "bad_window"},
		{"unknown purpose", func(g *grantForm) { g.Purpose = "FUN" }, "bad_purpose"},
	}
	for _, tc := range bad {
		t.Run("form: "+tc.name, func(t *testing.T) {
			form := testForm(f)
			tc.change(&form)
			b := mustJSONBody(t, form)
			r := f.jsonPost("/webauthn/grant/begin", sess, csrf, "", b)
			var e map[string]string
			if r.StatusCode != 400 || json.NewDecoder(r.Body).Decode(&e) != nil || e["code"] != tc.code || e["message"] == "" {
				t.Fatalf("%d %v, want 400 %s", r.StatusCode, e, tc.code)
			}
		})
	}
}

// TestConsentPageRevoke: the consent page lists active, expired and
// revoked grants; Revoke needs the CSRF token, and works only on the
// patient's own grants.
func TestConsentPageRevoke(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	now := time.Now()
	old := consent.New(consent.KindGrant, f.patient.ID, now.Add(-48*time.Hour))
	old.Patient, old.Clinician = f.patient.ID, f.clin.ID
	old.Grant = &consent.Grant{ID: "gr_expired", Schemas: []string{"omh:step-count"}, Expires: now.Add(-time.Hour).UTC().Format(time.RFC3339Nano), Purpose: "CAREMGT"}
	if _, err := f.led.Append(old); err != nil {
		t.Fatal(err)
	}
	f.grant(f.other.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[1] // the active one
	theirs := f.grants(f.other.ID)[0]
	sess, csrf := f.signIn(f.patient.ID)
	page := func() string { return body(t, f.do(req{path: "/consent", cookie: sess})) }
	b := page()
	for _, want := range []string{"Active grants", "Expired grants", "Steps", "Care management", "made without a passkey (with an API token, or seeded by the demo)", clinicianName, `action="/consent/` + g.ID + `/revoke"`} {
		if !strings.Contains(b, want) {
			t.Fatalf("consent page lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, `action="/consent/gr_expired/revoke"`) || strings.Contains(b, theirs.ID) {
		t.Fatal("a Revoke button on an expired grant, or another patient's grant shown")
	}
	form := "application/x-www-form-urlencoded"
	same := map[string]string{"Origin": f.base, "Sec-Fetch-Site": "same-origin"}
	for name, r := range map[string]req{
		"missing token": {method: "POST", path: "/consent/" + g.ID + "/revoke", cookie: sess, ctype: form, headers: same},
		"wrong token":   {method: "POST", path: "/consent/" + g.ID + "/revoke", cookie: sess, ctype: form, body: "csrf=nope", headers: same},
		"cross-site":    {method: "POST", path: "/consent/" + g.ID + "/revoke", cookie: sess, ctype: form, body: "csrf=" + url.QueryEscape(csrf), headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		if resp := f.do(r); resp.StatusCode != 403 {
			t.Errorf("revoke, %s: %d", name, resp.StatusCode)
		}
	}
	if st := f.grantState(g.ID); st.RevokeIndex != nil {
		t.Fatal("a refused revoke revoked the grant")
	}
	ok := "csrf=" + url.QueryEscape(csrf)
	if r := f.do(req{method: "POST", path: "/consent/" + theirs.ID + "/revoke", cookie: sess, ctype: form, body: ok, headers: same}); r.StatusCode != 404 {
		t.Fatalf("revoking another patient's grant: %d", r.StatusCode)
	}
	r := f.do(req{method: "POST", path: "/consent/" + g.ID + "/revoke", cookie: sess, ctype: form, body: ok, headers: same})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/consent?revoked=1" {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	st := f.grantState(g.ID)
	if st.RevokeIndex == nil {
		t.Fatal("not revoked")
	}
	if e := f.entry(*st.RevokeIndex); e.Kind != consent.KindRevoke || e.Actor != f.patient.ID {
		t.Fatalf("revoke entry %+v", e)
	}
	if b := page(); !strings.Contains(b, "Revoked grants") || strings.Contains(b, `action="/consent/`+g.ID+`/revoke"`) {
		t.Fatal("the revoked grant is not listed as revoked")
	}
	if r := f.do(req{method: "POST", path: "/consent/" + g.ID + "/revoke", cookie: sess, ctype: form, body: ok, headers: same}); r.StatusCode != http.StatusConflict {
		t.Fatalf("revoking twice: %d", r.StatusCode)
	}
	if st := f.grantState(theirs.ID); st.RevokeIndex != nil {
		t.Fatal("another patient's grant was revoked")
	}
}

// lookupFails is the vault's store with account lookups of one id failing,
// as they do when PostgreSQL is out of reach.
type lookupFails struct {
	vault.Backend
	id atomic.Pointer[string]
}

func (b *lookupFails) User(ctx context.Context, id string) ([]byte, error) {
	if p := b.id.Load(); p != nil && *p == id {
		return nil, errors.New("database unreachable")
	}
	return b.Backend.User(ctx, id)
}

// TestGrantClinicianLookupFails: a clinician the store cannot look up is
// the server's failure (503 unavailable, nothing granted), at the begin
// and at the finish, never 400 unknown_clinician or 409 grant_stale,
// which would tell the patient the clinician does not exist.
func TestGrantClinicianLookupFails(t *testing.T) {
	var lf *lookupFails
	f := newFixture(t, fixtureOpts{wrapBackend: func(b vault.Backend) vault.Backend { lf = &lookupFails{Backend: b}; return lf }})
	a := f.softPasskey(f.patient.ID)
	sess, csrf := f.signIn(f.patient.ID)
	n0 := f.size()
	unavailable := func(t *testing.T, r *http.Response) {
		t.Helper()
		var e map[string]string
		if r.StatusCode != 503 || json.NewDecoder(r.Body).Decode(&e) != nil || e["code"] != "unavailable" {
			t.Fatalf("%d %v, want 503 unavailable", r.StatusCode, e)
		}
		if n := f.size(); n != n0 {
			t.Fatalf("the ledger changed: %d entries, was %d", n, n0)
		}
	}
	clin := f.clin.ID

	lf.id.Store(&clin)
	unavailable(t, f.jsonPost("/webauthn/grant/begin", sess, csrf, "", mustJSONBody(t, testForm(f))))

	lf.id.Store(nil)
	ch, cer := f.beginGrant(t, sess, csrf, testForm(f))
	lf.id.Store(&clin)
	unavailable(t, f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))))
}
