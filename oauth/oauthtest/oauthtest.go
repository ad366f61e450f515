// Package oauthtest runs the OAuth authorization code flow against a real
// provider for tests of the surfaces that accept its tokens (the API, the
// FHIR API, the JupyterHealth Exchange–compatible API).
//
// CodeFlow does what a confidential client and the web UI do together:
// register the client, send the authorization request with PKCE S256 and
// the FHIR base as aud, answer the pending request with Provider.Approve
// (the web UI's part, after the passkey sign-in and the consent page; the
// browser half is the web UI's own end-to-end test), follow the callback
// to the code and exchange it. Every step fails the test on an error.
package oauthtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
)

// CodeFlow registers a confidential client with the redirect URI, runs the
// code flow for scopes and returns the access token and the client.
// approval.UserID is the user who approves. prepare, if not nil, is called
// with the new client before the approval, to make what the approval needs
// (AppGrant, for a patient's app).
func CodeFlow(t testing.TB, p *oauth.Provider, redirect, scopes string, approval oauth.Approval, prepare func(oauth.ClientInfo, *oauth.Approval)) (string, oauth.ClientInfo) {
	t.Helper()
	ctx := context.Background()
	info, secret, err := p.AddClient(ctx, oauth.NewClient{Name: "Test client", RedirectURIs: []string{redirect}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(info, &approval)
	}
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {info.ID}, "redirect_uri": {redirect}, "scope": {scopes}, "state": {"s"},
		"aud": {p.Issuer()}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(u string) *url.URL {
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		return loc
	}
	id := next(p.Issuer() + "/auth/authorize?" + q.Encode()).Query().Get("id")
	cb, err := p.Approve(ctx, id, approval)
	if err != nil {
		t.Fatal(err)
	}
	code := next(cb).Query().Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {info.ID}, "client_secret": {secret}}
	resp, err := http.PostForm(p.Issuer()+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken, info
}

// AppGrant appends an unsigned app grant from patient to the app for
// schemas, for an hour, and returns its id: what the web UI's consent page
// appends, signed, when she allows an app.
func AppGrant(t testing.TB, led *consent.Ledger, patient, app string, schemas []string) string {
	t.Helper()
	e, err := consent.NewAppGrant(patient, consent.AppGrantRequest{App: app, Schemas: schemas, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(e); err != nil {
		t.Fatal(err)
	}
	return e.Grant.ID
}
