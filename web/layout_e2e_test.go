package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/vault"
)

// layoutPage is one page the layout test opens: as whom, and under which
// name its phone screenshot is written (none when empty).
type layoutPage struct {
	name string
	path string
	as   string // "patient", "clinician", or "" (signed out)
	shot string
}

// layoutSkipped are the GET routes the layout test does not open, each
// with the reason. Every other GET route of the route table must be in
// the test's page list: a new page is laid out, or explicitly skipped.
var layoutSkipped = map[string]string{
	"GET /static/": "the stylesheet, scripts and icon: not pages",
}

// layoutFixture is a vault with something on every page: readings, a
// grant signed with the patient's passkey and two unsigned ones (one
// revoked), the clinician's hub keys (confirmed and post-quantum, and one
// added with an API token, pending), exports in the access log, tokens,
// long passkey names, an invite, and OAuth with the real provider (an app
// grant, a remembered sign-in client, a live request of each kind). The
// map holds the session cookies ("patient", "clinician") and the paths of
// the invite and of the two live requests ("app-request",
// "signin-request").
func layoutFixture(t *testing.T) (*fixture, map[string]string) {
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000, oauth: true})
	pa := f.softPasskey(f.patient.ID)
	ca := f.softPasskey(f.clin.ID)
	f.addCred(f.patient.ID, "Ada's phone with a rather long passkey name that has to wrap")
	ps, pcsrf := f.signIn(f.patient.ID)
	cs, ccsrf := f.signIn(f.clin.ID)

	// A key confirmed with the clinician's passkey (post-quantum: the
	// longest recipient there is).
	hybrid, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ch, cer := f.beginCeremony(t, "/webauthn/clinician/keys/begin", cs, ccsrf, keyForm{Label: "Riverside JupyterHub, cardiology", Recipient: hybrid.Recipient().String()})
	if r := f.jsonPost("/webauthn/clinician/keys/finish", cs, ccsrf, cer, ca.ResponseJSON(ca.Sign(ch, consenttest.Options{}))); r.StatusCode != http.StatusOK {
		t.Fatalf("confirmed key: %d", r.StatusCode)
	}
	// A key added with an API token: pending for a day.
	now := time.Now()
	e := consent.New(consent.KindClinicianKeyAdd, f.clin.ID, now)
	e.Clinician = f.clin.ID
	rcpt := newRecipient(t)
	e.Key = &consent.ClinicianKey{Fingerprint: consent.Fingerprint(rcpt), Recipient: rcpt, Label: "notebook key", ActiveFrom: now.Add(24 * time.Hour).UTC().Format(time.RFC3339Nano)}
	if _, err := f.led.Append(e); err != nil {
		t.Fatal(err)
	}

	// A grant signed with the patient's passkey, two unsigned (the second
	// revoked), and exports under the signed one.
	ch, cer = f.beginGrant(t, ps, pcsrf, testForm(f))
	if r := f.jsonPost("/webauthn/grant/finish", ps, pcsrf, cer, pa.ResponseJSON(pa.Sign(ch, consenttest.Options{}))); r.StatusCode != http.StatusOK {
		t.Fatalf("signed grant: %d", r.StatusCode)
	}
	f.grant(f.patient.ID, f.clin.ID)
	f.grant(f.patient.ID, f.clin.ID)
	var revoked consent.GrantState
	for _, g := range f.grants(f.patient.ID) {
		if !g.Signed {
			revoked = g
		}
	}
	if _, err := f.led.Append(consent.NewRevoke(f.patient.ID, revoked, now)); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.grants(f.patient.ID) {
		if g.Signed {
			f.access(f.patient.ID, g, 4032, false)
			f.access(f.patient.ID, g, 288, true)
		}
	}
	f.mint(f.patient.ID, vault.TokenDevice, 90*24*time.Hour)
	f.mint(f.patient.ID, vault.TokenPatient, 30*24*time.Hour)
	f.mint(f.clin.ID, vault.TokenClinician, 30*24*time.Hour)

	// OAuth, with the real provider: an app the patient allowed with her
	// passkey (an app grant, on /consent and /apps), a client the
	// clinician lets sign her in (remembered, on /apps), and one live
	// request of each kind, whose pages the test opens.
	app := f.oauthClient(t, "Glucose Insights for long-named phones", "http://127.0.0.1:9/cb", false, "launch/patient", "offline_access", "patient/Observation.rs")
	id := f.pendingRequest(t, app, "s1")
	ch, cer = f.beginCeremony(t, "/webauthn/oauth/begin", ps, pcsrf, appGrantForm{ID: id, Schemas: []string{"omh:blood-glucose", "omh:step-count"}, ExpiresOn: now.AddDate(0, 3, 0).Format(time.DateOnly)})
	if r := f.jsonPost("/webauthn/oauth/finish", ps, pcsrf, cer, pa.ResponseJSON(pa.Sign(ch, consenttest.Options{}))); r.StatusCode != http.StatusOK {
		t.Fatalf("app grant: %d", r.StatusCode)
	}
	hub := f.oauthClient(t, "Riverside JupyterHub, cardiology department", "http://127.0.0.1:9/hub/oauth_callback", true, "openid", "fhirUser", "profile", "user/Observation.rs")
	id = f.pendingRequest(t, hub, "s2")
	if r := f.do(formPost("/oauth/authorize/allow", cs, "csrf="+url.QueryEscape(ccsrf)+"&id="+url.QueryEscape(id))); r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in allowed: %d", r.StatusCode)
	}
	lake := f.oauthClient(t, "Lakeside research hub", "http://127.0.0.1:9/hub/oauth_callback", true, "openid", "fhirUser", "user/Observation.rs")
	pages := map[string]string{
		"app-request":    "/oauth/authorize?id=" + url.QueryEscape(f.pendingRequest(t, app, "s3")),
		"signin-request": "/oauth/authorize?id=" + url.QueryEscape(f.pendingRequest(t, lake, "s4")),
	}

	invitee := f.user(vault.NewUser{Role: vault.RolePatient, Name: "Carmen Oyelaran-Whitfield"})
	link, err := f.srv.NewInvite(t.Context(), invitee.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	pages["patient"], pages["clinician"], pages["invite"] = ps, cs, strings.TrimPrefix(link, f.base)
	return f, pages
}

