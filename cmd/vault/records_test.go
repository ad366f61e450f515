package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/sys/unix"
)

// copyRecordsFixture puts vault/testdata's old-format vault (written by
// the code before compact records) in a new data directory, with its root
// key file.
func copyRecordsFixture(t *testing.T) (data, key string) {
	t.Helper()
	dir := t.TempDir()
	data, key = filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile("../../vault/testdata/records-v1.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "vault.db"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile("../../vault/testdata/records-v1.root.key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return data, key
}

// TestAdminRecordsRewrite runs 'vault admin records status' and 'rewrite'
// on the old-format fixture: offline on the file for the status, then
// through a running server's admin socket for the rewrite; afterwards
// every record is in the current format, the next rewrite has nothing to
// do, and a restore (which decrypts every record) reads all 61.
func TestAdminRecordsRewrite(t *testing.T) {
	data, key := copyRecordsFixture(t)
	out, stderr, err := runVault(t, time.Minute, "admin", "records", "status", "--data", data, "--root-key-file", key)
	if want := "2 patients; records in format 1 (wrapped DEK): 61; format 2 (compact): 0; format 3 (compact, identity nonce): 0\n61 records are in an older format: run 'vault admin records rewrite'"; err != nil || out != want {
		t.Fatalf("status on the file: %q, %v, %s", out, err, stderr)
	}

	srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	var srvLog bytes.Buffer
	srv.Stderr = &srvLog
	stop := startProcess(t, srv, srvLog.String)
	waitSocket(t, data, srvLog.String)
	// No root key given: only the socket can do it.
	out, stderr, err = runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data)
	if err != nil {
		t.Fatalf("rewrite through the socket: %v %s", err, stderr)
	}
	if !regexp.MustCompile(`^rewrote 61 records to format 3 \(0 were in it already\), 2 patients, in [0-9.]+ s\n2 patients; records in format 1 \(wrapped DEK\): 0; format 2 \(compact\): 0; format 3 \(compact, identity nonce\): 61\nevery record is in the current format \(3\)$`).MatchString(out) {
		t.Fatalf("rewrite output:\n%s", out)
	}
	out, _, err = runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data)
	if err != nil || !regexp.MustCompile(`^rewrote 0 records to format 3 \(61 were in it already\)`).MatchString(out) {
		t.Fatalf("second rewrite: %q %v", out, err)
	}
	stop()

	backup := filepath.Join(t.TempDir(), "b.backup")
	if _, stderr, err := runVault(t, time.Minute, "backup", "--data", data, "--out", backup); err != nil {
		t.Fatalf("backup: %v %s", err, stderr)
	}
	out, stderr, err = runVault(t, time.Minute, "restore", "--in", backup, "--data", filepath.Join(t.TempDir(), "restored"), "--root-key-file", key)
	if err != nil || !regexp.MustCompile(`2 patients, 61 readings decrypted`).MatchString(out) {
		t.Fatalf("restore: %q %v %s", out, err, stderr)
	}
}

// TestAdminRecordsRewriteKilled runs 'vault admin records rewrite' on the
// old-format fixture's file (no server), one record per transaction, and
// SIGKILLs the process once it has reported three committed transactions.
// The file must then open with both formats in it and read every reading
// as the old code did; a second run finishes the rest (and says how many
// it found done), and the vault reads identically again.
//
// The kill lands mid-way whatever the machine's speed: the command
// reports each transaction on stderr, which is a pipe of one page that
// the test stops reading after the third report, so the command blocks
// on that pipe long before its last transaction.
func TestAdminRecordsRewriteKilled(t *testing.T) {
	data, key := copyRecordsFixture(t)
	const total = 61 // the fixture's readings, all format 1
	progress := regexp.MustCompile(`^records rewrite: (\d+) rewritten, \d+ already current, \d+ patients, \d+ transactions committed$`)

	r, w, size := smallPipe(t)
	cmd := exec.Command("vault", "admin", "records", "rewrite", "--data", data, "--root-key-file", key, "--batch", "1")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lines := readLines(t, r, progress, 3)
	checkPipeBound(t, lines, total, size)
	killProcess(t, cmd)

	formats := recordFormats(t, data, key)
	if formats[1] == 0 || formats[3] == 0 || formats[1]+formats[3] != total {
		t.Fatalf("after the kill: %d records in format 1, %d in format 3; want both, %d in all (stdout %q)", formats[1], formats[3], total, stdout.String())
	}
	checkFixtureReadings(t, data, key)

	out, stderr, err := runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data, "--root-key-file", key, "--batch", "7")
	m := regexp.MustCompile(`^rewrote (\d+) records to format 3 \((\d+) were in it already\), 2 patients`).FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != strconv.Itoa(formats[1]) || m[2] != strconv.Itoa(formats[3]) {
		t.Fatalf("the second rewrite: %q %v %s; want %d rewritten, %d already done", out, err, stderr, formats[1], formats[3])
	}
	if f := recordFormats(t, data, key); f[1] != 0 || f[2] != 0 || f[3] != total {
		t.Fatalf("after the second rewrite: %v", f)
	}
	checkFixtureReadings(t, data, key)
}

