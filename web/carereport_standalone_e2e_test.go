package web

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/carereport"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
)

// TestBrowserCareReportStandaloneLaunch: in real Chromium with a virtual
// authenticator, the care-team report app's standalone launch by the
// patient herself. Signed out, she opens /apps/care-report/ and follows
// "open your own report"; the vault has her sign in with her passkey and
// shows the consent page, which offers blood glucose alone (all the app
// asks); she signs it with her passkey. The app exchanges the code, reads
// her glucose through the FHIR API page by page and shows her AGP under
// her banner: every glucose reading the vault holds for her in the
// report's 14 days, in as many pages as her access log has FHIR reads by
// the app. The app grant in her ledger is signed, names the app and
// glucose only.
func TestBrowserCareReportStandaloneLaunch(t *testing.T) {
	ctx := browser(t)
	authenticator(t, ctx)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000, oauth: true, smartApp: true})
	f.enrolInBrowser(t, ctx, f.patient.ID)
	cs, err := f.prov.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cs, func(c oauth.ClientInfo) bool { return c.Name == carereport.Name })
	if i < 0 {
		t.Fatalf("the care report app is not registered: %+v", cs)
	}
	appID := cs[i].ID

	run(t, ctx, chromedp.Navigate(f.base+carereport.Path), chromedp.WaitVisible(chromedp.CSS("#standalone")),
		chromedp.Click(chromedp.CSS("#standalone")), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, f.base+"/signin?next=%2Foauth%2Fauthorize%3Fid%3D") {
		t.Fatalf("the standalone launch went to %s", loc)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS("#oauth-form")))
	if h := get(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); h != "Allow "+carereport.Name+" to read your data?" {
		t.Fatalf("consent page heading %q", h)
	}
	if offered := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#oauth-form input[name="schemas"]')].map(i => i.value)`)); !slices.Equal(offered, []string{"omh:blood-glucose"}) {
		t.Fatalf("the consent page offers %v", offered)
	}
	n0, size0 := len(f.appGrants(f.patient.ID)), f.size()
	before := time.Now()
	run(t, ctx, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#agp-modal svg")))
	after := time.Now()
	if loc := get(t, ctx, chromedp.Location()); loc != f.base+carereport.Path {
		t.Fatalf("the report is at %s", loc)
	}
	if name, id := get(t, ctx, chromedp.Text(chromedp.CSS("#patient-name"))), get(t, ctx, chromedp.Text(chromedp.CSS("#patient-id"))); name != patientName || id != oauth.FHIRID(f.patient.ID) {
		t.Fatalf("patient banner %q %q", name, id)
	}

	gs := f.appGrants(f.patient.ID)
	if len(gs) != n0+1 {
		t.Fatalf("app grants: %+v", gs)
	}
	g := gs[len(gs)-1]
	if g.App != appID || !g.Signed || !slices.Equal(g.Schemas, []string{"omh:blood-glucose"}) || !f.led.AppGrantActive(g.ID, f.patient.ID, appID, time.Now()) {
		t.Fatalf("app grant %+v", g)
	}

	readings, err := strconv.Atoi(get(t, ctx, chromedp.Text(chromedp.CSS("#agp-readings"))))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.Atoi(get(t, ctx, chromedp.Text(chromedp.CSS("#agp-pages"))))
	if err != nil {
		t.Fatal(err)
	}
	// The report reads from ReportDays before the minute after it was
	// made: between before and after, so it holds every glucose reading
	// of hers since then (the two bounds differ only if a 5-minute
	// reading fell inside the launch's few seconds).
	since := func(t0 time.Time) time.Time {
		return t0.UTC().Truncate(time.Minute).Add(time.Minute).AddDate(0, 0, -carereport.ReportDays)
	}
	gMost, gLeast := g, g
	gMost.DataFrom, gLeast.DataFrom = since(before), since(after)
	most, least := f.readingsInGrant(t, gMost), f.readingsInGrant(t, gLeast)
	if readings < least || readings > most || readings < 3900 || pages < 4 {
		t.Fatalf("the report read %d readings in %d pages; the vault holds %d to %d glucose readings for her in its period", readings, pages, least, most)
	}
	var reads int
	for i := size0; i < f.size(); i++ {
		if e := f.entry(i); e.Kind == consent.KindAccessStart && e.Patient == f.patient.ID && e.App == appID && e.Access != nil && e.Access.Format == "fhir" {
			reads++
		}
	}
	if reads != pages {
		t.Fatalf("%d FHIR reads in the access log for %d pages", reads, pages)
	}
}
