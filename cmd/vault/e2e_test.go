package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/demo"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// The end-to-end tests share one demo server: the real binary (this test
// binary, dispatched by testscript as "vault"), a real bbolt file, HTTP on
// loopback. It starts on first use and stops when the tests end.

type demoServer struct {
	dir, data, keyFile, logPath string
	url                         string
	addr                        string
	metricsURL                  string // the metrics listener
	cmd                         *exec.Cmd
	creds                       demo.Credentials
	startErr                    error
	extra                       []string // more serve flags
}

var (
	sharedOnce sync.Once
	shared     *demoServer
)

type withSharedServer struct{ m *testing.M }

func (w withSharedServer) Run() int {
	code := w.m.Run()
	if err := pgtest.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the PostgreSQL test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if shared != nil && shared.cmd != nil {
		shared.stop()
	}
	if shared != nil {
		os.RemoveAll(shared.dir)
	}
	return code
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (s *demoServer) args() []string {
	return append([]string{"serve", "--demo", "--demo-days", "2", "--data", s.data, "--root-key-file", s.keyFile, "--addr", s.addr, "--metrics-addr", strings.TrimPrefix(s.metricsURL, "http://")}, s.extra...)
}

func (s *demoServer) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = exec.Command("vault", s.args()...)
	s.cmd.Stderr = logf
	s.cmd.Env = append(os.Environ(), "HOME="+s.dir)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				b, err := os.ReadFile(filepath.Join(s.data, "demo", "credentials.json"))
				if err != nil {
					return err
				}
				return json.Unmarshal(b, &s.creds)
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Errorf("demo server did not become healthy, and its log is unreadable: %v", err)
	}
	return fmt.Errorf("demo server did not become healthy; log:\n%s", log)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *demoServer) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		s.cmd = nil
		return err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		s.cmd = nil
		return fmt.Errorf("server did not stop within 30s of SIGTERM")
	}
}

func sharedServer(t *testing.T) *demoServer {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vault-e2e-")
		if err != nil {
			shared = &demoServer{startErr: err}
			return
		}
		addr, err := freeAddr()
		maddr, merr := freeAddr()
		s := &demoServer{dir: dir, data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "keys", "root.key"), logPath: filepath.Join(dir, "server.log"), addr: addr, url: "http://" + addr, metricsURL: "http://" + maddr, startErr: errors.Join(err, merr)}
		if err == nil {
			s.startErr = s.start()
		}
		shared = s
	})
	if shared.startErr != nil {
		t.Fatal(shared.startErr)
	}
	return shared
}

func httpDo(t *testing.T, method, url, token, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return clientDo(t, req)
}

// runVault runs the binary with a deadline, so a hang fails the test.
func runVault(t *testing.T, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "vault", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vault %s hung for %v", strings.Join(args, " "), timeout)
	}
	return strings.TrimSpace(out.String()), errb.String(), err
}

