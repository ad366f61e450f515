package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
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
	return clientDo(t, req)
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
	if !bytes.Contains(log, []byte("; JupyterHub sign-in: issuer "+hub.Issuer+"; ")) || !bytes.Contains(log, []byte("under oidc_clients.jupyterhub, see docs/jupyterhub.md")) {
		t.Fatalf("no human line on JupyterHub sign-in in the start-up output:\n%s", log)
	}
}

// adminEntries reads the ledger of a stopped vault and returns its admin
// entries with their raw JSON.
func adminEntries(t *testing.T, data, key string) ([]consent.Admin, [][]byte) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	v, st, _, err := openVault(context.Background(), storeFlags{data: data, keyFile: key}, openExisting, false, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := openLedger(st, v, "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := led.Size()
	if err != nil {
		t.Fatal(err)
	}
	var out []consent.Admin
	var raws [][]byte
	for i := range n {
		e, raw, err := led.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Admin != nil {
			out = append(out, *e.Admin)
			raws = append(raws, raw)
		}
	}
	return out, raws
}

// countAdmin counts the admin entries of an action about a target.
func countAdmin(es []consent.Admin, action, target string) int {
	n := 0
	for _, e := range es {
		if e.Action == action && e.Target == target {
			n++
		}
	}
	return n
}

// TestAdminClientCLI drives vault admin client add / list / remove, the
// real binary, on the file (no server) and through a running server's
// admin socket: the secret is printed once and works at the provider,
// the list never shows it, a removed client's secret stops working,
// every add and remove is an admin entry in the ledger (ids only), and
// neither the secrets nor the clients' names reach a file under DIR or
// the log.
func TestAdminClientCLI(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	initVault(t, data, key)
	store := []string{"--data", data, "--root-key-file", key}
	var stderrs []string // every CLI stderr, searched for secrets at the end
	vaultOK := func(args ...string) string {
		t.Helper()
		out, errs, err := runVault(t, 60*time.Second, append(args, store...)...)
		stderrs = append(stderrs, errs)
		if err != nil {
			t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, errs)
		}
		return out
	}
	addClient := func(args ...string) api.AdminClientResponse {
		t.Helper()
		out := vaultOK(append([]string{"admin", "client", "add"}, args...)...)
		if strings.Count(out, "\n") != 0 {
			t.Fatalf("add printed more than one line:\n%s", out)
		}
		var c api.AdminClientResponse
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("add printed %q, not one JSON object: %v", out, err)
		}
		if !strings.HasPrefix(c.ID, "oc_") {
			t.Fatalf("client_id %q", c.ID)
		}
		return c
	}
	const fileName, publicName, socketName = "Canary Hub Zq7 file", "Canary App Zq7 public", "Canary Hub Zq7 socket"

	// On the file: a confidential client with a secret, a public one with
	// two redirect URIs.
	conf := addClient("--name", fileName, "--redirect-uri", "https://hub.example.org/hub/oauth_callback", "--confidential")
	if !strings.HasPrefix(conf.Secret, "vs_") || conf.AuthMethod != "client_secret_basic" || !conf.Confidential {
		t.Fatalf("confidential client: %+v", conf.AdminClient)
	}
	if !strings.Contains(stderrs[len(stderrs)-1], "shown only this once") {
		t.Fatalf("no once-only warning on stderr: %s", stderrs[len(stderrs)-1])
	}
	pub := addClient("--name", publicName, "--redirect-uri", "http://localhost:9000/cb", "--redirect-uri", "https://app.example.org/cb", "--launch-uri", "https://app.example.org/launch")
	if pub.Secret != "" || pub.AuthMethod != "none" || pub.Confidential || len(pub.RedirectURIs) != 2 {
		t.Fatalf("public client: %+v (secret given: %v)", pub.AdminClient, pub.Secret != "")
	}

	// Through the socket of a running server.
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", addr, "--base-url", "http://localhost:"+strings.Split(addr, ":")[1])
	srv.Stderr = logf
	srvLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	stop := startProcess(t, srv, srvLog)
	waitSocket(t, data, srvLog)
	sock := addClient("--name", socketName, "--redirect-uri", "https://hub2.example.org/hub/oauth_callback", "--confidential")
	if !strings.HasPrefix(sock.Secret, "vs_") {
		t.Fatalf("socket-added client has no secret: %+v", sock.AdminClient)
	}
	// Both secrets authenticate at the running provider; a wrong one not.
	for _, c := range []api.AdminClientResponse{conf, sock} {
		if st, b := introspect(t, base, c.ID, c.Secret, "vo_x"); st != http.StatusOK {
			t.Fatalf("introspection as %s: %d %s", c.ID, st, b)
		}
	}
	if st, _ := introspect(t, base, conf.ID, sock.Secret, "vo_x"); st != http.StatusUnauthorized {
		t.Fatalf("another client's secret: %d, want 401", st)
	}

	table := vaultOK("admin", "client", "list")
	for _, want := range []string{"CLIENT ID", conf.ID, pub.ID, sock.ID, fileName, "client_secret_basic", "none", "http://localhost:9000/cb https://app.example.org/cb"} {
		if !strings.Contains(table, want) {
			t.Errorf("the list lacks %q:\n%s", want, table)
		}
	}
	all := strings.Split(vaultOK("admin", "client", "list", "--json"), "\n")
	// Each serve registers the care-team report app for its base URL
	// (docs/smart-app.md); the three clients added here are the others.
	var lines []string
	for _, l := range all {
		if !strings.Contains(l, `"name":"Care team CGM report"`) {
			lines = append(lines, l)
		} else if !strings.Contains(l, `/apps/care-report/launch"`) {
			t.Fatalf("the care report app without its launch URL: %s", l)
		}
	}
	if len(all) == len(lines) {
		t.Fatal("serve did not register the care report app")
	}
	if len(lines) != 3 {
		t.Fatalf("list --json: %d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("list --json line %q: %v", l, err)
		}
		if _, ok := m["client_secret"]; ok || m["client_id"] == nil || m["created"] == nil {
			t.Fatalf("list --json line %q", l)
		}
	}
	if strings.Contains(table+strings.Join(lines, ""), "vs_") {
		t.Fatal("the list shows a secret")
	}

	// Remove through the socket: its secret stops working at once.
	if out := vaultOK("admin", "client", "remove", "--client", sock.ID); !strings.Contains(out, "removed "+sock.ID) {
		t.Fatalf("remove: %q", out)
	}
	if st, _ := introspect(t, base, sock.ID, sock.Secret, "vo_x"); st != http.StatusUnauthorized {
		t.Fatalf("a removed client's secret: %d, want 401", st)
	}
	for _, tc := range []struct{ id, want string }{
		{sock.ID, "no such OAuth client (see vault admin client list) (no_client)"},
		{"cl_aaaaaaaaaaaaaaaa", "(bad_client)"},
	} {
		_, errs, err := runVault(t, 30*time.Second, append([]string{"admin", "client", "remove", "--client", tc.id}, store...)...)
		stderrs = append(stderrs, errs)
		if err == nil || !strings.Contains(errs, tc.want) {
			t.Fatalf("remove %s through the socket: %v %q, want %q", tc.id, err, errs, tc.want)
		}
	}
	stop()

	// On the file again: remove, and what is left.
	vaultOK("admin", "client", "remove", "--client", pub.ID)
	_, errs, err := runVault(t, 30*time.Second, append([]string{"admin", "client", "remove", "--client", pub.ID}, store...)...)
	if err == nil || !strings.Contains(errs, "(no_client)") {
		t.Fatalf("second remove on the file: %v %q", err, errs)
	}
	if out := vaultOK("admin", "client", "list", "--json"); strings.Count(out, "client_id")-strings.Count(out, `"name":"Care team CGM report"`) != 1 || !strings.Contains(out, conf.ID) {
		t.Fatalf("after the removals: %s", out)
	}

	// The ledger: each add and remove, by id, nothing else.
	entries, raws := adminEntries(t, data, key)
	for _, c := range []struct {
		action, id string
	}{{"client-add", conf.ID}, {"client-add", pub.ID}, {"client-add", sock.ID}, {"client-remove", sock.ID}, {"client-remove", pub.ID}} {
		if n := countAdmin(entries, c.action, c.id); n != 1 {
			t.Errorf("%d %s entries for %s, want 1", n, c.action, c.id)
		}
	}
	if countAdmin(entries, "client-remove", conf.ID) != 0 {
		t.Error("a client-remove entry for a client never removed")
	}
	vaultOK("ledger", "verify")

	// No secret and no client name on disk or in the log (the names are
	// sealed; the secrets are stored only as hashes).
	logb, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	haystacks := map[string][]byte{"the server log": logb, "the CLI's stderr": []byte(strings.Join(stderrs, "\n"))}
	for i, r := range raws {
		haystacks[fmt.Sprintf("admin ledger entry %d", i)] = r
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == logPath {
			return err
		}
		b, err := os.ReadFile(path)
		haystacks[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := haystacks[dbPath(data)]; !ok {
		t.Fatal("the walk missed the database file")
	}
	for where, b := range haystacks {
		for _, needle := range []string{conf.Secret, sock.Secret, fileName, socketName, publicName} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%s holds %q", where, needle)
			}
		}
	}
	// The ledger check above is not vacuous: the entries are there.
	if len(raws) < 5 || !bytes.Contains(bytes.Join(raws, nil), []byte(conf.ID)) {
		t.Fatalf("the ledger's admin entries lack the client ids: %d entries", len(raws))
	}
}
