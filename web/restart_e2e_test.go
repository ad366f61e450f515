package web

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserSessionSurvivesRestart drives real Chromium with a virtual
// authenticator: enrol, sign out, sign in with the passkey, then restart
// the server (the HTTP server and the store closed, the same file opened
// again by a new server on the same address). The same browser is still
// signed in: its pages open and its forms, with the CSRF token of the
// page, are accepted. Neither the session id (the cookie's value) nor the
// CSRF token is anywhere in the database file, in any encoding.
func TestBrowserSessionSurvivesRestart(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, fixtureOpts{listen: true, days: 2, perMin: 1000})
	authenticator(t, ctx)

	link, err := f.srv.NewInvite(t.Context(), f.patient.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx,
		chromedp.Navigate(link),
		chromedp.SendKeys(chromedp.CSS("#label"), "Laptop"),
		chromedp.Click(chromedp.CSS("#enrol-form button")),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
		chromedp.Navigate(f.base+"/passkeys"),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#signin-button")),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
	)
	cookie := browserCookie(t, ctx, f.base)
	csrf := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('meta[name="csrf-token"]').content`))
	if sess, ok := f.srv.sessions.get(t.Context(), cookie); !ok || sess.UserID != f.patient.ID || sess.CSRF != csrf || len(sess.Credential) == 0 {
		t.Fatalf("not signed in with the passkey: %+v", sess)
	}

	f.restart()

	run(t, ctx, chromedp.Navigate(f.base+"/passkeys"), chromedp.WaitVisible(chromedp.CSS("form.rename")))
	if loc := get(t, ctx, chromedp.Location()); loc != f.base+"/passkeys" {
		t.Fatalf("after the restart the browser is at %s", loc)
	}
	if got := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('meta[name="csrf-token"]').content`)); got != csrf {
		t.Fatal("the page's CSRF token changed across the restart")
	}
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS("form.rename input[name=label]"), "Laptop, renamed after a restart"),
		chromedp.Click(chromedp.CSS("form.rename button")),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	recs, err := f.srv.creds.list(t.Context(), f.patient.ID)
	if err != nil || len(recs) != 1 || recs[0].Label != "Laptop, renamed after a restart" {
		t.Fatalf("the form after the restart did not rename the passkey: %v", err)
	}
	if got := browserCookie(t, ctx, f.base); got != cookie {
		t.Fatal("the browser's session cookie changed across the restart")
	}

	checkNotInFile(t, filepath.Join(f.dir, "vault.db"), cookie, map[string]string{"session id": cookie, "CSRF token": csrf})
	if logs := f.logs.String(); strings.Contains(logs, cookie) || strings.Contains(logs, csrf) {
		t.Fatal("the session id or CSRF token is in the logs")
	}
}

// browserCookie returns the value of the browser's session cookie.
func browserCookie(t *testing.T, ctx context.Context, base string) string {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == SessionCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatal("the browser has no session cookie")
	return ""
}
