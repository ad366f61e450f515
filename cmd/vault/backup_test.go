package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/demo"
)

// server is a real `vault serve` on a data directory, for tests that need
// their own (the shared demo server is for tests that only read).
type server struct {
	url  string
	log  bytes.Buffer
	halt func() // startProcess's stop
}

func startServer(t *testing.T, data, key string, extra ...string) *server {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: "http://" + addr}
	cmd := exec.Command("vault", append([]string{"serve", "--data", data, "--root-key-file", key, "--addr", addr}, extra...)...)
	cmd.Stderr = &s.log
	s.halt = startProcess(t, cmd, s.log.String)
	waitHealthy(t, s.url, &s.log)
	return s
}

// startDemo serves a demo vault (startServer with --demo and extra) and
// returns it with the demo's credentials.
func startDemo(t *testing.T, data, key string, extra ...string) (*server, demo.Credentials) {
	t.Helper()
	s := startServer(t, data, key, append([]string{"--demo"}, extra...)...)
	c, err := demo.ReadCredentials(data)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// stop stops the server (once; the test's cleanup stops it otherwise).
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.halt()
}

func batchPoints(batch, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := base.Add(time.Duration(batch*n+i) * time.Minute).Format(time.RFC3339)
		fmt.Fprintf(&b, `{"header":{"uuid":"b0000000-0000-4000-8000-%06d%06d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`+"\n",
			batch, i, 70+(batch+i)%150, ts)
	}
	return b.Bytes()
}

// readingsByUUID reads a patient's glucose and keys each canonical line by
// its uuid.
func readingsByUUID(t *testing.T, url, token string) map[string]string {
	t.Helper()
	st, body := httpDo(t, "GET", url+"/api/v1/readings?schema=omh:blood-glucose:4.0", token, "", nil)
	if st != 200 {
		t.Fatalf("read: %d %s", st, body)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if l == "" {
			continue
		}
		i := strings.Index(l, `"uuid":"`)
		out[l[i+8:i+8+36]] = l
	}
	return out
}

// TestBackupDuringIngestRestores takes a backup while four clients ingest,
// and another once they stop; each restores into a new directory that
// verifies, and holds exactly the readings it should: every batch
// acknowledged before the backup began, no batch in part, and each reading
// byte for byte as the live vault has it.
func TestBackupDuringIngestRestores(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	initVault(t, data, key)
	srv := startServer(t, data, key)
	pt, _, err := runVault(t, 30*time.Second, "admin", "user", "add", "--data", data, "--root-key-file", key, "--role", "patient", "--name", "Backup Patient")
	if err != nil {
		t.Fatal(err)
	}
	device, _, err := runVault(t, 30*time.Second, "admin", "token", "--data", data, "--root-key-file", key, "--user", pt, "--kind", "device")
	if err != nil {
		t.Fatal(err)
	}
	reader, _, err := runVault(t, 30*time.Second, "admin", "token", "--data", data, "--root-key-file", key, "--user", pt, "--kind", "patient")
	if err != nil {
		t.Fatal(err)
	}

	const clients, perClient, size = 4, 30, 200
	var mu sync.Mutex
	acked := map[int]time.Time{} // batch -> when its 201 arrived
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				batch := c*perClient + i
				st, body := httpDo(t, "POST", srv.url+"/api/v1/readings", device, "application/x-ndjson", batchPoints(batch, size))
				if st != 201 {
					t.Errorf("batch %d: %d %s", batch, st, body)
					return
				}
				mu.Lock()
				acked[batch] = time.Now()
				mu.Unlock()
			}
		})
	}
	// Back up once a third of the batches are in, while the rest arrive.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= clients*perClient/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	b1 := filepath.Join(dir, "during.vaultbackup")
	if out, errs, err := runVault(t, 60*time.Second, "backup", "--data", data, "--out", b1); err != nil {
		t.Fatalf("backup during ingest: %v %s %s", err, out, errs)
	}
	wg.Wait()
	mu.Lock()
	ingestedDuring := len(acked)
	mu.Unlock()
	if ingestedDuring != clients*perClient {
		t.Fatalf("%d of %d batches acknowledged", ingestedDuring, clients*perClient)
	}
	b2 := filepath.Join(dir, "after.vaultbackup")
	if _, errs, err := runVault(t, 60*time.Second, "backup", "--data", data, "--out", b2); err != nil {
		t.Fatalf("backup after ingest: %v %s", err, errs)
	}
	if _, _, err := runVault(t, 60*time.Second, "backup", "--data", data, "--out", b2); err == nil {
		t.Fatal("a backup overwrote an existing file")
	}
	live := readingsByUUID(t, srv.url, reader)
	if len(live) != clients*perClient*size {
		t.Fatalf("live vault has %d readings, want %d", len(live), clients*perClient*size)
	}
	srv.stop(t)

	for _, tc := range []struct {
		name, file string
		complete   bool
	}{{"during ingest", b1, false}, {"after ingest", b2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rdata := filepath.Join(dir, "restored-"+strings.ReplaceAll(tc.name, " ", "-"))
			out, errs, err := runVault(t, 120*time.Second, "restore", "--in", tc.file, "--data", rdata, "--root-key-file", key)
			if err != nil || !strings.Contains(out, "ledger of") {
				t.Fatalf("restore: %v %s %s", err, out, errs)
			}
			if _, errs, err := runVault(t, 60*time.Second, "restore", "--in", tc.file, "--data", rdata, "--root-key-file", key); err == nil || !strings.Contains(errs, "never overwrites") {
				t.Fatalf("a second restore into the same directory: %v %s", err, errs)
			}
			if out, errs, err := runVault(t, 60*time.Second, "ledger", "verify", "--data", rdata, "--root-key-file", key); err != nil {
				t.Fatalf("ledger verify on the restore: %v %s %s", err, out, errs)
			}
			rs := startServer(t, rdata, key)
			got := readingsByUUID(t, rs.url, reader)
			rs.stop(t)
			for u, l := range got {
				if live[u] != l {
					t.Fatalf("restored reading %s differs from the live one", u)
				}
			}
			for batch, at := range acked {
				n := 0
				for i := range size {
					if _, ok := got[fmt.Sprintf("b0000000-0000-4000-8000-%06d%06d", batch, i)]; ok {
						n++
					}
				}
				switch {
				case n != 0 && n != size:
					t.Fatalf("batch %d is in the restore in part: %d of %d readings", batch, n, size)
				case n == 0 && (tc.complete || at.Before(began)):
					t.Fatalf("batch %d, acknowledged before the backup began, is missing", batch)
				}
			}
			if tc.complete && len(got) != len(live) {
				t.Fatalf("restore has %d readings, live %d", len(got), len(live))
			}
			t.Logf("%s: %d of %d readings in the backup", tc.name, len(got), len(live))
		})
	}
	// A damaged backup is refused, and leaves no directory behind it.
	b, err := os.ReadFile(b2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 8192; i < len(b); i += 4096 * 7 {
		b[i] ^= 0xff
	}
	bad := filepath.Join(dir, "damaged.vaultbackup")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rbad := filepath.Join(dir, "restored-damaged")
	if _, _, err := runVault(t, 60*time.Second, "restore", "--in", bad, "--data", rbad, "--root-key-file", key); err == nil {
		t.Fatal("a damaged backup restored")
	}
	if _, err := os.Stat(rbad); err == nil {
		t.Fatal("a refused restore left the directory it made")
	}
}
