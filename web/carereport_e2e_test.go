package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/carereport"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// The web UI's Launcher over the real provider, as cmd/vault's
// webAuthorizer implements it.
func (a providerAuthorizer) LaunchApps(ctx context.Context) ([]LaunchApp, error) {
	cs, err := a.p.Clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []LaunchApp
	for _, c := range cs {
		if c.LaunchURI != "" {
			out = append(out, LaunchApp{ClientID: c.ID, Name: c.Name})
		}
	}
	return out, nil
}

func (a providerAuthorizer) Launch(ctx context.Context, l LaunchRequest) (string, error) {
	to, err := a.p.NewLaunch(ctx, oauth.LaunchContext{UserID: l.UserID, Session: l.Session, ClientID: l.ClientID, Patient: l.Patient})
	if errors.Is(err, oauth.ErrNotLaunchable) {
		return "", fmt.Errorf("%w: %v", ErrAuthClientGone, err)
	}
	return to, providerErr(err)
}

// launchLog records the URLs the browser opened the app's launch page at.
type launchLog struct {
	mu   sync.Mutex
	urls []string
}

func (l *launchLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == carereport.Path+"launch" {
			l.mu.Lock()
			l.urls = append(l.urls, r.URL.String())
			l.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (l *launchLog) last(t *testing.T) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.urls) == 0 {
		t.Fatal("the app's launch page was never opened")
	}
	return l.urls[len(l.urls)-1]
}

// addSMARTApp builds the FHIR API and the care-team report app over the
// fixture's provider and ledger, the app registered as cmd/vault
// registers it (Provider.EnsureClient).
func (f *fixture) addSMARTApp(base *url.URL) {
	f.t.Helper()
	fs, err := fhir.New(fhir.Config{BaseURL: base, Tokens: f.prov, Clients: f.prov, Records: f.v, Ledger: f.led, Sealer: f.v.Master(), Logger: f.log})
	if err != nil {
		f.t.Fatal(err)
	}
	info, secret, created, err := f.prov.EnsureClient(f.t.Context(), oauth.NewClient{Name: carereport.Name,
		RedirectURIs: []string{carereport.RedirectURI(base)}, LaunchURI: carereport.LaunchURI(base), Confidential: true})
	if err != nil || !created || secret == "" {
		f.t.Fatalf("registering the app: created %v, %v", created, err)
	}
	app, err := carereport.New(carereport.Config{BaseURL: base, Issuer: f.prov.Issuer(), ClientID: info.ID, ClientSecret: secret, Sealer: f.v.Master(), Logger: f.log})
	if err != nil {
		f.t.Fatal(err)
	}
	f.fhirH, f.appH = fs.Handler(), f.launches.wrap(app.Handler())
}

// fhirGrant records the patient's grant of blood glucose to the clinician
// with FHIR reads allowed.
func (f *fixture) fhirGrant(t *testing.T, patient, clinician string) string {
	t.Helper()
	now := time.Now()
	e := consent.New(consent.KindGrant, patient, now)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &consent.Grant{ID: vault.NewID("gr_"), Schemas: []string{"omh:blood-glucose"}, FHIR: true,
		Expires: now.Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339Nano), Purpose: "TREAT"}
	if _, err := f.led.Append(e); err != nil {
		t.Fatal(err)
	}
	return e.Grant.ID
}