// TestAdminRecordsRewriteServerKilled is the same through a running
// server's admin socket: the server is SIGKILLed once it has logged three
// committed transactions of a rewrite one record at a time (its stderr is
// a one-page pipe the test stops reading, so it cannot get far past
// them); the client reports the failure, the file opens with both formats
// and reads as before, and a rewrite through a restarted server finishes.
func TestAdminRecordsRewriteServerKilled(t *testing.T) {
	data, key := copyRecordsFixture(t)
	const total = 61
	progress := regexp.MustCompile(`"msg":"records rewrite progress"`)

	r, w, size := smallPipe(t)
	srv := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	srv.Stderr = w
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// The server's log goes to the pipe: read it while waiting for the
	// socket, so the server never blocks on it before the rewrite.
	logged := make(chan string, 1)
	go func() {
		var b []byte
		one := make([]byte, 1)
		for {
			if _, err := r.Read(one); err != nil {
				logged <- string(b)
				return
			}
			b = append(b, one[0])
			if one[0] == '\n' && bytes.Contains(b, []byte(`"msg":"vault serving"`)) {
				break
			}
		}
		logged <- string(b)
	}()
	startLog := <-logged
	waitSocket(t, data, func() string { return startLog })

	client := exec.Command("vault", "admin", "records", "rewrite", "--data", data, "--batch", "1")
	var cout, cerr bytes.Buffer
	client.Stdout, client.Stderr = &cout, &cerr
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, r, progress, 3)
	checkPipeBound(t, lines, total, size)
	killProcess(t, srv)
	if err := client.Wait(); err == nil {
		t.Fatalf("the rewrite client succeeded although its server was killed: %s", cout.String())
	}

	formats := recordFormats(t, data, key)
	if formats[1] == 0 || formats[3] == 0 || formats[1]+formats[3] != total {
		t.Fatalf("after the kill: %d records in format 1, %d in format 3; want both, %d in all", formats[1], formats[3], total)
	}
	checkFixtureReadings(t, data, key)

	srv2 := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", "127.0.0.1:0")
	var srvLog bytes.Buffer
	srv2.Stderr = &srvLog
	stop := startProcess(t, srv2, srvLog.String)
	// The killed server left its socket file behind: wait for the new
	// server to answer on it, not for the file.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sockPath(data)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted server never answered on its admin socket")
		}
	}
	out, stderr, err := runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data)
	m := regexp.MustCompile(`^rewrote (\d+) records to format 3 \((\d+) were in it already\), 2 patients`).FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != strconv.Itoa(formats[1]) || m[2] != strconv.Itoa(formats[3]) {
		t.Fatalf("the rewrite through the restarted server: %q %v %s; want %d rewritten, %d already done", out, err, stderr, formats[1], formats[3])
	}
	stop()
	if f := recordFormats(t, data, key); f[1] != 0 || f[2] != 0 || f[3] != total {
		t.Fatalf("after the second rewrite: %v", f)
	}
	checkFixtureReadings(t, data, key)
}

