package oauth_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

// rpDir is the strict third-party relying party: openid-client (npm),
// pinned by its package-lock.json and installed there by scripts/test
// (npm ci), never globally.
const rpDir = "testdata/oidc-rp"

// needOpenIDClient returns node's path, or skips loudly (fails under
// CI=true) when node or the folder's node_modules is missing.
func needOpenIDClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	msg := ""
	switch {
	case err != nil:
		msg = "node is not installed (apt-get install nodejs)"
	default:
		if _, err := os.Stat(filepath.Join(rpDir, "node_modules", "openid-client", "package.json")); err != nil {
			msg = "openid-client is not installed: run scripts/test, or (cd oauth/" + rpDir + " && npm ci)"
		}
	}
	if msg == "" {
		return node
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING the openid-client (npm) relying-party test: " + msg)
	return ""
}

// rpMessage is one JSON line the script writes.
type rpMessage struct {
	JWKS      json.RawMessage `json:"jwks"`
	Authorize string          `json:"authorize"`
	Result    *rpResult       `json:"result"`
	Error     string          `json:"error"`
	Cause     string          `json:"cause"`
}

type rpResult struct {
	Kid                 string         `json:"kid"`
	Alg                 string         `json:"alg"`
	Sub                 string         `json:"sub"`
	FHIRUser            string         `json:"fhirUser"`
	Scope               string         `json:"scope"`
	RefreshedScope      string         `json:"refreshedScope"`
	NarrowedScope       string         `json:"narrowedScope"`
	Introspection       map[string]any `json:"introspection"`
	Revoked             map[string]any `json:"revoked"`
	AccessToken         string         `json:"access_token"`
	RefreshToken        string         `json:"refresh_token"`
	NarrowedAccessToken string         `json:"narrowed_access_token"`
}

// TestOpenIDClient runs openid-client 6 (panva's OpenID-certified RP,
// testdata/oidc-rp/rp.mjs) against the real server on loopback:
// discovery, PKCE, the code flow with its ID-token checks (RS256, the kid
// among two JWKS keys, iss, aud, exp, iat, nonce, state), refresh without
// and with scope, introspection, revocation and then inactive; with
// client_secret_basic and with private_key_jwt (RS384 and ES384 keys the
// script makes with jose).
//
// There is no browser: the script prints the authorization URL; this test
// follows it to the web UI's hand-off (/oauth/authorize?id=), calls
// Provider.Approve for the clinician as the web UI would after her passkey
// sign-in, follows the provider's callback and hands the client's redirect
// URL back on the script's stdin.
func TestOpenIDClient(t *testing.T) {
	node := needOpenIDClient(t)
	for _, auth := range []string{"client_secret_basic", "RS384", "ES384"} {
		t.Run(auth, func(t *testing.T) {
			f := newFixture(t)
			// Two keys in the JWKS: openid-client must pick the ID token's by kid.
			current, err := f.p.RotateKey(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res := runRP(t, f, node, auth)
			if res.Alg != "RS256" || res.Kid != current.ID {
				t.Errorf("ID token alg %s kid %s, want RS256 and the current key %s", res.Alg, res.Kid, current.ID)
			}
			wantScope := "openid fhirUser profile offline_access user/Observation.rs"
			if res.Sub != f.clinician.ID || res.FHIRUser != f.p.Issuer()+"/Practitioner/"+oauth.FHIRID(f.clinician.ID) ||
				res.Scope != wantScope || res.RefreshedScope != wantScope || res.NarrowedScope != "openid user/Observation.rs" {
				t.Errorf("result %+v", res)
			}
			if res.Introspection["active"] != true || res.Introspection["sub"] != f.clinician.ID || res.Introspection["scope"] != "openid user/Observation.rs" {
				t.Errorf("introspection of a live token: %v", res.Introspection)
			}
			// The server agrees: the script revoked the family's last
			// refresh token, which ends every token of the family.
			conf := f.client(t, true)
			for name, tok := range map[string]string{"first access token": res.AccessToken, "first refresh token": res.RefreshToken, "narrowed access token": res.NarrowedAccessToken} {
				wantInactive(t, name, f.introspect(t, conf, tok))
			}
		})
	}
}

// runRP runs rp.mjs for one client authentication method and answers its
// questions.
func runRP(t *testing.T, f *fixture, node, auth string) *rpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "rp.mjs", f.p.Issuer(), redirectURI, auth)
	cmd.Dir = rpDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("rp.mjs: %v; stderr: %s", err, stderr.String())
		}
	}()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	next := func() rpMessage {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("rp.mjs stopped: %v; stderr: %s", errors.Join(lines.Err(), io.ErrUnexpectedEOF), stderr.String())
		}
		var m rpMessage
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("rp.mjs wrote %q: %v", lines.Text(), err)
		}
		if m.Error != "" {
			t.Fatalf("openid-client failed: %s (cause %s)", m.Error, m.Cause)
		}
		return m
	}
	send := func(v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Register the client: a secret, or the script's public keys.
	m := next()
	n := oauth.NewClient{Name: "openid-client " + auth, RedirectURIs: []string{redirectURI}, Confidential: true}
	if auth != "client_secret_basic" {
		if len(m.JWKS) == 0 || string(m.JWKS) == "null" {
			t.Fatal("rp.mjs sent no keys")
		}
		n.JWKS = m.JWKS
	}
	info, secret, err := f.p.AddClient(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: "client_secret_basic", false: "private_key_jwt"}[auth == "client_secret_basic"]; info.AuthMethod != want {
		t.Fatalf("registered auth method %s, want %s", info.AuthMethod, want)
	}
	send(map[string]string{"client_id": info.ID, "client_secret": secret})

	// 2. The authorization: the web UI's part, played by the test.
	m = next()
	loc := location(t, m.Authorize)
	id := loc.Query().Get("id")
	if loc.Path != "/oauth/authorize" || id == "" {
		t.Fatalf("authorize sent the browser to %s, want the web UI's /oauth/authorize?id=", loc)
	}
	cb, err := f.p.Approve(ctx, id, oauth.Approval{UserID: f.clinician.ID})
	if err != nil {
		t.Fatal(err)
	}
	send(map[string]string{"callback": location(t, cb).String()})

	// 3. What openid-client saw.
	m = next()
	if m.Result == nil {
		t.Fatalf("rp.mjs gave no result")
	}
	return m.Result
}
