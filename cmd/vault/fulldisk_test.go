package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/bench"
	"github.com/jupyterhealth/vault/internal/demo"
	webui "github.com/jupyterhealth/vault/web"
)

// fullDiskSize is the tmpfs the full-disk test puts the vault's data
// directory on: big enough for the demo's two days, small enough to fill
// in a blink.
const fullDiskSize = "64m"

// fullDiskPoints is a batch of n blood-glucose points numbered from first,
// one a minute from 2025-03-01.
func fullDiskPoints(first, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := first; i < first+n; i++ {
		ts := base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		fmt.Fprintf(&b, `{"header":{"uuid":"f0110000-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`+"\n",
			i, 70+i%150, ts)
	}
	return b.Bytes()
}

// mountTmpfs mounts a tmpfs of size at dir and unmounts it when the test
// ends. Without root (or without the right to mount) the test skips,
// loudly, except under CI=true, where it fails: CI runs as root.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	cannot := func(why string) {
		t.Helper()
		msg := "SKIPPED: the full-disk test needs to mount a tmpfs (run as root): " + why
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Log(msg)
		fmt.Fprintln(os.Stderr, "--- "+t.Name()+": "+msg)
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		cannot("not root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		cannot("mount: " + err.Error())
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillDisk writes path until the filesystem has no space left, and
// returns how many bytes it wrote.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// TestFullDisk runs the real server with its data directory on a small
// tmpfs, fills the filesystem, and checks that writes are refused with 507
// storage_full, reads still work, an export is refused because its access
// cannot be logged, nothing acknowledged is lost, and that the vault takes
// writes again by itself once space frees. See docs/self-hosting.md, "A
// full disk".
func TestFullDisk(t *testing.T) {
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	began := time.Now()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	mountTmpfs(t, mnt, fullDiskSize)
	data, key := filepath.Join(mnt, "data"), filepath.Join(dir, "keys", "root.key")
	filler := filepath.Join(mnt, "filler")

	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	maddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	var log bytes.Buffer
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command("vault", "serve", "--demo", "--demo-days", "2", "--data", data, "--root-key-file", key, "--addr", addr, "--metrics-addr", maddr)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed before the tmpfs is unmounted (cleanups run last first).
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitHealthy(t, url, &log)
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("server stop: %v: %s", err, log.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("server did not stop within 60s of SIGTERM: %s", log.String())
		}
	}
	srv := start()
	var c demo.Credentials
	b, err := os.ReadFile(filepath.Join(data, "demo", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	// Ada enrols a passkey from her invite (over HTTP, with a software
	// authenticator), for the web UI's upload.
	_, sess, err := bench.EnrolPasskey(t.Context(), http.DefaultClient, c.PatientInvite)
	if err != nil {
		t.Fatal(err)
	}
	// webUpload posts a file to the web UI's upload form, as the page does.
	webUpload := func(file []byte) (int, string) {
		t.Helper()
		origin := strings.Replace(url, "127.0.0.1", "localhost", 1)
		page, err := http.NewRequest(http.MethodGet, url+"/upload", nil)
		if err != nil {
			t.Fatal(err)
		}
		page.Host = strings.TrimPrefix(origin, "http://")
		page.AddCookie(&http.Cookie{Name: webui.SessionCookie, Value: sess})
		st, pb := clientDo(t, page)
		m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(pb)
		if st != http.StatusOK || m == nil {
			t.Fatalf("upload page: %d %.300s", st, pb)
		}
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		for _, f := range [][2]string{{"csrf", string(m[1])}, {"format", "omh"}, {"date_order", ""}} {
			if err := mw.WriteField(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		fw, err := mw.CreateFormFile("file", "readings.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, url+"/upload", &form)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = page.Host
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.AddCookie(&http.Cookie{Name: webui.SessionCookie, Value: sess})
		st, b := clientDo(t, req)
		return st, string(b)
	}
	// stored counts the test's readings stored in [first, first+n).
	stored := func(first, n int) int {
		t.Helper()
		base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		from, to := base.Add(time.Duration(first)*time.Minute), base.Add(time.Duration(first+n)*time.Minute)
		st, b := httpDo(t, "GET", url+"/api/v1/readings?schema=omh:blood-glucose:4.0&from="+from.Format(time.RFC3339)+"&to="+to.Format(time.RFC3339), c.PatientToken, "", nil)
		if st != 200 {
			t.Fatalf("read: %d %.300s", st, b)
		}
		return bytes.Count(b, []byte("f0110000-0000-4000-8000-"))
	}
	// The imports: a file of importN readings through the API, one of
	// webN through the web UI, each far from the uploads' days.
	const (
		importFirst, importN = 200_000, 2_000
		webFirst, webN       = 300_000, 20
	)
	importFile, webFile := fullDiskPoints(importFirst, importN), fullDiskPoints(webFirst, webN)
	importIt := func() (int, []byte) {
		t.Helper()
		return httpDo(t, "POST", url+"/api/v1/imports?format=omh", c.PatientToken, "application/x-ndjson", importFile)
	}

	type answer struct{ Code string }
	code := func(b []byte) string {
		var a answer
		json.Unmarshal(b, &a)
		return a.Code
	}
	const batch = 50
	next, acked := 0, 0 // points sent, and acknowledged (a prefix: batches go one at a time)
	upload := func() (int, []byte) {
		st, b := httpDo(t, "POST", url+"/api/v1/readings", c.DeviceToken, "application/x-ndjson", fullDiskPoints(next, batch))
		if st == http.StatusCreated {
			if !bytes.Contains(b, []byte(fmt.Sprintf(`"accepted":%d`, batch))) {
				t.Fatalf("upload: %d %s", st, b)
			}
			if acked != next {
				t.Fatalf("batch at %d acknowledged after a refused one", next)
			}
			acked += batch
		}
		next += batch
		return st, b
	}
	for range 20 {
		if st, b := upload(); st != http.StatusCreated {
			t.Fatalf("upload before the disk is full: %d %s", st, b)
		}
	}
	ackedBefore := acked
	checkpoint := func() int64 {
		t.Helper()
		st, b := httpDo(t, "GET", url+"/api/v1/ledger/checkpoint", "", "", nil)
		if st != 200 {
			t.Fatalf("checkpoint: %d %s", st, b)
		}
		// The note's second line is the tree size.
		lines := strings.Split(string(b), "\n")
		var n int64
		if len(lines) < 2 {
			t.Fatalf("checkpoint: %s", b)
		}
		if _, err := fmt.Sscan(lines[1], &n); err != nil {
			t.Fatalf("checkpoint size: %v: %s", err, b)
		}
		return n
	}
	// readAll reads the test's readings back and checks that every
	// acknowledged one is there, whole.
	readAll := func(where string) {
		t.Helper()
		st, b := httpDo(t, "GET", url+"/api/v1/readings?schema=omh:blood-glucose:4.0&from=2025-02-28T00:00:00Z&to=2025-04-01T00:00:00Z", c.PatientToken, "", nil)
		if st != 200 {
			t.Fatalf("%s: read: %d %s", where, st, b)
		}
		for i := range acked {
			if !bytes.Contains(b, []byte(fmt.Sprintf(`"f0110000-0000-4000-8000-%012d"`, i))) {
				t.Fatalf("%s: acknowledged reading %d is missing", where, i)
			}
		}
		if n := bytes.Count(b, []byte("f0110000-0000-4000-8000-")); n < acked {
			t.Fatalf("%s: %d readings, %d acknowledged", where, n, acked)
		}
	}
	now := time.Now().UTC()
	export := "/api/v1/patients/" + c.PatientID + "/export?schema=omh:blood-glucose:4.0&from=" + now.Add(-24*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)

	filled := fillDisk(t, filler)
	t.Logf("disk filled: %d bytes of filler on a %s tmpfs", filled, fullDiskSize)

	// Writes: refused with 507 storage_full. A few may still fit in pages
	// bbolt had freed (they are already on disk), so upload until refused.
	refused := 0
	for try := 0; try < 200 && refused < 5; try++ {
		st, b := upload()
		switch {
		case st == http.StatusCreated:
			if refused > 0 {
				t.Fatalf("an upload was taken after a refusal while the disk is full (%d refused)", refused)
			}
		case st == http.StatusInsufficientStorage && code(b) == "storage_full":
			refused++
		default:
			t.Fatalf("upload on a full disk: %d %s, want 507 storage_full", st, b)
		}
	}
	if refused < 5 {
		t.Fatalf("200 uploads on a full disk and only %d refused", refused)
	}
	t.Logf("full disk: %d points acknowledged before the disk filled, %d after, then %d uploads refused", ackedBefore, acked-ackedBefore, refused)

	// Reads keep working.
	readAll("full disk")
	if st, b := httpDo(t, "GET", url+"/api/v1/access-log", c.PatientToken, "", nil); st != 200 {
		t.Fatalf("access log on a full disk: %d %s", st, b)
	}
	if st, b := httpDo(t, "GET", url+"/api/v1/grants/"+c.GrantID, c.ClinicianToken, "", nil); st != 200 {
		t.Fatalf("grant on a full disk: %d %s", st, b)
	}
	// An export is refused once its access-start entry cannot be written:
	// nothing leaves (fail-closed), and the ledger does not grow. The
	// ledger's entries are small, and bbolt reuses the pages its last
	// commits freed (already on disk), so the first few may still be
	// logged and answered; each of those must have grown the ledger.
	exportsLogged := 0
	for {
		size := checkpoint()
		st, b := httpDo(t, "GET", url+export, c.ClinicianToken, "", nil)
		if st == 200 {
			if n := checkpoint(); n <= size {
				t.Fatalf("an export was answered on a full disk but the ledger did not grow (%d entries)", n)
			}
			if exportsLogged++; exportsLogged >= 25 {
				t.Fatal("25 exports answered on a full disk; none refused")
			}
			continue
		}
		if st != http.StatusInsufficientStorage || code(b) != "storage_full" || bytes.Contains(b, []byte("age-encryption")) {
			t.Fatalf("export on a full disk: %d %.300s, want 507 storage_full", st, b)
		}
		if n := checkpoint(); n != size {
			t.Fatalf("ledger grew from %d to %d on a refused export", size, n)
		}
		break
	}
	t.Logf("full disk: %d exports logged and answered in reused pages, then one refused with 507", exportsLogged)
	// A grant (a ledger write) is refused the same way.
	grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, c.ClinicianID, now.Add(30*24*time.Hour).Format(time.RFC3339))
	if st, b := httpDo(t, "POST", url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant)); st != http.StatusInsufficientStorage || code(b) != "storage_full" {
		t.Fatalf("grant on a full disk: %d %s, want 507 storage_full", st, b)
	}

	// An import and a web upload: their spool, in the data directory, is
	// on the full disk. Refused with 507 storage_full; nothing imported.
	if st, b := importIt(); st != http.StatusInsufficientStorage || code(b) != "storage_full" {
		t.Fatalf("import on a full disk: %d %s, want 507 storage_full", st, b)
	}
	if st, b := webUpload(webFile); st != http.StatusInsufficientStorage || !strings.Contains(b, "<code>storage_full</code>") {
		t.Fatalf("web upload on a full disk: %d %.2000s, want 507 storage_full", st, b)
	}
	// Room for the spooled import but not for its readings: the file is
	// spooled, its readings can't be stored, 507 storage_full, and none of
	// them is (the file is one transaction).
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-int64(len(importFile))-16<<10); err != nil {
		t.Fatal(err)
	}
	if st, b := importIt(); st != http.StatusInsufficientStorage || code(b) != "storage_full" {
		t.Fatalf("import with room for its spool only: %d %s, want 507 storage_full", st, b)
	}
	if n, m := stored(importFirst, importN), stored(webFirst, webN); n != 0 || m != 0 {
		t.Fatalf("refused imports stored %d and %d readings", n, m)
	}

	// Space frees: writes succeed again, with no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	next = acked // the refused batches are sent again, as a device would
	for range 3 {
		if st, b := upload(); st != http.StatusCreated {
			t.Fatalf("upload after space freed: %d %s", st, b)
		}
	}
	if st, b := httpDo(t, "GET", url+export, c.ClinicianToken, "", nil); st != 200 || !bytes.Contains(b, []byte("age-encryption.org")) {
		t.Fatalf("export after space freed: %d %.300s", st, b)
	}
	if st, b := httpDo(t, "POST", url+"/api/v1/grants", c.PatientToken, "application/json", []byte(grant)); st != http.StatusCreated {
		t.Fatalf("grant after space freed: %d %s", st, b)
	}
	readAll("space freed")
	// The import and the web upload too: every reading new, none left half
	// stored by the refused attempts.
	var res struct{ Accepted, Duplicates int }
	if st, b := importIt(); st != http.StatusCreated || json.Unmarshal(b, &res) != nil || res.Accepted != importN || res.Duplicates != 0 {
		t.Fatalf("import after space freed: %d %s, want all %d readings new", st, b, importN)
	}
	if st, b := webUpload(webFile); st != http.StatusOK || !strings.Contains(b, fmt.Sprintf("Imported %d new readings", webN)) {
		t.Fatalf("web upload after space freed: %d %.2000s", st, b)
	}
	if n, m := stored(importFirst, importN), stored(webFirst, webN); n != importN || m != webN {
		t.Fatalf("after space freed: %d and %d readings imported, want %d and %d", n, m, importN, webN)
	}

	// Stop, verify the ledger and the file, and read every acknowledged
	// reading from a fresh start.
	stop(srv)
	// The import with room for its spool only was refused by the
	// database, not the spool: the server's log (complete now that it has
	// stopped) says how far it got.
	dbRefused := false
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, `"route":"/api/v1/imports"`) && strings.Contains(line, `"code":"storage_full"`) && strings.Contains(line, "import_incomplete") {
			dbRefused = true
		}
	}
	if !dbRefused {
		t.Fatalf("no import was refused for its readings (only for its spool):\n%s", log.String())
	}
	out, stderr, err := runVault(t, 120*time.Second, "ledger", "verify", "--data", data, "--root-key-file", key)
	if err != nil || !strings.HasPrefix(out, "ledger ok") {
		t.Fatalf("vault ledger verify: %v\n%s\n%s", err, out, stderr)
	}
	srv = start()
	readAll("after a restart")
	stop(srv)
	t.Logf("full-disk test: %d points acknowledged, all read back after a restart; %s", acked, time.Since(began).Round(time.Millisecond))
}

// clientDo sends req and reads the whole answer.
func clientDo(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
