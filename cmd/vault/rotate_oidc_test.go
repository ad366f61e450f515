package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/oauth2"
)

// liveVault is serve's wiring in this process: the vault on a real bbolt
// file, the OAuth provider behind a real HTTP server on loopback, and the
// admin socket in DIR that the CLI (run, in this process too) dials. There
// is no browser: a test approves a sign-in with Provider.Approve, which is
// what the web UI does after the passkey sign-in.
type liveVault struct {
	sf      storeFlags
	v       *vault.Vault
	prov    *oauth.Provider
	web     *httptest.Server
	closeFn func()
}

func startLiveVault(t *testing.T) *liveVault {
	t.Helper()
	dir := t.TempDir()
	lv := &liveVault{sf: storeFlags{data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "keys", "root.key")}}
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	v, st, _, err := openVault(ctx, lv.sf, openOrCreate, false, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	led, err := openLedger(st, v, "localhost")
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	var h http.Handler
	lv.web = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	lv.web.Start()
	base, err := url.Parse(lv.web.URL)
	if err != nil {
		t.Fatal(err)
	}
	if lv.prov, err = newOAuth(ctx, st, v, led, base, time.Hour, log); err != nil {
		t.Fatal(err)
	}
	h = lv.prov.Handler()
	lv.v = v
	ln, err := net.Listen("unix", sockPath(lv.sf.data))
	if err != nil {
		t.Fatal(err)
	}
	admin := &http.Server{Handler: api.NewAdmin(api.LocalAdmin{Vault: v, Ledger: led, Log: log, OAuth: oauthAdmin{lv.prov}}, log)}
	go admin.Serve(ln)
	closed := false
	lv.closeFn = func() {
		if closed {
			return
		}
		closed = true
		admin.Close() // the listener goes, and with it the socket file
		lv.web.Close()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(lv.closeFn)
	return lv
}

// cli runs the vault command in this process and fails the test unless it
// succeeds.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := run(args, &out, &errb); rc != 0 {
		t.Fatalf("vault %s: exit %d: %s", strings.Join(args, " "), rc, errb.String())
	}
	return out.String()
}

// addClientCLI registers a confidential client through the CLI.
func (lv *liveVault) addClientCLI(t *testing.T, name string) *oauth2.Config {
	t.Helper()
	const redirect = "http://127.0.0.1:8000/hub/oauth_callback"
	var c api.AdminClientResponse
	if err := json.Unmarshal([]byte(cli(t, "admin", "client", "add", "--data", lv.sf.data, "--name", name, "--redirect-uri", redirect, "--confidential")), &c); err != nil {
		t.Fatal(err)
	}
	iss := lv.prov.Issuer()
	return &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: redirect, Scopes: []string{"openid", "fhirUser", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/auth/authorize", TokenURL: iss + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func redirectOf(t *testing.T, u string) *url.URL {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode/100 != 3 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s, want a redirect", u, resp.StatusCode, b)
	}
	return loc
}

