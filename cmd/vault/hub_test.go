package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jupyterhealth/vault/internal/browsertest"
)

// hubTokenTTL is the access-token life of the vault the JupyterHub test
// runs: short, so the test sees a spawned server outlive its token.
const hubTokenTTL = 15 * time.Second

// requireHub skips (fails under CI=true) unless Debian's JupyterHub, its
// proxy, python3-authlib and age-keygen are installed; scripts/test
// installs them as root.
func requireHub(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("JupyterHub test skipped in -short mode")
	}
	var missing []string
	for _, bin := range []string{"/usr/bin/jupyterhub", "/usr/bin/configurable-http-proxy", "/usr/bin/age-keygen"} {
		if _, err := os.Stat(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import authlib, jupyterhub, requests").Run(); err != nil {
		missing = append(missing, "python3-authlib/jupyterhub/python3-requests")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("the JupyterHub test needs Debian's jupyterhub, python3-authlib and age (missing: %s): apt-get install -y jupyterhub python3-authlib age", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING: " + msg)
}

// docBlock returns the fenced code block that follows the marker
// "<!-- test: NAME -->" in a doc: the test runs what the doc says, so the
// doc cannot drift from what works.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- test: " + regexp.QuoteMeta(name) + " -->\\s*```[a-z]*\\n(.*?)```")
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no code block marked <!-- test: %s -->", doc, name)
	}
	return string(m[1])
}

// hubProcess is Debian's JupyterHub, running docs/jupyterhub.md's
// configuration.
type hubProcess struct {
	dir, url, logPath string
	cmd               *exec.Cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	a, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a[strings.LastIndex(a, ":")+1:]
}

