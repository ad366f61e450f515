package carereport_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/carereport"
	"github.com/jupyterhealth/vault/keys"
)

// TestCareReportRefusals: the app's own refusals, before any request
// leaves for the vault: a launch naming another FHIR server, an answer
// without the launch cookie of the browser that started it (or with
// another's, another launch's, a changed one, one sealed for another
// registration of the app, or one come back too late), and a launch that
// goes to the vault's authorize endpoint with PKCE S256, aud and the
// launch id. Every page carries the app's CSP.
func TestCareReportRefusals(t *testing.T) {
	base, err := url.Parse("https://vault.example")
	if err != nil {
		t.Fatal(err)
	}
	master, err := keys.NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	newApp := func(clientID string) http.Handler {
		app, err := carereport.New(carereport.Config{BaseURL: base, Issuer: "https://vault.example/fhir", ClientID: clientID, ClientSecret: "vs_secret", Sealer: master, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return app.Handler()
	}
	h := newApp("oc_app")
	if _, err := carereport.New(carereport.Config{BaseURL: base, Issuer: "https://vault.example/fhir", ClientID: "oc_app", ClientSecret: "vs_secret"}); err == nil {
		t.Fatal("an app without a sealer for its cookies was built")
	}
	get := func(t *testing.T, path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "https://vault.example"+path, nil)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Fatalf("%s: CSP %q", path, csp)
		}
		return w
	}
	code := func(w *httptest.ResponseRecorder) string {
		_, after, _ := strings.Cut(w.Body.String(), `data-code="`)
		c, _, _ := strings.Cut(after, `"`)
		return c
	}

	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"another iss", carereport.Path + "launch?iss=https://evil.example/fhir&launch=vl_x", http.StatusBadRequest, "unknown_iss"},
		{"long launch id", carereport.Path + "launch?launch=" + strings.Repeat("x", 300), http.StatusBadRequest, "bad_launch"},
		{"callback without a launch", carereport.Path + "callback?code=va_x&state=nope", http.StatusBadRequest, "bad_state"},
		{"unknown page", carereport.Path + "nothing", http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, tc.path)
			if w.Code != tc.status || code(w) != tc.code {
				t.Fatalf("%d %q, want %d %s", w.Code, code(w), tc.status, tc.code)
			}
		})
	}

	t.Run("launch, then the answer in another browser", func(t *testing.T) {
		w := get(t, carereport.Path+"launch?iss=https://vault.example/fhir&launch=vl_abc")
		loc, err := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusSeeOther || err != nil {
			t.Fatalf("launch: %d %v", w.Code, err)
		}
		q := loc.Query()
		if loc.String()[:len("https://vault.example/fhir/auth/authorize?")] != "https://vault.example/fhir/auth/authorize?" ||
			q.Get("launch") != "vl_abc" || q.Get("aud") != "https://vault.example/fhir" || q.Get("code_challenge_method") != "S256" ||
			q.Get("client_id") != "oc_app" || !strings.Contains(q.Get("scope"), "launch ") || q.Get("state") == "" {
			t.Fatalf("authorization request %s", loc)
		}
		var launch *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == "care_report_launch" {
				launch = c
			}
		}
		if launch == nil || !launch.HttpOnly || !launch.Secure || launch.Path != carereport.Path || launch.SameSite != http.SameSiteLaxMode {
			t.Fatalf("launch cookie %+v", launch)
		}
		if strings.Contains(launch.Value, q.Get("state")) {
			t.Fatal("the launch cookie carries the state in the clear")
		}
		// A second launch in another browser: its cookie with the first
		// launch's state is refused.
		w2 := get(t, carereport.Path+"launch?iss=https://vault.example/fhir&launch=vl_def")
		var other *http.Cookie
		for _, c := range w2.Result().Cookies() {
			if c.Name == "care_report_launch" {
				other = c
			}
		}
		if other == nil || other.Value == launch.Value {
			t.Fatalf("the second launch's cookie %+v", other)
		}
		flipped := []byte(launch.Value)
		flipped[len(flipped)/2] ^= 'A' ^ 'B'
		state := url.QueryEscape(q.Get("state"))
		for _, bad := range []struct {
			name string
			h    http.Handler
			c    *http.Cookie
		}{
			{"another browser's value", h, &http.Cookie{Name: "care_report_launch", Value: "other"}},
			{"another launch's cookie", h, other},
			{"a changed cookie", h, &http.Cookie{Name: "care_report_launch", Value: string(flipped)}},
			{"another registration's app", newApp("oc_other"), launch},
		} {
			r := httptest.NewRequest(http.MethodGet, "https://vault.example"+carereport.Path+"callback?error=access_denied&state="+state, nil)
			r.AddCookie(bad.c)
			w := httptest.NewRecorder()
			bad.h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest || code(w) != "bad_state" {
				t.Fatalf("%s: %d %s", bad.name, w.Code, code(w))
			}
		}
		// The launch's own cookie, too late.
		now = now.Add(carereport.PendingTTL)
		w = get(t, carereport.Path+"callback?error=access_denied&state="+state, launch)
		now = now.Add(-carereport.PendingTTL)
		if w.Code != http.StatusBadRequest || code(w) != "bad_state" {
			t.Fatalf("an answer %v after the launch: %d %s", carereport.PendingTTL, w.Code, code(w))
		}
		// In time, with its own cookie, on another instance of the app
		// (another replica: the same keys, nothing shared in memory), the
		// answer is taken, and the cookie cleared.
		h = newApp("oc_app")
		w = get(t, carereport.Path+"callback?error=access_denied&state="+state, launch)
		if w.Code != http.StatusForbidden || code(w) != "refused_access_denied" {
			t.Fatalf("the launch's own answer: %d %s", w.Code, code(w))
		}
		cleared := false
		for _, c := range w.Result().Cookies() {
			cleared = cleared || (c.Name == "care_report_launch" && c.MaxAge < 0)
		}
		if !cleared {
			t.Fatal("the answer left the launch cookie")
		}
	})

	t.Run("the vault's refusal", func(t *testing.T) {
		w := get(t, carereport.Path+"launch")
		loc, _ := url.Parse(w.Header().Get("Location"))
		if q := loc.Query(); q.Get("launch") != "" || !strings.Contains(q.Get("scope"), "launch/patient") {
			t.Fatalf("standalone authorization request %s", loc)
		}
		var launch *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == "care_report_launch" {
				launch = c
			}
		}
		w = get(t, carereport.Path+"callback?error=access_denied&error_description=the+user+denied&state="+url.QueryEscape(loc.Query().Get("state")), launch)
		if w.Code != http.StatusForbidden || code(w) != "refused_access_denied" || !strings.Contains(w.Body.String(), "the user denied") {
			t.Fatalf("refusal: %d %s", w.Code, code(w))
		}
	})
}
