package web

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
)

// TestAppRevokeBehindConfirmation: on the consent page, an app grant's
// only Revoke submit is inside a closed <details> disclosure whose summary
// submits nothing, as a clinician grant's is (TestRevokeBehindConfirmation);
// loading the page and the disclosure's summary revoke nothing, the
// confirmation's form does. (TestBrowserPatientAuthorizesApp clicks it in
// Chromium.)
func TestAppRevokeBehindConfirmation(t *testing.T) {
	f, _ := newOAuthFixture(t)
	now := time.Now()
	e, err := consent.NewAppGrant(f.patient.ID, consent.AppGrantRequest{App: "app_glucose", Schemas: []string{"omh:blood-glucose"},
		ExpiresAt: now.Add(24 * time.Hour).UTC().Format(time.RFC3339)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.led.Append(e); err != nil {
		t.Fatal(err)
	}
	id := e.Grant.ID
	sess, csrf := f.signIn(f.patient.ID)
	b := body(t, f.do(req{path: "/consent", cookie: sess}))
	action := `action="/consent/apps/` + id + `/revoke"`
	confirm := regexp.MustCompile(`(?s)<details class="confirm">\s*<summary[^>]*>Revoke…</summary>\s*<div class="confirm-body">.*?Glucose Insights.*?<form method="post" `+regexp.QuoteMeta(action)+`>.*?<button type="submit" class="danger"[^>]*>Yes, revoke</button>.*?</details>`).FindAllString(b, -1)
	if len(confirm) != 1 || strings.Count(b, action) != 1 || strings.Contains(confirm[0], `<details class="confirm" open`) {
		t.Fatalf("the app's revoke form is not only behind a closed disclosure:\n%s", b)
	}
	if !f.led.AppGrantActive(id, f.patient.ID, "app_glucose", time.Now()) {
		t.Fatal("showing the page revoked the app grant")
	}
	if r := f.do(formPost("/consent/apps/"+id+"/revoke", sess, "csrf="+url.QueryEscape(csrf))); r.StatusCode != 303 || f.led.AppGrantActive(id, f.patient.ID, "app_glucose", time.Now()) {
		t.Fatalf("the confirmation's form: %d, still active", r.StatusCode)
	}
}