// startHub writes the doc's jupyterhub_config.py, with the test's own
// settings after it (ports, files, a spawner that needs no system users,
// a short refresh age), and starts the hub.
func startHub(t *testing.T, port string, env []string) *hubProcess {
	t.Helper()
	dir := t.TempDir()
	h := &hubProcess{dir: dir, url: "http://localhost:" + port, logPath: filepath.Join(dir, "hub.log")}
	testdata, err := filepath.Abs(filepath.Join("testdata", "jupyterhub"))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := filepath.Abs(filepath.Join("..", "..", "clients", "python"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := docBlock(t, filepath.Join("..", "..", "docs", "jupyterhub.md"), "jupyterhub_config") + fmt.Sprintf(`
# --- the test's own settings, after docs/jupyterhub.md's ---
c.JupyterHub.bind_url = "http://127.0.0.1:%s"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:%s"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%s"
c.ConfigurableHTTPProxy.pid_file = %q
c.JupyterHub.pid_file = %q
c.JupyterHub.db_url = "sqlite:///%s"
c.JupyterHub.cookie_secret_file = %q
# Debian's JupyterHub has no single-user server; this stand-in serves the
# hub's checks and runs jhvault as a notebook would.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = %q
c.Spawner.cmd = ["/usr/bin/python3", %q]
c.Spawner.environment = {"VAULT_HUB_TEST_ENV": %q, "PYTHONPATH": %q}
c.Spawner.http_timeout = 60
# The vault's tokens live %v here, so refresh after 2 s, not 300.
c.Authenticator.auth_refresh_age = 2
`, port, freePort(t), freePort(t), filepath.Join(dir, "proxy.pid"), filepath.Join(dir, "hub.pid"),
		filepath.Join(dir, "hub.sqlite"), filepath.Join(dir, "cookie_secret"),
		filepath.Join(dir, "home", "{username}"), filepath.Join(testdata, "singleuser.py"),
		filepath.Join(dir, "server-env.json"), clients, hubTokenTTL)
	cfgPath := filepath.Join(dir, "jupyterhub_config.py")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	crypt := make([]byte, 32)
	rand.Read(crypt)
	h.cmd = exec.Command("/usr/bin/python3", "-m", "jupyterhub", "-f", cfgPath)
	h.cmd.Dir = dir
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	// Debian's configurable-http-proxy finds its modules only through
	// NODE_PATH when the node on PATH is not Debian's own.
	h.cmd.Env = append(os.Environ(), append(env,
		"JUPYTERHUB_CRYPT_KEY="+hex.EncodeToString(crypt),
		"NODE_PATH=/usr/share/nodejs",
		"PYTHONPATH="+testdata,
		"HUB_URL="+h.url)...)
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			h.cmd.Process.Kill()
		}
		if b, err := os.ReadFile(filepath.Join(dir, "proxy.pid")); err == nil {
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
		if t.Failed() {
			log, _ := os.ReadFile(h.logPath)
			t.Logf("JupyterHub's log:\n%s", log)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(h.url + "/hub/api/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h
			}
		}
		if h.cmd.ProcessState != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(h.logPath)
	t.Fatalf("JupyterHub did not start; its log:\n%s", log)
	return nil
}

func getJSON(t *testing.T, rawURL, authz string, into any) int {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if into != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(buf.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v in %q", rawURL, err, buf.String())
		}
	}
	return resp.StatusCode
}

// TestJupyterHubSignIn follows docs/jupyterhub.md step by step with
// Debian's JupyterHub: it registers the hub with the doc's command, runs
// the doc's jupyterhub_config.py (GenericOAuthenticator is not packaged in
// Debian, so a test-only stand-in built on python3-authlib, sending the
// same requests, answers to its name: testdata/jupyterhub/oauthenticator),
// signs Dr. Rivera in with her passkey in real Chromium through the vault's
// consent page, spawns her server and reads the vault from it with the
// token the hub put in its environment; then, once that token has expired,
// the notebook client gets a refreshed one from the hub and reads again.
func TestJupyterHubSignIn(t *testing.T) {
	requireHub(t)
	ctx := browsertest.New(t, 1100, 900)
	browsertest.Authenticator(t, ctx)

	// A vault of its own: its base URL is the name the browser uses, and
	// its access tokens are short-lived.
	dir := t.TempDir()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	maddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	port := addr[strings.LastIndex(addr, ":")+1:]
	v := &demoServer{dir: dir, data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "keys", "root.key"), logPath: filepath.Join(dir, "server.log"),
		addr: addr, url: "http://localhost:" + port, metricsURL: "http://" + maddr,
		extra: []string{"--base-url", "http://localhost:" + port, "--oauth-access-token-ttl", hubTokenTTL.String()}}
	if err := v.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.stop() })
	vaultEnv := append(os.Environ(), "VAULT_DATA="+v.data)
	hubPort := freePort(t)
	hubURL := "http://localhost:" + hubPort // startHub serves the hub there

	// 1. Register the hub with the doc's command.
	register := strings.ReplaceAll(docBlock(t, filepath.Join("..", "..", "docs", "jupyterhub.md"), "register-client"), "https://hub.example.org", hubURL)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", register)
	cmd.Env = vaultEnv
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("registering the hub as the doc says: %v\n%s", err, out)
	}
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &client); err != nil || !strings.HasPrefix(client.ID, "oc_") || !strings.HasPrefix(client.Secret, "vs_") {
		t.Fatalf("vault admin client add printed %q (%v)", out, err)
	}
	logKey, errs, err := runVault(t, 30*time.Second, "admin", "ledger-key", "--data", v.data)
	if err != nil || logKey == "" {
		t.Fatalf("vault admin ledger-key: %v %s", err, errs)
	}

	// 3. The doc's configuration, on Debian's JupyterHub.
	hub := startHub(t, hubPort, []string{"VAULT_URL=" + v.url, "VAULT_OAUTH_CLIENT_ID=" + client.ID,
		"VAULT_OAUTH_CLIENT_SECRET=" + client.Secret, "VAULT_LOG_KEY=" + logKey})

	// Dr. Rivera enrols her passkey from the demo's invite, and signs out,
	// so the hub's sign-in goes through the vault's passkey sign-in.
	browsertest.Run(t, ctx, chromedp.Navigate(v.creds.ClinicianInvite), chromedp.WaitVisible(chromedp.CSS("#enrol-form")),
		chromedp.Click(chromedp.CSS("#enrol-form button")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/clinician/keys"]`)),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)), chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)))

	// Sign in to the hub: the vault's sign-in, then the first-time page.
	browsertest.Run(t, ctx, chromedp.Navigate(hub.url+"/hub/oauth_login?next=%2Fhub%2Fhome"),
		chromedp.WaitVisible(chromedp.CSS(`[data-webauthn="signin"]`)),
		chromedp.Click(chromedp.CSS(`[data-webauthn="signin"]`)),
		chromedp.WaitVisible(chromedp.CSS("#allow")))
	if page := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(page, "Riverside JupyterHub") {
		t.Fatalf("the sign-in page does not name the hub: %q", page)
	}
	browsertest.Run(t, ctx, chromedp.Click(chromedp.CSS("#allow")))
	waitLocation(t, ctx, hub.url+"/hub/home")

	// Spawn her server: the hub puts the vault's token in its environment.
	envPath := filepath.Join(hub.dir, "server-env.json")
	browsertest.Run(t, ctx, chromedp.Navigate(hub.url+"/hub/spawn"))
	var env map[string]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(envPath); err == nil && json.Unmarshal(b, &env) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the spawned server never wrote its environment")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k, want := range map[string]string{"VAULT_URL": v.url, "VAULT_LOG_KEY": logKey, "JHE_URL": v.url + "/jhe", "JHE_TOKEN": env["VAULT_TOKEN"]} {
		if env[k] != want {
			t.Fatalf("server environment %s = %q, want %q", k, env[k], want)
		}
	}
	if !strings.HasPrefix(env["VAULT_TOKEN"], "vo_") || !strings.HasPrefix(env["VAULT_IDENTITY_KEY"], "AGE-SECRET-KEY-") || !strings.HasPrefix(env["VAULT_RECIPIENT"], "age1") {
		t.Fatalf("server environment: token %.3q identity %.15q recipient %.4q", env["VAULT_TOKEN"], env["VAULT_IDENTITY_KEY"], env["VAULT_RECIPIENT"])
	}
	// The token works on the vault's API as Dr. Rivera's.
	var patients []struct {
		ID string `json:"id"`
	}
	if st := getJSON(t, v.url+"/api/v1/clinician/patients", "Bearer "+env["VAULT_TOKEN"], &patients); st != 200 || len(patients) == 0 || patients[0].ID != v.creds.PatientID {
		t.Fatalf("the spawned server's token at /api/v1/clinician/patients: %d %+v", st, patients)
	}
	// The same token works as JHE_TOKEN on the JupyterHealth Exchange–
	// compatible API, as jupyterhealth-client calls it.
	var jhePatients struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if st := getJSON(t, env["JHE_URL"]+"/api/v1/patients", "Bearer "+env["JHE_TOKEN"], &jhePatients); st != 200 || len(jhePatients.Results) != 1 ||
		jhePatients.Results[0].ID != strings.ReplaceAll(v.creds.PatientID, "_", "-") {
		t.Fatalf("the spawned server's JHE_TOKEN at JHE_URL/api/v1/patients: %d %+v", st, jhePatients)
	}
	var jheBundle struct {
		Entry []json.RawMessage `json:"entry"`
		Link  []json.RawMessage `json:"link"`
	}
	q := url.Values{"patient": {jhePatients.Results[0].ID}, "code": {"https://w3id.org/openmhealth|omh:blood-glucose:4.0"}, "_count": {"10"}}
	if st := getJSON(t, env["JHE_URL"]+"/FHIR/R5/Observation?"+q.Encode(), "Bearer "+env["JHE_TOKEN"], &jheBundle); st != 200 || len(jheBundle.Entry) != 10 || len(jheBundle.Link) != 2 {
		t.Fatalf("the spawned server's JHE_TOKEN at JHE_URL/FHIR/R5/Observation: %d, %d entries", st, len(jheBundle.Entry))
	}
	server, err := url.Parse(env["JUPYTERHUB_SERVICE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	notebook := "http://" + server.Host + env["JUPYTERHUB_SERVICE_PREFIX"] + "vault"
	readFromNotebook := func(when string) {
		t.Helper()
		var got struct {
			Patients []map[string]any `json:"patients"`
			Error    string           `json:"error"`
		}
		st := getJSON(t, notebook, "", &got)
		if st != 200 || len(got.Patients) == 0 || got.Patients[0]["id"] != v.creds.PatientID {
			var raw bytes.Buffer
			resp, err := http.Get(notebook)
			if err == nil {
				raw.ReadFrom(resp.Body)
				resp.Body.Close()
			}
			t.Fatalf("jhvault in the spawned server, %s: %d %s", when, st, raw.String())
		}
	}
	readFromNotebook("with the token from the spawn")

	// The token expires; the notebook client asks the hub, which refreshes.
	deadline = time.Now().Add(hubTokenTTL + 30*time.Second)
	for getJSON(t, v.url+"/api/v1/clinician/patients", "Bearer "+env["VAULT_TOKEN"], nil) == 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the access token still works %v after it should have expired", hubTokenTTL+30*time.Second)
		}
		time.Sleep(time.Second)
	}
	readFromNotebook("after the spawn's token expired")
	var user struct {
		AuthState struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		} `json:"auth_state"`
	}
	if st := getJSON(t, env["JUPYTERHUB_API_URL"]+"/users/"+env["JUPYTERHUB_USER"], "token "+env["JUPYTERHUB_API_TOKEN"], &user); st != 200 ||
		user.AuthState.AccessToken == "" || user.AuthState.AccessToken == env["VAULT_TOKEN"] {
		t.Fatalf("the hub's refreshed auth state, as the server's own token reads it: %d (a new token: %v)", st, user.AuthState.AccessToken != env["VAULT_TOKEN"])
	}
	if st := getJSON(t, v.url+"/api/v1/clinician/patients", "Bearer "+user.AuthState.AccessToken, nil); st != 200 {
		t.Fatalf("the refreshed token at the API: %d", st)
	}
	// The server's hub token reads its own user's auth state, not another's.
	if st := getJSON(t, env["JUPYTERHUB_API_URL"]+"/users/admin", "token "+env["JUPYTERHUB_API_TOKEN"], nil); st != 404 && st != 403 {
		t.Fatalf("the server's hub token reading another user: %d", st)
	}
}

// waitLocation waits until the browser is at a URL starting with prefix.
func waitLocation(t *testing.T, ctx context.Context, prefix string) {
	t.Helper()
	deadline := time.Now().Add(browsertest.StepTimeout)
	for {
		loc := browsertest.Get(t, ctx, chromedp.Location())
		if strings.HasPrefix(loc, prefix) {
			return
		}
		if time.Now().After(deadline) {
			page := browsertest.Get(t, ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("the browser is at %s, not %s; the page says:\n%s", loc, prefix, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
