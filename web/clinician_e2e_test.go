package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/vault"
)

// TestBrowserClinician drives real headless Chromium with a CDP virtual
// authenticator through the clinician's pages: enrolment from an invite,
// sign-out and passkey sign-in, a hub key registered and confirmed with
// the passkey (active at once, as GET /api/v1/clinician/keys shows, while
// a key added with a token waits), a confirmation with a bogus signature
// refused, an API token made, and the export builder.
func TestBrowserClinician(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, fixtureOpts{listen: true, perMin: 1000})
	f.grant(f.patient.ID, f.clin.ID)
	auth := authenticator(t, ctx)
	apiSrv := api.New(api.Config{Vault: f.v, Ledger: f.led}) // the default 24 h activation delay
	apiDo := func(t *testing.T, method, path, token, body string) (int, string) {
		t.Helper()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		apiSrv.Echo().ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}

	t.Run("enrol, sign out, sign in", func(t *testing.T) {
		link, err := f.srv.NewInvite(t.Context(), f.clin.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#enrol-form")),
			chromedp.SendKeys(chromedp.CSS("#label"), "Clinic laptop"),
			chromedp.Click(chromedp.CSS("#enrol-form button")),
			chromedp.WaitVisible(chromedp.CSS(`a[href="/clinician/keys"]`)),
		)
		run(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
		if _, ok := f.browserSession(t, ctx); ok {
			t.Fatal("still signed in after sign-out")
		}
		run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS(`a[href="/clinician/keys"]`)))
		sess, ok := f.browserSession(t, ctx)
		if !ok || sess.UserID != f.clin.ID || sess.Role != vault.RoleClinician {
			t.Fatalf("session after sign-in: %+v", sess)
		}
	})

	tok, _, err := f.v.MintToken(t.Context(), f.clin.ID, vault.TokenClinician, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub := newRecipient(t)
	addKey := func(t *testing.T, label, rcpt string) {
		t.Helper()
		run(t, ctx, chromedp.Navigate(f.base+"/clinician/keys"), chromedp.WaitVisible(chromedp.CSS("#key-form")),
			chromedp.SendKeys(chromedp.CSS("#key-label"), label),
			chromedp.SendKeys(chromedp.CSS("#key-recipient"), rcpt),
			chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)),
		)
	}

	t.Run("hub key confirmed with the passkey", func(t *testing.T) {
		// A key added with the token first: it waits out the delay.
		if st, b := apiDo(t, "POST", "/api/v1/clinician/keys", tok, `{"label":"token key","recipient":"`+newRecipient(t)+`"}`); st != 201 || !strings.Contains(b, `"status":"pending"`) {
			t.Fatalf("API key: %d %s", st, b)
		}
		addKey(t, "Riverside hub", hub)
		run(t, ctx, chromedp.WaitVisible(chromedp.CSS("p.notice")))
		st, b := apiDo(t, "GET", "/api/v1/clinician/keys", tok, "")
		var keys []struct {
			Fingerprint, Status, Label string
			Confirmed                  bool
		}
		if st != 200 || json.Unmarshal([]byte(b), &keys) != nil || len(keys) != 2 {
			t.Fatalf("GET /api/v1/clinician/keys: %d %s", st, b)
		}
		if keys[0].Status != "pending" || keys[0].Confirmed || keys[1].Label != "Riverside hub" || keys[1].Status != "active" || !keys[1].Confirmed {
			t.Fatalf("keys: %+v", keys)
		}
		res, err := f.led.Verify(nil)
		if err != nil || res.ConfirmedKeys != 1 {
			t.Fatalf("ledger verify: %v (%d confirmed keys)", err, res.ConfirmedKeys)
		}
		if txt := get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "confirmed with your passkey") || !strings.Contains(txt, "added with an API token") {
			t.Fatalf("keys page: %q", txt)
		}
		screenshot(t, ctx, "clinician-keys")
	})

	t.Run("hub key with a bogus signature", func(t *testing.T) {
		yes := true
		set := func(p cdpwebauthn.SetResponseOverrideBitsParams) {
			p.AuthenticatorID = auth
			if _, err := chromedp.Call(ctx, cdpwebauthn.SetResponseOverrideBits, p); err != nil {
				t.Fatal(err)
			}
		}
		n0 := f.size()
		set(cdpwebauthn.SetResponseOverrideBitsParams{IsBogusSignature: &yes})
		addKey(t, "evil", newRecipient(t))
		if msg := waitStatus(t, ctx); !strings.Contains(msg, "could not be verified") {
			t.Fatalf("status %q", msg)
		}
		set(cdpwebauthn.SetResponseOverrideBitsParams{})
		if n1 := f.size(); n1 != n0 {
			t.Fatal("a key with a bogus confirmation changed the ledger")
		}
	})

	t.Run("api token", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(f.base+"/clinician/tokens"), chromedp.WaitVisible(chromedp.CSS("#token-form")),
			chromedp.Click(chromedp.CSS("#token-form button")), chromedp.WaitVisible(chromedp.CSS("#new-token")))
		secret := get(t, ctx, chromedp.Value(chromedp.CSS("#new-token")))
		got, err := f.v.Authenticate(t.Context(), secret)
		if err != nil || got.UserID != f.clin.ID || got.Kind != vault.TokenClinician {
			t.Fatalf("the token the page made: %+v %v", got, err)
		}
		if st, _ := apiDo(t, "GET", "/api/v1/clinician/patients", secret, ""); st != http.StatusOK {
			t.Fatalf("the new token at the API: %d", st)
		}
	})

	t.Run("export builder", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(f.base+"/clinician/export"), chromedp.WaitVisible(chromedp.CSS("#export-form")),
			chromedp.Click(chromedp.CSS(`input[name="schema"][value="omh:blood-glucose"]`)), // unticked: the default
			chromedp.Click(chromedp.CSS(`input[name="schema"][value="omh:blood-glucose"]`)), // ticked again
			chromedp.Click(chromedp.CSS(`#export-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#python-snippet")),
		)
		py := get(t, ctx, chromedp.Text(chromedp.CSS("#python-snippet")))
		curl := get(t, ctx, chromedp.Text(chromedp.CSS("#curl-snippet")))
		if !strings.Contains(py, "client.export(") || !strings.Contains(py, f.patient.ID) || !strings.Contains(py, `"omh:blood-glucose"`) ||
			!strings.Contains(curl, f.base+"/api/v1/patients/"+f.patient.ID+"/export?") {
			t.Fatalf("snippets:\n%s\n%s", py, curl)
		}
		screenshot(t, ctx, "export-builder")
	})
}
