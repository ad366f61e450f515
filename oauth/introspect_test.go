package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// TestIntrospectBearer: introspection authenticated by a bearer access
// token (SMART's "appropriately-scoped SMART App bearer token"): any active
// access token, of a public or a confidential client, introspects the
// tokens of its own client; another client's token answers exactly
// {"active":false}; a refresh token, an unknown, revoked or expired token
// is not a bearer (401 invalid_token with WWW-Authenticate); a bearer plus
// client credentials, a missing token and a GET are refused.
func TestIntrospectBearer(t *testing.T) {
	f := newFixture(t)
	iss := f.p.Issuer()
	hub := f.client(t, true, "openid", "offline_access", "user/Observation.rs")
	app := f.client(t, false, "openid", "user/Observation.rs")
	login := func(cfg *oauth2.Config) map[string]any {
		t.Helper()
		v := oauth2.GenerateVerifier()
		status, _, tok := f.exchange(t, cfg, f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID}), v)
		if status != 200 {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		return tok
	}
	hubTok, appTok, hubTok2 := login(hub), login(app), login(hub)
	hubAccess, hubRefresh := hubTok["access_token"].(string), hubTok["refresh_token"].(string)
	appAccess := appTok["access_token"].(string)

	introspect := func(bearer string, form url.Values, method string) (int, http.Header, map[string]any) {
		t.Helper()
		resp, body := send(t, method, iss+"/auth/introspect", "", form, http.Header{"Authorization": {"Bearer " + bearer}})
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("introspection answered %d %q, not JSON", resp.StatusCode, body)
		}
		return resp.StatusCode, resp.Header, m
	}
	active := func(t *testing.T, bearer, token string) map[string]any {
		t.Helper()
		status, h, body := introspect(bearer, url.Values{"token": {token}}, http.MethodPost)
		if status != 200 || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Fatalf("%d %v %v", status, h, body)
		}
		return body
	}

	t.Run("own client's tokens", func(t *testing.T) {
		in := active(t, hubAccess, hubAccess)
		if in["active"] != true || in["client_id"] != hub.ClientID || in["sub"] != f.clinician.ID || in["token_type"] != "Bearer" {
			t.Fatalf("self: %v", in)
		}
		if in := active(t, hubAccess, hubRefresh); in["active"] != true || in["token_type"] != "refresh_token" {
			t.Fatalf("own refresh token: %v", in)
		}
		if in := active(t, hubAccess, hubTok2["access_token"].(string)); in["active"] != true {
			t.Fatalf("another login of the same client: %v", in)
		}
		// A public client's token introspects its own.
		if in := active(t, appAccess, appAccess); in["active"] != true || in["client_id"] != app.ClientID {
			t.Fatalf("public client, self: %v", in)
		}
	})
	t.Run("another client's token", func(t *testing.T) {
		wantInactive(t, "the hub's token by the app's bearer", active(t, appAccess, hubAccess))
		wantInactive(t, "the app's token by the hub's bearer", active(t, hubAccess, appAccess))
		wantInactive(t, "an unknown token", active(t, hubAccess, "vo_nothing"))
		// Client authentication still introspects any client's token.
		if in := f.introspect(t, hub, appAccess); in["active"] != true {
			t.Fatalf("a confidential client introspecting: %v", in)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			bearer string
			form   url.Values
			method string
			status int
			error  string
		}{
			{"refresh token as bearer", hubRefresh, url.Values{"token": {hubAccess}}, http.MethodPost, 401, "invalid_token"},
			{"unknown bearer", "vo_nothing", url.Values{"token": {hubAccess}}, http.MethodPost, 401, "invalid_token"},
			{"not a token", "hello", url.Values{"token": {hubAccess}}, http.MethodPost, 401, "invalid_token"},
			{"bearer and client secret", hubAccess, url.Values{"token": {hubAccess}, "client_id": {hub.ClientID}, "client_secret": {hub.ClientSecret}}, http.MethodPost, 400, "invalid_request"},
			{"no token", hubAccess, url.Values{}, http.MethodPost, 400, "invalid_request"},
			{"GET", hubAccess, nil, http.MethodGet, 405, "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, h, body := introspect(tc.bearer, tc.form, tc.method)
				if status != tc.status || body["error"] != tc.error {
					t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.error)
				}
				if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
					t.Fatalf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
				}
			})
		}
	})
	t.Run("revoked and expired bearers", func(t *testing.T) {
		second := hubTok2["access_token"].(string)
		if status, _, body := post(t, iss+"/auth/revoke", hub, url.Values{"token": {second}}); status != 200 {
			t.Fatalf("revoke: %d %v", status, body)
		}
		if status, _, body := introspect(second, url.Values{"token": {hubAccess}}, http.MethodPost); status != 401 || body["error"] != "invalid_token" {
			t.Fatalf("a revoked bearer: %d %v", status, body)
		}
		f.advance(time.Hour + time.Second)
		if status, _, body := introspect(hubAccess, url.Values{"token": {hubRefresh}}, http.MethodPost); status != 401 || body["error"] != "invalid_token" {
			t.Fatalf("an expired bearer: %d %v", status, body)
		}
	})
}
