package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// pgClient finds a PostgreSQL client program (pg_dump, pg_restore): the
// newest under /usr/lib/postgresql, as pgtest finds the server, else on
// PATH.
func pgClient(t *testing.T, name string) string {
	t.Helper()
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		sort.Strings(m)
		return m[len(m)-1]
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v (Debian's postgresql-client)", name, err)
	}
	return p
}

// TestPostgresRestoreIsRollback follows docs/scaling.md's backups on
// PostgreSQL: a pg_dump taken while the vault serves, a grant appended
// after it and a checkpoint a client kept, then the dump restored into a
// new database and served. The restored ledger is self-consistent and
// extends the checkpoint from before the dump, but 'vault ledger verify
// --checkpoint' with the client's newer checkpoint refuses it: a restore
// is a rollback, and the ledger says so.
func TestPostgresRestoreIsRollback(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s, c := startDemo(t, data, key, "--demo-days", "1", "--database", dsn)
	checkpoint := func(name string) string {
		t.Helper()
		st, cp := httpDo(t, "GET", s.url+"/api/v1/ledger/checkpoint?fresh=1", "", "", nil)
		if st != 200 {
			t.Fatalf("checkpoint: %d %s", st, cp)
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, cp, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	older := checkpoint("older.txt")

	// The backup: pg_dump of the live database, custom format.
	dump := filepath.Join(dir, "vault.dump")
	if out, err := exec.Command(pgClient(t, "pg_dump"), "--format=custom", "--file", dump, "--dbname", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v %s", err, out)
	}

	// After it: a grant, and a client keeps the newer checkpoint.
	grant := `{"clinician":"` + c.ClinicianID + `","schemas":["omh:heart-rate"],"expires_at":"` + time.Now().UTC().Add(24*time.Hour).Format(time.RFC3339) + `","purpose":"TREAT"}`
	if st, b := httpDo(t, "POST", s.url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant)); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	if st, b := httpDo(t, "GET", s.url+"/api/v1/grants", c.PatientToken, "", nil); st != 200 || strings.Count(string(b), `"id":"gr_`) != 2 {
		t.Fatalf("grants after the dump: %d %s", st, b)
	}
	newer := checkpoint("newer.txt")
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data, "--checkpoint", newer); err != nil || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("verify before the restore: %s %s %v", out, errOut, err)
	}
	s.stop(t)

	// The restore: pg_restore into a new, empty database, served from a
	// new data directory with the same root key.
	restored := pgtest.New(t)
	if out, err := exec.Command(pgClient(t, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v %s", err, out)
	}
	data2 := filepath.Join(dir, "data2")
	s = startServer(t, data2, key, "--database", restored)
	defer s.stop(t)
	if st, b := httpDo(t, "GET", s.url+"/api/v1/grants", c.PatientToken, "", nil); st != 200 || strings.Count(string(b), `"id":"gr_`) != 1 {
		t.Fatalf("the restored vault: %d %s (the later grant must be gone)", st, b)
	}
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data2, "--checkpoint", older); err != nil || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("the restored ledger against the checkpoint from before the dump: %s %s %v", out, errOut, err)
	}
	_, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data2, "--checkpoint", newer)
	// Refused as rolled back (the restored log is shorter) or as forked
	// (it has grown past the checkpoint's size since, with other entries).
	if err == nil || !strings.Contains(errOut, "ledger_tampered") || !(strings.Contains(errOut, "rolled back") || strings.Contains(errOut, "does not extend the given checkpoint")) {
		t.Fatalf("the rollback was not caught: %v %s", err, errOut)
	}

	// vault backup and restore say what replaces them on PostgreSQL.
	t.Setenv("VAULT_DATABASE_URL", restored)
	for _, args := range [][]string{
		{"backup", "--data", data2, "--out", filepath.Join(dir, "b.db")},
		{"restore", "--data", filepath.Join(dir, "data3"), "--in", dump},
	} {
		if _, errOut, err := runVault(t, 30*time.Second, args...); err == nil || !strings.Contains(errOut, "pg_dump") {
			t.Fatalf("vault %s on PostgreSQL: %v %s", args[0], err, errOut)
		}
	}
}
