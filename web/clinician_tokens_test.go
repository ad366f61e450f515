package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// TestClinicianTokens: a clinician makes an API token (shown once, a
// clinician token that authenticates, a token-mint ledger entry, never in
// the log), lists and revokes it; CSRF, patients, signed-out browsers and
// other users' tokens are refused.
func TestClinicianTokens(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	sess, csrf := f.signIn(f.clin.ID)
	ps, pcsrf := f.signIn(f.patient.ID)
	form := "application/x-www-form-urlencoded"
	same := map[string]string{"Origin": f.base, "Sec-Fetch-Site": "same-origin"}
	ok := "csrf=" + url.QueryEscape(csrf)

	if r := f.do(req{path: "/clinician/tokens"}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed out: %d", r.StatusCode)
	}
	if r := f.do(req{path: "/clinician/tokens", cookie: ps}); r.StatusCode != 404 {
		t.Fatalf("a patient: %d", r.StatusCode)
	}
	if r := f.do(req{method: "POST", path: "/clinician/tokens", cookie: ps, ctype: form, body: "days=30&csrf=" + url.QueryEscape(pcsrf), headers: same}); r.StatusCode != 404 {
		t.Fatalf("a patient minting: %d", r.StatusCode)
	}
	for name, rq := range map[string]req{
		"missing token": {method: "POST", path: "/clinician/tokens", cookie: sess, ctype: form, body: "days=30", headers: same},
		"cross-site":    {method: "POST", path: "/clinician/tokens", cookie: sess, ctype: form, body: "days=30&" + ok, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"signed out":    {method: "POST", path: "/clinician/tokens", ctype: form, body: "days=30&" + ok, headers: same},
	} {
		if r := f.do(rq); r.StatusCode != 403 && r.StatusCode != 401 {
			t.Errorf("mint, %s: %d", name, r.StatusCode)
		}
	}
	if list := f.tokens(f.clin.ID); len(list) != 0 {
		t.Fatal("a refused mint made a token")
	}
	if r := f.do(req{method: "POST", path: "/clinician/tokens", cookie: sess, ctype: form, body: "days=3650&" + ok, headers: same}); r.StatusCode != 400 {
		t.Fatalf("a lifetime not offered: %d", r.StatusCode)
	}

	n0 := f.size()
	r := f.follow(f.do(req{method: "POST", path: "/clinician/tokens", cookie: sess, ctype: form, body: "days=7&" + ok, headers: same}), sess, "/clinician/tokens")
	b := body(t, r)
	secret := regexp.MustCompile(`vc_[A-Za-z0-9_-]+`).FindString(b)
	if r.StatusCode != 200 || secret == "" || !strings.Contains(b, "shown only this once") {
		t.Fatalf("mint: %d\n%s", r.StatusCode, b)
	}
	tok, err := f.v.Authenticate(t.Context(), secret)
	if err != nil || tok.Kind != vault.TokenClinician || tok.UserID != f.clin.ID || time.Until(tok.Expires) > 7*24*time.Hour {
		t.Fatalf("the minted token: %+v %v", tok, err)
	}
	if e := f.entry(n0); e.Kind != consent.KindAdmin || e.Admin.Action != "token-mint" || e.Actor != f.clin.ID || strings.Contains(e.Admin.Detail, secret) {
		t.Fatalf("mint entry %+v", e)
	}
	if strings.Contains(f.logs.String(), secret) {
		t.Fatal("the token's secret reached the log")
	}
	// Shown once: the page lists it by id, never its secret.
	page := body(t, f.do(req{path: "/clinician/tokens", cookie: sess}))
	if strings.Contains(page, secret) || !strings.Contains(page, tok.ID) || !strings.Contains(page, `action="/clinician/tokens/`+tok.ID+`/revoke"`) {
		t.Fatalf("token list:\n%s", page)
	}

	theirs, theirTok := f.mint(f.patient.ID, vault.TokenPatient, time.Hour)
	path := "/clinician/tokens/" + tok.ID + "/revoke"
	if r := f.do(req{method: "POST", path: path, cookie: sess, ctype: form, body: "csrf=nope", headers: same}); r.StatusCode != 403 {
		t.Fatalf("revoke with a wrong token: %d", r.StatusCode)
	}
	if r := f.do(req{method: "POST", path: "/clinician/tokens/" + theirTok.ID + "/revoke", cookie: sess, ctype: form, body: ok, headers: same}); r.StatusCode != 404 {
		t.Fatalf("revoking a patient's token: %d", r.StatusCode)
	}
	if _, err := f.v.Authenticate(t.Context(), theirs); err != nil {
		t.Fatal("a patient's token was revoked by a clinician")
	}
	r = f.do(req{method: "POST", path: path, cookie: sess, ctype: form, body: ok, headers: same})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/clinician/tokens?revoked=1" {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if _, err := f.v.Authenticate(t.Context(), secret); err == nil {
		t.Fatal("a revoked token still authenticates")
	}
	if r := f.do(req{method: "POST", path: path, cookie: sess, ctype: form, body: ok, headers: same}); r.StatusCode != 404 {
		t.Fatalf("revoking twice: %d", r.StatusCode)
	}
}
