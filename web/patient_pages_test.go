package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/vault"
)

const formType = "application/x-www-form-urlencoded"

// post sends a form from the vault's own page with a session's token.
func (f *fixture) post(path, cookie, form string) *http.Response {
	f.t.Helper()
	return f.do(req{method: "POST", path: path, cookie: cookie, ctype: formType, body: form})
}

// TestPatientPagesAccess: the new patient pages need a session, are
// patient-only, and every state change needs the session's CSRF token.
func TestPatientPagesAccess(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	pc, ptok := f.signIn(f.patient.ID)
	cc, ctok := f.signIn(f.clin.ID)
	for _, p := range []string{"/ledger", "/tokens", "/account"} {
		if r := f.do(req{path: p}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
			t.Errorf("GET %s signed out: %d", p, r.StatusCode)
		}
		if r := f.do(req{path: p, cookie: cc}); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s as a clinician: %d", p, r.StatusCode)
		}
		r := f.do(req{path: p, cookie: pc})
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
		checkHeaders(t, p, r)
		b := body(t, r)
		inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\sstyle=|<style|\son[a-z]+=`)
		if m := inline.FindString(b); m != "" {
			t.Errorf("%s: inline script or style %q", p, m)
		}
		if strings.Contains(b, "http://") {
			t.Errorf("%s: page refers to another origin", p)
		}
		if !strings.Contains(b, `aria-current="page"`) {
			t.Errorf("%s: not marked in the nav", p)
		}
	}
	for _, p := range []string{"/signin/recovery", "/account/deleted"} {
		if r := f.do(req{path: p}); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
	}
	posts := []string{"/tokens", "/tokens/abc/revoke", "/account/recovery-codes"}
	for _, p := range posts {
		// Signed out.
		if r := f.post(p, "", "days=180"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s signed out: %d", p, r.StatusCode)
		}
		// No token, another session's token, a token in the query, another origin.
		for _, tc := range []req{
			{method: "POST", path: p, cookie: pc, ctype: formType, body: "days=180"},
			{method: "POST", path: p, cookie: pc, ctype: formType, body: "days=180&csrf=" + url.QueryEscape(ctok)},
			{method: "POST", path: p + "?csrf=" + url.QueryEscape(ptok), cookie: pc, ctype: formType, body: "days=180"},
			{method: "POST", path: p, cookie: pc, ctype: formType, body: "days=180&csrf=" + url.QueryEscape(ptok), headers: map[string]string{"Origin": "https://evil.example"}},
			{method: "POST", path: p, cookie: pc, ctype: formType, body: "days=180&csrf=" + url.QueryEscape(ptok), headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		} {
			if r := f.do(tc); r.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s without a valid CSRF token: %d", tc.path, r.StatusCode)
			}
		}
		// A clinician, with a valid token: 404.
		if r := f.post(p, cc, "days=180&csrf="+url.QueryEscape(ctok)); r.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s as a clinician: %d", p, r.StatusCode)
		}
	}
	if toks := f.tokens(f.patient.ID); len(toks) != 0 {
		t.Fatal("a refused request made a token")
	}
	if n := f.codesLeft(f.patient.ID); n != 0 {
		t.Fatal("a refused request made recovery codes")
	}
	// The JSON ceremony endpoints of account deletion.
	for _, p := range []string{"/webauthn/account/delete/begin", "/webauthn/account/delete/finish"} {
		if r := f.jsonPost(p, "", "", "", []byte(`{}`)); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s signed out: %d", p, r.StatusCode)
		}
		if r := f.jsonPost(p, pc, "", "", []byte(`{}`)); r.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without CSRF: %d", p, r.StatusCode)
		}
		if r := f.jsonPost(p, pc, ctok, "", []byte(`{}`)); r.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with another session's CSRF: %d", p, r.StatusCode)
		}
		if r := f.jsonPost(p, cc, ctok, "", []byte(`{}`)); r.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s as a clinician: %d", p, r.StatusCode)
		}
	}
}

// TestLedgerPage: the page shows the signed checkpoint and the patient's
// own entries (grant, revoke, passkey, exports, admin entries about her),
// each with a proof that verifies against the checkpoint, and no entry of
// another patient.
func TestLedgerPage(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.softPasskey(f.patient.ID)
	f.grant(f.patient.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[0]
	f.access(f.patient.ID, g, 4032, false)
	if _, err := f.led.Append(consent.NewRevoke(f.patient.ID, g, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.NewInvite(t.Context(), f.patient.ID, 0); err != nil {
		t.Fatal(err)
	}
	f.grant(f.other.ID, f.clin.ID)
	og := f.grants(f.other.ID)[0]
	size := f.size()

	sess, _ := f.signIn(f.patient.ID)
	b := body(t, f.do(req{path: "/ledger", cookie: sess}))
	for _, want := range []string{g.ID, "Grant", "Revoke", "Passkey registered", "Export started", "Export ended", "4032 records", "Enrolment link made by the administrator",
		clinicianName, "All 6 entries", "/api/v1/ledger/proof?index=0&amp;size=", strings.ReplaceAll(f.led.VerifierKey(), "+", "&#43;"), "vault.test\n"} {
		if !strings.Contains(b, want) {
			t.Fatalf("ledger page lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, og.ID) || strings.Contains(b, otherName) || strings.Contains(b, "does not verify") {
		t.Fatalf("ledger page shows another patient's entry or a failed proof:\n%s", b)
	}
	if n := strings.Count(b, `<span class="tag ok">verifies</span>`); n != 6 {
		t.Fatalf("%d verifying entries, want 6", n)
	}
	// The page's checkpoint is a real one, covering the whole log.
	cpText := regexp.MustCompile(`(?s)<pre class="checkpoint"[^>]*>(.*?)</pre>`).FindStringSubmatch(b)
	if cpText == nil {
		t.Fatal("no checkpoint on the page")
	}
	signed := strings.NewReplacer("&#43;", "+", "&mdash;", "—", "&#39;", "'", "&amp;", "&").Replace(cpText[1])
	cp, err := consent.OpenCheckpoint([]byte(signed), f.led.VerifierKey())
	if err != nil || cp.Size != size {
		t.Fatalf("checkpoint on the page: %+v %v", cp, err)
	}
	// The other patient sees their own grant only.
	o, _ := f.signIn(f.other.ID)
	ob := body(t, f.do(req{path: "/ledger", cookie: o}))
	if !strings.Contains(ob, og.ID) || strings.Contains(ob, g.ID) {
		t.Fatal("the other patient's ledger page is wrong")
	}
}

// TestPartyEntriesAndProofCheck: a party's entries, newest first, with a
// limit; checkInclusion fails on altered bytes.
func TestPartyEntriesAndProofCheck(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for range 3 {
		f.grant(f.patient.ID, f.clin.ID)
		f.grant(f.other.ID, f.clin.ID)
	}
	es, more, err := f.led.PartyEntries(f.patient.ID, 0, 2)
	if err != nil || !more || len(es) != 2 || es[0].Index != 4 || es[1].Index != 2 {
		t.Fatalf("PartyEntries = %+v %v %v", es, more, err)
	}
	es, more = f.partyEntries(f.clin.ID, 0, 0)
	if more || len(es) != 6 {
		t.Fatalf("the clinician's entries: %d", len(es))
	}
	es, _ = f.partyEntries(f.patient.ID, 3, 0) // below size 3: indexes 0 and 2
	if len(es) != 2 || es[0].Index != 2 {
		t.Fatalf("below a size: %+v", es)
	}
	signed, err := f.led.Sign()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := consent.OpenCheckpoint(signed, f.led.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if ok, n := f.srv.checkInclusion(es[0], cp); !ok || n == 0 {
		t.Fatal("a good proof does not verify")
	}
	bad := es[0]
	bad.Raw = bytes.Replace(bytes.Clone(bad.Raw), []byte("TREAT"), []byte("TREAX"), 1)
	if ok, _ := f.srv.checkInclusion(bad, cp); ok {
		t.Fatal("altered entry bytes verify")
	}
	if _, _, err := f.led.PartyEntries("", 0, 0); err == nil {
		t.Fatal("no party accepted")
	}
}

// TestTokensPage: a device token is made, shown once and stored only as a
// hash; it works until revoked, then fails at once; another patient's
// token id by URL answers 404 and stays usable.
func TestTokensPage(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	sess, csrf := f.signIn(f.patient.ID)
	r := f.follow(f.post("/tokens", sess, "days=90&csrf="+url.QueryEscape(csrf)), sess, "/tokens")
	b := body(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("make token: %d", r.StatusCode)
	}
	m := regexp.MustCompile(`<textarea id="new-token"[^>]*>(vd_[A-Za-z0-9_-]+)</textarea>`).FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("no token shown:\n%s", b)
	}
	secret := m[1]
	tok, err := f.v.Authenticate(t.Context(), secret)
	if err != nil || tok.UserID != f.patient.ID || tok.Kind != vault.TokenDevice {
		t.Fatalf("the new token: %+v %v", tok, err)
	}
	if d := time.Until(tok.Expires); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Fatalf("token lasts %v", d)
	}
	// Shown once: the page afterwards lists it without the secret.
	b = body(t, f.do(req{path: "/tokens", cookie: sess}))
	if strings.Contains(b, secret) || !strings.Contains(b, tok.ID) {
		t.Fatalf("tokens page after making one:\n%s", b)
	}
	if r := f.post("/tokens", sess, "days=7&csrf="+url.QueryEscape(csrf)); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("a lifetime not offered: %d", r.StatusCode)
	}
	// Another patient's token by URL.
	otherSecret, ot := f.mint(f.other.ID, vault.TokenDevice, 0)
	for _, id := range []string{ot.ID, "nosuchtoken", "%2e%2e"} {
		if r := f.post("/tokens/"+id+"/revoke", sess, "csrf="+url.QueryEscape(csrf)); r.StatusCode != http.StatusNotFound {
			t.Fatalf("revoking %s: %d", id, r.StatusCode)
		}
	}
	if _, err := f.v.Authenticate(t.Context(), otherSecret); err != nil {
		t.Fatal("another patient's token was revoked")
	}
	if b := body(t, f.do(req{path: "/tokens", cookie: sess})); strings.Contains(b, ot.ID) {
		t.Fatal("another patient's token is listed")
	}
	// Revoke.
	r = f.post("/tokens/"+tok.ID+"/revoke", sess, "csrf="+url.QueryEscape(csrf))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/tokens?revoked=1" {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if _, err := f.v.Authenticate(t.Context(), secret); err == nil {
		t.Fatal("a revoked token authenticates")
	}
	if b := body(t, f.do(req{path: "/tokens?revoked=1", cookie: sess})); strings.Contains(b, tok.ID) || !strings.Contains(b, "revoked") {
		t.Fatal("tokens page after the revoke")
	}
	// Both are in the ledger, with the patient as actor.
	var actions []string
	es, _ := f.partyEntries(f.patient.ID, 0, 0)
	for _, e := range es {
		if e.Entry.Kind == consent.KindAdmin && e.Entry.Actor == f.patient.ID {
			actions = append(actions, e.Entry.Admin.Action)
		}
	}
	if strings.Join(actions, ",") != "token-revoke,token-mint" {
		t.Fatalf("ledger actions %v", actions)
	}
	// The secret is in neither the logs nor the database file.
	db := f.dbFile()
	if strings.Contains(f.logs.String(), secret) || bytes.Contains(db, []byte(secret)) {
		t.Fatal("the token's secret was stored or logged")
	}
}

// softSignIn runs a discoverable sign-in with a software passkey and
// returns the finish status.
func (f *fixture) softSignIn(t *testing.T, a *consenttest.Authenticator) int {
	t.Helper()
	r := f.jsonPost("/webauthn/signin/begin", "", "", "", []byte(`{}`))
	ch, cer := challengeOf(t, r)
	return f.jsonPost("/webauthn/signin/finish", "", "", cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{}))).StatusCode
}

// challengeOf reads a ceremony's begin: its challenge and the ceremony
// cookie.
func challengeOf(t *testing.T, r *http.Response) ([]byte, string) {
	t.Helper()
	return ceremonyOf(t, r, false)
}

// ceremonyOf reads a ceremony's begin response. A step-up's options must
// also ask for user verification and name the user's own passkeys.
func ceremonyOf(t *testing.T, r *http.Response, stepUp bool) ([]byte, string) {
	t.Helper()
	if r.StatusCode != 200 {
		t.Fatalf("begin: %d %s", r.StatusCode, body(t, r))
	}
	var opts struct {
		PublicKey struct {
			Challenge        string `json:"challenge"`
			UserVerification string `json:"userVerification"`
			AllowCredentials []struct {
				ID string `json:"id"`
			} `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	if err := json.NewDecoder(r.Body).Decode(&opts); err != nil {
		t.Fatal(err)
	}
	if stepUp && (opts.PublicKey.UserVerification != "required" || len(opts.PublicKey.AllowCredentials) == 0) {
		t.Fatalf("assertion options: %+v", opts.PublicKey)
	}
	ch, err := base64.RawURLEncoding.DecodeString(opts.PublicKey.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	var cer string
	for _, c := range r.Cookies() {
		if c.Name == CeremonyCookie {
			cer = c.Value
		}
	}
	return ch, cer
}

// TestAccountDeletion: deleting the account needs the typed confirmation
// and a fresh passkey assertion with user verification by one of the
// patient's own passkeys; then her grants are revoked, her data is
// crypto-shredded, her sessions and web records are gone, her passkey no
// longer signs in, and the ledger verifies.
func TestAccountDeletion(t *testing.T) {
	f := newFixture(t, fixtureOpts{days: 1})
	a := f.softPasskey(f.patient.ID)
	theirs := f.softPasskey(f.other.ID)
	f.grant(f.patient.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[0]
	secret, _ := f.mint(f.patient.ID, vault.TokenDevice, 0)
	if _, err := f.srv.recovery().replace(t.Context(), f.patient.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if f.softSignIn(t, a) != 200 {
		t.Fatal("the passkey does not sign in before the deletion")
	}
	sess, csrf := f.signIn(f.patient.ID)
	other, _ := f.signIn(f.patient.ID) // a second browser of hers
	begin := func(confirm string) *http.Response {
		b := mustJSONBody(t, deleteBeginRequest{Confirm: confirm})
		return f.jsonPost("/webauthn/account/delete/begin", sess, csrf, "", b)
	}
	for _, bad := range []string{"", "delete", "delete my acount"} {
		if r := begin(bad); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("confirmation %q: %d", bad, r.StatusCode)
		}
	}
	refused := func(what string, resp []byte, cer string, want int) {
		t.Helper()
		if r := f.jsonPost("/webauthn/account/delete/finish", sess, csrf, cer, resp); r.StatusCode != want {
			t.Fatalf("%s: %d, want %d", what, r.StatusCode, want)
		}
		if _, err := f.v.User(t.Context(), f.patient.ID); err != nil {
			t.Fatalf("%s deleted the account", what)
		}
	}
	ch, cer := challengeOf(t, begin("Delete my  account"))
	refused("user not verified", a.ResponseJSON(a.Sign(ch, consenttest.Options{NoUV: true})), cer, http.StatusUnauthorized)
	ch, cer = challengeOf(t, begin(DeleteConfirmation))
	refused("another patient's passkey", theirs.ResponseJSON(theirs.Sign(ch, consenttest.Options{})), cer, http.StatusUnauthorized)
	ch, cer = challengeOf(t, begin(DeleteConfirmation))
	refused("another origin", a.ResponseJSON(a.Sign(ch, consenttest.Options{Origin: "https://evil.example"})), cer, http.StatusUnauthorized)
	ch, _ = challengeOf(t, begin(DeleteConfirmation))
	refused("no ceremony", a.ResponseJSON(a.Sign(ch, consenttest.Options{})), "", http.StatusBadRequest)
	// A grant ceremony's challenge is not a deletion's.
	gch, _ := f.beginGrant(t, sess, csrf, testForm(f))
	_, cer = challengeOf(t, begin(DeleteConfirmation))
	refused("a signature over another challenge", a.ResponseJSON(a.Sign(gch, consenttest.Options{})), cer, http.StatusUnauthorized)

	ch, cer = challengeOf(t, begin(DeleteConfirmation))
	if want := deleteChallenge(f.patient.ID, nil); bytes.Equal(ch, want) {
		t.Fatal("the challenge has no nonce")
	}
	resp := a.ResponseJSON(a.Sign(ch, consenttest.Options{}))
	r := f.jsonPost("/webauthn/account/delete/finish", sess, csrf, cer, resp)
	var res map[string]string
	if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil || res["redirect"] != "/account/deleted" {
		t.Fatalf("delete finish: %d %v", r.StatusCode, res)
	}
	// Replaying the same response does nothing more.
	if r := f.jsonPost("/webauthn/account/delete/finish", sess, csrf, cer, resp); r.StatusCode == 200 {
		t.Fatal("a replayed deletion succeeded")
	}

	// The data is gone.
	if _, err := f.v.User(t.Context(), f.patient.ID); err == nil {
		t.Fatal("the account still exists")
	}
	var readErr error
	for _, err := range f.v.Readings(context.Background(), f.patient.ID, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
		if err == nil {
			t.Fatal("a reading was read after the deletion")
		}
		readErr = err
		break
	}
	if !errors.Is(readErr, vault.ErrNoPatient) {
		t.Fatalf("reading a deleted patient: %v", readErr)
	}
	if _, err := f.v.Authenticate(t.Context(), secret); err == nil {
		t.Fatal("the patient's token still works")
	}
	// The grant was revoked first, by her, and the deletion recorded.
	if gs := f.grantState(g.ID); gs.RevokeIndex == nil {
		t.Fatal("the grant was not revoked")
	}
	es, _ := f.partyEntries(f.patient.ID, 0, 2)
	if es[0].Entry.Kind != consent.KindAdmin || es[0].Entry.Admin.Action != "user-delete" || es[0].Entry.Actor != f.patient.ID ||
		es[1].Entry.Kind != consent.KindRevoke || es[1].Entry.Actor != f.patient.ID {
		t.Fatalf("ledger entries after the deletion: %+v, %+v", es[0].Entry, es[1].Entry)
	}
	if _, err := f.led.Verify(nil); err != nil {
		t.Fatalf("ledger verify: %v", err)
	}
	// Her sessions, passkeys and recovery codes are gone.
	for _, c := range []string{sess, other} {
		if r := f.do(req{path: "/", cookie: c}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("a session survived the deletion: %d", r.StatusCode)
		}
	}
	if recs := f.creds(f.patient.ID); len(recs) != 0 {
		t.Fatal("passkey records remain")
	}
	if n := f.codesLeft(f.patient.ID); n != 0 {
		t.Fatal("recovery codes remain")
	}
	if f.softSignIn(t, a) != http.StatusUnauthorized {
		t.Fatal("the deleted account's passkey still signs in")
	}
	// The other patient is untouched.
	if f.softSignIn(t, theirs) != 200 {
		t.Fatal("another patient's passkey stopped working")
	}
	if strings.Contains(f.logs.String(), patientName) {
		t.Fatal("the patient's name was logged")
	}
}

// TestRecoveryCodes: ten codes shown once, stored only hashed, each signs
// in once (in whatever case and grouping), replaced sets stop working,
// and the endpoint is rate-limited and needs the vault's origin.
func TestRecoveryCodes(t *testing.T) {
	f := newFixture(t, fixtureOpts{perMin: 8})
	sess, csrf := f.signIn(f.patient.ID)
	codesOf := func(b string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<li><code>([a-z2-7-]+)</code></li>`).FindAllStringSubmatch(b, -1) {
			out = append(out, m[1])
		}
		return out
	}
	r := f.follow(f.post("/account/recovery-codes", sess, "csrf="+url.QueryEscape(csrf)), sess, "/account")
	codes := codesOf(body(t, r))
	if r.StatusCode != 200 || len(codes) != RecoveryCodeCount {
		t.Fatalf("made codes: %d %v", r.StatusCode, codes)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if n, ok := normalizeRecoveryCode(c); !ok || len(n) != recoveryCodeLen || seen[n] || !regexp.MustCompile(`^[a-z2-7]{5}(-[a-z2-7]{5}){3}-[a-z2-7]{6}$`).MatchString(c) {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if b := body(t, f.do(req{path: "/account", cookie: sess})); strings.Contains(b, codes[0]) || !strings.Contains(b, "<strong>10</strong> unused") {
		t.Fatal("the account page shows codes again, or not the count")
	}
	db := f.dbFile()
	for _, c := range codes {
		n, _ := normalizeRecoveryCode(c)
		if bytes.Contains(db, []byte(n)) || strings.Contains(f.logs.String(), n) || strings.Contains(f.logs.String(), c) {
			t.Fatal("a recovery code is stored or logged")
		}
	}
	origin := map[string]string{"Origin": f.base, "Sec-Fetch-Site": "same-origin"}
	use := func(code string, hdr map[string]string) *http.Response {
		return f.do(req{method: "POST", path: "/signin/recovery", ctype: formType, body: "code=" + url.QueryEscape(code), headers: hdr})
	}
	if r := use(codes[0], nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("without Origin: %d", r.StatusCode)
	}
	if r := use(codes[0], map[string]string{"Origin": "https://evil.example"}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("another origin: %d", r.StatusCode)
	}
	messy := " " + strings.ToUpper(strings.ReplaceAll(codes[0], "-", " ")) + " "
	r = use(messy, origin)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account?recovered=1" {
		t.Fatalf("sign-in with a code: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cookie string
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			cookie = c.Value
		}
	}
	s, ok := f.srv.sessions.get(t.Context(), cookie)
	if !ok || s.UserID != f.patient.ID {
		t.Fatal("no session after a recovery sign-in")
	}
	if b := body(t, f.do(req{path: "/account?recovered=1", cookie: cookie})); !strings.Contains(b, "Add a new passkey") || !strings.Contains(b, "<strong>9</strong> unused") {
		t.Fatalf("account page after recovery:\n%s", b)
	}
	if r := use(codes[0], origin); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a used code again: %d", r.StatusCode)
	}
	if r := use("aaaaa-aaaaa-aaaaa-aaaaa-aaaaaa", origin); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong code: %d", r.StatusCode)
	}
	// A new set replaces the old.
	newCodes := codesOf(body(t, f.follow(f.post("/account/recovery-codes", sess, "csrf="+url.QueryEscape(csrf)), sess, "/account")))
	if len(newCodes) != RecoveryCodeCount {
		t.Fatal("no new codes")
	}
	if r := use(codes[1], origin); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a replaced code: %d", r.StatusCode)
	}
	if r := use(newCodes[1], origin); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a new code: %d", r.StatusCode)
	}
	// Rate limit: 8 a minute per address (7 used above, GETs count too).
	statuses := []int{}
	for range 3 {
		statuses = append(statuses, f.do(req{path: "/signin/recovery"}).StatusCode)
	}
	if statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Fatalf("no rate limit: %v", statuses)
	}
	if r := use(newCodes[2], origin); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a code past the limit: %d", r.StatusCode)
	}
	if n := f.codesLeft(f.patient.ID); n != RecoveryCodeCount-1 {
		t.Fatalf("a rate-limited attempt spent a code: %d left", n)
	}
}