// TestAdminRecordsRewriteBatchFlag: a batch size out of range is refused,
// on the command line and by the admin socket, before anything is done.
func TestAdminRecordsRewriteBatchFlag(t *testing.T) {
	data, key := copyRecordsFixture(t)
	for _, b := range []string{"0", "-3", "100001"} {
		_, stderr, err := runVault(t, time.Minute, "admin", "records", "rewrite", "--data", data, "--root-key-file", key, "--batch", b)
		if err == nil || !strings.Contains(stderr, "--batch must be from 1 to 100000") {
			t.Errorf("--batch %s: %v %q", b, err, stderr)
		}
	}
	if f := recordFormats(t, data, key); f[1] != 61 {
		t.Fatalf("a refused rewrite changed records: %v", f)
	}
}

// smallPipe makes a pipe whose buffer is one page, and returns its size.
func smallPipe(t *testing.T) (r, w *os.File, size int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	size, err = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	return r, w, size
}

// readLines reads r a byte at a time (so the test takes nothing out of
// the pipe beyond the lines it needs) until n lines have matched re, and
// returns those lines.
func readLines(t *testing.T, r io.Reader, re *regexp.Regexp, n int) []string {
	t.Helper()
	var all, line []byte
	var matched []string
	one := make([]byte, 1)
	for len(matched) < n {
		if _, err := r.Read(one); err != nil {
			t.Fatalf("the output ended (%v) after %d of %d progress lines:\n%s", err, len(matched), n, all)
		}
		all = append(all, one[0])
		if one[0] != '\n' {
			line = append(line, one[0])
			continue
		}
		if re.Match(line) {
			matched = append(matched, string(line))
		}
		line = line[:0]
	}
	return matched
}

// checkPipeBound fails the test if the progress lines still to come
// (total transactions, one per record, less those read) could all fit in
// the pipe: then the process could finish before the kill, and the test
// would not show what it claims.
func checkPipeBound(t *testing.T, read []string, total, size int) {
	t.Helper()
	shortest := len(read[0])
	for _, l := range read {
		shortest = min(shortest, len(l))
	}
	if rest := (total - len(read)) * (shortest + 1); rest <= size {
		t.Fatalf("the %d progress lines to come (%d bytes at least) fit in the %d-byte pipe: the kill might land after the end", total-len(read), rest, size)
	}
}

// killProcess SIGKILLs cmd and checks that the signal is what ended it.
func killProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("after SIGKILL: %v", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the process ended otherwise than by the kill: %v", err)
	}
}

// recordFormats counts the records of each format in the vault on data
// (with 'vault admin records status' on the file, in a process of its own).
func recordFormats(t *testing.T, data, key string) map[int]int {
	t.Helper()
	out, stderr, err := runVault(t, time.Minute, "admin", "records", "status", "--data", data, "--root-key-file", key)
	m := regexp.MustCompile(`records in format 1 \(wrapped DEK\): (\d+); format 2 \(compact\): (\d+); format 3 \(compact, identity nonce\): (\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("records status: %q %v %s", out, err, stderr)
	}
	f := map[int]int{}
	for i := 1; i <= 3; i++ {
		f[i], _ = strconv.Atoi(m[i])
	}
	return f
}

// checkFixtureReadings opens the vault on data and reads every reading of
// every patient, which must be exactly the fixture's golden list (what
// the code before compact records read back): patient, schema, time and
// canonical point, in order.
func checkFixtureReadings(t *testing.T, data, key string) {
	t.Helper()
	golden, err := os.ReadFile("../../vault/testdata/records-v1.golden")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for l := range strings.Lines(string(golden)) {
		if !strings.HasPrefix(l, "export\t") {
			want.WriteString(l)
		}
	}
	v, st, _, err := openVault(t.Context(), storeFlags{data: data, keyFile: key}, openExisting, false, 5*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, err := v.Users(t.Context(), vault.RolePatient)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, u := range users {
		for _, id := range omh.Supported() {
			for r, err := range v.Readings(t.Context(), u.ID, id.String(), time.Time{}, time.Time{}) {
				if err != nil {
					t.Fatalf("read %s of %s: %v", id, u.ID, err)
				}
				fmt.Fprintf(&got, "%s\t%s\t%d\t%s\n", u.ID, r.Schema, r.Time.UnixNano(), r.JSON)
			}
		}
	}
	if got.String() != want.String() {
		t.Fatalf("the vault reads differently from the fixture's golden list:\n%s\nwant:\n%s", got.String(), want.String())
	}
}
