package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/boltstore"
	"golang.org/x/sys/unix"
)

// rewrittenFixture is the old-format records fixture rewritten to the
// current format on the file: its records take less room, but the file
// keeps its size (the freed pages stay in it).
func rewrittenFixture(t *testing.T) (data, key string) {
	t.Helper()
	data, key = copyRecordsFixture(t)
	if _, stderr, err := runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data, "--root-key-file", key); err != nil {
		t.Fatalf("rewrite: %v %s", err, stderr)
	}
	return data, key
}

// ledgerVerify runs 'vault ledger verify' on the file and returns its
// report (entries, checkpoints, tree head), failing the test if it fails.
func ledgerVerify(t *testing.T, data, key string) string {
	t.Helper()
	out, stderr, err := runVault(t, time.Minute, "ledger", "verify", "--data", data, "--root-key-file", key)
	if err != nil {
		t.Fatalf("ledger verify: %v %s %s", err, out, stderr)
	}
	return out
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestAdminCompact compacts the records fixture after its rewrite from
// format 1, on the file: the command prints the sizes, the file shrinks
// to what it says, passes bbolt's check, reads exactly the fixture's
// golden readings, and its ledger verifies with the same report as
// before; no copy is left beside it.
func TestAdminCompact(t *testing.T) {
	data, key := rewrittenFixture(t)
	path := dbPath(data)
	before, err := fileSize(path)
	if err != nil {
		t.Fatal(err)
	}
	ledgerBefore := ledgerVerify(t, data, key)
	// The file belongs to a service account; the test runs as root (when
	// it does) and the compacted file must stay the account's.
	owned := os.Geteuid() == 0
	if owned {
		if err := os.Chown(path, 4242, 4343); err != nil {
			t.Fatal(err)
		}
	}

	out, stderr, err := runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	if err != nil {
		t.Fatalf("compact: %v\n%s\n%s", err, out, stderr)
	}
	if owned {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 4242 || st.Gid != 4343 || st.Mode&0o777 != 0o600 {
			t.Fatalf("the compacted file is %d:%d mode %o; want 4242:4343 mode 600, as before", st.Uid, st.Gid, st.Mode&0o777)
		}
	}
	m := regexp.MustCompile(`^compacted \S+ in [0-9.]+ s: ([0-9.]+) MB before, ([0-9.]+) MB after \(([0-9.]+) MB given back\)\nchecked: bbolt's page check; 2 patients' 61 readings read identically; the ledger verifies to the same tree head \((\d+) entries\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("compact output:\n%s\nstderr:\n%s", out, stderr)
	}
	after, err := fileSize(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes before, %d after; %s", before, after, out)
	if after >= before {
		t.Fatalf("the file did not shrink: %d bytes before, %d after", before, after)
	}
	if m[1] != mb(before)[:len(m[1])] || m[2] != mb(after)[:len(m[2])] {
		t.Fatalf("printed %s MB before and %s MB after; the file was %d and is %d bytes", m[1], m[2], before, after)
	}
	if n, _ := strconv.Atoi(m[4]); n == 0 || !strings.Contains(ledgerBefore, strconv.Itoa(n)) {
		t.Fatalf("compact reported %s ledger entries; ledger verify said: %s", m[4], ledgerBefore)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("the copy is left beside the file: %v", err)
	}
	if err := boltstore.Check(path); err != nil {
		t.Fatal(err)
	}
	checkFixtureReadings(t, data, key)
	if got := ledgerVerify(t, data, key); got != ledgerBefore {
		t.Fatalf("ledger verify after the compaction:\n%s\nbefore:\n%s", got, ledgerBefore)
	}

	// A second compaction has nothing to give back, and says so.
	out, stderr, err = runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	if err != nil || !strings.Contains(out, "(0.0 MB given back)") {
		t.Fatalf("second compact: %v\n%s\n%s", err, out, stderr)
	}
	checkFixtureReadings(t, data, key)
}

// TestAdminCompactRefusesOnline: with a server on the data directory,
// compact refuses (the server answers on the socket), leaving no copy
// and the readings as they were; with the file held by another process but no socket (a
// server's socket gone), it refuses on the lock; with a PostgreSQL
// database configured, it refuses too.
func TestAdminCompactRefusesOnline(t *testing.T) {
	data, key := rewrittenFixture(t)
	path := dbPath(data)

	srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	var srvLog bytes.Buffer
	srv.Stderr = &srvLog
	stop := startProcess(t, srv, srvLog.String)
	waitSocket(t, data, srvLog.String)
	_, stderr, err := runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	if err == nil || !strings.Contains(stderr, "a server is running on "+data+": stop it first") {
		t.Fatalf("compact beside a server: %v %s", err, stderr)
	}
	// The socket file moved away: the server still holds the file's lock.
	if err := os.Rename(sockPath(data), sockPath(data)+".away"); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	if err == nil || !strings.Contains(stderr, "is in use by another process: stop the server first") {
		t.Fatalf("compact on a locked file: %v %s", err, stderr)
	}
	if err := os.Rename(sockPath(data)+".away", sockPath(data)); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("a refused compaction left a copy: %v", err)
	}
	checkFixtureReadings(t, data, key)

	// With a PostgreSQL database configured, it is not for the file.
	t.Setenv("VAULT_DATABASE_URL", "postgres://vault@127.0.0.1:1/vault")
	_, stderr, err = runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	if err == nil || !strings.Contains(stderr, "this vault's database is PostgreSQL") {
		t.Fatalf("compact with VAULT_DATABASE_URL set: %v %s", err, stderr)
	}
}

// TestAdminCompactNoRoom puts the vault (a 16.9 MB file) on a 24 MiB tmpfs, which lacks
// room for the copy and bbolt's 16 MiB growth step: compact refuses with
// the figures, and the file is byte-identical.
func TestAdminCompactNoRoom(t *testing.T) {
	src, key := rewrittenFixture(t)
	data := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, data, "24m")
	if err := copyFile(dbPath(src), dbPath(data)); err != nil {
		t.Fatal(err)
	}
	sum := fileSum(t, dbPath(data))
	_, stderr, err := runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
	re := regexp.MustCompile(`not enough room to compact: the copy needs up to [0-9.]+ MB beside the old file \([0-9.]+ MB of data in its pages, a quarter more for the copy's part-filled pages, and bbolt's 16 MiB growth step\), and the file system of \S+ has [0-9.]+ MB free; free [0-9.]+ MB there \(or move the data directory to a bigger disk\) and run it again; nothing was changed`)
	t.Log(stderr)
	if err == nil || !re.MatchString(stderr) {
		t.Fatalf("compact on a full disk: %v %s", err, stderr)
	}
	if fileSum(t, dbPath(data)) != sum {
		t.Fatal("a refused compaction changed the file")
	}
	if _, err := os.Stat(dbPath(data) + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("a refused compaction left a copy: %v", err)
	}
}

// TestAdminCompactKilled SIGKILLs a real 'vault admin compact' process at
// each step (the test hook stops it there and says so on stderr): after
// the copy is written and fsynced, after it is checked, and after the
// rename. Each time the vault then opens and reads exactly the fixture's
// readings, its ledger verifies as before, and a compaction run again
// finishes (removing the copy a killed one left). In "copied-cut" the copy
// the killed process left is then cut to half its size, as a kill during
// bbolt's copy would leave it (the test cannot stop the process inside
// bbolt's Compact itself).
func TestAdminCompactKilled(t *testing.T) {
	for _, step := range []string{"copied", "copied-cut", "checked", "swapped"} {
		t.Run(step, func(t *testing.T) {
			cut := step == "copied-cut"
			step := strings.TrimSuffix(step, "-cut")
			data, key := rewrittenFixture(t)
			path := dbPath(data)
			before, err := fileSize(path)
			if err != nil {
				t.Fatal(err)
			}
			ledgerBefore := ledgerVerify(t, data, key)

			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			cmd := exec.Command("vault", "admin", "compact", "--data", data, "--root-key-file", key)
			cmd.Env = append(os.Environ(), "VAULT_TEST_COMPACT_STOP="+step)
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, w
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			readLines(t, r, regexp.MustCompile(`^compact: stopped after step "`+step+`" for the test$`), 1)
			killProcess(t, cmd)
			if stdout.Len() != 0 {
				t.Fatalf("the killed compaction printed %q", stdout.String())
			}

			_, copyErr := os.Stat(path + ".compact")
			after, err := fileSize(path)
			if err != nil {
				t.Fatal(err)
			}
			switch step {
			case "copied", "checked":
				if copyErr != nil || after != before {
					t.Fatalf("killed before the swap: the copy %v, the file %d bytes (was %d); want the copy beside the old file", copyErr, after, before)
				}
				if cut {
					n, err := fileSize(path + ".compact")
					if err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(path+".compact", n/2); err != nil {
						t.Fatal(err)
					}
				}
			case "swapped":
				if !os.IsNotExist(copyErr) || after >= before {
					t.Fatalf("killed after the swap: the copy %v, the file %d bytes (was %d); want the smaller new file alone", copyErr, after, before)
				}
			}
			if err := boltstore.Check(path); err != nil {
				t.Fatal(err)
			}
			checkFixtureReadings(t, data, key)
			if got := ledgerVerify(t, data, key); got != ledgerBefore {
				t.Fatalf("ledger verify after the kill:\n%s\nbefore:\n%s", got, ledgerBefore)
			}

			out, stderr, err := runVault(t, time.Minute, "admin", "compact", "--data", data, "--root-key-file", key)
			if err != nil {
				t.Fatalf("compact after the kill: %v %s %s", err, out, stderr)
			}
			if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
				t.Fatalf("the copy is left after a finished compaction: %v", err)
			}
			if a, err := fileSize(path); err != nil || a >= before {
				t.Fatalf("after the second run: %d bytes (was %d), %v", a, before, err)
			}
			checkFixtureReadings(t, data, key)
		})
	}
}
