package oauth_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// hubRequest sends a request shaped as JupyterHub's GenericOAuthenticator
// (oauthenticator 17) sends it: Accept JSON, its User-Agent, and for a
// form its content type with the charset.
func hubRequest(t *testing.T, method, u, bearer string, form url.Values, basic *oauth2.Config) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "JupyterHub")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if basic != nil {
		req.SetBasicAuth(basic.ClientID, basic.ClientSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, u, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// TestHubRequestShapes pins the requests JupyterHub's GenericOAuthenticator
// sends, as docs/jupyterhub.md configures it, against the real provider:
// the authorize redirect with its base64-JSON state and the aud from
// extra_authorize_params; the token request with the client's credentials
// in the form (its default) or in Basic auth (basic_auth = True), and the
// literal data=None field it adds; userinfo with the bearer token, whose
// preferred_username becomes the hub's user name; and, once the access
// token has expired and userinfo answers 401, the refresh. The end-to-end
// JupyterHub test (cmd/vault) runs a stand-in that sends the same shapes,
// since oauthenticator itself is not installable here.
func TestHubRequestShapes(t *testing.T) {
	for _, basicAuth := range []bool{false, true} {
		name := map[bool]string{false: "client_secret_post", true: "basic_auth"}[basicAuth]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			cfg := f.client(t, true)
			verifier := oauth2.GenerateVerifier()
			state := base64.URLEncoding.EncodeToString([]byte(`{"state_id": "8d5bc1e4d1b24f5e9e6a0b2f2b1c3d4e", "next_url": "/hub/home"}`))
			q := url.Values{
				"response_type":         {"code"},
				"client_id":             {cfg.ClientID},
				"redirect_uri":          {redirectURI},
				"scope":                 {"openid fhirUser profile offline_access user/Observation.rs"},
				"state":                 {state},
				"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
				"code_challenge_method": {"S256"},
				"aud":                   {f.p.Issuer()},
			}
			loc := location(t, f.p.Issuer()+"/auth/authorize?"+q.Encode())
			id := loc.Query().Get("id")
			if loc.Path != "/oauth/authorize" || id == "" {
				t.Fatalf("authorize sent the hub's user to %s", loc)
			}
			cb, err := f.p.Approve(t.Context(), id, oauth.Approval{UserID: f.clinician.ID})
			if err != nil {
				t.Fatal(err)
			}
			back := location(t, cb)
			if back.Query().Get("state") != state || back.Query().Get("code") == "" {
				t.Fatalf("back at the hub: %s (state must come back unchanged)", back)
			}

			token := func(form url.Values) (int, map[string]any) {
				form.Set("data", "None") // GenericOAuthenticator sends it
				var basic *oauth2.Config
				if basicAuth {
					basic = cfg
				} else {
					form.Set("client_id", cfg.ClientID)
					form.Set("client_secret", cfg.ClientSecret)
				}
				return hubRequest(t, http.MethodPost, f.p.Issuer()+"/auth/token", "", form, basic)
			}
			st, tok := token(url.Values{"code": {back.Query().Get("code")}, "grant_type": {"authorization_code"},
				"redirect_uri": {redirectURI}, "code_verifier": {verifier}})
			if st != 200 {
				t.Fatalf("token: %d %v", st, tok)
			}
			for _, k := range []string{"access_token", "refresh_token", "id_token", "scope"} {
				if s, _ := tok[k].(string); s == "" {
					t.Fatalf("token response lacks %s: %v", k, tok)
				}
			}
			if _, ok := tok["expires_in"].(float64); !ok {
				t.Fatalf("token response's expires_in: %v", tok["expires_in"])
			}
			userinfo := f.p.Issuer() + "/auth/userinfo"
			st, user := hubRequest(t, http.MethodGet, userinfo, tok["access_token"].(string), nil, nil)
			if st != 200 || user["preferred_username"] != f.clinician.ID || user["sub"] != f.clinician.ID {
				t.Fatalf("userinfo: %d %v (preferred_username is the hub's user name)", st, user)
			}

			// auth_refresh_age later, the access token has expired.
			f.advance(time.Hour + time.Minute)
			if st, _ := hubRequest(t, http.MethodGet, userinfo, tok["access_token"].(string), nil, nil); st != http.StatusUnauthorized {
				t.Fatalf("userinfo with an expired token: %d, want 401 (the hub refreshes on a 4xx)", st)
			}
			req, err := http.NewRequest(http.MethodGet, userinfo, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer error="invalid_token"`) {
				t.Fatalf("userinfo's 401 challenge: %q (RFC 6750)", ch)
			}
			st, fresh := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
			if st != 200 || fresh["access_token"] == tok["access_token"] || fresh["refresh_token"] == "" {
				t.Fatalf("refresh: %d %v", st, fresh)
			}
			if st, user := hubRequest(t, http.MethodGet, userinfo, fresh["access_token"].(string), nil, nil); st != 200 || user["preferred_username"] != f.clinician.ID {
				t.Fatalf("userinfo after the refresh: %d %v", st, user)
			}
		})
	}
}
