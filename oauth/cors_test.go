package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// send makes one request with the given Origin (none when empty) and
// headers, and returns the response with its body read.
func send(t *testing.T, method, u, origin string, form url.Values, hdr http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestCORS: token, introspection, revocation and userinfo answer the exact
// origin of a registered client's redirect URI, with credentials, on
// preflights, successes and errors; an unknown origin gets no CORS header;
// the allowed origins follow clients added and removed; discovery and the
// JWKS are open to any origin without credentials; authorize has none.
func TestCORS(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	iss := f.p.Issuer()
	cfg := f.client(t, true, "openid", "offline_access", "user/Observation.rs") // redirect on http://127.0.0.1:8000
	const hubOrigin = "http://127.0.0.1:8000"
	app, _, err := f.p.AddClient(ctx, oauth.NewClient{Name: "Browser app", RedirectURIs: []string{"https://App.Example:443/launch/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	const appOrigin = "https://app.example" // the default port and case folded away, as a browser sends it

	wantCORS := func(t *testing.T, what string, resp *http.Response, origin string) {
		t.Helper()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, got, origin)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("%s: Access-Control-Allow-Credentials %q, want true", what, got)
		}
	}
	wantNoCORS := func(t *testing.T, what string, resp *http.Response) {
		t.Helper()
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: an unknown origin got %s: %q", what, k, resp.Header.Get(k))
			}
		}
	}

	endpoints := map[string]string{"token": "/auth/token", "introspect": "/auth/introspect", "revoke": "/auth/revoke", "userinfo": "/auth/userinfo"}
	for name, path := range endpoints {
		t.Run(name, func(t *testing.T) {
			for _, origin := range []string{hubOrigin, appOrigin} {
				pre, _ := send(t, http.MethodOptions, iss+path, origin, nil, http.Header{
					"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization,content-type"}})
				if pre.StatusCode/100 != 2 {
					t.Errorf("preflight from %s: %d", origin, pre.StatusCode)
				}
				wantCORS(t, "preflight from "+origin, pre, origin)
				if !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") {
					t.Errorf("preflight from %s allows headers %q, want Authorization", origin, pre.Header.Get("Access-Control-Allow-Headers"))
				}
				// An error answer (no credentials, bad grant) still carries CORS.
				resp, body := send(t, http.MethodPost, iss+path, origin, url.Values{"grant_type": {"authorization_code"}, "code": {"va_nothing"}, "token": {"vo_nothing"}}, nil)
				if resp.StatusCode < 400 {
					t.Fatalf("an unauthenticated POST to %s: %d %s, want an error", path, resp.StatusCode, body)
				}
				wantCORS(t, "error from "+origin, resp, origin)
			}
			pre, _ := send(t, http.MethodOptions, iss+path, "https://evil.example", nil, http.Header{"Access-Control-Request-Method": {"POST"}})
			wantNoCORS(t, "preflight", pre)
			resp, _ := send(t, http.MethodPost, iss+path, "https://evil.example", url.Values{"token": {"vo_nothing"}}, nil)
			wantNoCORS(t, "POST", resp)
			// Same host, other port or scheme: another origin.
			resp, _ = send(t, http.MethodPost, iss+path, "http://127.0.0.1:8001", url.Values{"token": {"vo_nothing"}}, nil)
			wantNoCORS(t, "another port", resp)
			resp, _ = send(t, http.MethodPost, iss+path, "http://app.example", url.Values{"token": {"vo_nothing"}}, nil)
			wantNoCORS(t, "another scheme", resp)
		})
	}

	t.Run("code exchange and refresh", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID})
		basic := http.Header{}
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
		basic.Set("Authorization", req.Header.Get("Authorization"))
		resp, body := send(t, http.MethodPost, iss+"/auth/token", hubOrigin, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}, basic)
		if resp.StatusCode != 200 {
			t.Fatalf("exchange: %d %s", resp.StatusCode, body)
		}
		wantCORS(t, "code exchange", resp, hubOrigin)
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	})

	t.Run("clients come and go", func(t *testing.T) {
		const newOrigin = "https://new.example:8443"
		probe := func() *http.Response {
			resp, _ := send(t, http.MethodPost, iss+"/auth/token", newOrigin, url.Values{"grant_type": {"refresh_token"}}, nil)
			return resp
		}
		wantNoCORS(t, "before registration", probe())
		c, _, err := f.p.AddClient(ctx, oauth.NewClient{Name: "New app", RedirectURIs: []string{newOrigin + "/cb"}})
		if err != nil {
			t.Fatal(err)
		}
		wantCORS(t, "after registration", probe(), newOrigin)
		if err := f.p.RemoveClient(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		wantNoCORS(t, "after removal", probe())
		if err := f.p.RemoveClient(ctx, app.ID); err != nil {
			t.Fatal(err)
		}
		resp, _ := send(t, http.MethodPost, iss+"/auth/token", appOrigin, url.Values{}, nil)
		wantNoCORS(t, "a removed client's origin", resp)
	})

	t.Run("public documents", func(t *testing.T) {
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/smart-configuration", "/auth/keys"} {
			resp, body := send(t, http.MethodGet, iss+path, "https://anyone.example", nil, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: %d, CORS %v; %s", path, resp.StatusCode, resp.Header, body)
			}
		}
	})

	t.Run("authorize", func(t *testing.T) {
		u := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", iss))
		resp, _ := send(t, http.MethodGet, u, hubOrigin, nil, nil)
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("authorize: %d", resp.StatusCode)
		}
		wantNoCORS(t, "authorize", resp)
	})
}
