package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/internal/demo"
)

// introspect asks the provider's introspection endpoint about token, as
// the client id with secret (client_secret_basic).
func introspect(t *testing.T, base, id, secret, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/fhir/auth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestDemoJupyterHubClient: serve --demo registers a confidential client
// for a JupyterHub on localhost:8000 and writes it into credentials.json;
// its secret authenticates at the provider, a wrong one does not, and the
// start-up says how to point a hub at the vault. (That a restart keeps
// the same id and secret is checked by TestEndToEnd's restart step, which
// compares the whole credentials file.)
func TestDemoJupyterHubClient(t *testing.T) {
	s := sharedServer(t)
	hub, ok := s.creds.OIDCClients[demo.JupyterHubClient]
	if !ok {
		t.Fatalf("no oidc_clients.jupyterhub in credentials.json: %+v", s.creds.OIDCClients)
	}
	if !strings.HasPrefix(hub.ClientID, "oc_") || !strings.HasPrefix(hub.ClientSecret, "vs_") {
		t.Fatalf("client id %q / secret of the wrong form", hub.ClientID)
	}
	if hub.RedirectURI != "http://localhost:8000/hub/oauth_callback" {
		t.Fatalf("redirect_uri %q", hub.RedirectURI)
	}
	if want := strings.TrimSuffix(s.creds.BaseURL, "/") + "/fhir"; hub.Issuer != want {
		t.Fatalf("issuer %q, want %q", hub.Issuer, want)
	}
	// The file's JSON shape is what a hub's set-up reads.
	raw, err := os.ReadFile(s.data + "/demo/credentials.json")
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		OIDC map[string]map[string]string `json:"oidc_clients"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "client_secret", "redirect_uri", "issuer"} {
		if shape.OIDC["jupyterhub"][k] == "" {
			t.Errorf("oidc_clients.jupyterhub.%s is missing", k)
		}
	}

	st, body := introspect(t, s.url, hub.ClientID, hub.ClientSecret, "vo_notatoken")
	if st != http.StatusOK || strings.TrimSpace(string(body)) != `{"active":false}` {
		t.Fatalf("introspection with the demo client's secret: %d %s", st, body)
	}
	st, body = introspect(t, s.url, hub.ClientID, hub.ClientSecret+"x", "vo_notatoken")
	if st != http.StatusUnauthorized {
		t.Fatalf("introspection with a wrong secret: %d %s", st, body)
	}

	log, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("vault: JupyterHub sign-in: issuer "+hub.Issuer+"; ")) || !bytes.Contains(log, []byte("under oidc_clients.jupyterhub, see docs/jupyterhub.md")) {
		t.Fatalf("no human line on JupyterHub sign-in in the start-up output:\n%s", log)
	}
}
