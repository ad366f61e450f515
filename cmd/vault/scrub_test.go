package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeScrubSchedule: serve on PostgreSQL scrubs on its
// --scrub-interval, with --scrub-records the records' tables too, and
// says so in its log (what the scrub removes is tested in store/postgres,
// TestScrubPostgres). A negative interval is refused at start.
func TestServeScrubSchedule(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")

	_, errOut, err := runVault(t, 30*time.Second, "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0", "--database", dsn, "--scrub-interval", "-1h")
	if err == nil || !strings.Contains(errOut, "--scrub-interval must be 0 (off) or a positive duration") {
		t.Fatalf("a negative --scrub-interval: %v %s", err, errOut)
	}

	logPath := filepath.Join(dir, "server.log")
	p := startTortureProc(t, data, key, logPath, "--database", dsn, "--scrub-interval", "100ms", "--scrub-records")
	want := []byte(`"msg":"scrubbed deleted rows out of the tables' files","tables":["patient_keys","users","tokens","readings","reading_counts"]`)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(b, want) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two scheduled scrubs logged within 60s: %s", tortureLogTail(logPath))
		}
	}
	p.term(t)
	if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(`"level":"ERROR"`)) {
		t.Fatalf("the server logged an error: %s", tortureLogTail(logPath))
	}
}
