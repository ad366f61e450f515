package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// TestDecrypt opens files made by the real age CLI (X25519) and by
// filippo.io/age v1.3 for a hybrid post-quantum recipient, which Debian's
// age 1.1 cannot open.
func TestDecrypt(t *testing.T) {
	dir := t.TempDir()
	plain := bytes.Repeat([]byte("{\"canary\":\"CANARY-decrypt\"}\n"), 1000)
	plainPath := filepath.Join(dir, "plain")
	if err := os.WriteFile(plainPath, plain, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("x25519 from the age CLI", func(t *testing.T) {
		keygen, err1 := exec.LookPath("age-keygen")
		ageBin, err2 := exec.LookPath("age")
		if err1 != nil || err2 != nil {
			t.Fatal("age and age-keygen not found: install Debian's age (scripts/test does this when run as root)")
		}
		id := filepath.Join(dir, "id.txt")
		if out, err := exec.Command(keygen, "-o", id).CombinedOutput(); err != nil {
			t.Fatalf("%s %v", out, err)
		}
		rcpt, err := exec.Command(keygen, "-y", id).Output()
		if err != nil {
			t.Fatal(err)
		}
		ct := filepath.Join(dir, "x.age")
		if out, err := exec.Command(ageBin, "-r", strings.TrimSpace(string(rcpt)), "-o", ct, plainPath).CombinedOutput(); err != nil {
			t.Fatalf("%s %v", out, err)
		}
		out, stderr, err := runVault(t, 20*time.Second, "decrypt", "-i", id, ct)
		if err != nil || out != strings.TrimSpace(string(plain)) {
			t.Fatalf("decrypt: %v %s (%d bytes)", err, stderr, len(out))
		}
		armored := filepath.Join(dir, "x.asc")
		if out, err := exec.Command(ageBin, "-a", "-r", strings.TrimSpace(string(rcpt)), "-o", armored, plainPath).CombinedOutput(); err != nil {
			t.Fatalf("%s %v", out, err)
		}
		if out, _, err := runVault(t, 20*time.Second, "decrypt", "-i", id, armored); err != nil || out != strings.TrimSpace(string(plain)) {
			t.Fatalf("armored: %v", err)
		}
		// A flipped byte in the payload is refused, not passed on.
		b, err := os.ReadFile(ct)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-20] ^= 1
		if err := os.WriteFile(ct, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := runVault(t, 20*time.Second, "decrypt", "-i", id, ct); err == nil || !strings.Contains(stderr, "altered") {
			t.Fatalf("tampered file: %v %s", err, stderr)
		}
	})

	t.Run("hybrid post-quantum", func(t *testing.T) {
		pq, err := age.GenerateHybridIdentity()
		if err != nil {
			t.Fatal(err)
		}
		id := filepath.Join(dir, "pq.txt")
		if err := os.WriteFile(id, []byte(pq.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, pq.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pq.Recipient().String(), "age1pq1") {
			t.Fatalf("recipient %s", pq.Recipient())
		}
		ct := filepath.Join(dir, "pq.age")
		if err := os.WriteFile(ct, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runVault(t, 20*time.Second, "decrypt", "-i", id, ct)
		if err != nil || out != strings.TrimSpace(string(plain)) {
			t.Fatalf("decrypt: %v %s", err, stderr)
		}
		// Another key cannot open it.
		other, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		oid := filepath.Join(dir, "other.txt")
		if err := os.WriteFile(oid, []byte(other.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := runVault(t, 20*time.Second, "decrypt", "-i", oid, ct); err == nil || !strings.Contains(stderr, "no identity") {
			t.Fatalf("wrong identity: %v %s", err, stderr)
		}
	})
}
