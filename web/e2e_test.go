package web

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/browsertest"
)

// addCredential is WebAuthn.addCredential with only the members a plain
// credential has: cdproto's Credential always sends the CMTG members,
// which Chromium's virtual authenticator refuses.
var addCredential = cdp.Command[addCredentialParams, cdp.Empty]{Method: cdpwebauthn.CommandAddCredential}

type addCredentialParams struct {
	AuthenticatorID cdpwebauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      cdpAddCredential            `json:"credential"`
}

type cdpAddCredential struct {
	CredentialID         []byte  `json:"credentialId"`
	IsResidentCredential bool    `json:"isResidentCredential"`
	RpID                 string  `json:"rpId"`
	PrivateKey           []byte  `json:"privateKey"`
	UserHandle           []byte  `json:"userHandle"`
	SignCount            float64 `json:"signCount"`
}

// browser starts headless Chromium with a fresh profile
// (internal/browsertest: it skips in -short mode and when Chromium is
// missing, and fails then under CI).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.New(t, 1100, 900)
}

// authenticator adds a CTAP2 platform authenticator with resident keys
// and user verification to the tab.
func authenticator(t *testing.T, ctx context.Context) cdpwebauthn.AuthenticatorID {
	t.Helper()
	return browsertest.Authenticator(t, ctx)
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	browsertest.Run(t, ctx, steps...)
}

func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	return browsertest.Get(t, ctx, a)
}

// screenshot saves a PNG of the page to docs/screenshots when
// VAULT_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("VAULT_SCREENSHOTS") != "1" {
		return
	}
	png := get(t, ctx, chromedp.FullScreenshot(100))
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the page's status line shows an error, and
// returns it.
func waitStatus(t *testing.T, ctx context.Context) string {
	t.Helper()
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#status.error")))
	return get(t, ctx, chromedp.Text(chromedp.CSS("#status")))
}

// browserSession returns the server's session for the browser's session
// cookie, checking the cookie's flags as the browser stored them.
func (f *fixture) browserSession(t *testing.T, ctx context.Context) (session, bool) {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{f.base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == SessionCookie {
			if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Fatalf("session cookie in the browser: %+v", c)
			}
			return f.srv.sessions.get(t.Context(), c.Value)
		}
	}
	return session{}, false
}

