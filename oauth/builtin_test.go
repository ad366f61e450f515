package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// builtinAt is the built-in app's registration for a base URL.
func builtinAt(base string) oauth.NewClient {
	return oauth.NewClient{Name: "Care app", RedirectURIs: []string{base + "/apps/care/callback"}, LaunchURI: base + "/apps/care/launch"}
}

// serveProvider is one process's provider over st, sealing with v's master
// keyset, behind its own HTTP server on loopback.
func serveProvider(t *testing.T, st oauthstore.Store, v *vault.Vault) *oauth.Provider {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := oauth.New(t.Context(), oauth.Config{BaseURL: base, Store: st, Sealer: v.Master(), Users: v,
		GrantActive: func(string, string, string, time.Time) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	h = p.Handler()
	return p
}

// tokenAuth sends a code exchange with a code that was never issued to p's
// token endpoint, authenticated as id with secret, and returns the status
// and OAuth error: invalid_client when the secret is wrong, 400
// invalid_grant when it is right (the client is known, the code is not).
func tokenAuth(t *testing.T, p *oauth.Provider, id, secret string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"va_neverissued"}, "redirect_uri": {builtinAt("https://vault.example").RedirectURIs[0]},
		"code_verifier": {strings.Repeat("v", 50)}}
	req, err := http.NewRequest(http.MethodPost, p.Issuer()+"/auth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("token endpoint answer: %v", err)
	}
	return resp.StatusCode, e.Error
}

// signsIn checks that secret authenticates id at p's token endpoint and
// that another secret does not.
func signsIn(t *testing.T, p *oauth.Provider, id, secret string) {
	t.Helper()
	if st, e := tokenAuth(t, p, id, secret); st != http.StatusBadRequest || e != "invalid_grant" {
		t.Fatalf("the app's secret at %s: %d %s, want 400 invalid_grant (authenticated)", p.Issuer(), st, e)
	}
	if st, e := tokenAuth(t, p, id, secret+"x"); st/100 != 4 || e != "invalid_client" {
		t.Fatalf("a wrong secret at %s: %d %s, want invalid_client", p.Issuer(), st, e)
	}
}

