package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/demo"
	"github.com/jupyterhealth/vault/store/postgres"
)

// TestMigrateToPostgres moves a demo vault that has been used (uploads, a
// grant, an export in the access log, an OAuth client, an invite, API
// tokens) from bbolt to PostgreSQL with 'vault migrate', then serves the
// copy with 'vault serve --database': the same readings, the same access
// log, and the old tokens still work. A second migrate into the now full
// database is refused.
func TestMigrateToPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s, c := startDemo(t, data, key, "--demo-days", "2")
	canary := "CANARY-migrate-77a1"
	uploadCanaries(t, s.url, c.DeviceToken, canary, 30)
	grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, c.ClinicianID, time.Now().UTC().Add(30*24*time.Hour).Format(time.RFC3339))
	if st, b := httpDo(t, "POST", s.url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant)); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	export := "/api/v1/patients/" + c.PatientID + "/export?schema=omh:blood-glucose:4.0&from=2024-07-01T00:00:00Z&to=2024-07-02T00:00:00Z"
	if st, b := httpDo(t, "GET", s.url+export, c.ClinicianToken, "", nil); st != 200 || !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) {
		t.Fatalf("export: %d %.200s", st, b)
	}
	if out, errOut, err := runVault(t, 20*time.Second, "admin", "client", "add", "--data", data, "--name", "Notebook", "--redirect-uri", "https://hub.example.org/callback"); err != nil || !strings.Contains(out, "oc_") {
		t.Fatalf("admin client add: %s %s %v", out, errOut, err)
	}
	if out, errOut, err := runVault(t, 20*time.Second, "admin", "invite", "--data", data, "--user", c.PatientID); err != nil || !strings.Contains(out, "http") {
		t.Fatalf("admin invite: %s %s %v", out, errOut, err)
	}
	readings := "/api/v1/readings?from=2024-07-01T00:00:00Z&to=2024-07-02T00:00:00Z"
	st, before := httpDo(t, "GET", s.url+readings, c.PatientToken, "", nil)
	if st != 200 || bytes.Count(before, []byte(canary)) != 30 {
		t.Fatalf("readings: %d, %d canaries", st, bytes.Count(before, []byte(canary)))
	}
	st, logBefore := httpDo(t, "GET", s.url+"/api/v1/access-log", c.PatientToken, "", nil)
	if st != 200 || !bytes.Contains(logBefore, []byte(c.ClinicianID)) {
		t.Fatalf("access log: %d %.300s", st, logBefore)
	}

	// A running server is refused: the copy needs a vault nobody writes.
	if _, errOut, err := runVault(t, 30*time.Second, "migrate", "--data", data, "--root-key-file", key, "--database", dsn); err == nil || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("migrate with the server running: %v %s", err, errOut)
	}
	s.stop(t)

	out, errOut, err := runVault(t, 120*time.Second, "migrate", "--data", data, "--root-key-file", key, "--database", dsn)
	if err != nil || !strings.Contains(out, "verified it record by record") {
		t.Fatalf("migrate: %v\n%s\n%s", err, out, errOut)
	}
	t.Log(strings.TrimSpace(out))

	s = startServer(t, data, key, "--database", dsn)
	if st, after := httpDo(t, "GET", s.url+readings, c.PatientToken, "", nil); st != 200 || !bytes.Equal(after, before) {
		t.Fatalf("readings on PostgreSQL: %d, %d bytes (bbolt: %d); equal %v", st, len(after), len(before), bytes.Equal(after, before))
	}
	if st, logAfter := httpDo(t, "GET", s.url+"/api/v1/access-log", c.PatientToken, "", nil); st != 200 || !bytes.Equal(logAfter, logBefore) {
		t.Fatalf("access log on PostgreSQL: %d\n%s\nbbolt:\n%s", st, logAfter, logBefore)
	}
	// The clinician's old token still works, under the copied grant.
	if st, b := httpDo(t, "GET", s.url+export, c.ClinicianToken, "", nil); st != 200 || !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) {
		t.Fatalf("export on PostgreSQL: %d %.200s", st, b)
	}
	// The copied OAuth client is listed, through the admin socket.
	if out, errOut, err := runVault(t, 20*time.Second, "admin", "client", "list", "--data", data); err != nil || !strings.Contains(out, "Notebook") {
		t.Fatalf("admin client list on PostgreSQL: %s %s %v", out, errOut, err)
	}
	// The copied ledger verifies through the running server.
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", data); err != nil || !strings.Contains(out, "ledger ok") {
		t.Fatalf("ledger verify on PostgreSQL: %s %s %v", out, errOut, err)
	}
	s.stop(t)

	// The database is full now: a second migrate is refused.
	if _, errOut, err := runVault(t, 60*time.Second, "migrate", "--data", data, "--root-key-file", key, "--database", dsn); err == nil || !strings.Contains(errOut, "not empty") {
		t.Fatalf("a second migrate: %v %s", err, errOut)
	}
}

// TestMigrateRestart: a database an earlier migrate left unfinished is
// refused by serve and by a plain migrate, and --restart empties it and
// copies again.
func TestMigrateRestart(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s := startServer(t, data, key, "--demo", "--demo-days", "1")
	s.stop(t)

	// What a copy killed half-way leaves: the mark and some rows.
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn, postgres.Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(ctx, metaMigrating, []byte("2026-12-07T00:00:00Z")); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, "pt_half", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if _, errOut, err := runVault(t, 60*time.Second, "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0", "--database", dsn); err == nil || !strings.Contains(errOut, "did not finish") {
		t.Fatalf("serve on an unfinished copy: %v %s", err, errOut)
	}
	if _, errOut, err := runVault(t, 60*time.Second, "migrate", "--data", data, "--root-key-file", key, "--database", dsn); err == nil || !strings.Contains(errOut, "--restart") {
		t.Fatalf("migrate into an unfinished copy: %v %s", err, errOut)
	}
	out, errOut, err := runVault(t, 120*time.Second, "migrate", "--data", data, "--root-key-file", key, "--database", dsn, "--restart")
	if err != nil || !strings.Contains(out, "verified it record by record") {
		t.Fatalf("migrate --restart: %v\n%s\n%s", err, out, errOut)
	}
	c, err := demo.ReadCredentials(data)
	if err != nil {
		t.Fatal(err)
	}
	s = startServer(t, data, key, "--database", dsn)
	defer s.stop(t)
	if st, b := httpDo(t, "GET", s.url+"/api/v1/grants", c.PatientToken, "", nil); st != 200 {
		t.Fatalf("the patient's token on the restarted copy: %d %s", st, b)
	}
	if st, b := httpDo(t, "GET", s.url+"/api/v1/clinicians", c.PatientToken, "", nil); st != 200 || bytes.Contains(b, []byte("pt_half")) {
		t.Fatalf("the half copy's row survived --restart: %d %s", st, b)
	}
}
