package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/export"
	"golang.org/x/mod/sumdb/note"
)

// reencrypt seals plain to the demo clinician's hub key, as a forger who
// knows only the public key could.
func reencrypt(t *testing.T, recipient string, plain []byte) []byte {
	t.Helper()
	rs, err := age.ParseRecipients(strings.NewReader(recipient))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecryptVerifiedDataOnly: real exports of each format from a demo
// server, opened by 'vault decrypt --verify-key KEY --data-only' into the
// plain data file (a CSV that parses as one, NDJSON); and every kind of
// cut, altered or forged payload refused with a non-zero exit and nothing
// written, to a file or to standard output.
func TestDecryptVerifiedDataOnly(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	s, c := startDemo(t, data, key, "--demo-days", "1")
	logKey, errOut, err := runVault(t, time.Minute, "admin", "ledger-key", "--data", data)
	if err != nil || logKey != c.LedgerVerifierKey {
		t.Fatalf("ledger-key %q (%v %s), credentials say %q", logKey, err, errOut, c.LedgerVerifierKey)
	}
	ageBin, err := exec.LookPath("age")
	if err != nil {
		t.Fatal("age not found: install Debian's age (scripts/test does this when run as root)")
	}
	fetch := func(format string) string {
		status, body := httpDo(t, "GET", s.url+"/api/v1/patients/"+c.PatientID+"/export?schema=omh:blood-glucose:4.0&format="+format, c.ClinicianToken, "", nil)
		if status != 200 {
			t.Fatalf("export %s: %d %s", format, status, body)
		}
		p := filepath.Join(dir, format+".age")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, format := range []string{"csv", "omh", "fhir"} {
		t.Run(format, func(t *testing.T) {
			ct := fetch(format)
			// The whole payload, as the age CLI opens it.
			plain, err := exec.Command(ageBin, "-d", "-i", c.ClinicianIdentity, ct).Output()
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(plain), "\n")
			lines = lines[:len(lines)-1] // after the last newline
			if len(lines) < 4 {
				t.Fatalf("the export has %d lines", len(lines))
			}
			wantData := strings.Join(lines[1:len(lines)-1], "")

			out := filepath.Join(dir, "out."+format)
			_, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", logKey, "--data-only", "-o", out, ct)
			if err != nil {
				t.Fatalf("decrypt --data-only: %v %s", err, errOut)
			}
			if !strings.Contains(errOut, "verified: "+format+" export of "+c.PatientID) {
				t.Errorf("no verified line on stderr: %q", errOut)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != wantData {
				t.Fatalf("the data-only file is not the payload's data lines:\n%.300s\nwant\n%.300s", got, wantData)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("output mode %v (%v), want 0600", fi.Mode(), err)
			}
			var tr export.Trailer
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &tr); err != nil {
				t.Fatal(err)
			}
			switch format {
			case "csv":
				rows, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
				if err != nil {
					t.Fatalf("the data-only CSV does not parse: %v", err)
				}
				if int64(len(rows)) != tr.Records+1 || rows[0][0] == "" || strings.HasPrefix(rows[0][0], "{") {
					t.Fatalf("%d rows (header %q) for %d records", len(rows), rows[0], tr.Records)
				}
			default:
				n := int64(0)
				for _, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil || m["manifest"] != nil || m["trailer"] != nil {
						t.Fatalf("line %q is not a data line", l)
					}
					n++
				}
				if n != tr.Records {
					t.Fatalf("%d lines for %d records", n, tr.Records)
				}
			}
			// To standard output, the same bytes; without --data-only, the
			// whole payload, verified.
			if stdout, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", logKey, "--data-only", ct); err != nil || stdout != strings.TrimSpace(wantData) {
				t.Fatalf("data-only to stdout: %v %s", err, errOut)
			}
			if stdout, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", logKey, ct); err != nil || stdout != strings.TrimSpace(string(plain)) {
				t.Fatalf("verified whole payload: %v %s", err, errOut)
			}
			// An existing file is never replaced.
			if _, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", logKey, "--data-only", "-o", out, ct); err == nil || !strings.Contains(errOut, "exists") {
				t.Fatalf("an existing -o: %v %s", err, errOut)
			}
		})
	}

	// Payloads that must be refused. Each is sealed to the hub's key, so
	// age opens it; only the trailer's check can tell.
	ct := fetch("csv")
	plain, err := exec.Command(ageBin, "-d", "-i", c.ClinicianIdentity, ct).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(plain), "\n")
	lines = lines[:len(lines)-1]
	manifest, dataLines, trailer := lines[0], lines[1:len(lines)-1], lines[len(lines)-1]
	join := func(parts ...[]string) string {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(strings.Join(p, ""))
		}
		return b.String()
	}
	// A forger with another log key re-signs a trailer that fits the
	// altered data exactly.
	forgedKey, _, err := note.GenerateKey(rand.Reader, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := note.NewSigner(forgedKey)
	if err != nil {
		t.Fatal(err)
	}
	alteredData := append([]string{}, dataLines...)
	alteredData[1] = strings.Replace(alteredData[1], ",", ",9", 1)
	var tr export.Trailer
	if err := json.Unmarshal([]byte(trailer), &tr); err != nil {
		t.Fatal(err)
	}
	dh := sha256.Sum256([]byte(join(alteredData)))
	tr.SHA256 = hex.EncodeToString(dh[:])
	sig, err := note.Sign(&note.Note{Text: export.TrailerText(tr.AccessStart, tr.ManifestSHA256, tr.Records, tr.SHA256)}, forger)
	if err != nil {
		t.Fatal(err)
	}
	tr.Signature = string(sig)
	forged, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	_, otherVerifier, err := note.GenerateKey(rand.Reader, "other.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, payload, key, want string
	}{
		{"a data line dropped", join([]string{manifest}, dataLines[:1], dataLines[2:], []string{trailer}), logKey, "do not hash"},
		{"a data line altered", join([]string{manifest}, alteredData, []string{trailer}), logKey, "do not hash"},
		{"cut before the trailer", join([]string{manifest}, dataLines), logKey, "not a trailer"},
		{"cut mid-line", join([]string{manifest}, dataLines, []string{trailer[:len(trailer)/2]}), logKey, "no newline"},
		{"trailer re-signed by another key", join([]string{manifest}, alteredData, []string{string(forged) + "\n"}), logKey, "not signed by the pinned log key"},
		{"another vault's key pinned", string(plain), otherVerifier, "not signed by the pinned log key"},
		{"not an export", "hello\n", logKey, "not an export manifest"},
		{"empty", "", logKey, "empty"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad.age")
			if err := os.WriteFile(bad, reencrypt(t, c.ClinicianRecipient, []byte(tc.payload)), 0o600); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "refused.csv")
			_, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", tc.key, "--data-only", "-o", out, bad)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Fatalf("-o: err %v, stderr %q, want %q", err, errOut, tc.want)
			}
			if _, err := os.Lstat(out); !os.IsNotExist(err) {
				t.Fatalf("a refused export left %s behind (%v)", out, err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".vault-decrypt-") {
					t.Fatalf("a refused export left the partial %s behind", e.Name())
				}
			}
			stdout, errOut, err := runVault(t, time.Minute, "decrypt", "-i", c.ClinicianIdentity, "--verify-key", tc.key, "--data-only", bad)
			if err == nil || stdout != "" || !strings.Contains(errOut, tc.want) {
				t.Fatalf("stdout: err %v, %d bytes out, stderr %q", err, len(stdout), errOut)
			}
		})
	}

	// Usage mistakes: exit status 2, before anything is read.
	for _, args := range [][]string{
		{"decrypt", "-i", c.ClinicianIdentity, "--data-only", ct},
		{"decrypt", "-i", c.ClinicianIdentity, "--verify-key", "not-a-key", ct},
	} {
		_, errOut, err := runVault(t, time.Minute, args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v %s, want exit status 2", args, err, errOut)
		}
	}
}
