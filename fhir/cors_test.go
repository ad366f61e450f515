package fhir_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

// TestCORS: answers carry Access-Control-Allow-Origin for exactly the
// origin of a registered client's redirect URI (scheme, host and port),
// on successes and on errors alike, and for any origin on the metadata;
// never for another origin, never with credentials; always Vary: Origin.
// A preflight from a registered origin is allowed the bearer header.
func TestCORS(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{}) // registers a client with redirect http://localhost:8000/app/callback
	app := "http://localhost:8000"
	pt := oauth.FHIRID(f.patient.ID)
	for _, c := range []struct {
		name, method, path, token, origin string
		status                            int
		allow                             bool
	}{
		{"search, registered origin", "GET", "/Observation?patient=" + pt + "&_count=1", tok, app, 200, true},
		{"no token (401), registered origin", "GET", "/Observation?patient=" + pt, "", app, 401, true},
		{"another patient (403), registered origin", "GET", "/Observation?patient=" + oauth.FHIRID(f.other.ID), tok, app, 403, true},
		{"bad parameter (400), registered origin", "GET", "/Observation?patient=" + pt + "&nope=1", tok, app, 400, true},
		{"unknown resource (404), registered origin", "GET", "/Medication", tok, app, 404, true},
		{"search, unregistered origin", "GET", "/Observation?patient=" + pt + "&_count=1", tok, "https://evil.example", 200, false},
		{"same host, another port", "GET", "/Observation?patient=" + pt + "&_count=1", tok, "http://localhost:8001", 200, false},
		{"same host, another scheme", "GET", "/Observation?patient=" + pt + "&_count=1", tok, "https://localhost:8000", 200, false},
		{"origin with a path is not an origin", "GET", "/Observation?patient=" + pt + "&_count=1", tok, app + "/app", 200, false},
		{"metadata, any origin", "GET", "/metadata", "", "https://anywhere.example", 200, true},
		{"no Origin", "GET", "/Observation?patient=" + pt + "&_count=1", tok, "", 200, false},
		{"preflight, registered origin", "OPTIONS", "/Observation?patient=" + pt, "", app, 204, true},
		{"preflight, unregistered origin", "OPTIONS", "/Observation?patient=" + pt, "", "https://evil.example", 204, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, f.base+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			if c.method == "OPTIONS" {
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
			}
			got := h.Get("Access-Control-Allow-Origin")
			switch {
			case c.allow && got != c.origin:
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, c.origin)
			case !c.allow && got != "":
				t.Errorf("Access-Control-Allow-Origin %q for an origin not allowed", got)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("credentials allowed: %q", h.Get("Access-Control-Allow-Credentials"))
			}
			if c.allow && c.method == "GET" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
				t.Errorf("Expose-Headers %q lacks WWW-Authenticate", h.Get("Access-Control-Expose-Headers"))
			}
			if c.allow && c.method == "OPTIONS" {
				if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
					t.Errorf("preflight: methods %q, headers %q", h.Get("Access-Control-Allow-Methods"), h.Get("Access-Control-Allow-Headers"))
				}
			}
		})
	}
}
