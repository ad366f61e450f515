package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChangeRootPostgres: 'vault keys change-root --database' re-seals a
// PostgreSQL vault's master keyset under a new root key: the vault then
// serves with the new key (the patient's token reads her readings) and
// refuses the old one, and the change is in the ledger.
func TestChangeRootPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s, c := startDemo(t, data, key, "--demo-days", "1", "--database", dsn)
	readings := "/api/v1/readings?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=50"
	st, before := httpDo(t, "GET", s.url+readings, c.PatientToken, "", nil)
	if st != 200 || len(before) < 100 {
		t.Fatalf("readings: %d %.200s", st, before)
	}
	if _, errOut, err := runVault(t, 30*time.Second, "keys", "change-root", "--data", data, "--root-key-file", key, "--new-root-key-file", filepath.Join(dir, "keys", "x.key"), "--database", dsn); err == nil || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("change-root with the server running: %v %s", err, errOut)
	}
	s.stop(t)

	newKey := filepath.Join(dir, "keys", "new.key")
	if out, errOut, err := runVault(t, 30*time.Second, "keys", "new-root", "--out", newKey); err != nil {
		t.Fatalf("keys new-root: %s %s %v", out, errOut, err)
	}
	out, errOut, err := runVault(t, 60*time.Second, "keys", "change-root", "--data", data, "--root-key-file", key, "--new-root-key-file", newKey, "--database", dsn)
	if err != nil || !strings.Contains(out, "now wrapped by the new") {
		t.Fatalf("change-root: %s %s %v", out, errOut, err)
	}

	if _, errOut, err := runVault(t, 60*time.Second, "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0", "--database", dsn); err == nil || !strings.Contains(errOut, "refusing to start") {
		t.Fatalf("serve with the old root: %v %s", err, errOut)
	}
	s = startServer(t, data, newKey, "--database", dsn)
	defer s.stop(t)
	if st, after := httpDo(t, "GET", s.url+readings, c.PatientToken, "", nil); st != 200 || !bytes.Equal(after, before) {
		t.Fatalf("readings under the new root: %d, equal %v", st, bytes.Equal(after, before))
	}
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data); err != nil || !strings.Contains(out, "ledger ok") {
		t.Fatalf("ledger verify: %s %s %v", out, errOut, err)
	}
}
