// Package pgtest gives tests a real, throwaway PostgreSQL: one cluster per
// test binary, made with initdb and started with pg_ctl on a unix socket in
// a private temporary directory, and a fresh database for every test.
//
// A test package that uses it runs its tests through [Main]:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and each test asks for a database with [New], which returns a DSN for a
// new database copied from an empty template and dropped when the test
// ends. The cluster starts on the first New (so a run that needs none
// starts none) and Main stops it (pg_ctl -m immediate) and removes its
// directory after the tests.
//
// Where the server comes from:
//
//   - VAULT_TEST_POSTGRES set: a server someone else runs (a libpq
//     connection string to a database whose user may create databases);
//     pgtest starts nothing.
//   - otherwise the newest PostgreSQL server under /usr/lib/postgresql
//     (Debian's layout; PG_BINDIR overrides it). Run as root, the server
//     commands run as the postgres user (runuser), since PostgreSQL refuses
//     root; clients connect as root over the socket with trust
//     authentication, which only the directory's owner can reach.
//
// Without PostgreSQL a test skips and says why, loudly; under CI=true it
// fails instead. The cluster runs with fsync and synchronous_commit off
// (it is thrown away): tests that open a store on it must allow that
// explicitly (postgres.Options.AllowUnsafeDurability).
//
// Imported by _test.go files only.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// template is the empty database every test's database is copied from.
const template = "vault_tmpl"

// cluster is the test binary's server. It is the one piece of package
// state, as a test binary has one cluster; Main stops it.
var cluster struct {
	once    sync.Once
	dsn     string // the admin connection (database postgres)
	dir     string // the cluster's directory when pgtest started it
	bindir  string
	err     error
	counter atomic.Int64
}

// Main runs the tests and stops the cluster afterwards, if one was
// started; it does not return.
func Main(m *testing.M) {
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping the test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Stop stops the cluster, if one was started, and removes its directory.
// It is for a test package whose TestMain cannot hand over to [Main]
// (one that already wraps m.Run, as cmd/vault's does): call it after the
// tests have run.
func Stop() error { return stop() }

// New returns the DSN of a fresh, empty database for this test, dropped
// when the test ends. It skips the test when no PostgreSQL is available
// (fails it under CI=true).
func New(t testing.TB) string {
	t.Helper()
	cluster.once.Do(func() { cluster.dsn, cluster.err = start() })
	if cluster.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: PostgreSQL is required under CI=true: %v", cluster.err)
		}
		t.Skipf("pgtest: SKIPPING, no PostgreSQL for this test: %v (install Debian's postgresql, or set VAULT_TEST_POSTGRES)", cluster.err)
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), cluster.counter.Add(1))
	admin := connect(t, cluster.dsn)
	if _, err := admin.Exec(t.Context(), "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// Whatever the test left connected is ended first.
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	return withDatabase(cluster.dsn, name)
}

// Admin returns a connection to the cluster's maintenance database, for
// tests that inspect or change the server; closed when the test ends.
func Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	New(t) // starts the cluster or skips
	return connect(t, cluster.dsn)
}

// Connect opens one connection to dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn { t.Helper(); return connect(t, dsn) }

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// withDatabase returns dsn (key=value form) naming another database.
func withDatabase(dsn, db string) string {
	var kept []string
	for _, f := range strings.Fields(dsn) {
		if !strings.HasPrefix(f, "dbname=") {
			kept = append(kept, f)
		}
	}
	return strings.Join(append(kept, "dbname="+db), " ")
}

func start() (string, error) {
	ctx := context.Background()
	if dsn := os.Getenv("VAULT_TEST_POSTGRES"); dsn != "" {
		return dsn, makeTemplate(ctx, dsn)
	}
	bindir, err := findBindir()
	if err != nil {
		return "", err
	}
	cluster.bindir = bindir
	dir, err := privateDir("vaultpg")
	cluster.dir = dir
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if out, err := server(bindir, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := "-c listen_addresses='' -k " + dir + " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
	if out, err := server(bindir, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-s", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return "", fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
	}
	dsn := "host=" + dir + " user=postgres dbname=postgres"
	return dsn, makeTemplate(ctx, dsn)
}

// server runs a server program, as the postgres user when we are root.
func server(bindir, prog string, args ...string) *exec.Cmd {
	path := filepath.Join(bindir, prog)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func findBindir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("no PostgreSQL server in /usr/lib/postgresql (Debian's postgresql package)")
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// makeTemplate creates the empty template database if it is not there.
func makeTemplate(ctx context.Context, dsn string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", template).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+template+" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"); err != nil {
			return err
		}
	}
	return nil
}

func stop() error {
	if cluster.dir == "" {
		return nil
	}
	out, err := server(cluster.bindir, "pg_ctl", "-D", filepath.Join(cluster.dir, "data"), "-m", "immediate", "-w", "-s", "stop").CombinedOutput()
	if rmErr := os.RemoveAll(cluster.dir); err == nil && rmErr != nil {
		return rmErr
	}
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Cluster is a private cluster one test owns, for tests that crash and
// restart the server (the kill -9 torture test): [NewCluster] makes it,
// and the test's cleanup stops it and removes its directory. Unlike the
// shared cluster it runs with PostgreSQL's durable defaults (fsync,
// synchronous_commit and full_page_writes on), so a commit it
// acknowledged survives an immediate stop, and a vault opens it without
// allowing unsafe durability.
type Cluster struct {
	bindir, dir, data string
	dsn               string // the database "vault" on it
}

// NewCluster initialises and starts a private cluster with one empty
// database. It skips the test (fails it under CI=true) without a local
// PostgreSQL server, and when VAULT_TEST_POSTGRES names someone else's
// server, which a test must not crash.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: a private PostgreSQL cluster is required under CI=true: %s", why)
		}
		t.Skipf("pgtest: SKIPPING, no private PostgreSQL cluster for this test: %s", why)
	}
	if os.Getenv("VAULT_TEST_POSTGRES") != "" {
		unavailable("VAULT_TEST_POSTGRES names a server this test must not crash; run it with a local PostgreSQL server instead")
	}
	bindir, err := findBindir()
	if err != nil {
		unavailable(err.Error())
	}
	dir, err := privateDir("vaultpgc")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{bindir: bindir, dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		server(c.bindir, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-s", "stop").Run() // already stopped is fine
		os.RemoveAll(c.dir)
	})
	if out, err := server(bindir, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v: %s", err, out)
	}
	c.Start(t)
	admin := "host=" + dir + " user=postgres dbname=postgres"
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE vault TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	c.dsn = withDatabase(admin, "vault")
	return c
}

// DSN is the connection string of the cluster's database.
func (c *Cluster) DSN() string { return c.dsn }

// Start starts the (stopped) cluster and waits until it accepts
// connections; after a [Cluster.Crash] the server first recovers from its
// write-ahead log.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	opts := "-c listen_addresses='' -k " + c.dir + " -c max_connections=100"
	if out, err := server(c.bindir, "pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "120", "-s", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		t.Fatalf("pgtest: pg_ctl start: %v: %s %s", err, out, log)
	}
}

// Crash stops the server with pg_ctl -m immediate: every server process
// quits at once, without a checkpoint, as in a crash; the next Start
// recovers from the write-ahead log.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if out, err := server(c.bindir, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-s", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_ctl -m immediate stop: %v: %s", err, out)
	}
}

// privateDir makes a directory only the server's user can enter (the
// postgres user when we are root).
func privateDir(pattern string) (string, error) {
	// A short path: a unix socket's path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	}
	return dir, os.Chmod(dir, 0o700)
}
