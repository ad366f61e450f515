package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/vault"
)

// beginCeremony posts a step-up ceremony's JSON begin (a grant, a key, a
// deletion) and returns the challenge and the ceremony cookie.
func (f *fixture) beginCeremony(t *testing.T, path, sess, csrf string, v any) ([]byte, string) {
	t.Helper()
	return ceremonyOf(t, f.jsonPost(path, sess, csrf, "", mustJSONBody(t, v)), true)
}

func newRecipient(t testing.TB) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

func TestClinicianKeyLimitMatchesAPI(t *testing.T) {
	if maxClinicianKeys != api.MaxClinicianKeys {
		t.Fatalf("web keeps %d keys, the API %d", maxClinicianKeys, api.MaxClinicianKeys)
	}
}

// TestClinicianKeyConfirmed: a key added on the keys page is confirmed by
// the clinician's passkey over the hash of the key's entry and a nonce;
// the ledger stores the assertion, the key is active at once, and verify
// checks it against the passkey's ledger entry.
func TestClinicianKeyConfirmed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.clin.ID)
	sess, csrf := f.signIn(f.clin.ID)
	hybrid, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for i, rcpt := range []string{newRecipient(t), hybrid.Recipient().String()} {
		ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, keyForm{Label: "Riverside hub", Recipient: " " + rcpt + "\n"})
		r := f.jsonPost("/webauthn/clinician/keys/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
		var res map[string]string
		if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil || res["redirect"] != "/clinician/keys?added=1" || res["fingerprint"] != consent.Fingerprint(rcpt) {
			t.Fatalf("key finish: %d %v", r.StatusCode, res)
		}
		ks := f.led.ClinicianKeys(f.clin.ID)
		if len(ks) != i+1 {
			t.Fatalf("%d keys", len(ks))
		}
		k := ks[i]
		if !k.Confirmed || !k.Active(time.Now()) || !k.ActiveFrom.Equal(k.Added) || k.Recipient != rcpt || k.Label != "Riverside hub" {
			t.Fatalf("key %+v", k)
		}
		e := f.entry(k.Index)
		recs := f.creds(f.clin.ID)
		as := e.Key.Assertion
		if as == nil || !bytes.Equal(as.CredentialID, a.ID) || as.PasskeyIndex != recs[0].LedgerIndex || e.Actor != f.clin.ID {
			t.Fatalf("stored assertion %+v", as)
		}
		if want, err := consent.KeyChallenge(e, as.Nonce); err != nil || !bytes.Equal(want, ch) {
			t.Fatal("the ceremony's challenge is not the hash of the stored key entry and nonce")
		}
	}
	res, err := f.led.Verify(nil)
	if err != nil || res.ConfirmedKeys != 2 {
		t.Fatalf("verify: %v (%d confirmed)", err, res.ConfirmedKeys)
	}
	b := body(t, f.do(req{path: "/clinician/keys?added=1", cookie: sess}))
	for _, want := range []string{"confirmed with your passkey", ">active<", "(post-quantum)", "age-keygen", "active now", `action="/clinician/keys/` + res0(f).Fingerprint + `/remove"`} {
		if !strings.Contains(b, want) {
			t.Fatalf("keys page lacks %q:\n%s", want, b)
		}
	}
}

func res0(f *fixture) consent.KeyState { return f.led.ClinicianKeys(f.clin.ID)[0] }

