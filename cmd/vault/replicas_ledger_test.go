package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// rebuiltLines returns what replica r's log says of each ledger-rebuilt
// event it applied, in order: "ID true" when it rebuilt its index from
// the log, "ID false" when the rebuild was its own.
func rebuiltLines(t *testing.T, r *replica) []string {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"msg":"replica event applied","kind":"ledger-rebuilt","event":(\d+),"lag_ms":\d+,"index_rebuilt":(true|false)`)
	var out []string
	for _, m := range re.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1])+" "+string(m[2]))
	}
	return out
}

// waitLogged waits (a minute at most: a bound for a hung watcher, not a
// timing check) until replica r's log matches re.
func waitLogged(t *testing.T, r *replica, re *regexp.Regexp) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(r.log)
		if err != nil {
			t.Fatal(err)
		}
		if re.Match(b) {
			return
		}
	}
	t.Fatalf("replica %d never logged %s: %s", r.i, re, tortureLogTail(r.log))
}

// TestReplicasLedgerRebuild: 'vault ledger rebuild' through one replica
// reaches every replica. A patient grants a clinician glucose and heart
// rate, and revokes the heart rate grant. Then the stored grant index is
// tampered with as in consent's TestIndexTamperAndRebuild, with no key:
// the revoked grant's row from before its revoke pasted back (a row
// restored from an older copy). Replica 1, restarted, finds the index
// does not match its sealed digest and denies every export
// (index_untrusted); replicas 0 and 2 run on. The rebuild through replica
// 0's admin socket rebuilds the stored index and appends a ledger-rebuilt
// event in its transaction; replicas 1 and 2 each rebuild their own index
// from the log on it, and every replica then decides from the rebuilt
// index: glucose exported, heart rate denied (no_consent). A second rebuild,
// through replica 2, reaches 0 and 1. Each replica rebuilt exactly once
// per event, and never on its own (a patient deleted afterwards is the
// marker that every earlier event has been handled).
//
// Without the event (Rebuild not announcing itself), the test fails:
// replica 1 never logs a rebuild, and its index stays untrusted (every
// export refused) until it is restarted.
func TestReplicasLedgerRebuild(t *testing.T) {
	rs := startReplicas(t, 3, "--key-activation-delay", "0")
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Rebuilding")
	cl := rs.admin(t, 0, "admin", "user", "add", "--role", "clinician", "--name", "Dr. Index", "--org", "Lab")
	dev := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "device")
	ptok := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "patient")
	ctok := rs.admin(t, 0, "admin", "token", "--user", cl, "--kind", "clinician")
	if st, body := httpDo(t, "POST", rs.direct(0)+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 0, 5)); st != 201 {
		t.Fatalf("upload: %d %s", st, body)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if st, body := httpDo(t, "POST", rs.direct(1)+"/api/v1/clinician/keys", ctok, "application/json", []byte(`{"recipient":"`+id.Recipient().String()+`","label":"hub"}`)); st/100 != 2 {
		t.Fatalf("clinician key: %d %s", st, body)
	}
	grant := func(schema string) string {
		t.Helper()
		body := fmt.Sprintf(`{"clinician":%q,"schemas":[%q],"expires_at":%q,"purpose":"TREAT"}`, cl, schema, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
		st, b := httpDo(t, "POST", rs.direct(2)+"/api/v1/grants", ptok, "application/json", []byte(body))
		m := regexp.MustCompile(`"id":"(gr_[^"]+)"`).FindSubmatch(b)
		if st != 201 || m == nil {
			t.Fatalf("grant of %s: %d %s", schema, st, b)
		}
		return string(m[1])
	}
	grant("omh:blood-glucose")
	hr := grant("omh:heart-rate")
	export := func(i int, schema string) (int, string) {
		t.Helper()
		st, b := httpDo(t, "GET", rs.direct(i)+"/api/v1/patients/"+pt+"/export?schema="+schema+"&from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", ctok, "", nil)
		return st, string(b)
	}
	for i := range rs.reps {
		for _, schema := range []string{"omh:blood-glucose:4.0", "omh:heart-rate:2.0"} {
			if st, b := export(i, schema); st != 200 {
				t.Fatalf("export of %s on replica %d under its grant: %d %.300s", schema, i, st, b)
			}
		}
	}

	// The heart rate grant's index row while it was in force, then its
	// revoke.
	c := pgtest.Connect(t, rs.dsn)
	var active []byte
	if err := c.QueryRow(t.Context(), "SELECT sealed FROM ledger_index WHERE id = $1", []byte(hr)).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if st, b := httpDo(t, "POST", rs.direct(0)+"/api/v1/grants/"+hr+"/revoke", ptok, "", nil); st/100 != 2 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if tag, err := c.Exec(t.Context(), "UPDATE ledger_index SET sealed = $2 WHERE id = $1", []byte(hr), active); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("pasting the revoked grant's old row back: %v %v", tag, err)
	}
	rs.kill(t, 1)
	rs.restart(t, 1)
	waitLogged(t, rs.reps[1], regexp.MustCompile(`grant index is not trusted`))
	for _, schema := range []string{"omh:blood-glucose:4.0", "omh:heart-rate:2.0"} {
		if st, b := export(1, schema); st == 200 {
			t.Fatalf("replica 1, on a tampered index, exported %s: %.300s", schema, b)
		}
	}

	out := rs.admin(t, 0, "ledger", "rebuild")
	if !strings.Contains(out, "grant index rebuilt from the log") {
		t.Fatalf("rebuild: %s", out)
	}
	for _, i := range []int{1, 2} {
		waitLogged(t, rs.reps[i], regexp.MustCompile(`"kind":"ledger-rebuilt","event":\d+,"lag_ms":\d+,"index_rebuilt":true`))
	}
	decidesFromRebuilt := func(when string) {
		t.Helper()
		for i := range rs.reps {
			if st, b := export(i, "omh:blood-glucose:4.0"); st != 200 {
				t.Errorf("%s: replica %d refused the glucose export under its grant: %d %.300s", when, i, st, b)
			}
			if st, b := export(i, "omh:heart-rate:2.0"); st != 403 || !strings.Contains(b, `"code":"no_consent"`) {
				t.Errorf("%s: replica %d on the revoked heart rate grant: %d %.300s", when, i, st, b)
			}
		}
	}
	decidesFromRebuilt("after the rebuild through replica 0")
	if out, errOut, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", rs.reps[1].data); err != nil || !strings.HasPrefix(out, "ledger ok") {
		t.Fatalf("verify after the rebuild: %s %s %v", out, errOut, err)
	}

	rs.admin(t, 2, "ledger", "rebuild")
	for _, i := range []int{0, 1} {
		waitLogged(t, rs.reps[i], regexp.MustCompile(`(?s)"index_rebuilt":\w+.*"kind":"ledger-rebuilt","event":\d+,"lag_ms":\d+,"index_rebuilt":true`))
	}
	decidesFromRebuilt("after the rebuild through replica 2")

	// A marker event: once a replica has handled it, it has handled
	// every event before it.
	gone := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Marker")
	rs.admin(t, 0, "admin", "user", "delete", "--user", gone, "--yes")
	for _, r := range rs.reps {
		waitLogged(t, r, regexp.MustCompile(`"kind":"patient-deleted"`))
	}
	lines := [][]string{rebuiltLines(t, rs.reps[0]), rebuiltLines(t, rs.reps[1]), rebuiltLines(t, rs.reps[2])}
	if len(lines[1]) != 2 {
		t.Fatalf("replica 1 applied the ledger-rebuilt events %q, want two", lines[1])
	}
	first, second := strings.Fields(lines[1][0])[0], strings.Fields(lines[1][1])[0]
	want := [][]string{
		{first + " false", second + " true"},
		{first + " true", second + " true"},
		{first + " true", second + " false"},
	}
	for i := range rs.reps {
		if fmt.Sprint(lines[i]) != fmt.Sprint(want[i]) {
			t.Errorf("replica %d applied the ledger-rebuilt events %q, want %q", i, lines[i], want[i])
		}
	}
}
