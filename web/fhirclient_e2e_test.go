package web

import (
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
)

// fhirclient is the SMART JS client (npm fhirclient 2.6.3): scripts/test
// takes its browser bundle out of the package's tarball (pinned by the
// registry's sha512) into fhirclientDir, git-ignored. The test pins the
// bundle's sha256 as well, so a stale or altered copy fails rather than
// tests something else.
const (
	fhirclientDir    = "testdata/fhirclient"
	fhirclientBundle = "fhir-client.min.js"
	fhirclientSHA256 = "eb76a8e9034fab4f07eb4e5ab7e0dfeabe09976fba5e2adfa5c834466d30fdce"
)

// needFHIRClient returns the bundle, or skips loudly without it (fails
// under CI=true).
func needFHIRClient(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fhirclientDir, fhirclientBundle))
	if err != nil {
		msg := "the fhirclient bundle is missing (" + err.Error() + "): run scripts/test, which fetches it with npm pack"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING the fhirclient browser test: " + msg)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != fhirclientSHA256 {
		t.Fatalf("%s/%s is not fhirclient 2.6.3's bundle (sha256 %x): delete it and run scripts/test", fhirclientDir, fhirclientBundle, sum)
	}
	return b
}

// smartAppPages are the two pages of a minimal SMART app built on
// fhirclient. launch.html starts a standalone launch at the vault
// (FHIR.oauth2.authorize; PKCE required, never skipped); index.html,
// the redirect URI, completes it (FHIR.oauth2.ready) and leaves the
// client in window.smart for the test to drive. One of fhirclient's
// settings is changed, as docs/fhir.md says: refreshes carry credentials
// "include" (what its users set when the token endpoint is on another
// site). Its refresh sends no client_id, its default: the provider takes a
// public client's refresh without one (oauth's publicRefresh). #state says
// "ready" or "failed", and #error why.
var smartAppPages = template.Must(template.New("launch.html").Parse(`<!doctype html>
<meta charset="utf-8"><title>SMART app launch</title>
<script src="fhir-client.min.js"></script>
<p id="state">Launching</p><pre id="error"></pre>
<script>
FHIR.oauth2.authorize({iss: {{.Issuer}}, clientId: {{.ClientID}}, scope: {{.Scope}}, redirectUri: "index.html", pkceMode: "required"})
  .catch(e => { document.getElementById("state").textContent = "failed"; document.getElementById("error").textContent = String(e); });
</script>
{{define "index.html"}}<!doctype html>
<meta charset="utf-8"><title>SMART app</title>
<script src="fhir-client.min.js"></script>
<p id="state">Loading</p><pre id="error"></pre>
<script>
FHIR.oauth2.settings.refreshTokenWithCredentials = "include";
FHIR.oauth2.ready().then(
  c => { window.smart = c; document.getElementById("state").textContent = "ready"; },
  e => { document.getElementById("state").textContent = "failed"; document.getElementById("error").textContent = String(e); });
</script>{{end}}`))