// TestBrowserLayoutNoSidewaysScroll opens every page of the route table,
// as a patient, a clinician or signed out, in real Chromium at 390 px (a
// phone) and at 1280 px, with every disclosure open, and fails when the
// page scrolls sideways: document.scrollingElement.scrollWidth beyond the
// viewport's width. A GET route missing from its list fails it too.
// With VAULT_SCREENSHOTS=1 it writes the phone screenshots.
func TestBrowserLayoutNoSidewaysScroll(t *testing.T) {
	ctx := browser(t)
	f, sessions := layoutFixture(t)
	pages := []layoutPage{
		{"sign-in", "/signin", "", "signin-phone"},
		{"recovery sign-in", "/signin/recovery", "", ""},
		{"enrolment", sessions["invite"], "", "enrol-phone"},
		{"account deleted", "/account/deleted", "", ""},
		{"not found", "/no-such-page", "", ""},
		{"dashboard", "/", "patient", "dashboard-phone"},
		{"passkeys", "/passkeys", "patient", "passkeys-phone"},
		{"consent", "/consent", "patient", "consent-phone"},
		{"access log", "/access-log", "patient", "access-log-phone"},
		{"upload", "/upload", "patient", ""},
		{"ledger", "/ledger", "patient", "ledger-phone"},
		{"tokens", "/tokens", "patient", "tokens-phone"},
		{"account", "/account", "patient", "account-phone"},
		{"patients (home)", "/", "clinician", ""},
		{"patients", "/patients", "clinician", "patients-phone"},
		{"clinician passkeys", "/passkeys", "clinician", ""},
		{"hub keys", "/clinician/keys", "clinician", "clinician-keys-phone"},
		{"export builder", "/clinician/export", "clinician", "export-builder-phone"},
		{"clinician tokens", "/clinician/tokens", "clinician", ""},
		{"apps", "/apps", "patient", "apps-phone"},
		{"clinician apps", "/apps", "clinician", "clinician-apps-phone"},
		{"clinician's patient", "/patients/" + f.patient.ID, "clinician", "clinician-patient-phone"},
		{"app consent", sessions["app-request"], "patient", "oauth-consent-phone"},
		{"sign-in for a client", sessions["signin-request"], "clinician", "oauth-signin-phone"},
	}
	// Every GET route is opened or skipped with its reason.
	var missing []string
	for _, rt := range f.srv.routeTable() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			method, path = "GET", "/no-such-page" // the catch-all: the 404 page
		}
		if method != "GET" || layoutSkipped[rt.pattern] != "" {
			continue
		}
		found := false
		for _, p := range pages {
			if patternMatches(path, p.path) {
				found = true
			}
		}
		if !found {
			missing = append(missing, rt.pattern)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("GET routes the layout test neither opens nor skips (add them to its pages, or to layoutSkipped with a reason): %v", missing)
	}

	as := func(t *testing.T, who string) {
		t.Helper()
		if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: SessionCookie, URL: f.base + "/"}); err != nil {
			t.Fatal(err)
		}
		if who == "" {
			return
		}
		yes := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: SessionCookie, Value: sessions[who], URL: f.base + "/", Path: "/",
			Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict}); err != nil {
			t.Fatal(err)
		}
	}
	for _, width := range []int64{390, 1280} {
		t.Run(fmt.Sprintf("%dpx", width), func(t *testing.T) {
			run(t, ctx, chromedp.EmulateViewport(width, 844, chromedp.EmulateScale(2)))
			for _, p := range pages {
				as(t, p.as)
				run(t, ctx, chromedp.Navigate(f.base+p.path), chromedp.WaitVisible(chromedp.CSS("main h1")))
				if loc := get(t, ctx, chromedp.Location()); p.path != "/no-such-page" && loc != f.base+p.path {
					t.Fatalf("%s: opened %s, not %s", p.name, loc, p.path)
				}
				if width == 390 && p.shot != "" {
					screenshot(t, ctx, p.shot)
				}
				if msg := sidewaysScroll(t, ctx); msg != "" {
					t.Errorf("%s (%s) at %d px: %s", p.name, p.path, width, msg)
				}
				if width == 390 {
					for _, msg := range phoneProblems(t, ctx) {
						t.Errorf("%s (%s) at 390 px: %s", p.name, p.path, msg)
					}
				}
			}
		})
	}
}

