package web

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// browserSteps are TestBrowserPasskeys's helpers the patient flow reuses.
type browserSteps struct {
	signOut func(t *testing.T)
	refused func(t *testing.T, want string)
}

// patientBrowserFlow continues TestBrowserPasskeys in real Chromium, signed
// in as the patient after the consent and access-log steps: the ledger
// page (the signed grant listed with a verifying proof), a device token
// made and revoked, another patient's token by URL (404), recovery codes,
// a session used after sign-out (refused), sign-in with a recovery code,
// account deletion with passkey re-authentication, and then a passkey
// sign-in that fails.
func (f *fixture) patientBrowserFlow(t *testing.T, ctx context.Context, b browserSteps) {
	t.Run("ledger", func(t *testing.T) {
		var signed consent.GrantState
		for _, g := range f.grants(f.patient.ID) {
			if g.Signed {
				signed = g
				break
			}
		}
		run(t, ctx, chromedp.Navigate(f.base+"/ledger"), chromedp.WaitVisible(chromedp.CSS("table.ledger")))
		row := get(t, ctx, chromedp.Text(chromedp.CSS("#entry-"+itoa(signed.Index))))
		if !strings.Contains(row, signed.ID) || !strings.Contains(row, "signed with your passkey") || !strings.Contains(row, "verifies") || strings.Contains(row, "does not verify") {
			t.Fatalf("the signed grant's row: %q", row)
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "proofs verify against this checkpoint") {
			t.Fatalf("ledger page: %q", txt)
		}
		// The proof link serves the API's JSON.
		href := get(t, ctx, chromedp.Evaluate[string](`document.querySelector("#entry-`+itoa(signed.Index)+` a").getAttribute("href")`))
		if !strings.HasPrefix(href, "/api/v1/ledger/proof?index="+itoa(signed.Index)+"&size=") {
			t.Fatalf("proof link %q", href)
		}
		screenshot(t, ctx, "ledger")
	})

	t.Run("device token", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(f.base+"/tokens"), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#new-token")))
		secret := get(t, ctx, chromedp.Value(chromedp.CSS("#new-token")))
		tok, err := f.v.Authenticate(t.Context(), secret)
		if err != nil || tok.UserID != f.patient.ID || tok.Kind != vault.TokenDevice {
			t.Fatalf("the token shown: %v", err)
		}
		// The form was answered with a redirect: the page shown is a GET.
		if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/tokens" {
			t.Fatalf("the new token is shown at %s", loc)
		}
		// Shown once: a reload sends no form again (no second token) and
		// shows no secret; nor does opening the page again.
		n := len(f.tokens(f.patient.ID))
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
		if html := get(t, ctx, chromedp.OuterHTML(chromedp.CSS("main"))); strings.Contains(html, secret) || strings.Contains(html, `id="new-token"`) {
			t.Fatal("a reload shows the token again")
		}
		if len(f.tokens(f.patient.ID)) != n {
			t.Fatal("a reload made another token")
		}
		run(t, ctx, chromedp.Navigate(f.base+"/tokens"), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
		if html := get(t, ctx, chromedp.OuterHTML(chromedp.CSS("main"))); strings.Contains(html, secret) {
			t.Fatal("the token is shown again")
		}
		run(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/tokens/`+tok.ID+`/revoke"] button`)), chromedp.WaitVisible(chromedp.CSS("p.notice")))
		if _, err := f.v.Authenticate(t.Context(), secret); err == nil {
			t.Fatal("the revoked token still authenticates")
		}
		// Another patient's token id by URL: 404, and it keeps working.
		otherSecret, ot, err := f.v.MintToken(t.Context(), f.other.ID, vault.TokenDevice, 0)
		if err != nil {
			t.Fatal(err)
		}
		status := get(t, ctx, chromedp.Evaluate[int](`(async () => {
			const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
			const r = await fetch("/tokens/`+ot.ID+`/revoke", {method: "POST", body: new URLSearchParams({csrf: csrf}), redirect: "manual"});
			return r.status;
		})()`, chromedp.EvalAwaitPromise))
		if status != 404 {
			t.Fatalf("revoking another patient's token from the browser: %d", status)
		}
		if _, err := f.v.Authenticate(t.Context(), otherSecret); err != nil {
			t.Fatal("another patient's token was revoked")
		}
		if _, _, err := f.v.MintToken(t.Context(), f.patient.ID, vault.TokenPatient, 0); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(f.base+"/tokens"), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
		screenshot(t, ctx, "tokens")
	})

	var codes []string
	t.Run("recovery codes", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(f.base+"/account"), chromedp.Click(chromedp.CSS(`#recovery-codes-form button`)), chromedp.WaitVisible(chromedp.CSS("ol.codes")))
		txt := get(t, ctx, chromedp.Text(chromedp.CSS("ol.codes")))
		codes = regexp.MustCompile(`[a-z2-7]{5}(?:-[a-z2-7]{5}){3}-[a-z2-7]{6}`).FindAllString(txt, -1)
		if len(codes) != RecoveryCodeCount {
			t.Fatalf("codes shown: %q", txt)
		}
		screenshot(t, ctx, "account")
		// A reload neither shows them again nor makes new ones (which
		// would void the ones just saved).
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#recovery-codes-form")))
		if html := get(t, ctx, chromedp.OuterHTML(chromedp.CSS("main"))); strings.Contains(html, codes[0]) || strings.Contains(html, `class="codes"`) {
			t.Fatal("a reload shows the codes again")
		}
		if n := f.codesLeft(f.patient.ID); n != RecoveryCodeCount {
			t.Fatalf("%d codes after a reload", n)
		}
	})

	t.Run("session after sign-out", func(t *testing.T) {
		sess, ok := f.browserSession(t, ctx)
		if !ok {
			t.Fatal("not signed in")
		}
		old := ""
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{f.base + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == SessionCookie {
				old = c.Value
			}
		}
		b.signOut(t)
		// The browser gets the old cookie back, as a thief who copied it
		// would: the server has forgotten it.
		yes := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: SessionCookie, Value: old, URL: f.base + "/", Path: "/",
			Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict}); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(f.base+"/account"), chromedp.WaitVisible(chromedp.CSS("#signin-button")))
		if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/signin" {
			t.Fatalf("the old session opened %s", loc)
		}
		if _, ok := f.srv.sessions.get(t.Context(), old); ok || sess.UserID == "" {
			t.Fatal("the signed-out session is live")
		}
	})

	t.Run("sign in with a recovery code", func(t *testing.T) {
		run(t, ctx,
			chromedp.Navigate(f.base+"/signin"),
			chromedp.Click(chromedp.CSS(`a[href="/signin/recovery"]`)),
			chromedp.WaitVisible(chromedp.CSS("#recovery-form")),
			chromedp.SendKeys(chromedp.CSS("#code"), strings.ToUpper(codes[3])),
			chromedp.Click(chromedp.CSS(`#recovery-form button`)),
			chromedp.WaitVisible(chromedp.CSS("#delete-form")),
		)
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("p.notice"))); !strings.Contains(txt, "Add a new passkey") {
			t.Fatalf("after a recovery sign-in: %q", txt)
		}
		if sess, ok := f.browserSession(t, ctx); !ok || sess.UserID != f.patient.ID {
			t.Fatal("no session after a recovery sign-in")
		}
	})

	t.Run("delete the account", func(t *testing.T) {
		if f.glucoseCount(f.patient.ID) == 0 {
			t.Fatal("no readings to delete")
		}
		// A wrong confirmation is caught before any passkey prompt.
		run(t, ctx, chromedp.SendKeys(chromedp.CSS("#confirm"), "delete it"), chromedp.Click(chromedp.CSS("#delete-form button")))
		if msg := waitStatus(t, ctx); !strings.Contains(msg, DeleteConfirmation) {
			t.Fatalf("status %q", msg)
		}
		if _, err := f.v.User(t.Context(), f.patient.ID); err != nil {
			t.Fatal("deleted without confirmation")
		}
		get(t, ctx, chromedp.Evaluate[string](`document.getElementById("confirm").value = ""`))
		run(t, ctx,
			chromedp.SendKeys(chromedp.CSS("#confirm"), DeleteConfirmation),
			chromedp.Click(chromedp.CSS("#delete-form button")),
			chromedp.WaitVisible(chromedp.CSS("#gone-h")),
		)
		if _, err := f.v.User(t.Context(), f.patient.ID); !errors.Is(err, vault.ErrNoUser) {
			t.Fatalf("the account after deletion: %v", err)
		}
		for _, err := range f.v.Readings(context.Background(), f.patient.ID, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
			if !errors.Is(err, vault.ErrNoPatient) {
				t.Fatalf("reading a deleted patient: %v", err)
			}
			break
		}
		for _, g := range f.grants(f.patient.ID) {
			if g.Active(time.Now()) {
				t.Fatalf("grant %s still active", g.ID)
			}
		}
		res, err := f.led.Verify(nil)
		if err != nil || res.SignedGrants < 2 {
			t.Fatalf("ledger verify after the deletion: %v (%d signed grants)", err, res.SignedGrants)
		}
		if _, ok := f.browserSession(t, ctx); ok {
			t.Fatal("still signed in after the deletion")
		}
	})

	t.Run("sign-in after deletion", func(t *testing.T) {
		b.refused(t, "could not sign you in")
	})
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