// signIn runs the code flow with PKCE for a clinician and returns the
// tokens.
func (lv *liveVault) signIn(t *testing.T, cfg *oauth2.Config, clinician string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	loc := redirectOf(t, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	cb, err := lv.prov.Approve(context.Background(), loc.Query().Get("id"), oauth.Approval{UserID: clinician})
	if err != nil {
		t.Fatal(err)
	}
	code := redirectOf(t, cb).Query().Get("code")
	if code == "" {
		t.Fatal("no code")
	}
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func idToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	return raw
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return sig.Signatures[0].Header.KeyID
}

// jwksKids fetches the JWKS over HTTP.
func (lv *liveVault) jwksKids(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get(lv.prov.Issuer() + "/auth/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// freshVerifier discovers the issuer anew, so it knows only the JWKS as it
// is now.
func (lv *liveVault) freshVerifier(t *testing.T, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), lv.prov.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	return p.Verifier(&oidc.Config{ClientID: clientID})
}

var rotatedRE = regexp.MustCompile(`^rotated the OpenID signing key: (k_\S+) is current; the JWKS lists (.+) \(ID tokens signed with (k_\S+) still verify\)\n$`)

// rotateCLI runs vault keys rotate-oidc and returns the new and the
// previous key ids it reports.
func rotateCLI(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out := cli(t, append([]string{"keys", "rotate-oidc"}, args...)...)
	m := rotatedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rotate-oidc printed %q", out)
	}
	return m[1], m[3]
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestOIDCKeyRotation: vault keys rotate-oidc through the admin socket of
// a running provider, which signs with the new key from the next token on;
// the JWKS lists the current and the previous key, so an ID token signed
// before the rotation still verifies with go-oidc, and no longer after a
// second rotation; each rotation is an admin ledger entry. Then on the
// file, with no server.
func TestOIDCKeyRotation(t *testing.T) {
	lv := startLiveVault(t)
	ctx := context.Background()
	clin, err := lv.v.CreateUser(ctx, vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Test", TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	hub := lv.addClientCLI(t, "Hub")
	ver := lv.freshVerifier(t, hub.ClientID)

	raw1 := idToken(t, lv.signIn(t, hub, clin.ID))
	kid1 := kidOf(t, raw1)
	if got := lv.jwksKids(t); !slices.Equal(got, []string{kid1}) {
		t.Fatalf("JWKS before any rotation: %v, want [%s]", got, kid1)
	}
	if _, err := ver.Verify(ctx, raw1); err != nil {
		t.Fatal(err)
	}

	kid2, prev := rotateCLI(t, "--data", lv.sf.data)
	if prev != kid1 || kid2 == kid1 {
		t.Fatalf("rotation reported %s -> %s, want %s -> a new key", prev, kid2, kid1)
	}
	if got := lv.jwksKids(t); !slices.Equal(got, sorted(kid1, kid2)) {
		t.Fatalf("JWKS after the rotation: %v, want %s and %s", got, kid1, kid2)
	}
	raw2 := idToken(t, lv.signIn(t, hub, clin.ID))
	if k := kidOf(t, raw2); k != kid2 {
		t.Fatalf("an ID token after the rotation carries kid %s, want the new %s", k, kid2)
	}
	fresh := lv.freshVerifier(t, hub.ClientID)
	for name, v := range map[string]*oidc.IDTokenVerifier{"a verifier from before": ver, "a fresh verifier": fresh} {
		for _, raw := range []string{raw1, raw2} {
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Errorf("%s: the token with kid %s: %v", name, kidOf(t, raw), err)
			}
		}
	}

	// A second rotation: the first key leaves the JWKS, its tokens stop
	// verifying.
	kid3, prev := rotateCLI(t, "--data", lv.sf.data)
	if prev != kid2 {
		t.Fatalf("second rotation's previous %s, want %s", prev, kid2)
	}
	if got := lv.jwksKids(t); !slices.Equal(got, sorted(kid2, kid3)) {
		t.Fatalf("JWKS after two rotations: %v, want %s and %s", got, kid2, kid3)
	}
	fresh = lv.freshVerifier(t, hub.ClientID)
	if _, err := fresh.Verify(ctx, raw1); err == nil {
		t.Fatal("an ID token whose key left the JWKS still verifies")
	}
	if _, err := fresh.Verify(ctx, raw2); err != nil {
		t.Fatalf("the previous key's token: %v", err)
	}

	t.Run("removing a client ends its tokens", func(t *testing.T) {
		tok := lv.signIn(t, hub, clin.ID)
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token")
		}
		other := lv.addClientCLI(t, "Introspector")
		active := func() string {
			st, b := introspect(t, lv.web.URL, other.ClientID, other.ClientSecret, tok.AccessToken)
			if st != http.StatusOK {
				t.Fatalf("introspection: %d %s", st, b)
			}
			return strings.TrimSpace(string(b))
		}
		if a := active(); !strings.Contains(a, `"active":true`) {
			t.Fatalf("the token before the removal: %s", a)
		}
		cli(t, "admin", "client", "remove", "--data", lv.sf.data, "--client", hub.ClientID)
		if a := active(); a != `{"active":false}` {
			t.Fatalf("the token after its client's removal: %s", a)
		}
		if _, err := hub.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("a removed client refreshed its token")
		}
	})

	// On the file, with no server: the next start serves the new key.
	lv.closeFn()
	kid4, prev := rotateCLI(t, "--data", lv.sf.data, "--root-key-file", lv.sf.keyFile)
	if prev != kid3 {
		t.Fatalf("offline rotation's previous %s, want %s", prev, kid3)
	}
	entries, _ := adminEntries(t, lv.sf.data, lv.sf.keyFile)
	for _, d := range []string{"kid " + kid1 + " -> " + kid2, "kid " + kid2 + " -> " + kid3, "kid " + kid3 + " -> " + kid4} {
		n := 0
		for _, e := range entries {
			if e.Action == "oidc-key-rotate" && e.Detail == d {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d ledger entries %q, want 1", n, d)
		}
	}
	v, st, _, err := openVault(ctx, lv.sf, openExisting, false, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := openLedger(st, v, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newOAuth(ctx, st, v, led, &url.URL{Scheme: "http", Host: "localhost"}, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ks := p.Keys()
	if len(ks) != 2 || ks[0].ID != kid3 || ks[1].ID != kid4 {
		t.Fatalf("after the offline rotation the provider has %v, want %s then %s (current)", ks, kid3, kid4)
	}
}
