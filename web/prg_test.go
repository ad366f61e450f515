package web

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// TestSecretShownOnceAfterRedirect: a form that makes a token or recovery
// codes answers 303 (post/redirect/get), with the secret in no URL, no
// cookie, the log or the file; the page it leads to shows the secret once;
// opening it again (a reload) shows no secret and makes nothing: no second
// token, and the codes shown still work. The reveal cookie opens nothing
// for another session of the same user.
func TestSecretShownOnceAfterRedirect(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	patient, clinician := f.patient.ID, f.clin.ID
	cases := []struct {
		name, user, post, page, form string
		secret                       *regexp.Regexp
		made                         func() int // what there is of the kind made
	}{
		{"device token", patient, "/tokens", "/tokens", "days=90", regexp.MustCompile(`<textarea id="new-token"[^>]*>(vd_[A-Za-z0-9_-]+)</textarea>`),
			func() int { return len(f.tokens(patient)) }},
		{"clinician token", clinician, "/clinician/tokens", "/clinician/tokens", "days=7", regexp.MustCompile(`<textarea id="new-token"[^>]*>(vc_[A-Za-z0-9_-]+)</textarea>`),
			func() int { return len(f.tokens(clinician)) }},
		{"recovery codes", patient, "/account/recovery-codes", "/account", "", regexp.MustCompile(`<li><code>([a-z2-7-]+)</code></li>`),
			func() int { return f.codesLeft(patient) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sess, csrf := f.signIn(c.user)
			otherSess, _ := f.signIn(c.user)
			n0 := c.made()
			r := f.post(c.post, sess, strings.TrimPrefix(c.form+"&csrf="+url.QueryEscape(csrf), "&"))
			if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != c.page {
				t.Fatalf("POST %s: %d to %q, want 303 to %s", c.post, r.StatusCode, r.Header.Get("Location"), c.page)
			}
			var reveal *http.Cookie
			for _, ck := range r.Cookies() {
				if ck.Name == RevealCookie {
					reveal = ck
				}
			}
			if reveal == nil || !reveal.Secure || !reveal.HttpOnly || reveal.SameSite != http.SameSiteStrictMode || reveal.MaxAge <= 0 || reveal.MaxAge > int(CeremonyTimeout/time.Second) {
				t.Fatalf("reveal cookie: %+v", reveal)
			}
			made := c.made()
			// Another session of the same user (a leaked cookie) sees nothing.
			if b := body(t, f.do(req{path: c.page, cookie: otherSess, cookies: []*http.Cookie{{Name: RevealCookie, Value: reveal.Value}}})); c.secret.MatchString(b) {
				t.Fatal("another session opened the secret")
			}
			// That try took it: the maker's view shows nothing either (fail
			// closed; the token is listed, to revoke). Make it again.
			if b := body(t, f.do(req{path: c.page, cookie: sess, cookies: []*http.Cookie{{Name: RevealCookie, Value: reveal.Value}}})); c.secret.MatchString(b) {
				t.Fatal("a secret taken by another session's try is shown")
			}
			r = f.post(c.post, sess, strings.TrimPrefix(c.form+"&csrf="+url.QueryEscape(csrf), "&"))
			page := f.follow(r, sess, c.page)
			b := body(t, page)
			ms := c.secret.FindAllStringSubmatch(b, -1)
			if page.StatusCode != http.StatusOK || len(ms) == 0 || !strings.Contains(b, "only this once") {
				t.Fatalf("the page after the redirect: %d\n%s", page.StatusCode, b)
			}
			secret := ms[0][1]
			for _, ck := range page.Cookies() {
				if ck.Name == RevealCookie && ck.MaxAge >= 0 {
					t.Fatalf("the reveal cookie is not cleared after its view: %+v", ck)
				}
			}
			afterView := c.made()
			// The reload: the same request again, cookie and all.
			var held string
			for _, ck := range r.Cookies() {
				if ck.Name == RevealCookie {
					held = ck.Value
				}
			}
			again := f.do(req{path: c.page, cookie: sess, cookies: []*http.Cookie{{Name: RevealCookie, Value: held}}})
			if b := body(t, again); again.StatusCode != http.StatusOK || strings.Contains(b, secret) || strings.Contains(b, "only this once") {
				t.Fatalf("a reload shows the secret again: %d", again.StatusCode)
			}
			if c.made() != afterView {
				t.Fatal("a reload made something")
			}
			if c.name == "recovery codes" {
				if made != RecoveryCodeCount || afterView != RecoveryCodeCount || n0 != 0 {
					t.Fatalf("codes: %d before, %d, %d after", n0, made, afterView)
				}
				if r := f.do(req{method: "POST", path: "/signin/recovery", ctype: formType, body: "code=" + url.QueryEscape(secret), headers: map[string]string{"Origin": f.base}}); r.StatusCode != http.StatusSeeOther {
					t.Fatalf("a code shown after the redirect does not sign in: %d", r.StatusCode)
				}
			} else if made != n0+1 || afterView != n0+2 {
				t.Fatalf("tokens: %d before, %d after one POST, %d after two", n0, made, afterView)
			}
			if strings.Contains(f.logs.String(), secret) || bytes.Contains(f.dbFile(), []byte(secret)) || strings.Contains(r.Header.Get("Location"), secret) || strings.Contains(r.Header.Get("Set-Cookie"), secret) {
				t.Fatal("the secret reached the log, the file, the URL or a cookie")
			}
		})
	}
}

