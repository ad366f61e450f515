package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestLedgerVerifyPostgresOffline: 'vault ledger verify --database' with
// the server stopped opens the PostgreSQL database itself, with the root
// key, and replays the whole log: it passes and extends the checkpoint a
// client kept; an entry altered in its row fails it, naming the entry; a
// pg_dump taken before the newest checkpoint and restored into a new
// database verifies on its own and against the checkpoint from before
// the dump, but '--checkpoint' with the newer one refuses it as rolled
// back (as TestPostgresRestoreIsRollback shows through a server). It
// writes nothing and makes no --data directory; an unreachable database
// and one with no vault are refused, saying why, the password never
// quoted.
func TestLedgerVerifyPostgresOffline(t *testing.T) {
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
	dump := filepath.Join(dir, "vault.dump")
	if out, err := exec.Command(pgClient(t, "pg_dump"), "--format=custom", "--file", dump, "--dbname", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v %s", err, out)
	}
	grant := `{"clinician":"` + c.ClinicianID + `","schemas":["omh:heart-rate"],"expires_at":"` + time.Now().UTC().Add(24*time.Hour).Format(time.RFC3339) + `","purpose":"TREAT"}`
	if st, b := httpDo(t, "POST", s.url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant)); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	newer := checkpoint("newer.txt")
	s.stop(t)

	// No server answers anywhere: --data names a directory that does not
	// exist (and is not made).
	nowhere := filepath.Join(dir, "no-data")
	verify := func(db string, extra ...string) (string, string, error) {
		t.Helper()
		return runVault(t, 60*time.Second, append([]string{"ledger", "verify", "--database", db, "--root-key-file", key, "--data", nowhere}, extra...)...)
	}
	c0 := pgtest.Connect(t, dsn)
	snapshot := func() string {
		t.Helper()
		var n, cps int64
		var entries, meta []byte
		if err := c0.QueryRow(t.Context(), `SELECT (SELECT size FROM ledger_head), (SELECT count(*) FROM ledger_checkpoints),
			(SELECT sha256(string_agg(sealed, '' ORDER BY idx)) FROM ledger_entries), (SELECT sha256(string_agg(value, '' ORDER BY key)) FROM ledger_meta)`).Scan(&n, &cps, &entries, &meta); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %d %x %x", n, cps, entries, meta)
	}
	before := snapshot()
	out, errOut, err := verify(dsn, "--checkpoint", newer)
	if err != nil || !strings.HasPrefix(out, "ledger ok") || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("offline verify: %s %s %v", out, errOut, err)
	}
	if snapshot() != before {
		t.Fatal("verify changed the ledger")
	}
	if _, err := os.Stat(nowhere); !os.IsNotExist(err) {
		t.Fatalf("verify made --data: %v", err)
	}
	// VAULT_DATABASE_URL in place of --database.
	t.Setenv("VAULT_DATABASE_URL", dsn)
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--root-key-file", key, "--data", nowhere); err != nil || !strings.HasPrefix(out, "ledger ok") {
		t.Fatalf("offline verify with VAULT_DATABASE_URL: %s %s %v", out, errOut, err)
	}
	os.Unsetenv("VAULT_DATABASE_URL")

	// An entry altered in its row.
	var orig []byte
	if err := c0.QueryRow(t.Context(), "SELECT sealed FROM ledger_entries WHERE idx = 1").Scan(&orig); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 1
	if _, err := c0.Exec(t.Context(), "UPDATE ledger_entries SET sealed = $1 WHERE idx = 1", bad); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := verify(dsn); err == nil || !strings.Contains(errOut, "ledger verification failed at 1") || !strings.Contains(errOut, "ledger_tampered") {
		t.Fatalf("verify of an altered entry: %v %s", err, errOut)
	}
	if _, err := c0.Exec(t.Context(), "UPDATE ledger_entries SET sealed = $1 WHERE idx = 1", orig); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := verify(dsn); err != nil || !strings.HasPrefix(out, "ledger ok") {
		t.Fatalf("verify with the entry put back: %s %s %v", out, errOut, err)
	}

	// The older dump, restored: a rollback.
	restored := pgtest.New(t)
	if out, err := exec.Command(pgClient(t, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v %s", err, out)
	}
	if out, errOut, err := verify(restored, "--checkpoint", older); err != nil || !strings.Contains(out, "extends the given checkpoint") {
		t.Fatalf("the restored ledger against the checkpoint from before the dump: %s %s %v", out, errOut, err)
	}
	if _, errOut, err := verify(restored, "--checkpoint", newer); err == nil || !strings.Contains(errOut, "ledger_tampered") || !strings.Contains(errOut, "rolled back") {
		t.Fatalf("the rollback was not caught: %v %s", err, errOut)
	}

	// Refusals: nothing listening where the database should be (the
	// password is never quoted), and a database with no vault.
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, err = verify("postgres://vault:s3cret-pw@" + addr + "/vault")
	if err == nil || !strings.Contains(errOut, "cannot verify the ledger: no server answers on") || !strings.Contains(errOut, "connect to PostgreSQL") || strings.Contains(errOut, "s3cret-pw") {
		t.Fatalf("an unreachable database: %v %s", err, errOut)
	}
	_, errOut, err = verify(pgtest.New(t))
	if err == nil || !strings.Contains(errOut, "no vault in this PostgreSQL database") {
		t.Fatalf("a database with no vault: %v %s", err, errOut)
	}
}
