package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestTorturePostgres is the crash torture test (TestTorture) against
// 'vault serve --database' on a private PostgreSQL cluster that runs with
// PostgreSQL's durable defaults. Its rounds take turns: SIGKILL the vault;
// crash the database (pg_ctl -m immediate) and start it again under the
// running vault, whose clients carry on; crash the database and SIGKILL
// the vault while it is down. After each, every acknowledged batch, grant
// and revoke is there, no batch in part, and 'vault ledger verify
// --checkpoint' (through the running server's admin socket: the command
// cannot open a PostgreSQL vault itself) says the log extends the newest
// checkpoint a client was given. Same flags as TestTorture
// (-torture.rounds, -torture.seed, VAULT_TORTURE_*).
func TestTorturePostgres(t *testing.T) {
	c := pgtest.NewCluster(t)
	runTorture(t, tortureTarget{name: "PostgreSQL", pg: c, serve: []string{"--database", c.DSN()}})
}

// TestPostgresDownIsNotEmpty: while the database is down, what the vault
// cannot read is an error, never an answer. A patient's grant list is not
// an empty list, her grant is not "no such grant" (404), a revoke of it
// is not 404, and a clinician's patient list is not empty: each is a 500
// she may retry. The crash torture's revoke of a grant it had been told
// of once got a 404 while the database restarted under the server. When
// the database is back the same calls answer as before.
func TestPostgresDownIsNotEmpty(t *testing.T) {
	c := pgtest.NewCluster(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s, cr := startDemo(t, data, key, "--demo-days", "1", "--database", c.DSN())
	st, before := httpDo(t, "GET", s.url+"/api/v1/grants", cr.PatientToken, "", nil)
	var list []struct{ ID string }
	if st != 200 || json.Unmarshal(before, &list) != nil || len(list) == 0 {
		t.Fatalf("grants: %d %s", st, before)
	}
	id := list[0].ID
	calls := []struct{ method, path, token string }{
		{"GET", "/api/v1/grants", cr.PatientToken},
		{"GET", "/api/v1/grants/" + id, cr.PatientToken},
		{"GET", "/api/v1/clinician/patients", cr.ClinicianToken},
		{"POST", "/api/v1/grants/" + id + "/revoke", cr.PatientToken},
	}
	c.Crash(t)
	for _, call := range calls {
		st, b := httpDo(t, call.method, s.url+call.path, call.token, "", nil)
		if st != http.StatusInternalServerError || !bytes.Contains(b, []byte(`"code":"internal"`)) {
			t.Errorf("%s %s with the database down: %d %s", call.method, call.path, st, b)
		}
	}
	c.Start(t)
	// The pool reconnects on the next call; a few may still meet the
	// database starting up.
	var after []byte
	for try := 0; ; try++ {
		if st, after = httpDo(t, "GET", s.url+"/api/v1/grants", cr.PatientToken, "", nil); st == 200 || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st != 200 || !bytes.Equal(after, before) {
		t.Fatalf("grants with the database back: %d %s, want %s", st, after, before)
	}
	if st, b := httpDo(t, "POST", s.url+"/api/v1/grants/"+id+"/revoke", cr.PatientToken, "", nil); st != 200 || !bytes.Contains(b, []byte(`"status":"revoked"`)) {
		t.Fatalf("revoke with the database back: %d %s", st, b)
	}
}