func canaryPoint(i int, canary string) string {
	ts := time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
	return fmt.Sprintf(`{"header":{"uuid":"c0ffee00-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":%q}]},"body":{"blood_glucose":{"value":%d.4321,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
		i, ts, canary, 7654+i, ts)
}

// uploadCanaries uploads n canary points (canaryPoint 0 to n-1) to the
// vault at base with a device's token and checks that all n are accepted.
func uploadCanaries(t *testing.T, base, token, canary string, n int) {
	t.Helper()
	var lines []string
	for i := range n {
		lines = append(lines, canaryPoint(i, canary))
	}
	st, b := httpDo(t, "POST", base+"/api/v1/readings", token, "application/x-ndjson", []byte(strings.Join(lines, "\n")))
	if st != 201 || !bytes.Contains(b, []byte(fmt.Sprintf(`"accepted":%d`, n))) {
		t.Fatalf("upload: %d %s", st, b)
	}
}

func TestEndToEnd(t *testing.T) {
	s := sharedServer(t)
	c := s.creds
	canary := "CANARY-9d2f61b0e4"
	var minted string

	t.Run("demo credentials work", func(t *testing.T) {
		if !strings.HasPrefix(c.PatientID, "pt_") || !strings.HasPrefix(c.ClinicianID, "cl_") ||
			!strings.HasPrefix(c.DeviceToken, "vd_") || !strings.HasPrefix(c.PatientToken, "vp_") || !strings.HasPrefix(c.ClinicianToken, "vc_") {
			t.Fatalf("credentials: %+v", c)
		}
		fi, err := os.Stat(filepath.Join(s.data, "demo", "credentials.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("credentials.json mode: %v %v", fi.Mode(), err)
		}
		st, b := httpDo(t, "GET", s.url+"/api/v1/readings?schema=omh:blood-glucose:4.0", c.PatientToken, "", nil)
		lines := bytes.Count(b, []byte("\n"))
		// Two days of CGM every 5 minutes.
		if st != 200 || lines < 2*288-2 || lines > 2*288+2 {
			t.Fatalf("demo CGM: status %d, %d readings", st, lines)
		}
		// Ada's demo grant to Dr. Rivera is active, so the notebook works at once.
		st, b = httpDo(t, "GET", s.url+"/api/v1/clinician/patients", c.ClinicianToken, "", nil)
		if st != 200 || !strings.HasPrefix(c.GrantID, "gr_") || !bytes.Contains(b, []byte(c.GrantID)) || !bytes.Contains(b, []byte(c.PatientID)) {
			t.Fatalf("demo grant: %d %s (credentials grant %q)", st, b, c.GrantID)
		}
		// Dr. Rivera's demo hub key is registered and active at once.
		st, b = httpDo(t, "GET", s.url+"/api/v1/clinician/keys", c.ClinicianToken, "", nil)
		if st != 200 || !bytes.Contains(b, []byte(c.ClinicianRecipient)) || !bytes.Contains(b, []byte(`"status":"active"`)) {
			t.Fatalf("demo key: %d %s", st, b)
		}
		for _, schema := range []string{"omh:heart-rate:2.0", "omh:step-count:3.0"} {
			_, b := httpDo(t, "GET", s.url+"/api/v1/readings?schema="+schema, c.PatientToken, "", nil)
			if bytes.Count(b, []byte("\n")) == 0 {
				t.Errorf("no demo %s readings", schema)
			}
		}
	})

	t.Run("demo identity matches the age CLI", func(t *testing.T) {
		keygen, err := exec.LookPath("age-keygen")
		if err != nil {
			t.Fatal("age-keygen not found: install Debian's age (scripts/test does this when run as root)")
		}
		out, err := exec.Command(keygen, "-y", c.ClinicianIdentity).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != c.ClinicianRecipient || !strings.HasPrefix(got, "age1") {
			t.Fatalf("age-keygen -y = %q, credentials say %q", got, c.ClinicianRecipient)
		}
	})

	t.Run("ingest canaries", func(t *testing.T) {
		uploadCanaries(t, s.url, c.DeviceToken, canary, 50)
		// A refused point's message does not echo its value.
		bad := strings.Replace(canaryPoint(99, canary), `"mg/dL"`, `"CANARY-unit-5c1a"`, 1)
		st, b := httpDo(t, "POST", s.url+"/api/v1/readings", c.DeviceToken, "", []byte(bad))
		if st != 400 || bytes.Contains(b, []byte("CANARY")) || bytes.Contains(b, []byte("7753")) {
			t.Fatalf("refusal: %d %s", st, b)
		}
	})

	t.Run("admin against the live server", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(s.data, "admin.sock"))
		if err != nil {
			t.Fatalf("admin socket: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin socket mode %v", fi.Mode().Perm())
		}
		id, stderr, err := runVault(t, 20*time.Second, "admin", "user", "add", "--data", s.data, "--role", "clinician", "--name", "Dr. Canary Secondname", "--org", "Lab")
		if err != nil || !strings.HasPrefix(id, "cl_") {
			t.Fatalf("user add: %q %s %v", id, stderr, err)
		}
		minted, stderr, err = runVault(t, 20*time.Second, "admin", "token", "--data", s.data, "--user", id, "--kind", "clinician")
		if err != nil || !strings.HasPrefix(minted, "vc_") {
			t.Fatalf("token: %q %s %v", minted, stderr, err)
		}
		st, b := httpDo(t, "GET", s.url+"/api/v1/clinicians", minted, "", nil)
		if st != 200 || !bytes.Contains(b, []byte(id)) || !bytes.Contains(b, []byte("Dr. Canary Secondname")) {
			t.Fatalf("directory with minted token: %d %s", st, b)
		}
	})

	t.Run("no secret or reading on disk or in logs", func(t *testing.T) {
		db, err := os.ReadFile(filepath.Join(s.data, "vault.db"))
		if err != nil {
			t.Fatal(err)
		}
		logs, err := os.ReadFile(s.logPath)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{canary, "7654.4321", "7700.4321", "CANARY-unit", c.PatientName, c.ClinicianName, "Dr. Canary Secondname",
			c.DeviceToken, c.PatientToken, c.ClinicianToken, minted, c.DeviceToken[20:], "c0ffee00-0000-4000-8000"}
		for _, sec := range secrets {
			if sec == "" {
				t.Fatal("empty secret in the list: test is broken")
			}
			if bytes.Contains(db, []byte(sec)) {
				t.Errorf("%q found in vault.db", sec)
			}
			if bytes.Contains(logs, []byte(sec)) {
				t.Errorf("%q found in the server log", sec)
			}
		}
		if !bytes.Contains(logs, []byte(`"msg":"vault serving"`)) {
			t.Fatal("the log scan read no log: test is broken")
		}
		// The canary is findable through the API, so the scan looked at real data.
		_, b := httpDo(t, "GET", s.url+"/api/v1/readings?from=2024-07-01T00:00:00Z&to=2024-07-02T00:00:00Z", c.PatientToken, "", nil)
		if !bytes.Contains(b, []byte(canary)) {
			t.Fatal("canary not readable through the API")
		}
	})

	t.Run("SIGTERM then restart is idempotent", func(t *testing.T) {
		if err := s.stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		logs, err := os.ReadFile(s.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(logs, []byte("stopped cleanly")) {
			t.Fatal("no clean shutdown in the log")
		}
		if _, err := os.Stat(filepath.Join(s.data, "admin.sock")); !os.IsNotExist(err) {
			t.Fatal("admin socket left behind")
		}
		before := s.creds
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
		if before.OIDCClients[demo.JupyterHubClient].ClientSecret == "" {
			t.Fatalf("no JupyterHub client in the credentials: %+v", before.OIDCClients)
		}
		if !reflect.DeepEqual(s.creds, before) {
			t.Fatalf("credentials changed on restart:\n%+v\n%+v", before, s.creds)
		}
		added := lastDemoAdded(t, s.logPath)
		if added > 10 {
			t.Fatalf("restart re-seeded %d readings", added)
		}
		st, _ := httpDo(t, "GET", s.url+"/api/v1/clinicians", c.PatientToken, "", nil)
		if st != 200 {
			t.Fatalf("old token after restart: %d", st)
		}
	})
}

// TestAdminLockedDoesNotHang holds the database lock in another process's
// place (no admin socket) and checks that admin gives up with a clear error.
func TestAdminLockedDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	initVault(t, data, key)
	// This process holds the database, as a running server would.
	st, err := boltstore.Open(filepath.Join(data, "vault.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	_, stderr, err := runVault(t, 20*time.Second, "admin", "user", "add", "--data", data, "--root-key-file", key, "--role", "patient", "--name", "y")
	if err == nil || !strings.Contains(stderr, "locked by another process") {
		t.Fatalf("locked admin: err %v, stderr %s", err, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("locked admin took %v", d)
	}
}

// TestLedgerVerifyCLI tampers with a real database file and with its
// history, and checks that 'vault ledger verify' fails naming the place.
func TestLedgerVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	db := filepath.Join(data, "vault.db")
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	serve := func() *exec.Cmd {
		srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", addr)
		var errb bytes.Buffer
		srv.Stderr = &errb
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, "http://"+addr, &errb)
		return srv
	}
	addUser := func(name string) {
		if _, stderr, err := runVault(t, 20*time.Second, "admin", "user", "add", "--data", data, "--role", "patient", "--name", name); err != nil {
			t.Fatalf("%s %v", stderr, err)
		}
	}
	stop := func(srv *exec.Cmd) {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}

	// An older copy of the file, taken with three entries in the log (the
	// first is the built-in care-team app's registration).
	srv := serve()
	addUser("p0")
	addUser("p1")
	stop(srv)
	older, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// Later, a client keeps a checkpoint of four entries.
	srv = serve()
	addUser("p2")
	st, cp := httpDo(t, "GET", "http://"+addr+"/api/v1/ledger/checkpoint?fresh=1", "", "", nil)
	stop(srv)
	cpFile := filepath.Join(dir, "checkpoint.txt")
	if err := os.WriteFile(cpFile, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	if st != 200 {
		t.Fatalf("checkpoint: %d %s", st, cp)
	}

	out, stderr, err := runVault(t, 20*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key, "--checkpoint", cpFile)
	if err != nil || !strings.Contains(out, "ledger ok: 4 entries") || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("clean verify: %q %s %v", out, stderr, err)
	}
	current, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	// Roll the file back to the older copy: alone it is self-consistent;
	// against the client's checkpoint it is caught.
	if err := os.WriteFile(db, older, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runVault(t, 20*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key); err != nil {
		t.Fatalf("the older copy is self-consistent, so verify alone passes: %q %s %v", out, stderr, err)
	}
	_, stderr, err = runVault(t, 20*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key, "--checkpoint", cpFile)
	if err == nil || !strings.Contains(stderr, "failed at 4") || !strings.Contains(stderr, "rolled back") {
		t.Fatalf("rollback not caught: %s %v", stderr, err)
	}

	// Flip one byte of entry 1.
	if err := os.WriteFile(db, current, 0o600); err != nil {
		t.Fatal(err)
	}
	func() {
		st, err := boltstore.Open(db, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		tamper := st.LedgerTamperer()
		v, err := tamper.Raw("entries", "1")
		if err != nil || v == nil {
			t.Fatalf("entry 1: %v", err)
		}
		v[len(v)/2] ^= 1
		if err := tamper.SetRaw("entries", "1", v); err != nil {
			t.Fatal(err)
		}
	}()
	_, stderr, err = runVault(t, 20*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key)
	if err == nil || !strings.Contains(stderr, "failed at 1") {
		t.Fatalf("flipped entry not caught: %s %v", stderr, err)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit status: %v, want 1", err)
	}
}

func waitHealthy(t *testing.T, url string, log *bytes.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("server at %s did not become healthy: %s", url, log.String())
}

// initVault creates a vault by starting the server once and stopping it.
func initVault(t *testing.T, data, key string) {
	t.Helper()
	cmd := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stop := startProcess(t, cmd, errb.String)
	waitSocket(t, data, errb.String)
	stop()
}

func lastDemoAdded(t *testing.T, logPath string) int {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	added := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Msg   string `json:"msg"`
			Added int    `json:"readings_added"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "demo ready" {
			added = m.Added
		}
	}
	if added < 0 {
		t.Fatal("no 'demo ready' line in the log")
	}
	return added
}

// startProcess starts a server process and returns its stop: SIGTERM, then
// a wait for a clean exit, which fails the test with log() if the exit is
// not clean. stop runs at most once; the test's cleanup calls it too, so a
// server is never left running after a failure.
func startProcess(t *testing.T, cmd *exec.Cmd, log func() string) (stop func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("the server did not stop cleanly: %v\n%s", err, log())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitSocket waits (at most a minute) for the admin socket of a server
// started on data, failing the test with log() if it never appears.
func waitSocket(t *testing.T, data string, log func() string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(data, "admin.sock")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's admin socket did not appear: %s", log())
		}
	}
}