// builtinIDs are the ids of the built-in registrations.
func builtinIDs(t *testing.T, p *oauth.Provider) []string {
	t.Helper()
	cs, err := p.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		if c.Builtin {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// TestEnsureClient: the built-in app keeps one registration per vault: the
// same id and the same secret while its URLs stay (a start writes
// nothing), a new one (the old gone) when the base URL changes, and an
// admin's client of the same name is never taken over.
func TestEnsureClient(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	admin, _, err := f.p.AddClient(ctx, oauth.NewClient{Name: "Care app", RedirectURIs: []string{"http://localhost:1/apps/care/callback"}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	first, s1, created, err := f.p.EnsureClient(ctx, builtinAt("http://localhost:1"))
	if err != nil || !created || first.ID == admin.ID || !first.Builtin || s1 == "" {
		t.Fatalf("first start: %+v created %v err %v (the admin's client %s must not be taken)", first, created, err, admin.ID)
	}
	again, s2, created, err := f.p.EnsureClient(ctx, builtinAt("http://localhost:1"))
	if err != nil || created || again.ID != first.ID || s2 != s1 {
		t.Fatalf("restart: %+v created %v err %v (same id, same secret)", again, created, err)
	}
	moved, s3, created, err := f.p.EnsureClient(ctx, builtinAt("https://vault.example.org"))
	if err != nil || !created || moved.ID == first.ID || s3 == s1 {
		t.Fatalf("new base URL: %+v created %v err %v (a new id and secret)", moved, created, err)
	}
	cs, err := f.p.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if len(cs) != 2 {
		t.Fatalf("clients after the move: %v, want the admin's and the moved app's only", ids)
	}
	for _, c := range cs {
		if c.ID != admin.ID && c.ID != moved.ID {
			t.Fatalf("clients after the move: %v", ids)
		}
		if c.ID == admin.ID && c.Builtin {
			t.Fatal("the admin's client is marked built-in")
		}
	}
}

// TestEnsureClientRestartBolt: on bbolt (one process), the app's
// registration and secret survive a restart of the vault: the provider
// opened again on the reopened file gets the same id and secret, which
// authenticate at its token endpoint; the raw file holds no secret in the
// clear.
func TestEnsureClientRestartBolt(t *testing.T) {
	env := vaulttest.New(t, vaulttest.Options{})
	p := serveProvider(t, env.Store.OAuth(), env.Vault)
	info, secret, created, err := p.EnsureClient(t.Context(), builtinAt("https://vault.example"))
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	signsIn(t, p, info.ID, secret)
	env.Reopen(t)
	p = serveProvider(t, env.Store.OAuth(), env.Vault)
	again, s2, created, err := p.EnsureClient(t.Context(), builtinAt("https://vault.example"))
	if err != nil || created || again.ID != info.ID || s2 != secret {
		t.Fatalf("after the restart: %s created %v, %v; the same secret: %v", again.ID, created, err, s2 == secret)
	}
	signsIn(t, p, info.ID, secret)
	env.Close(t)
	assertNotInFile(t, env.Path, secret)
}

// TestEnsureClientReplicas: two processes (two pools, two vaults) on one
// PostgreSQL database call EnsureClient eight times at once on the empty
// database: exactly one call creates the registration, every call returns
// the same id and secret, and that secret authenticates at both
// processes' token endpoints. A registration left by a version that kept
// the secret in memory only is replaced once (created), then kept. After
// a master key rotation on one process the other still opens the record
// and gets the same secret, which still authenticates on both. No secret
// is in a dump of the table's rows.
func TestEnsureClientReplicas(t *testing.T) {
	dsn := pgtest.New(t)
	root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	type process struct {
		s *postgres.Store
		v *vault.Vault
		p *oauth.Provider
	}
	procs := make([]*process, 2)
	for i := range procs {
		s, err := postgres.Open(t.Context(), dsn, postgres.Options{AllowUnsafeDurability: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		v, err := vault.Open(t.Context(), s, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = &process{s: s, v: v, p: serveProvider(t, s.OAuth(), v)}
	}
	n := builtinAt("https://vault.example")
	type result struct {
		id, secret string
		created    bool
		err        error
	}
	ensureAll := func() []result {
		res := make([]result, 8)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range res {
			wg.Go(func() {
				<-start
				info, secret, created, err := procs[i%2].p.EnsureClient(context.Background(), n)
				res[i] = result{info.ID, secret, created, err}
			})
		}
		close(start)
		wg.Wait()
		return res
	}
	check := func(what string, res []result, wantCreated int) result {
		t.Helper()
		created := 0
		for i, r := range res {
			if r.err != nil {
				t.Fatalf("%s: call %d: %v", what, i, r.err)
			}
			if r.id != res[0].id || r.secret != res[0].secret || r.secret == "" {
				t.Fatalf("%s: call %d got %s, call 0 %s (or another secret)", what, i, r.id, res[0].id)
			}
			if r.created {
				created++
			}
		}
		if created != wantCreated {
			t.Fatalf("%s: %d calls created the registration, want %d", what, created, wantCreated)
		}
		if ids := builtinIDs(t, procs[1].p); len(ids) != 1 || ids[0] != res[0].id {
			t.Fatalf("%s: built-in registrations %v, want %s only", what, ids, res[0].id)
		}
		for _, pr := range procs {
			signsIn(t, pr.p, res[0].id, res[0].secret)
		}
		return res[0]
	}
	first := check("empty database", ensureAll(), 1)
	check("started again", ensureAll(), 0)

	// A registration from before: removed, and a new one made once.
	if err := procs[0].p.RemoveClient(t.Context(), first.id); err != nil {
		t.Fatal(err)
	}
	old, oldSecret, err := procs[0].p.AddPerProcessBuiltin(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	upgraded := check("a per-process registration", ensureAll(), 1)
	if upgraded.id == old.ID {
		t.Fatalf("the per-process registration %s was kept", old.ID)
	}
	if st, e := tokenAuth(t, procs[1].p, old.ID, oldSecret); st/100 != 4 || e != "invalid_client" {
		t.Fatalf("the removed registration still authenticates: %d %s", st, e)
	}

	// A master key rotation on process 0: process 1 still reads the
	// registration, and the secret has not changed.
	if _, err := procs[0].v.RotateMaster(t.Context(), root, nil); err != nil {
		t.Fatal(err)
	}
	if got := check("after a master key rotation", ensureAll(), 0); got != upgraded {
		t.Fatalf("after the rotation: %s, before %s (or another secret)", got.id, upgraded.id)
	}

	// In the table: sealed bytes only.
	c := pgtest.Connect(t, dsn)
	rows, err := c.Query(t.Context(), "SELECT * FROM oauth_clients")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var dump strings.Builder
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&dump, "%q\n", vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if dump.Len() == 0 {
		t.Fatal("no client rows read")
	}
	if strings.Contains(dump.String(), upgraded.secret) || strings.Contains(dump.String(), strings.TrimPrefix(upgraded.secret, "vs_")) {
		t.Fatal("the app's secret is in the clients table in the clear")
	}
}

// assertNotInFile fails the test if the file at path holds s, or its
// random part, anywhere in its bytes.
func assertNotInFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(strings.TrimPrefix(s, "vs_"))) {
		t.Fatalf("%s holds the secret in the clear", path)
	}
}