// TestBrowserPasskeys runs the whole stack in process (a vault in
// t.TempDir(), the web server on a loopback listener at
// http://localhost:PORT) and drives real headless Chromium with a CDP
// virtual authenticator: enrolment from an invite, sign-out, discoverable
// sign-in, the dashboard's chart, adding a passkey, and the refusals.
func TestBrowserPasskeys(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000})
	auth := authenticator(t, ctx)
	overrides := func(p cdpwebauthn.SetResponseOverrideBitsParams) {
		t.Helper()
		p.AuthenticatorID = auth
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetResponseOverrideBits, p); err != nil {
			t.Fatal(err)
		}
	}
	yes := true

	t.Run("expired invite", func(t *testing.T) {
		link, err := f.srv.NewInvite(t.Context(), f.patient.ID, 1500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#enrol-form")))
		time.Sleep(1600 * time.Millisecond)
		run(t, ctx, chromedp.Click(chromedp.CSS("#enrol-form button")))
		if msg := waitStatus(t, ctx); !strings.Contains(msg, "expired") {
			t.Fatalf("status %q", msg)
		}
		resp := get(t, ctx, chromedp.NavigateResponse(link))
		if resp.Status != 410 {
			t.Fatalf("expired invite page: %d", resp.Status)
		}
	})

	var link string
	t.Run("enrol", func(t *testing.T) {
		n0 := f.size()
		var err error
		if link, err = f.srv.NewInvite(t.Context(), f.patient.ID, 0); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#enrol-form")))
		screenshot(t, ctx, "enrol")
		run(t, ctx,
			chromedp.SendKeys(chromedp.CSS("#label"), "Ada's phone"),
			chromedp.Click(chromedp.CSS("#enrol-form button")),
			chromedp.WaitVisible(chromedp.CSS("svg.chart")),
		)
		if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/" {
			t.Fatalf("after enrolment at %s", loc)
		}
		sess, ok := f.browserSession(t, ctx)
		if !ok || sess.UserID != f.patient.ID {
			t.Fatalf("not signed in after enrolment: %+v", sess)
		}
		recs := f.creds(f.patient.ID)
		if len(recs) != 1 || recs[0].Label != "Ada's phone" || len(recs[0].Handle) != 32 {
			t.Fatalf("credential records: %+v", recs)
		}
		// The ledger holds the passkey, with the same public key.
		n1 := f.size()
		e, _, err := f.led.Entry(recs[0].LedgerIndex)
		if err != nil || n1 <= n0 || e.Kind != consent.KindPasskey || e.Patient != f.patient.ID ||
			!bytes.Equal(e.Passkey.CredentialID, recs[0].ID) || !bytes.Equal(e.Passkey.PublicKey, recs[0].PublicKey) ||
			e.Passkey.RPID != "localhost" || e.Passkey.Origin != f.base {
			t.Fatalf("ledger entry %d: %+v (%v)", recs[0].LedgerIndex, e, err)
		}
		creds, err := chromedp.Call(ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: auth})
		if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential {
			t.Fatalf("authenticator credentials: %+v %v", creds, err)
		}
		screenshot(t, ctx, "dashboard") // the phone's: TestBrowserLayoutNoSidewaysScroll
	})

	t.Run("reused invite", func(t *testing.T) {
		resp := get(t, ctx, chromedp.NavigateResponse(link))
		if resp.Status != 410 {
			t.Fatalf("used invite page: %d", resp.Status)
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "expired or has been used") {
			t.Fatalf("used invite page says %q", txt)
		}
	})

	signOut := func(t *testing.T) {
		t.Helper()
		run(t, ctx, chromedp.Navigate(f.base+"/passkeys"), chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#signin-button")))
		if _, ok := f.browserSession(t, ctx); ok {
			t.Fatal("still signed in after sign-out")
		}
	}
	signIn := func(t *testing.T) {
		t.Helper()
		run(t, ctx, chromedp.Navigate(f.base+"/signin"), chromedp.Click(chromedp.CSS("#signin-button")), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	}
	refused := func(t *testing.T, want string) {
		t.Helper()
		run(t, ctx, chromedp.Navigate(f.base+"/signin"), chromedp.Click(chromedp.CSS("#signin-button")))
		if msg := waitStatus(t, ctx); !strings.Contains(msg, want) {
			t.Fatalf("status %q, want it to say %q", msg, want)
		}
		if _, ok := f.browserSession(t, ctx); ok {
			t.Fatal("a refused sign-in made a session")
		}
	}

	t.Run("sign out, sign in", func(t *testing.T) {
		signOut(t)
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "You have signed out") {
			t.Fatalf("sign-in page after sign-out: %q", txt)
		}
		screenshot(t, ctx, "signin")
		signIn(t)
		sess, ok := f.browserSession(t, ctx)
		if !ok || sess.UserID != f.patient.ID || sess.CloneWarning {
			t.Fatalf("session after sign-in: %+v", sess)
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "Time in range") || !strings.Contains(txt, "GMI") {
			t.Fatalf("dashboard text: %q", txt)
		}
		recs := f.creds(f.patient.ID)
		if recs[0].LastUsed.IsZero() || recs[0].SignCount == 0 || recs[0].CloneWarning {
			t.Fatalf("credential after sign-in: %+v", recs[0])
		}
		signOut(t)
	})

	t.Run("user not verified", func(t *testing.T) {
		// The authenticator can't verify the user: the browser gives up.
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: auth, IsUserVerified: false}); err != nil {
			t.Fatal(err)
		}
		refused(t, "")
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: auth, IsUserVerified: true}); err != nil {
			t.Fatal(err)
		}
		// The response claims no user verification: the server refuses.
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{IsBadUV: &yes})
		refused(t, "could not sign you in")
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{})
	})

	t.Run("bogus signature", func(t *testing.T) {
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{IsBogusSignature: &yes})
		refused(t, "could not sign you in")
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{})
	})

	t.Run("replayed challenge", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(f.base+"/signin"), chromedp.WaitVisible(chromedp.CSS("#signin-button")))
		got := get(t, ctx, chromedp.Evaluate[string](`(async () => {
			const w = window.vaultWebAuthn;
			const outcome = (p) => p.then(() => "ok", (e) => "refused:" + e.status);
			const opts = await w.post("/webauthn/signin/begin", {});
			const body = w.assertionJSON(await navigator.credentials.get(w.requestOptions(opts)));
			const first = await outcome(w.post("/webauthn/signin/finish", body));
			const again = await outcome(w.post("/webauthn/signin/finish", body));
			await w.post("/webauthn/signin/begin", {});
			const newChallenge = await outcome(w.post("/webauthn/signin/finish", body));
			return [first, again, newChallenge].join(",");
		})()`, chromedp.EvalAwaitPromise))
		if got != "ok,refused:400,refused:401" {
			t.Fatalf("replay outcomes %q, want ok,refused:400,refused:401", got)
		}
		signOut(t)
	})

	t.Run("lowered sign count", func(t *testing.T) {
		creds, err := chromedp.Call(ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: auth})
		if err != nil || len(creds.Credentials) != 1 {
			t.Fatalf("credentials: %v", err)
		}
		old := creds.Credentials[0]
		recs := f.creds(f.patient.ID)
		if recs[0].SignCount < 2 {
			t.Fatalf("stored sign count %d", recs[0].SignCount)
		}
		// A copy of the key with an older counter, as a clone would have.
		c := cdpAddCredential{CredentialID: old.CredentialID, IsResidentCredential: true, RpID: "localhost",
			PrivateKey: old.PrivateKey, UserHandle: old.UserHandle, SignCount: 1}
		if _, err := chromedp.Call(ctx, cdpwebauthn.RemoveCredential, cdpwebauthn.RemoveCredentialParams{AuthenticatorID: auth, CredentialID: old.CredentialID}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, addCredential, addCredentialParams{AuthenticatorID: auth, Credential: c}); err != nil {
			t.Fatal(err)
		}
		signIn(t)
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS(".banner.warn"))); !strings.Contains(txt, "Check your passkey") {
			t.Fatalf("banner %q", txt)
		}
		recs = f.creds(f.patient.ID)
		if !recs[0].CloneWarning {
			t.Fatal("credential not flagged")
		}
		if !strings.Contains(f.logs.String(), "possible cloned authenticator") {
			t.Fatal("clone warning not logged")
		}
		run(t, ctx, chromedp.Navigate(f.base+"/passkeys"), chromedp.WaitVisible(chromedp.CSS(".passkey.flagged")))
	})

	t.Run("add a passkey", func(t *testing.T) {
		// A second device: the first authenticator goes, so the browser
		// uses the new one.
		if _, err := chromedp.Call(ctx, cdpwebauthn.RemoveVirtualAuthenticator, cdpwebauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: auth}); err != nil {
			t.Fatal(err)
		}
		auth = authenticator(t, ctx)
		run(t, ctx,
			chromedp.Navigate(f.base+"/passkeys"),
			chromedp.SendKeys(chromedp.CSS("#add-label"), "Backup key"),
			chromedp.Click(chromedp.CSS("#add-form button")),
			chromedp.WaitVisible(chromedp.CSS("p.notice")),
		)
		recs := f.creds(f.patient.ID)
		if len(recs) != 2 || recs[1].Label != "Backup key" || !bytes.Equal(recs[0].Handle, recs[1].Handle) {
			t.Fatalf("passkeys after adding: %d", len(recs))
		}
		if e, _, err := f.led.Entry(recs[1].LedgerIndex); err != nil || e.Kind != consent.KindPasskey {
			t.Fatalf("no ledger entry for the added passkey: %v", err)
		}
		screenshot(t, ctx, "passkeys")
		signOut(t)
		signIn(t) // with the new passkey
	})

	t.Run("upload", func(t *testing.T) {
		csv, err := filepath.Abs(filepath.Join("..", "ingest", "cgmcsv", "testdata", "dexcom_mgdl.csv"))
		if err != nil {
			t.Fatal(err)
		}
		before := f.glucoseCount(f.patient.ID)
		run(t, ctx,
			chromedp.Navigate(f.base+"/upload"),
			chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{csv}),
			chromedp.Click(chromedp.CSS(`#upload-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#result-h")),
		)
		txt := get(t, ctx, chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(txt, "Imported 4 new readings") || !strings.Contains(txt, "Dexcom Clarity") || !strings.Contains(txt, "Insulin") {
			t.Fatalf("upload result: %q", txt)
		}
		if n := f.glucoseCount(f.patient.ID); n != before+4 {
			t.Fatalf("%d glucose readings after the upload, had %d", n, before)
		}
		screenshot(t, ctx, "upload")
	})

	// grantVia fills in the consent form and signs it with the passkey.
	grantVia := func(t *testing.T, schemas ...string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(f.base + "/consent"), chromedp.WaitVisible(chromedp.CSS("#grant-form"))}
		for _, sc := range schemas {
			steps = append(steps, chromedp.Click(chromedp.CSS(`input[name="schemas"][value="`+sc+`"]`)))
		}
		steps = append(steps,
			chromedp.SetValue(chromedp.CSS("#data-from"), "2024-03-01"),
			chromedp.SetValue(chromedp.CSS("#purpose"), "CAREMGT"),
			chromedp.Click(chromedp.CSS(`#grant-form button[type="submit"]`)),
		)
		run(t, ctx, steps...)
	}
	var signed consent.GrantState
	t.Run("grant signed with the passkey", func(t *testing.T) {
		grantVia(t, "omh:heart-rate")
		run(t, ctx, chromedp.WaitVisible(chromedp.CSS("p.notice")))
		gs := f.grants(f.patient.ID)
		if len(gs) != 1 || !gs[0].Signed || gs[0].Clinician != f.clin.ID || strings.Join(gs[0].Schemas, ",") != "omh:blood-glucose,omh:heart-rate" || gs[0].Purpose != "CAREMGT" {
			t.Fatalf("grants after signing: %+v", gs)
		}
		signed = gs[0]
		e, _, err := f.led.Entry(signed.Index)
		if err != nil || e.Grant.Assertion == nil {
			t.Fatalf("grant entry: %+v %v", e, err)
		}
		// The assertion is the second passkey's, checked against its
		// passkey-registered entry by verify.
		recs := f.creds(f.patient.ID)
		if !bytes.Equal(e.Grant.Assertion.CredentialID, recs[1].ID) || e.Grant.Assertion.PasskeyIndex != recs[1].LedgerIndex {
			t.Fatal("the grant was not signed by the passkey in use")
		}
		res, err := f.led.Verify(nil)
		if err != nil || res.SignedGrants != 1 {
			t.Fatalf("ledger verify: %v (%d signed grants)", err, res.SignedGrants)
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "with your passkey") || !strings.Contains(txt, clinicianName) {
			t.Fatalf("consent page: %q", txt)
		}
	})

	t.Run("grant with a bogus signature", func(t *testing.T) {
		n0 := f.size()
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{IsBogusSignature: &yes})
		grantVia(t)
		if msg := waitStatus(t, ctx); !strings.Contains(msg, "could not be verified") {
			t.Fatalf("status %q", msg)
		}
		overrides(cdpwebauthn.SetResponseOverrideBitsParams{})
		if n1 := f.size(); n1 != n0 || len(f.grants(f.patient.ID)) != 1 {
			t.Fatal("a grant with a bogus signature changed the ledger")
		}
	})

	t.Run("missing CSRF token", func(t *testing.T) {
		// The revoke form, submitted by the real browser with its CSRF
		// field taken out: refused, and the grant stays active.
		form := `form[action="/consent/` + signed.ID + `/revoke"]`
		run(t, ctx,
			chromedp.Navigate(f.base+"/consent"),
			chromedp.Click(chromedp.CSS(`summary[aria-label^="Revoke the grant"]`)),
			chromedp.WaitVisible(chromedp.CSS(form+" button")),
		)
		if !get(t, ctx, chromedp.Evaluate[bool](`(() => { document.querySelector('`+form+` input[name="csrf"]').remove(); return true })()`)) {
			t.Fatal("could not take the CSRF field out")
		}
		run(t, ctx,
			chromedp.Click(chromedp.CSS(form+" button")),
			chromedp.WaitVisible(chromedp.CSS("p.error-text")),
		)
		if g := f.grantState(signed.ID); g.RevokeIndex != nil {
			t.Fatal("a form without its CSRF token revoked the grant")
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "could not be verified") {
			t.Fatalf("the page after a form without its CSRF token: %q", txt)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		// A second signed grant stays active, beside one made with an API
		// token, for the screenshot.
		grantVia(t, "omh:step-count")
		run(t, ctx, chromedp.WaitVisible(chromedp.CSS("p.notice")))
		f.grant(f.patient.ID, f.clin.ID)
		// The clinician's hub key, added with an API token a moment ago:
		// pending, and flagged new, on the consent page.
		now := time.Now()
		ke := consent.New(consent.KindClinicianKeyAdd, f.clin.ID, now)
		ke.Clinician = f.clin.ID
		rcpt := newRecipient(t)
		ke.Key = &consent.ClinicianKey{Fingerprint: consent.Fingerprint(rcpt), Recipient: rcpt, Label: "Riverside hub", ActiveFrom: now.Add(24 * time.Hour).UTC().Format(time.RFC3339Nano)}
		if _, err := f.led.Append(ke); err != nil {
			t.Fatal(err)
		}
		// One click opens the confirmation and revokes nothing; the
		// confirmation's own button revokes.
		form := `form[action="/consent/` + signed.ID + `/revoke"]`
		run(t, ctx,
			chromedp.Navigate(f.base+"/consent"),
			chromedp.WaitVisible(chromedp.CSS("#keys-h")),
		)
		if get(t, ctx, chromedp.Evaluate[bool](`document.querySelector('`+form+` button').checkVisibility()`)) {
			t.Fatal("the revoke button is visible before the confirmation opens")
		}
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`details:has(`+form+`) summary`)),
			chromedp.WaitVisible(chromedp.CSS(form+" button")),
		)
		if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/consent" || f.grantState(signed.ID).RevokeIndex != nil {
			t.Fatalf("one click revoked the grant (at %s)", loc)
		}
		run(t, ctx,
			chromedp.Click(chromedp.CSS(form+" button")),
			chromedp.WaitVisible(chromedp.CSS("#revoked-h")),
		)
		g := f.grantState(signed.ID)
		if g.RevokeIndex == nil {
			t.Fatal("not revoked")
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("p.notice"))); !strings.Contains(txt, "revoked") {
			t.Fatalf("notice %q", txt)
		}
		if _, err := f.led.Verify(nil); err != nil {
			t.Fatalf("ledger verify after the revoke: %v", err)
		}
		screenshot(t, ctx, "consent")
	})

	t.Run("access log", func(t *testing.T) {
		var active consent.GrantState
		for _, g := range f.grants(f.patient.ID) {
			if g.Signed && g.RevokeIndex == nil {
				active = g
			}
		}
		// Two exports, logged as the API's export logs them.
		f.access(f.patient.ID, active, 4032, false)
		f.access(f.patient.ID, active, 288, false)
		run(t, ctx, chromedp.Navigate(f.base+"/access-log"), chromedp.WaitVisible(chromedp.CSS("table.access")))
		txt := get(t, ctx, chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(txt, clinicianName) || !strings.Contains(txt, "4032") || !strings.Contains(txt, "complete") {
			t.Fatalf("access log: %q", txt)
		}
		screenshot(t, ctx, "access-log")
	})

	// The patient's ledger, tokens and account pages, ending with the
	// account's deletion (patient_e2e_test.go).
	f.patientBrowserFlow(t, ctx, browserSteps{signOut: signOut, refused: refused})

	// Nothing secret or personal reached the logs or the database file.
	logs := f.logs.String()
	db, err := os.ReadFile(filepath.Join(f.dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{patientName, "Ada's phone", "Backup key", strings.TrimPrefix(link, f.base+"/enrol/")} {
		if strings.Contains(logs, s) {
			t.Errorf("%q is in the logs", s)
		}
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("%q is in the database file", s)
		}
	}
	if t.Failed() {
		fmt.Println(logs)
	}
}