// TestPasskeyRemovalRedirects: removing a passkey answers 303 to the
// passkeys page; the same POST again (a reload of the answer's page
// cannot send it, a resubmission can) is 404 and removes nothing more.
func TestPasskeyRemovalRedirects(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	lost := f.addCred(f.patient.ID, "Lost phone")
	f.addCred(f.patient.ID, "Laptop")
	f.addCred(f.patient.ID, "Key")
	sess, csrf := f.signIn(f.patient.ID)
	path := "/passkeys/" + base64.RawURLEncoding.EncodeToString(lost) + "/remove"
	page := f.follow(f.post(path, sess, "csrf="+url.QueryEscape(csrf)), sess, "/passkeys")
	if b := body(t, page); page.StatusCode != http.StatusOK || !strings.Contains(b, "The passkey was removed") || strings.Contains(b, "Lost phone") {
		t.Fatalf("after the removal: %d\n%s", page.StatusCode, b)
	}
	if r := f.post(path, sess, "csrf="+url.QueryEscape(csrf)); r.StatusCode != http.StatusNotFound {
		t.Fatalf("the removal again: %d", r.StatusCode)
	}
	if n := len(f.creds(f.patient.ID)); n != 2 {
		t.Fatalf("%d passkeys left, want 2", n)
	}
}