// smartAppSite serves the app's pages and the bundle on another origin
// than the vault's (http://127.0.0.1:PORT, the vault being
// http://localhost:PORT), so every call fhirclient makes to the vault is
// cross-origin and needs the vault's CORS.
func smartAppSite(t *testing.T, bundle []byte, page func() map[string]string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, name := range []string{"launch.html", "index.html"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := smartAppPages.ExecuteTemplate(w, name, page()); err != nil {
				t.Errorf("app page %s: %v", name, err)
			}
		})
	}
	mux.HandleFunc("GET /"+fhirclientBundle, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(bundle)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// readingsInGrant counts the patient's readings the app grant g covers:
// its schemas, within its data window, as the vault stores them.
func (f *fixture) readingsInGrant(t *testing.T, g consent.GrantState) int {
	t.Helper()
	n := 0
	for _, s := range g.Schemas {
		id, err := omh.ParseSchemaID(s)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := omh.CanonicalSchema(id)
		for _, err := range f.v.Readings(t.Context(), g.Patient, c.String(), g.DataFrom, g.DataTo) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

// observationPages is what the page reports of a search read through
// every page with fhirclient: the Bundles, the Observation ids in order,
// and any resource that is not an Observation of the patient.
type observationPages struct {
	Pages    int      `json:"pages"`
	IDs      []string `json:"ids"`
	Strays   []string `json:"strays"`
	NextLast bool     `json:"nextLast"` // the last Bundle still had a next link
}

// TestBrowserFHIRClientStandaloneLaunch: fhirclient, the SMART JS client
// from npm, in real Chromium, against the real provider and FHIR API on
// another site. A public client (PKCE) registered for the app's page on
// 127.0.0.1 runs a standalone patient launch (launch/patient openid
// fhirUser offline_access patient/Observation.rs); the signed-out patient
// signs in with her passkey, unticks heart rate on the consent page and
// signs the consent with it; FHIR.oauth2.ready() completes the exchange
// across origins. client.patient.id is her pt- id and the token's
// patient; client.request with pageLimit 0 reads Observations through
// every page (next links followed): as many as the vault holds under the
// grant, each id once, none of heart rate, every page one access (start
// and end, the counts adding up) in her log before it left. client.refresh
// (credentials "include": the token endpoint answers the app's exact
// origin with Access-Control-Allow-Credentials) gets a new access token,
// which reads on and which introspection finds active for the app and
// the patient.
func TestBrowserFHIRClientStandaloneLaunch(t *testing.T) {
	ctx := browser(t)
	bundle := needFHIRClient(t)
	authenticator(t, ctx)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000, oauth: true, smartApp: true})
	f.enrolInBrowser(t, ctx, f.patient.ID)

	scope := "launch/patient openid fhirUser offline_access patient/Observation.rs"
	var clientID string
	site := smartAppSite(t, bundle, func() map[string]string {
		return map[string]string{"Issuer": f.prov.Issuer(), "ClientID": clientID, "Scope": scope}
	})
	info, secret, err := f.prov.AddClient(t.Context(), oauth.NewClient{Name: "Glucose Notebook", RedirectURIs: []string{site.URL + "/index.html"}})
	if err != nil || secret != "" {
		t.Fatalf("registering the public app: secret %q, %v", secret, err)
	}
	clientID = info.ID
	n0 := len(f.appGrants(f.patient.ID))

	// The launch: to the vault, the passkey sign-in, the consent page.
	run(t, ctx, chromedp.Navigate(site.URL+"/launch.html"), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, f.base+"/signin?next=%2Foauth%2Fauthorize%3Fid%3D") {
		t.Fatalf("the launch went to %s", loc)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)), chromedp.WaitVisible(chromedp.CSS("#oauth-form")))
	if h := get(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); h != "Allow Glucose Notebook to read your data?" {
		t.Fatalf("consent page heading %q", h)
	}
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`#oauth-form input[value="omh:heart-rate"]`)),
		chromedp.Click(chromedp.CSS("#allow")),
		chromedp.WaitVisible(chromedp.CSS("#state")),
	)
	get(t, ctx, chromedp.Poll[bool](`document.getElementById("state")?.textContent !== "Loading"`))
	if st := get(t, ctx, chromedp.Text(chromedp.CSS("#state"))); st != "ready" {
		t.Fatalf("FHIR.oauth2.ready(): %s: %s", st, get(t, ctx, chromedp.Text(chromedp.CSS("#error"))))
	}
	if loc := get(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, site.URL+"/index.html") {
		t.Fatalf("the app is at %s", loc)
	}
	gs := f.appGrants(f.patient.ID)
	if len(gs) != n0+1 {
		t.Fatalf("app grants: %+v", gs)
	}
	g := gs[len(gs)-1]
	if g.App != clientID || !g.Signed || slices.Contains(g.Schemas, "omh:heart-rate") || !slices.Contains(g.Schemas, "omh:blood-glucose") {
		t.Fatalf("app grant %+v", g)
	}

	// The patient in context, as the client and the token response say.
	want := oauth.FHIRID(f.patient.ID)
	if id := get(t, ctx, chromedp.Evaluate[string](`smart.patient.id`)); id != want || !strings.HasPrefix(id, "pt-") {
		t.Fatalf("client.patient.id %q, want %q", id, want)
	}
	if p := get(t, ctx, chromedp.Evaluate[string](`smart.state.tokenResponse.patient`)); p != want {
		t.Fatalf("token response patient %q", p)
	}
	granted := strings.Fields(get(t, ctx, chromedp.Evaluate[string](`smart.state.tokenResponse.scope`)))
	if !slices.Contains(granted, "offline_access") || !slices.Contains(granted, "launch/patient") || strings.Contains(strings.Join(granted, " "), "8867-4") {
		t.Fatalf("granted scope %v", granted)
	}

	// Observations through every page.
	size0 := f.size()
	got := get(t, ctx, chromedp.Evaluate[observationPages](`smart.request("Observation?patient=" + smart.patient.id + "&_count=1000", {pageLimit: 0}).then(bs => ({
		pages: bs.length,
		ids: bs.flatMap(b => (b.entry || []).map(e => e.resource.id)),
		strays: bs.flatMap(b => (b.entry || []).map(e => e.resource)).filter(r => r.resourceType !== "Observation" || r.subject.reference !== "Patient/" + smart.patient.id).map(r => r.id),
		nextLast: (bs[bs.length - 1].link || []).some(l => l.relation === "next"),
	}))`, chromedp.EvalAwaitPromise))
	inGrant := f.readingsInGrant(t, g)
	if inGrant < 4000 || len(got.IDs) != inGrant || got.Pages < 5 || got.NextLast || len(got.Strays) != 0 {
		t.Fatalf("read %d Observations in %d pages (next link on the last: %v, strays %v); the vault holds %d under the grant",
			len(got.IDs), got.Pages, got.NextLast, got.Strays, inGrant)
	}
	seen := map[string]bool{}
	for _, id := range got.IDs {
		if seen[id] {
			t.Fatalf("Observation %s read twice", id)
		}
		seen[id] = true
	}
	var starts, records int64
	for i := size0; i < f.size(); i++ {
		e := f.entry(i)
		if e.Patient != f.patient.ID || e.App != clientID || e.Access == nil || e.Access.Format != "fhir" {
			t.Fatalf("entry %d during the read: %+v", i, e)
		}
		switch e.Kind {
		case consent.KindAccessStart:
			starts++
		case consent.KindAccessEnd:
			records += e.Access.Records
		}
	}
	if starts != int64(got.Pages) || records != int64(len(got.IDs)) {
		t.Fatalf("the access log has %d reads of %d records for %d pages of %d", starts, records, got.Pages, len(got.IDs))
	}

	// A refresh across origins, with credentials.
	before := get(t, ctx, chromedp.Evaluate[string](`smart.state.tokenResponse.access_token`))
	after := get(t, ctx, chromedp.Evaluate[string](`smart.refresh().then(s => s.tokenResponse.access_token)`, chromedp.EvalAwaitPromise))
	if after == "" || after == before {
		t.Fatalf("client.refresh() gave the same access token (or none)")
	}
	n := get(t, ctx, chromedp.Evaluate[int](`smart.request("Observation?patient=" + smart.patient.id + "&_count=1").then(b => (b.entry || []).length)`, chromedp.EvalAwaitPromise))
	if n != 1 {
		t.Fatalf("a read with the refreshed token gave %d entries", n)
	}
	rs := f.oauthClient(t, "Resource server", "http://localhost/unused", true)
	if in := f.introspect(t, rs, after); in["active"] != true || in["client_id"] != clientID || in["sub"] != f.patient.ID {
		t.Fatalf("introspection of the refreshed token: %v", in)
	}
}
