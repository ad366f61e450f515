package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// pgDatabase makes a fresh database on the throwaway PostgreSQL cluster
// (pgtest.New: it skips without PostgreSQL, fails under CI=true) and
// returns its connection string. The vault commands the test then runs
// accept the cluster's fsync=off (VAULT_TEST_UNSAFE_DURABILITY, which
// TestMain reads).
func pgDatabase(t *testing.T) string {
	t.Helper()
	dsn := pgtest.New(t)
	t.Setenv("VAULT_TEST_UNSAFE_DURABILITY", "1")
	return dsn
}

// TestServePostgres serves the demo on PostgreSQL (--database, a fresh
// database of the throwaway cluster) and runs a patient's grant, a
// device's upload and a clinician's export through it, an admin command
// through the admin socket, and a restart that finds everything again.
// No bbolt file is made in --data.
func TestServePostgres(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s, c := startDemo(t, data, key, "--demo-days", "1", "--database", dsn)
	if _, err := os.Stat(dbPath(data)); !os.IsNotExist(err) {
		t.Fatalf("serving on PostgreSQL made %s: %v", dbPath(data), err)
	}

	// A device uploads.
	canary := "CANARY-pg-3e1f"
	uploadCanaries(t, s.url, c.DeviceToken, canary, 20)
	// The patient grants the clinician access.
	now := time.Now().UTC()
	grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, c.ClinicianID, now.Add(30*24*time.Hour).Format(time.RFC3339))
	st, b := httpDo(t, "POST", s.url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant))
	if st != 201 || !bytes.Contains(b, []byte(`"gr_`)) {
		t.Fatalf("grant: %d %s", st, b)
	}
	// The clinician exports the uploaded readings, age-encrypted.
	export := "/api/v1/patients/" + c.PatientID + "/export?schema=omh:blood-glucose:4.0&from=2024-07-01T00:00:00Z&to=2024-07-02T00:00:00Z"
	st, b = httpDo(t, "GET", s.url+export, c.ClinicianToken, "", nil)
	if st != 200 || !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) || bytes.Contains(b, []byte(canary)) {
		t.Fatalf("export: %d %.200s", st, b)
	}
	// The export is in the patient's access log.
	if st, b := httpDo(t, "GET", s.url+"/api/v1/access-log", c.PatientToken, "", nil); st != 200 || !bytes.Contains(b, []byte(c.ClinicianID)) {
		t.Fatalf("access log: %d %.300s", st, b)
	}
	// Admin commands go through the running server's socket.
	id, errOut, err := runVault(t, 20*time.Second, "admin", "user", "add", "--data", data, "--role", "clinician", "--name", "Dr. Postgres", "--org", "Lab")
	if err != nil || !strings.HasPrefix(id, "cl_") {
		t.Fatalf("admin user add through the socket: %q %s %v", id, errOut, err)
	}

	// A restart finds the same vault in the database.
	s.stop(t)
	s = startServer(t, data, key, "--demo", "--demo-days", "1", "--database", dsn)
	st, b = httpDo(t, "GET", s.url+"/api/v1/readings?from=2024-07-01T00:00:00Z&to=2024-07-02T00:00:00Z", c.PatientToken, "", nil)
	if st != 200 || bytes.Count(b, []byte(canary)) != 20 {
		t.Fatalf("after a restart: %d, %d canaries", st, bytes.Count(b, []byte(canary)))
	}
	if st, b := httpDo(t, "GET", s.url+"/api/v1/clinicians", c.PatientToken, "", nil); st != 200 || !bytes.Contains(b, []byte(id)) {
		t.Fatalf("the admin's user after a restart: %d %.300s", st, b)
	}
	if st, b := httpDo(t, "GET", s.url+export, c.ClinicianToken, "", nil); st != 200 || !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) {
		t.Fatalf("export after a restart: %d %.200s", st, b)
	}
	s.stop(t)

	// With the server stopped, an admin command on a PostgreSQL vault is
	// refused, rather than making a new bbolt vault in --data.
	t.Setenv("VAULT_DATABASE_URL", dsn)
	_, errOut, err = runVault(t, 20*time.Second, "admin", "user", "add", "--data", data, "--role", "clinician", "--name", "Dr. Offline", "--org", "Lab")
	if err == nil || !strings.Contains(errOut, "admin socket") {
		t.Fatalf("offline admin on PostgreSQL: %v %s", err, errOut)
	}
	if _, err := os.Stat(dbPath(data)); !os.IsNotExist(err) {
		t.Fatalf("an offline admin command made %s: %v", dbPath(data), err)
	}
}

// TestServeDatabaseRefused: a connection string that is not
// PostgreSQL's, or a server that cannot be reached, is refused with a
// message that never quotes the password; from the flag, the variable
// and the file alike.
func TestServeDatabaseRefused(t *testing.T) {
	const pw = "s3cret-Pa55word"
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	for _, tc := range []struct {
		name, dsn, want string
		from            string // flag, env or file
	}{
		{"not postgres", "mysql://vault:" + pw + "@db/vault", "not a PostgreSQL URL", "flag"},
		{"not a connection string", pw, "not a PostgreSQL connection string", "env"},
		{"bad port", "postgres://vault:" + pw + "@db:notaport/vault", "not a valid PostgreSQL connection string", "file"},
		{"unreachable", "postgres://vault:" + pw + "@127.0.0.1:1/vault?connect_timeout=5", "PostgreSQL", "flag"},
		{"unreachable, from the file", "postgres://vault:" + pw + "@127.0.0.1:1/vault?connect_timeout=5", "PostgreSQL", "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--data", filepath.Join(dir, "data"), "--root-key-file", filepath.Join(dir, "root.key"), "--addr", "127.0.0.1:0"}
			switch tc.from {
			case "flag":
				args = append(args, "--database", tc.dsn)
			case "env":
				t.Setenv("VAULT_DATABASE_URL", tc.dsn)
			case "file":
				if err := os.WriteFile(file, []byte(tc.dsn+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv("VAULT_DATABASE_URL_FILE", file)
			}
			out, errOut, err := runVault(t, 30*time.Second, args...)
			if err == nil {
				t.Fatalf("serve started: %s %s", out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q, want %q", errOut, tc.want)
			}
			if strings.Contains(out+errOut, pw) {
				t.Fatalf("the password is in the output: %s %s", out, errOut)
			}
		})
	}
}