// TestClinicianKeyRefusals: a confirmation that does not verify, or is not
// the clinician's own, or lacks its CSRF token, registers nothing; a
// patient cannot reach the ceremony; bad forms are refused, and a pasted
// secret key is neither echoed nor logged.
func TestClinicianKeyRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.clin.ID)
	patientKey := f.softPasskey(f.patient.ID)
	sess, csrf := f.signIn(f.clin.ID)
	rcpt := newRecipient(t)
	form := keyForm{Label: "hub", Recipient: rcpt}
	n0 := f.size()
	stored := func(t *testing.T) {
		t.Helper()
		if n := f.size(); n != n0 || len(f.led.ClinicianKeys(f.clin.ID)) != 0 {
			t.Fatalf("a refused key changed the ledger: %d entries, was %d", n, n0)
		}
	}
	for _, tc := range forgedAssertions(a, patientKey, "a patient's passkey") {
		t.Run(tc.name, func(t *testing.T) {
			ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, form)
			if r := f.jsonPost("/webauthn/clinician/keys/finish", sess, csrf, cer, tc.sign(ch)); r.StatusCode != tc.status {
				t.Fatalf("finish: %d %s, want %d", r.StatusCode, body(t, r), tc.status)
			}
			stored(t)
		})
	}
	t.Run("csrf", func(t *testing.T) {
		b := mustJSONBody(t, form)
		if r := f.jsonPost("/webauthn/clinician/keys/begin", sess, "", "", b); r.StatusCode != 403 {
			t.Fatalf("begin without the token: %d", r.StatusCode)
		}
		ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, form)
		if r := f.jsonPost("/webauthn/clinician/keys/finish", sess, "", cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))); r.StatusCode != 403 {
			t.Fatalf("finish without the token: %d", r.StatusCode)
		}
		stored(t)
	})
	t.Run("finished by another session", func(t *testing.T) {
		ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, form)
		other, otherCSRF := f.signIn(f.clin.ID)
		if r := f.jsonPost("/webauthn/clinician/keys/finish", other, otherCSRF, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))); r.StatusCode != 400 {
			t.Fatalf("finish from another session: %d", r.StatusCode)
		}
		stored(t)
	})
	t.Run("a grant's ceremony cannot finish a key", func(t *testing.T) {
		ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, form)
		// The key ceremony's cookie at the grant's finish: not a grant
		// ceremony (and a clinician cannot reach it anyway).
		if r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))); r.StatusCode != 404 {
			t.Fatalf("grant finish: %d", r.StatusCode)
		}
		stored(t)
	})
	t.Run("patient session", func(t *testing.T) {
		ps, pcsrf := f.signIn(f.patient.ID)
		b := mustJSONBody(t, form)
		if r := f.jsonPost("/webauthn/clinician/keys/begin", ps, pcsrf, "", b); r.StatusCode != 404 {
			t.Fatalf("a patient's key begin: %d", r.StatusCode)
		}
		stored(t)
	})
	secret := "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	for _, tc := range []struct {
		name   string
		form   keyForm
		status int
		code   string
	}{
		{"no label", keyForm{Recipient: rcpt}, 400, "bad_label"},
		{"not a key", keyForm{Label: "hub", Recipient: "age1nope"}, 400, "bad_recipient"},
		{"an ssh key", keyForm{Label: "hub", Recipient: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"}, 400, "bad_recipient"},
		{"the secret key", keyForm{Label: "hub", Recipient: secret}, 400, "secret_key"},
		{"the secret key, lower case", keyForm{Label: "hub", Recipient: strings.ToLower(secret)}, 400, "secret_key"},
	} {
		t.Run("form: "+tc.name, func(t *testing.T) {
			b := mustJSONBody(t, tc.form)
			r := f.jsonPost("/webauthn/clinician/keys/begin", sess, csrf, "", b)
			raw := body(t, r)
			var e map[string]string
			if r.StatusCode != tc.status || json.Unmarshal([]byte(raw), &e) != nil || e["code"] != tc.code {
				t.Fatalf("%d %s, want %d %s", r.StatusCode, raw, tc.status, tc.code)
			}
			if strings.Contains(strings.ToUpper(raw), secret[16:]) {
				t.Fatal("the answer echoes the secret key")
			}
		})
	}
	if strings.Contains(strings.ToUpper(f.logs.String()), secret[16:]) {
		t.Fatal("the secret key reached the log")
	}
	t.Run("duplicate and limit", func(t *testing.T) {
		ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", sess, csrf, form)
		if r := f.jsonPost("/webauthn/clinician/keys/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))); r.StatusCode != 200 {
			t.Fatalf("finish: %d", r.StatusCode)
		}
		b := mustJSONBody(t, form)
		if r := f.jsonPost("/webauthn/clinician/keys/begin", sess, csrf, "", b); r.StatusCode != 409 {
			t.Fatalf("a duplicate: %d", r.StatusCode)
		}
		for range maxClinicianKeys - 1 {
			f.apiKey(t, f.clin.ID, newRecipient(t), time.Hour)
		}
		b = mustJSONBody(t, keyForm{Label: "one more", Recipient: newRecipient(t)})
		if r := f.jsonPost("/webauthn/clinician/keys/begin", sess, csrf, "", b); r.StatusCode != 409 {
			t.Fatalf("over the limit: %d", r.StatusCode)
		}
		if p := body(t, f.do(req{path: "/clinician/keys", cookie: sess})); strings.Contains(p, `id="key-form"`) {
			t.Fatal("the form is offered over the limit")
		}
	})
}

// apiKey registers a key as POST /api/v1/clinician/keys does: unconfirmed,
// waiting out a delay.
func (f *fixture) apiKey(t testing.TB, clinician, rcpt string, delay time.Duration) consent.KeyState {
	t.Helper()
	now := time.Now()
	e := consent.New(consent.KindClinicianKeyAdd, clinician, now)
	e.Clinician = clinician
	e.Key = &consent.ClinicianKey{Fingerprint: consent.Fingerprint(rcpt), Recipient: rcpt, Label: "api", ActiveFrom: now.Add(delay).UTC().Format(time.RFC3339Nano)}
	if _, err := f.led.Append(e); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.led.ClinicianKeys(clinician) {
		if k.Fingerprint == e.Key.Fingerprint && k.RemoveIndex == nil {
			return k
		}
	}
	t.Fatal("key not indexed")
	return consent.KeyState{}
}

// TestClinicianKeysPageAndRemove: the page's access rules, an API key shown
// pending and unconfirmed, and Remove (CSRF, another clinician's key,
// twice).
func TestClinicianKeysPageAndRemove(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	other, err := f.v.CreateUser(t.Context(), vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Other"})
	if err != nil {
		t.Fatal(err)
	}
	k := f.apiKey(t, f.clin.ID, newRecipient(t), 24*time.Hour)
	theirs := f.apiKey(t, other.ID, newRecipient(t), 0)
	sess, csrf := f.signIn(f.clin.ID)
	ps, pcsrf := f.signIn(f.patient.ID)

	// Who may open it.
	if r := f.do(req{path: "/clinician/keys"}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("signed out: %d", r.StatusCode)
	}
	if r := f.do(req{path: "/clinician/keys", cookie: ps}); r.StatusCode != 404 {
		t.Fatalf("a patient: %d", r.StatusCode)
	}
	tok, _, err := f.v.MintToken(t.Context(), f.clin.ID, vault.TokenClinician, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do(req{path: "/clinician/keys", headers: map[string]string{"Authorization": "Bearer " + tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("an API token instead of a session: %d", r.StatusCode)
	}
	r := f.do(req{path: "/clinician/keys", cookie: sess})
	b := body(t, r)
	checkHeaders(t, "keys page", r)
	if r.StatusCode != 200 || !strings.Contains(b, ">pending<") || !strings.Contains(b, "added with an API token") || !strings.Contains(b, k.Fingerprint) || strings.Contains(b, theirs.Fingerprint) {
		t.Fatalf("keys page %d:\n%s", r.StatusCode, b)
	}
	if !strings.Contains(b, `/static/clinician.js?v=`) || !strings.Contains(b, `/static/webauthn.js?v=`) {
		t.Fatal("the keys page does not load its scripts")
	}

	form := "application/x-www-form-urlencoded"
	same := map[string]string{"Origin": f.base, "Sec-Fetch-Site": "same-origin"}
	path := "/clinician/keys/" + k.Fingerprint + "/remove"
	for name, rq := range map[string]req{
		"missing token":   {method: "POST", path: path, cookie: sess, ctype: form, headers: same},
		"wrong token":     {method: "POST", path: path, cookie: sess, ctype: form, body: "csrf=nope", headers: same},
		"cross-site":      {method: "POST", path: path, cookie: sess, ctype: form, body: "csrf=" + url.QueryEscape(csrf), headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"patient's token": {method: "POST", path: path, cookie: sess, ctype: form, body: "csrf=" + url.QueryEscape(pcsrf), headers: same},
	} {
		if resp := f.do(rq); resp.StatusCode != 403 {
			t.Errorf("remove, %s: %d", name, resp.StatusCode)
		}
	}
	ok := "csrf=" + url.QueryEscape(csrf)
	if resp := f.do(req{method: "POST", path: path, cookie: ps, ctype: form, body: "csrf=" + url.QueryEscape(pcsrf), headers: same}); resp.StatusCode != 404 {
		t.Fatalf("a patient removing: %d", resp.StatusCode)
	}
	if resp := f.do(req{method: "POST", path: "/clinician/keys/" + theirs.Fingerprint + "/remove", cookie: sess, ctype: form, body: ok, headers: same}); resp.StatusCode != 404 {
		t.Fatalf("another clinician's key: %d", resp.StatusCode)
	}
	if resp := f.do(req{method: "POST", path: "/clinician/keys/nope/remove", cookie: sess, ctype: form, body: ok, headers: same}); resp.StatusCode != 404 {
		t.Fatalf("a bad fingerprint: %d", resp.StatusCode)
	}
	if ks := f.led.ClinicianKeys(f.clin.ID); ks[0].RemoveIndex != nil {
		t.Fatal("a refused remove removed the key")
	}
	resp := f.do(req{method: "POST", path: path, cookie: sess, ctype: form, body: ok, headers: same})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/clinician/keys?removed=1" {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	if ks := f.led.ClinicianKeys(f.clin.ID); ks[0].RemoveIndex == nil {
		t.Fatal("not removed")
	}
	if resp := f.do(req{method: "POST", path: path, cookie: sess, ctype: form, body: ok, headers: same}); resp.StatusCode != 404 {
		t.Fatalf("removing twice: %d", resp.StatusCode)
	}
	if st := f.led.ClinicianKeys(other.ID); st[0].RemoveIndex != nil {
		t.Fatal("another clinician's key was removed")
	}
	// Nothing of the page's keys is written outside the ledger.
	raw := f.dbFile()
	if bytes.Contains(raw, []byte(k.Recipient)) {
		t.Fatal("a recipient is in the database file in the clear")
	}
}