// TestBrowserEHRLaunchCareReport: in real Chromium with a virtual
// authenticator, the whole EHR launch. The clinician signs in with her
// passkey; her patient list shows "Open in app" for the care-team report
// (registered as a confidential client with its launch URL); she opens it
// for Ada, who granted her glucose with FHIR reads. The vault issues a
// launch id and opens the app's launch URL with iss and launch; the app
// asks for the launch scope, the clinician allows it once, the app
// exchanges the code with its secret and the verifier, gets Ada as the
// patient in context, reads her glucose through the FHIR API page by page
// and shows the AGP under a patient banner. Each page read is in Ada's
// access log (two entries each). The launch URL opened again (a reused
// launch id) is refused: the app shows the vault's invalid_request. From
// the patient's own page, "Open in app" works again with a fresh id, now
// without asking.
func TestBrowserEHRLaunchCareReport(t *testing.T) {
	ctx := browser(t)
	authenticator(t, ctx)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000, oauth: true, smartApp: true})
	f.fhirGrant(t, f.patient.ID, f.clin.ID)
	f.enrolInBrowser(t, ctx, f.clin.ID)
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"] button`)))

	run(t, ctx, chromedp.Navigate(f.base+"/patients"), chromedp.WaitVisible(chromedp.CSS("button[data-launch]")))
	if txt := get(t, ctx, chromedp.Text(chromedp.CSS("button[data-launch]"))); txt != "Open in app: "+carereport.Name {
		t.Fatalf("launch button %q", txt)
	}
	size0 := f.size()
	run(t, ctx, chromedp.Click(chromedp.CSS("button[data-launch]")), chromedp.WaitVisible(chromedp.CSS("#allow")))
	if h := get(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); h != "Sign in to "+carereport.Name+"?" {
		t.Fatalf("sign-in page heading %q", h)
	}
	launchURL := f.launches.last(t) // the path and query
	if u, err := url.Parse(launchURL); err != nil || u.Path != carereport.Path+"launch" || u.Query().Get("iss") != f.prov.Issuer() || !strings.HasPrefix(u.Query().Get("launch"), "vl_") {
		t.Fatalf("the app was launched at %s", launchURL)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#agp-modal svg")))
	if loc := get(t, ctx, chromedp.Location()); loc != f.base+carereport.Path {
		t.Fatalf("the report is at %s", loc)
	}
	if name, id := get(t, ctx, chromedp.Text(chromedp.CSS("#patient-name"))), get(t, ctx, chromedp.Text(chromedp.CSS("#patient-id"))); name != patientName || id != oauth.FHIRID(f.patient.ID) {
		t.Fatalf("patient banner %q %q", name, id)
	}
	readings, err := strconv.Atoi(get(t, ctx, chromedp.Text(chromedp.CSS("#agp-readings"))))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.Atoi(get(t, ctx, chromedp.Text(chromedp.CSS("#agp-pages"))))
	if err != nil {
		t.Fatal(err)
	}
	// 14 days of 5-minute glucose, less a 3-hour sensor gap: more than
	// 3,900 readings, four pages of 1,000 at least.
	if readings < 3900 || pages < 4 {
		t.Fatalf("the report read %d readings in %d pages", readings, pages)
	}
	tiles := get(t, ctx, chromedp.Text(chromedp.CSS("#agp-tiles")))
	if !strings.Contains(tiles, "Mean glucose") || !strings.Contains(tiles, "GMI") {
		t.Fatalf("AGP tiles %q", tiles)
	}
	screenshot(t, ctx, "care-report-app")
	// Every page is an access in Ada's log: an access-start and an
	// access-end each, appended before the page left the vault.
	var fhirReads int
	for i := size0; i < f.size(); i++ {
		if e := f.entry(i); e.Kind == consent.KindAccessStart && e.Patient == f.patient.ID && e.Clinician == f.clin.ID && e.Access != nil && e.Access.Format == "fhir" {
			fhirReads++
		}
	}
	if fhirReads != pages {
		t.Fatalf("%d FHIR reads in the access log for %d pages", fhirReads, pages)
	}

	// The same launch URL again: the id is spent, the vault refuses, and
	// the app says so.
	run(t, ctx, chromedp.Navigate(f.base+launchURL), chromedp.WaitVisible(chromedp.CSS("#error")))
	code := get(t, ctx, chromedp.AttributeValue(chromedp.CSS("#error"), "data-code")).Value
	msg := get(t, ctx, chromedp.Text(chromedp.CSS("#error")))
	if code != "refused_invalid_request" || !strings.Contains(msg, "launch is unknown, expired, already used") {
		t.Fatalf("the reused launch: %s %q", code, msg)
	}

	// From the patient's page: a fresh id, the app remembered, straight
	// to the report.
	n := len(f.launches.urls)
	run(t, ctx, chromedp.Navigate(f.base+"/patients/"+f.patient.ID), chromedp.WaitVisible(chromedp.CSS("button[data-launch]")),
		chromedp.Click(chromedp.CSS("button[data-launch]")), chromedp.WaitVisible(chromedp.CSS("#agp-modal svg")))
	if again := f.launches.last(t); len(f.launches.urls) != n+1 || again == launchURL {
		t.Fatalf("the second launch reused %s", again)
	}
	if name := get(t, ctx, chromedp.Text(chromedp.CSS("#patient-name"))); name != patientName {
		t.Fatalf("patient banner %q", name)
	}
}
