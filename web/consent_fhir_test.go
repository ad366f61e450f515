package web

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
)

// TestConsentFHIRChoice: the consent form offers the FHIR choice as a
// checkbox, off by default; the page's script sends it as "fhir"; a grant
// made with it on is stored with "fhir":true inside the entry the passkey
// signs (and without it, with nothing), and the grants table says which
// channel each grant allows.
func TestConsentFHIRChoice(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.softPasskey(f.patient.ID)
	sess, csrf := f.signIn(f.patient.ID)

	page := body(t, f.do(req{path: "/consent", cookie: sess}))
	box := regexp.MustCompile(`<input type="checkbox" name="fhir" value="yes"[^>]*>`).FindString(page)
	if box == "" || strings.Contains(box, "checked") {
		t.Fatalf("the FHIR checkbox is missing or on by default: %q", box)
	}
	if js := body(t, f.do(req{path: "/static/webauthn.js"})); !strings.Contains(js, `fhir: fd.get("fhir") === "yes"`) {
		t.Fatal("the page's script does not send the checkbox as fhir")
	}

	grant := func(t *testing.T, allow bool) consent.GrantState {
		t.Helper()
		form := testForm(f)
		form.FHIR = allow
		ch, cer := f.beginGrant(t, sess, csrf, form)
		r := f.jsonPost("/webauthn/grant/finish", sess, csrf, cer, a.ResponseJSON(a.Sign(ch, consenttest.Options{})))
		var res map[string]string
		if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil {
			t.Fatalf("grant finish: %d %v", r.StatusCode, res)
		}
		g, err := f.led.Grant(res["grant"])
		if err != nil || !g.Signed || g.FHIR != allow {
			t.Fatalf("grant %+v (%v), want fhir %v and signed", g, err, allow)
		}
		e := f.entry(g.Index)
		if e.Grant.FHIR != allow {
			t.Fatalf("stored entry fhir %v, want %v", e.Grant.FHIR, allow)
		}
		// The passkey signed the entry as stored, fhir included.
		if want, err := consent.GrantChallenge(e, e.Grant.Assertion.Nonce); err != nil || string(want) != string(ch) {
			t.Fatal("the signed challenge is not the stored entry's")
		}
		return g
	}
	on := grant(t, true)
	off := grant(t, false)

	page = body(t, f.do(req{path: "/consent", cookie: sess}))
	for _, c := range []struct {
		g    consent.GrantState
		want string
	}{{on, "exports and the FHIR API"}, {off, "encrypted exports only"}} {
		i := strings.Index(page, `action="/consent/`+c.g.ID+`/revoke"`)
		if i < 0 {
			t.Fatalf("grant %s is not on the page", c.g.ID)
		}
		row := page[strings.LastIndex(page[:i], "<tr"):i]
		if !strings.Contains(row, c.want) {
			t.Errorf("grant %s (fhir %v): its row does not say %q:\n%s", c.g.ID, c.g.FHIR, c.want, row)
		}
	}
}
