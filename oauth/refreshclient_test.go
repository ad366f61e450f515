package oauth_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// TestPublicRefreshWithoutClientID: a public client may refresh without
// naming itself (RFC 6749 §6; fhirclient's default), and gets the same
// answer as with its client_id; a confidential client's refresh token
// without the client's authentication is still refused, and a made-up
// token is not turned into anything.
func TestPublicRefreshWithoutClientID(t *testing.T) {
	f := newFixture(t)
	refreshOf := func(cfg *oauth2.Config) string {
		t.Helper()
		v := oauth2.GenerateVerifier()
		st, _, tok := f.exchange(t, cfg, f.code(t, f.begin(t, cfg, v), oauth.Approval{UserID: f.clinician.ID}), v)
		r, _ := tok["refresh_token"].(string)
		if st != 200 || r == "" {
			t.Fatalf("exchange: %d %v", st, tok)
		}
		return r
	}
	token := f.p.Issuer() + "/auth/token"
	public := f.client(t, false, "openid", "offline_access", "user/Observation.rs")
	st, hdr, body := post(t, token, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshOf(public)}})
	if st != http.StatusOK || body["access_token"] == nil || body["refresh_token"] == nil || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("a public client's refresh without client_id: %d %v", st, body)
	}
	confidential := f.client(t, true, "openid", "offline_access", "user/Observation.rs")
	if st, _, body := post(t, token, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshOf(confidential)}}); st == http.StatusOK {
		t.Fatalf("a confidential client's refresh token without its secret: %d %v", st, body)
	}
	if st, _, body := post(t, token, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"vr_made-up"}}); st == http.StatusOK {
		t.Fatalf("a made-up refresh token: %d %v", st, body)
	}
}
