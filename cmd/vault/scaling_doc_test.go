package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/web"
)

// docs/scaling.md as the script of a test: its section "Several replicas,
// step by step" marks each command of the setup as a fenced block whose
// info string is "sh scaling-step", followed by modifiers:
//
//   - none: run once (as on the first replica's host);
//   - every-replica: run once for each replica, in turn;
//   - every-replica service: started for each replica and left running
//     (the server).
//
// The test runs the blocks in the doc's order with bash, as written, but
// for the placeholders of the doc's table, which it replaces with its own
// values (scalingPlaceholders).

// scalingStep is one marked block of docs/scaling.md.
type scalingStep struct {
	line         int // of the opening fence
	everyReplica bool
	service      bool
	script       string
}

// scalingSteps reads the marked blocks of doc in order.
func scalingSteps(t *testing.T, doc string) []scalingStep {
	t.Helper()
	var steps []scalingStep
	var cur *scalingStep
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(l) == "```":
			steps = append(steps, *cur)
			cur = nil
		case cur != nil:
			cur.script += l + "\n"
		case strings.HasPrefix(l, "```"):
			f := strings.Fields(strings.TrimPrefix(l, "```"))
			if len(f) < 2 || f[1] != "scaling-step" {
				continue
			}
			if f[0] != "sh" {
				t.Fatalf("docs/scaling.md:%d: a scaling-step block in %q, not sh", n, f[0])
			}
			cur = &scalingStep{line: n}
			for _, m := range f[2:] {
				switch m {
				case "every-replica":
					cur.everyReplica = true
				case "service":
					cur.service = true
				default:
					t.Fatalf("docs/scaling.md:%d: unknown scaling-step modifier %q", n, m)
				}
			}
			if cur.service && !cur.everyReplica {
				t.Fatalf("docs/scaling.md:%d: a service step runs on every replica", n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("docs/scaling.md:%d: the scaling-step block is not closed", cur.line)
	}
	return steps
}

// docPlaceholders is the first column of the placeholder table in doc's
// section "Several replicas, step by step".
func docPlaceholders(t *testing.T, doc string) []string {
	t.Helper()
	_, sec, ok := strings.Cut(doc, "\n## Several replicas, step by step\n")
	if !ok {
		t.Fatal(`docs/scaling.md has no section "Several replicas, step by step"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var ps []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(sec, -1) {
		ps = append(ps, m[1])
	}
	return ps
}

// TestScalingDoc follows docs/scaling.md's "Several replicas, step by
// step" with three replicas on a database of the throwaway cluster and the
// in-test round-robin proxy as the load balancer (setting
// X-Forwarded-For, from 127.0.0.1, the range the test gives
// --trusted-proxies). Then it checks that the topology works: the health
// check answers through the proxy on every replica; every replica printed
// the same ledger key and the vault's tables belong to the role of step 1;
// a reading uploaded through one replica reads back through the others; a
// grant made on one lets the clinician export on all, and a revoke
// returned on another denies on all; a client that spent its sign-in
// budget is refused on every replica while another client address is not.
//
// Beside the placeholders, the steps' environment gives the superuser
// steps the cluster (PGHOST, PGPORT, PGUSER), lets the vault accept the
// test cluster's fsync=off (VAULT_TEST_UNSAFE_DURABILITY) and sets
// VAULT_KEY_ACTIVATION_DELAY=0, so that the clinician key the test adds
// can receive exports at once.
func TestScalingDoc(t *testing.T) {
	const n = 3
	b, err := os.ReadFile("../../docs/scaling.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	steps := scalingSteps(t, doc)
	if len(steps) < 5 {
		t.Fatalf("docs/scaling.md marks %d steps", len(steps))
	}

	// The cluster, as its superuser sees it.
	cfg, err := pgconn.ParseConfig(pgDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Admin(t)
	var exists int
	if err := admin.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'vault') + (SELECT count(*) FROM pg_database WHERE datname = 'vault')").Scan(&exists); err != nil || exists != 0 {
		t.Fatalf("the cluster has a role or database named vault already (%d, %v): the doc's step 1 makes them", exists, err)
	}
	t.Cleanup(func() { // after the replicas have stopped (cleanups run last first)
		ctx := context.Background()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS vault WITH (FORCE)"); err != nil {
			t.Errorf("drop the database vault: %v", err)
		}
		if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS vault"); err != nil {
			t.Errorf("drop the role vault: %v", err)
		}
	})
	vaultDSN := fmt.Sprintf("host=%s port=%d user=vault dbname=vault sslmode=disable", cfg.Host, cfg.Port)

	dir := t.TempDir()
	rs := &replicaSet{t: t, dsn: vaultDSN, forwarded: true}
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse("http://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{i: i, data: filepath.Join(dir, fmt.Sprintf("data%d", i)), log: filepath.Join(dir, fmt.Sprintf("replica%d.log", i))}
		r.url.Store(u)
		r.up.Store(true)
		rs.reps = append(rs.reps, r)
	}
	rs.listenProxy(t) // once rs.reps is complete: the proxy reads it
	// The placeholders of the doc's table, and the test's value of each
	// for replica i.
	values := func(i int) []string {
		return []string{
			"postgres://vault@db.internal:5432/vault?sslmode=verify-full", vaultDSN,
			"/etc/vault", filepath.Join(dir, "etc"),
			"/var/lib/vault", rs.reps[i].data,
			"0.0.0.0:8080", rs.reps[i].url.Load().Host,
			"https://vault.example.org", rs.base,
			"10.0.0.0/24", "127.0.0.1/32",
		}
	}
	var placeholders []string
	for i, v := range values(0) {
		if i%2 == 0 {
			placeholders = append(placeholders, v)
		}
	}
	if got := docPlaceholders(t, doc); !slices.Equal(got, placeholders) {
		t.Fatalf("docs/scaling.md's placeholders %q, the test replaces %q", got, placeholders)
	}
	for _, p := range placeholders {
		if !slices.ContainsFunc(steps, func(s scalingStep) bool { return strings.Contains(s.script, p) }) {
			t.Errorf("placeholder %q is in no step", p)
		}
	}
	env := append(os.Environ(), "PGHOST="+cfg.Host, fmt.Sprintf("PGPORT=%d", cfg.Port), "PGUSER="+cfg.User, "VAULT_KEY_ACTIVATION_DELAY=0")
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}

	logs := func() string {
		var s strings.Builder
		for _, r := range rs.reps {
			fmt.Fprintf(&s, "\nreplica %d: %s", r.i, tortureLogTail(r.log))
		}
		return s.String()
	}
	outputs := map[int][]string{} // a step's line: its output on each replica it ran for
	died := make(chan struct{})   // closed when a service step ends
	var dying sync.Once
	for _, st := range steps {
		for i := range n {
			if i > 0 && !st.everyReplica {
				break
			}
			script := strings.NewReplacer(values(i)...).Replace(st.script)
			if st.service {
				startService(t, rs.reps[i], script, env, func() { dying.Do(func() { close(died) }) })
				continue
			}
			// A bound for a hung step, not a timing check; a step waiting
			// for a server that has exited is stopped at once.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			go func() {
				select {
				case <-died:
					cancel()
				case <-ctx.Done():
				}
			}()
			cmd := exec.CommandContext(ctx, "bash", "-e", "-u", "-o", "pipefail", "-c", script)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("docs/scaling.md:%d (replica %d) failed: %v\n%s---\n%s%s", st.line, i, err, script, out, logs())
			}
			t.Logf("docs/scaling.md:%d (replica %d): ok", st.line, i)
			outputs[st.line] = append(outputs[st.line], strings.TrimSpace(string(out)))
		}
	}

	// The load balancer's health check, through the proxy: each replica
	// answers.
	answered := map[string]bool{}
	for range 2 * n {
		resp, err := http.Get(rs.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz through the proxy, replica %s: %s", resp.Header.Get("X-Test-Replica"), resp.Status)
		}
		answered[resp.Header.Get("X-Test-Replica")] = true
	}
	if len(answered) != n {
		t.Fatalf("/healthz answered by replicas %v", answered)
	}
	// One ledger key, printed alike by every replica.
	var keysSeen []string
	for _, st := range steps {
		if strings.Contains(st.script, "admin ledger-key") {
			keysSeen = outputs[st.line]
		}
	}
	if len(keysSeen) != n || keysSeen[0] == "" || slices.ContainsFunc(keysSeen, func(k string) bool { return k != keysSeen[0] }) {
		t.Fatalf("ledger keys printed by the replicas: %q", keysSeen)
	}
	// The vault's tables are the role's of step 1.
	c := pgtest.Connect(t, vaultDSN)
	var owner string
	if err := c.QueryRow(t.Context(), "SELECT tableowner FROM pg_tables WHERE tablename = 'readings'").Scan(&owner); err != nil || owner != "vault" {
		t.Fatalf("the readings table's owner: %q, %v", owner, err)
	}

	// A reading uploaded through one replica reads back through the others.
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Doc Patient")
	cl := rs.admin(t, 1, "admin", "user", "add", "--role", "clinician", "--name", "Dr. Doc", "--org", "Lab")
	dev := rs.admin(t, 1, "admin", "token", "--user", pt, "--kind", "device")
	ptok := rs.admin(t, 2, "admin", "token", "--user", pt, "--kind", "patient")
	ctok := rs.admin(t, 0, "admin", "token", "--user", cl, "--kind", "clinician")
	if st, body := httpDo(t, "POST", rs.direct(1)+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 0, 10)); st != 201 {
		t.Fatalf("upload on replica 1: %d %s", st, body)
	}
	for _, i := range []int{0, 2} {
		if got := readUUIDs(t, rs.direct(i), ptok); len(got) != 10 {
			t.Fatalf("replica %d reads %d of the 10 readings uploaded through replica 1", i, len(got))
		}
	}

	// A grant made on one replica is in force on all; a revoke returned on
	// another denies on all.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if st, body := httpDo(t, "POST", rs.direct(2)+"/api/v1/clinician/keys", ctok, "application/json", []byte(`{"recipient":"`+id.Recipient().String()+`","label":"hub"}`)); st/100 != 2 {
		t.Fatalf("clinician key on replica 2: %d %s", st, body)
	}
	grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, cl, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
	st, body := httpDo(t, "POST", rs.direct(0)+"/api/v1/grants", ptok, "application/json", []byte(grant))
	if st != 201 {
		t.Fatalf("grant on replica 0: %d %s", st, body)
	}
	var g struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &g); err != nil || g.ID == "" {
		t.Fatalf("grant answer %s: %v", body, err)
	}
	export := "/api/v1/patients/" + pt + "/export?schema=omh:blood-glucose:4.0&from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
	for i := range n {
		if st, body := httpDo(t, "GET", rs.direct(i)+export, ctok, "", nil); st != 200 {
			t.Fatalf("export on replica %d under the grant made on replica 0: %d %.300s", i, st, body)
		}
	}
	if st, body := httpDo(t, "POST", rs.direct(1)+"/api/v1/grants/"+g.ID+"/revoke", ptok, "", nil); st/100 != 2 {
		t.Fatalf("revoke on replica 1: %d %s", st, body)
	}
	for i := range n {
		if st, body := httpDo(t, "GET", rs.direct(i)+export, ctok, "", nil); st != http.StatusForbidden {
			t.Errorf("export on replica %d after the revoke on replica 1 returned: %d %.300s", i, st, body)
		}
	}

	// --trusted-proxies: the shared sign-in budget is per client address
	// behind the load balancer. One client spends its budget through the
	// proxy, spread over the replicas, and is refused on every one; a
	// client from another address is not.
	spent, other := fromAddr(t, 8), fromAddr(t, 9)
	served := map[string]bool{}
	for i := range web.DefaultAuthPerMinute {
		st, rep := signinBegin(t, spent, rs.base)
		if st != 200 {
			t.Fatalf("sign-in begin %d through the proxy (replica %s): %d", i+1, rep, st)
		}
		served[rep] = true
	}
	if len(served) != n {
		t.Fatalf("the sign-in begins reached replicas %v", served)
	}
	for range n {
		if st, rep := signinBegin(t, spent, rs.base); st != http.StatusTooManyRequests {
			t.Fatalf("a sign-in begin over the budget (replica %s): %d", rep, st)
		}
	}
	if st, rep := signinBegin(t, other, rs.base); st != 200 {
		t.Fatalf("another client address behind the proxy was refused (replica %s): %d: the replicas do not see X-Forwarded-For", rep, st)
	}
}

// startService starts a service step (a replica's server) for replica r,
// its output in r.log, calls exited if it ends, and stops it, with
// everything it started, when the test ends.
func startService(t *testing.T, r *replica, script string, env []string, exited func()) {
	t.Helper()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("bash", "-e", "-u", "-o", "pipefail", "-c", script)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done); exited() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
}

// fromAddr is an HTTP client whose connections leave from 127.0.2.host.
func fromAddr(t *testing.T, host byte) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, host)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// signinBegin posts a passkey sign-in's begin as a browser on base would,
// and returns the status and the replica that answered.
func signinBegin(t *testing.T, c *http.Client, base string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/webauthn/signin/begin", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Test-Replica")
}
