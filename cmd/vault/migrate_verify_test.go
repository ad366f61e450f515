package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

// copyToPostgres copies the stopped vault in data to a fresh database in
// process, as 'vault migrate' does, and checks that the copy verifies. It
// returns the migration (m.dst is the copy; both stores stay open until the
// test ends), the source vault unlocked with key, and the database's
// connection string.
func copyToPostgres(t *testing.T, data, key string) (*migration, *vault.Vault, string) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.New(t)
	src, err := boltstore.Open(dbPath(data), boltstore.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	v, _, err := unlock(ctx, src, storeFlags{data: data, keyFile: key}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := postgres.Open(ctx, dsn, postgres.Options{AllowUnsafeDurability: true}) // the test cluster runs with fsync=off
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	if err := migrateTarget(ctx, dst, false); err != nil {
		t.Fatal(err)
	}
	m := &migration{src: src, dst: dst, stderr: io.Discard}
	if err := m.copy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.verify(ctx, v); err != nil {
		t.Fatalf("the untouched copy does not verify: %v", err)
	}
	return m, v, dsn
}

// TestMigrateVerifyCatches: the check after the copy is not a formality.
// A demo vault is copied in process; then one thing in the copy is
// changed behind the vault's back, and the check must name it.
func TestMigrateVerifyCatches(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s := startServer(t, data, key, "--demo", "--demo-days", "1")
	s.stop(t)

	for _, tc := range []struct {
		name, sql, want string
	}{
		{"a reading's sealed bytes", "UPDATE readings SET value = value || '\\x00'::bytea WHERE (patient, schema_id, t, tag) = (SELECT patient, schema_id, t, tag FROM readings ORDER BY t DESC LIMIT 1)", "differs"},
		{"a reading missing", "DELETE FROM readings WHERE (patient, schema_id, t, tag) = (SELECT patient, schema_id, t, tag FROM readings ORDER BY t LIMIT 1)", "readings of"},
		{"a wrapped patient key", "UPDATE patient_keys SET blob = blob || '\\x00'::bytea", "patient keys differ"},
		{"an API token", "DELETE FROM tokens WHERE id = (SELECT id FROM tokens ORDER BY id LIMIT 1)", "API token"},
		{"a ledger entry", "UPDATE ledger_entries SET sealed = sealed || '\\x00'::bytea WHERE idx = 1", "ledger entry 1 differs"},
		{"a ledger tree hash", "UPDATE ledger_hashes SET hash = decode(repeat('00', 32), 'hex') WHERE idx = 0", "tree hashes differ"},
		{"the master keyset", "UPDATE meta SET value = value || '\\x00'::bytea WHERE key = 'master'", `meta "master" differs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m, v, dsn := copyToPostgres(t, data, key)
			tag, err := pgtest.Connect(t, dsn).Exec(ctx, tc.sql)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("tamper: %v, %d rows", err, tag.RowsAffected())
			}
			err = m.verify(ctx, v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify after changing %s: %v, want %q", tc.name, err, tc.want)
			}
		})
	}
}