// patternMatches reports whether a route table path (with {name}
// wildcards and {$}) matches a page's path.
func patternMatches(pattern, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	if pattern == "/{$}" {
		return path == "/"
	}
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != qs[i] {
			return false
		}
	}
	return true
}

// sidewaysScroll opens every <details> on the page and reports whether
// the page is wider than the viewport: the width it scrolls to, and the
// elements that reach past the right edge. Empty means none.
func sidewaysScroll(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[string](`(() => {
		document.querySelectorAll('details').forEach(d => { d.open = true; });
		const se = document.scrollingElement, vw = se.clientWidth;
		if (se.scrollWidth <= vw) return '';
		const out = [];
		for (const el of document.querySelectorAll('body *')) {
			const r = el.getBoundingClientRect();
			if (r.right > vw + 0.5 && out.length < 6) {
				out.push(el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/\s+/g, '.') : '') + ' (right ' + Math.round(r.right) + ')');
			}
		}
		return 'scrollWidth ' + se.scrollWidth + ' > viewport ' + vw + ': ' + out.join(', ');
	})()`))
}

// phoneProblems are what the trial found on a phone besides sideways
// scrolling: a button or disclosure of the page's content out of view
// (a Revoke button at the end of a table that scrolls), the menu on more
// than one line, and a chart drawn narrower than its 720 units (its
// labels shrunk) or opening on its oldest days rather than its newest.
func phoneProblems(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[[]string](`(() => {
		const out = [], vw = document.scrollingElement.clientWidth;
		for (const el of document.querySelectorAll('main button, main summary, main input, main select')) {
			if (el.type === 'hidden' || el.offsetParent === null) continue;
			const r = el.getBoundingClientRect();
			if (r.right > vw + 0.5 || r.left < -0.5) out.push(el.tagName.toLowerCase() + ' "' + (el.textContent || el.name).trim().slice(0, 40) + '" out of view (left ' + Math.round(r.left) + ', right ' + Math.round(r.right) + ')');
		}
		const items = [...document.querySelectorAll('header nav li')].map(li => li.getBoundingClientRect().top);
		if (items.length && Math.max(...items) - Math.min(...items) > 1) out.push('the menu takes more than one line');
		for (const wrap of document.querySelectorAll('.chart-wrap')) {
			const svg = wrap.querySelector('svg'), w = wrap.getBoundingClientRect(), c = svg.getBoundingClientRect();
			if (c.width < 719.5) out.push('a chart is drawn ' + Math.round(c.width) + ' px wide, under its 720 units');
			if (Math.abs(c.right - w.right) > 1) out.push('a chart opens ' + Math.round(c.right - w.right) + ' px short of its newest day');
		}
		return out;
	})()`))
}
