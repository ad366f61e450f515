package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// copyRecordsFixture puts vault/testdata's old-format vault (written by
// the code before compact records) in a new data directory, with its root
// key file.
func copyRecordsFixture(t *testing.T) (data, key string) {
	t.Helper()
	dir := t.TempDir()
	data, key = filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile("../../vault/testdata/records-v1.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "vault.db"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile("../../vault/testdata/records-v1.root.key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return data, key
}

// TestAdminRecordsRewrite runs 'vault admin records status' and 'rewrite'
// on the old-format fixture: offline on the file for the status, then
// through a running server's admin socket for the rewrite; afterwards
// every record is in the current format, the next rewrite has nothing to
// do, and a restore (which decrypts every record) reads all 61.
func TestAdminRecordsRewrite(t *testing.T) {
	data, key := copyRecordsFixture(t)
	out, stderr, err := runVault(t, time.Minute, "admin", "records", "status", "--data", data, "--root-key-file", key)
	if want := "2 patients; records in format 1 (wrapped DEK): 61; format 2 (compact): 0\n61 records are in an older format: run 'vault admin records rewrite'"; err != nil || out != want {
		t.Fatalf("status on the file: %q, %v, %s", out, err, stderr)
	}

	srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	var srvLog bytes.Buffer
	srv.Stderr = &srvLog
	stop := startProcess(t, srv, srvLog.String)
	waitSocket(t, data, srvLog.String)
	// No root key given: only the socket can do it.
	out, stderr, err = runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data)
	if err != nil {
		t.Fatalf("rewrite through the socket: %v %s", err, stderr)
	}
	if !regexp.MustCompile(`^rewrote 61 records to format 2 \(0 were in it already\), 2 patients, in [0-9.]+ s\n2 patients; records in format 1 \(wrapped DEK\): 0; format 2 \(compact\): 61\nevery record is in the current format \(2\)$`).MatchString(out) {
		t.Fatalf("rewrite output:\n%s", out)
	}
	out, _, err = runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data)
	if err != nil || !regexp.MustCompile(`^rewrote 0 records to format 2 \(61 were in it already\)`).MatchString(out) {
		t.Fatalf("second rewrite: %q %v", out, err)
	}
	stop()

	backup := filepath.Join(t.TempDir(), "b.backup")
	if _, stderr, err := runVault(t, time.Minute, "backup", "--data", data, "--out", backup); err != nil {
		t.Fatalf("backup: %v %s", err, stderr)
	}
	out, stderr, err = runVault(t, time.Minute, "restore", "--in", backup, "--data", filepath.Join(t.TempDir(), "restored"), "--root-key-file", key)
	if err != nil || !regexp.MustCompile(`2 patients, 61 readings decrypted`).MatchString(out) {
		t.Fatalf("restore: %q %v %s", out, err, stderr)
	}
}
