package api_test

import (
	"bytes"
	"net/http"
	"testing"
)

// TestNoStoreOnEveryAPIResponse: every API response, whatever its route or
// status, tells caches to keep nothing and browsers not to sniff: most
// carry health data.
func TestNoStoreOnEveryAPIResponse(t *testing.T) {
	e := newExportEnv(t)
	cases := []struct {
		name, method, path, token string
		body                      []byte
		status                    int
	}{
		{"readings", "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0", e.ptok, nil, 200},
		{"upload", "POST", "/api/v1/readings", e.device, []byte(batch(2)), 201},
		{"bad upload", "POST", "/api/v1/readings", e.device, []byte("{"), 400},
		{"export", "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0&from=2025-02-01T00:00:00Z&to=2025-02-02T00:00:00Z"), e.clin, nil, 200},
		{"access log", "GET", "/api/v1/access-log", e.ptok, nil, 200},
		{"grants", "GET", "/api/v1/grants", e.ptok, nil, 200},
		{"grant", "GET", "/api/v1/grants/" + e.grantID, e.ptok, nil, 200},
		{"clinician patients", "GET", "/api/v1/clinician/patients", e.clin, nil, 200},
		{"clinician keys", "GET", "/api/v1/clinician/keys", e.clin, nil, 200},
		{"clinicians", "GET", "/api/v1/clinicians", e.ptok, nil, 200},
		{"tokens", "GET", "/api/v1/tokens", e.ptok, nil, 200},
		{"ledger entry", "GET", "/api/v1/ledger/entries/0", e.clin, nil, 200},
		{"checkpoint", "GET", "/api/v1/ledger/checkpoint", "", nil, 200},
		{"no token", "GET", "/api/v1/readings", "", nil, 401},
		{"wrong role", "GET", "/api/v1/readings", e.clin, nil, 403},
		{"unknown route", "GET", "/api/v1/nope", e.ptok, nil, 404},
		{"wrong method", "PUT", "/api/v1/readings", e.ptok, nil, 405},
		{"healthz", "GET", "/healthz", "", nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, e.srv.URL+c.path, bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := resp.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
		})
	}
}
