package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImportCLI imports a Dexcom Clarity file with vault import through the
// running server's socket, then again with no server (on the file): the
// second stores nothing new. A malformed file is refused naming its line.
func TestImportCLI(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	initVault(t, data, key)
	file := filepath.Join("..", "..", "ingest", "cgmcsv", "testdata", "dexcom_mgdl.csv")
	srv := startServer(t, data, key)
	pt, _, err := runVault(t, 30*time.Second, "admin", "user", "add", "--data", data, "--root-key-file", key, "--role", "patient", "--name", "Import Patient", "--tz", "America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	out, errs, err := runVault(t, 60*time.Second, "import", "--data", data, "--patient", pt, file)
	if err != nil || !strings.Contains(out, "dexcom-clarity:") || strings.Contains(out, " 0 accepted") {
		t.Fatalf("import through the socket: %v\n%s\n%s", err, out, errs)
	}
	srv.stop(t)
	out, errs, err = runVault(t, 60*time.Second, "import", "--data", data, "--root-key-file", key, "--patient", pt, "--format", "dexcom-clarity", file)
	if err != nil || !strings.Contains(out, " 0 accepted") {
		t.Fatalf("offline re-import: %v\n%s\n%s", err, out, errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(b), ",EGV,,,,iOS G6,112,", ",EGV,,,,iOS G6,11.2.3,", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, err = runVault(t, 60*time.Second, "import", "--data", data, "--root-key-file", key, "--patient", pt, bad)
	if err == nil || !strings.Contains(errs, "line 13") || strings.Contains(errs, "11.2.3") {
		t.Fatalf("malformed file: %v %s", err, errs)
	}
	if out, errs, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key); err != nil {
		t.Fatalf("ledger verify: %v %s %s", err, out, errs)
	}
}
