package web

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// TestClinicianExportBuilder: the builder offers the patients who granted
// access, fills the curl command and the Python snippet with the chosen
// values, warns about what the export would refuse, runs no export, and
// is the clinician's alone.
func TestClinicianExportBuilder(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	k := f.apiKey(t, f.clin.ID, newRecipient(t), 0)
	sess, _ := f.signIn(f.clin.ID)
	ps, _ := f.signIn(f.patient.ID)

	if r := f.do(req{path: "/clinician/export"}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("signed out: %d", r.StatusCode)
	}
	if r := f.do(req{path: "/clinician/export", cookie: ps}); r.StatusCode != 404 {
		t.Fatalf("a patient: %d", r.StatusCode)
	}
	tok, _ := f.mint(f.clin.ID, vault.TokenClinician, time.Hour)
	if r := f.do(req{path: "/clinician/export", headers: map[string]string{"Authorization": "Bearer " + tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("an API token instead of a session: %d", r.StatusCode)
	}

	r := f.do(req{path: "/clinician/export", cookie: sess})
	b := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, patientName) || !strings.Contains(b, `value="omh:blood-glucose" checked`) || strings.Contains(b, "python-snippet") {
		t.Fatalf("builder form %d:\n%s", r.StatusCode, b)
	}
	n0 := f.size()
	q := url.Values{"patient": {f.patient.ID}, "schema": {"omh:blood-glucose"}, "from": {"2026-01-01"}, "to": {"2026-01-14"}, "format": {"csv"}, "recipient": {k.Fingerprint}}
	r = f.do(req{path: "/clinician/export?" + q.Encode(), cookie: sess})
	b = html.UnescapeString(body(t, r))
	// The clinician's zone is America/New_York: 1 Jan 00:00 there is 05:00Z,
	// and the window ends at the midnight after 14 Jan.
	wantURL := f.base + "/api/v1/patients/" + f.patient.ID + "/export?format=csv&from=2026-01-01T05%3A00%3A00Z&recipient=" + k.Fingerprint + "&schema=omh%3Ablood-glucose&to=2026-01-15T05%3A00%3A00Z"
	for _, want := range []string{
		`curl -fsS -H "Authorization: Bearer $VAULT_TOKEN" -o export.age`,
		"'" + wantURL + "'",
		`vault decrypt -i "$VAULT_IDENTITY" --verify-key "$VAULT_LOG_KEY" --data-only -o export.csv export.age`,
		`age -d -i "$VAULT_IDENTITY" -o payload.txt export.age`,
		"export.csv is a plain CSV: a header row, then one row per reading",
		"client = jhvault.Client()",
		`"` + f.patient.ID + `",  # ` + patientName,
		`["omh:blood-glucose"],`,
		`start="2026-01-01T05:00:00Z",`,
		`end="2026-01-15T05:00:00Z",`,
		`format="csv",`,
		`recipient="` + k.Fingerprint + `",`,
	} {
		if !strings.Contains(b, want) {
			t.Fatalf("builder lacks %q:\n%s", want, b)
		}
	}
	if r.StatusCode != 200 || strings.Contains(b, `role="alert"`) {
		t.Fatalf("builder %d with warnings:\n%s", r.StatusCode, b)
	}
	if n := f.size(); n != n0 {
		t.Fatal("the builder wrote to the ledger (it must run no export)")
	}

	// What the export would refuse is said.
	for _, tc := range []struct {
		name   string
		q      url.Values
		status int
		want   string
	}{
		{"schema outside the grant", url.Values{"patient": {f.patient.ID}, "schema": {"omh:heart-rate"}}, 200, "do not cover it"},
		{"no fhir form", url.Values{"patient": {f.patient.ID}, "schema": {"omh:physical-activity"}, "format": {"fhir"}}, 200, "format_unsupported"},
		{"a patient without a grant", url.Values{"patient": {f.other.ID}, "schema": {"omh:blood-glucose"}}, 400, "active grant to you"},
		{"an unknown schema", url.Values{"patient": {f.patient.ID}, "schema": {"omh:mood"}}, 400, "from the list"},
		{"a bad format", url.Values{"patient": {f.patient.ID}, "schema": {"omh:blood-glucose"}, "format": {"xml"}}, 400, "format from the list"},
		{"a foreign key", url.Values{"patient": {f.patient.ID}, "schema": {"omh:blood-glucose"}, "recipient": {"fp_00000000000000000000000000000000"}}, 400, "active keys"},
		{"window backwards", url.Values{"patient": {f.patient.ID}, "schema": {"omh:blood-glucose"}, "from": {"2026-02-01"}, "to": {"2026-01-01"}}, 400, "not be after"},
		{"not a date", url.Values{"patient": {f.patient.ID}, "schema": {"omh:blood-glucose"}, "from": {"01/02/2026"}}, 400, "not a date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(req{path: "/clinician/export?" + tc.q.Encode(), cookie: sess})
			b := html.UnescapeString(body(t, r))
			if r.StatusCode != tc.status || !strings.Contains(b, tc.want) {
				t.Fatalf("%d, want %d saying %q:\n%s", r.StatusCode, tc.status, tc.want, b)
			}
		})
	}

	// One active key: it is chosen, in the form and in the code, though
	// the query names none.
	b = html.UnescapeString(body(t, f.do(req{path: "/clinician/export", cookie: sess})))
	if !strings.Contains(b, `value="`+k.Fingerprint+`" selected`) || strings.Contains(b, "the only active key") || strings.Contains(b, "<option value=\"\"") {
		t.Fatalf("one active key is not the chosen one:\n%s", b)
	}
	r = f.do(req{path: "/clinician/export?patient=" + f.patient.ID + "&schema=omh:blood-glucose", cookie: sess})
	b = html.UnescapeString(body(t, r))
	if r.StatusCode != 200 || !strings.Contains(b, "recipient="+k.Fingerprint) || !strings.Contains(b, `recipient="`+k.Fingerprint+`",`) {
		t.Fatalf("one active key, none named: %d, the code does not name it:\n%s", r.StatusCode, b)
	}

	// Two active keys: the form requires a choice, and no code is written
	// without one (the export would be 400 recipient_required).
	k2 := f.apiKey(t, f.clin.ID, newRecipient(t), 0)
	b = html.UnescapeString(body(t, f.do(req{path: "/clinician/export", cookie: sess})))
	if !strings.Contains(b, `<select id="recipient" name="recipient" required>`) || !strings.Contains(b, `<option value="">choose the key this hub's identity opens</option>`) || strings.Contains(b, k.Fingerprint+`" selected`) || strings.Contains(b, k2.Fingerprint+`" selected`) {
		t.Fatalf("two active keys, no required choice:\n%s", b)
	}
	r = f.do(req{path: "/clinician/export?patient=" + f.patient.ID + "&schema=omh:blood-glucose", cookie: sess})
	b = html.UnescapeString(body(t, r))
	if r.StatusCode != 400 || !strings.Contains(b, "recipient_required") || strings.Contains(b, "python-snippet") || strings.Contains(b, "curl-snippet") {
		t.Fatalf("two active keys, none chosen: %d:\n%s", r.StatusCode, b)
	}
	for _, key := range []consent.KeyState{k, k2} {
		r = f.do(req{path: "/clinician/export?patient=" + f.patient.ID + "&schema=omh:blood-glucose&recipient=" + key.Fingerprint, cookie: sess})
		b = html.UnescapeString(body(t, r))
		if r.StatusCode != 200 || !strings.Contains(b, "recipient="+key.Fingerprint) || !strings.Contains(b, `value="`+key.Fingerprint+`" selected`) {
			t.Fatalf("key %s chosen: %d:\n%s", key.Fingerprint, r.StatusCode, b)
		}
	}
	f.led.Append(func() consent.Entry {
		e := consent.New(consent.KindClinicianKeyDel, f.clin.ID, time.Now())
		e.Clinician = f.clin.ID
		e.Key = &consent.ClinicianKey{Fingerprint: k2.Fingerprint}
		return e
	}())

	// No active key: a warning; a second clinician sees no patients.
	f.led.Append(func() consent.Entry {
		e := consent.New(consent.KindClinicianKeyDel, f.clin.ID, time.Now())
		e.Clinician = f.clin.ID
		e.Key = &consent.ClinicianKey{Fingerprint: k.Fingerprint}
		return e
	}())
	b = html.UnescapeString(body(t, f.do(req{path: "/clinician/export?patient=" + f.patient.ID + "&schema=omh:blood-glucose", cookie: sess})))
	if !strings.Contains(b, "no_active_key") {
		t.Fatalf("no key, no warning:\n%s", b)
	}
	other := f.user(vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Other"})
	os, _ := f.signIn(other.ID)
	b = body(t, f.do(req{path: "/clinician/export", cookie: os}))
	if strings.Contains(b, patientName) || !strings.Contains(b, "No patient has an active grant") {
		t.Fatalf("another clinician's builder:\n%s", b)
	}
}

func TestCommentSafe(t *testing.T) {
	if got := commentSafe("Ada\nimport os\u2028x\ry"); strings.ContainsAny(got, "\n\r\u2028") {
		t.Fatalf("%q", got)
	}
}