// TestConsentShowsGranteeKeys: the consent page lists the live hub keys
// of each clinician with an active grant (and no one else's): how each
// was added (the passkey, or an API token with its activation delay and
// when it becomes active), when, and a flag on a key added in the last 7
// days; a removed key is not listed.
func TestConsentShowsGranteeKeys(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true})
	now := f.clock.Now()
	other := f.user(vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Otto Ungranted"})
	// Keys added with an API token (a confirmed key's assertion is
	// checked by the ledger; its row is tested through the ceremony in
	// TestBrowserLayoutNoSidewaysScroll's fixture and clinician_keys_test.go).
	addKey := func(clin, label string, at, activeFrom time.Time) string {
		t.Helper()
		e := consent.New(consent.KindClinicianKeyAdd, clin, at)
		e.Clinician = clin
		rcpt := newRecipient(t)
		e.Key = &consent.ClinicianKey{Fingerprint: consent.Fingerprint(rcpt), Recipient: rcpt, Label: label, ActiveFrom: activeFrom.UTC().Format(time.RFC3339Nano)}
		if _, err := f.led.Append(e); err != nil {
			t.Fatal(err)
		}
		return e.Key.Fingerprint
	}
	old := addKey(f.clin.ID, "Old hub", now.Add(-30*24*time.Hour), now.Add(-29*24*time.Hour))
	fresh := addKey(f.clin.ID, "Fresh hub", now.Add(-2*time.Hour), now.Add(22*time.Hour))
	gone := addKey(f.clin.ID, "Gone hub", now.Add(-10*24*time.Hour), now.Add(-9*24*time.Hour))
	del := consent.New(consent.KindClinicianKeyDel, f.clin.ID, now)
	del.Clinician = f.clin.ID
	del.Key = &consent.ClinicianKey{Fingerprint: gone}
	if _, err := f.led.Append(del); err != nil {
		t.Fatal(err)
	}
	notGrantee := addKey(other.ID, "Ungranted hub", now.Add(-time.Hour), now)

	sess, _ := f.signIn(f.patient.ID)
	if b := body(t, f.do(req{path: "/consent", cookie: sess})); strings.Contains(b, "hub keys") {
		t.Fatal("hub keys shown with no active grant")
	}
	f.grant(f.patient.ID, f.clin.ID)
	b := body(t, f.do(req{path: "/consent", cookie: sess}))
	section := b[strings.Index(b, `id="keys-h"`):]
	section = section[:strings.Index(section, "</section>")]
	row := func(fp string) string {
		i := strings.Index(section, fp)
		if i < 0 {
			t.Fatalf("key %s not listed:\n%s", fp, section)
		}
		start := strings.LastIndex(section[:i], "<tr>")
		return section[start : i+strings.Index(section[i:], "</tr>")]
	}
	oldRow, freshRow := row(old), row(fresh)
	loc, _ := time.LoadLocation("America/New_York")
	for _, want := range []string{"Old hub", ">active<", "with an API token, after the activation delay", fmtTime(now.Add(-30*24*time.Hour), loc)} {
		if !strings.Contains(oldRow, want) {
			t.Errorf("the old key's row lacks %q:\n%s", want, oldRow)
		}
	}
	if strings.Contains(oldRow, ">new<") {
		t.Error("a key added 30 days ago is flagged new")
	}
	for _, want := range []string{"Fresh hub", ">new<", "added in the last 7 days", ">pending<", "active from " + fmtTime(now.Add(22*time.Hour), loc), "with an API token"} {
		if !strings.Contains(freshRow, want) {
			t.Errorf("the fresh key's row lacks %q:\n%s", want, freshRow)
		}
	}
	if !strings.Contains(section, clinicianName) || strings.Contains(section, gone) || strings.Contains(section, notGrantee) || strings.Contains(section, "Ungranted") {
		t.Fatalf("keys section lists a removed key or a clinician without a grant:\n%s", section)
	}
	// Past its 7 days the flag goes, and past its delay the key is active.
	f.clock.Advance(7 * 24 * time.Hour)
	sess, _ = f.signIn(f.patient.ID)
	b = body(t, f.do(req{path: "/consent", cookie: sess}))
	section = b[strings.Index(b, `id="keys-h"`):]
	section = section[:strings.Index(section, "</section>")]
	if freshRow = row(fresh); strings.Contains(freshRow, ">new<") || strings.Contains(freshRow, "pending") || !strings.Contains(freshRow, ">active<") {
		t.Fatalf("a week later:\n%s", freshRow)
	}
}

// TestRevokeBehindConfirmation: on the consent page, the only Revoke
// submit is inside a closed <details> disclosure whose summary submits
// nothing, so one click opens the confirmation and a second revokes.
// (TestBrowserPasskeys clicks it in Chromium.)
func TestRevokeBehindConfirmation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[0]
	sess, _ := f.signIn(f.patient.ID)
	b := body(t, f.do(req{path: "/consent", cookie: sess}))
	forms := regexp.MustCompile(`(?s)<details class="confirm">\s*<summary[^>]*>Revoke…</summary>.*?<form method="post" action="/consent/`+g.ID+`/revoke">.*?<button type="submit" class="danger"[^>]*>Yes, revoke</button>.*?</details>`).FindAllString(b, -1)
	if len(forms) != 1 || strings.Count(b, `action="/consent/`+g.ID+`/revoke"`) != 1 || strings.Contains(forms[0], "<details class=\"confirm\" open") {
		t.Fatalf("the revoke form is not only behind a closed disclosure:\n%s", b)
	}
}
