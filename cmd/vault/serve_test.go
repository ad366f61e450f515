package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/internal/demo"
)

// humanLines are the lines of a server's stderr that are not JSON log
// records.
func humanLines(t *testing.T, stderr string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			out = append(out, l)
		}
	}
	return out
}

// servingBaseURL is the base_url of the "vault serving" log record.
func servingBaseURL(t *testing.T, stderr string) string {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		var m struct {
			Msg     string `json:"msg"`
			BaseURL string `json:"base_url"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Msg == "vault serving" {
			return m.BaseURL
		}
	}
	t.Fatalf("no 'vault serving' record in the log:\n%s", stderr)
	return ""
}

// TestServeDerivesBaseURL: serve on a loopback address without --base-url
// takes http://localhost:PORT as its origin (the demo's enrolment links
// use it), and says so, with where the links are, in one human line.
func TestServeDerivesBaseURL(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	s := startServer(t, data, key, "--demo", "--demo-days", "1")
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://localhost:" + port
	c, err := demo.ReadCredentials(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{c.PatientInvite, c.ClinicianInvite} {
		if !strings.HasPrefix(link, origin+"/") {
			t.Errorf("enrolment link %q is not on %s", link, origin)
		}
	}
	s.stop(t)
	log := s.log.String()
	if got := servingBaseURL(t, log); got != origin {
		t.Errorf("logged base_url %q, want %q", got, origin)
	}
	lines := humanLines(t, log)
	if len(lines) != 1 {
		t.Fatalf("want one human line on stderr, got %d: %q", len(lines), lines)
	}
	credPath := filepath.Join(data, "demo", "credentials.json")
	for _, want := range []string{"open " + origin + " in a browser", "listening on 127.0.0.1:" + port, credPath} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("start line %q lacks %q", lines[0], want)
		}
	}
}

// TestServeFreePortBaseURL: with --addr :0 the origin names the port the
// kernel chose, and without --demo the start line says how to make an
// enrolment link.
func TestServeFreePortBaseURL(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cmd := exec.Command("vault", "serve", "--data", data, "--root-key-file", filepath.Join(dir, "root.key"), "--addr", "127.0.0.1:0")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stop := startProcess(t, cmd, errb.String)
	waitSocket(t, data, errb.String)
	stop()
	if t.Failed() {
		t.FailNow()
	}
	base := servingBaseURL(t, errb.String())
	if !regexp.MustCompile(`^http://localhost:[1-9][0-9]*$`).MatchString(base) {
		t.Fatalf("base_url %q is not http://localhost:PORT with the chosen port", base)
	}
	lines := humanLines(t, errb.String())
	if len(lines) != 1 || !strings.Contains(lines[0], "open "+base+" in a browser") || !strings.Contains(lines[0], "vault admin invite --data "+data+" --user ID") {
		t.Fatalf("start lines %q: want one naming %s and 'vault admin invite'", lines, base)
	}
}

// TestServeBaseURLChoice: the origin serve and config settle on for each
// kind of --addr, and the refusal of a public address without --base-url.
func TestServeBaseURLChoice(t *testing.T) {
	for _, tc := range []struct {
		addr, baseURL, want, err string
	}{
		{"127.0.0.1:18480", "", "http://localhost:18480", ""},
		{"[::1]:8080", "", "http://localhost:8080", ""},
		{"localhost:9000", "", "http://localhost:9000", ""},
		{"0.0.0.0:8080", "", "http://localhost:8080", ""},
		{":8080", "", "http://localhost:8080", ""},
		{"192.0.2.7:8080", "", "", "not a loopback address"},
		{"192.0.2.7:8080", "https://vault.example.org", "https://vault.example.org", ""},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", "", "is an IP address"},
		{"nonsense", "", "", "--addr must be HOST:PORT"},
	} {
		u, err := resolveBaseURL(tc.addr, tc.baseURL)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %q: error %v, want one containing %q", tc.addr, tc.baseURL, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s %q: %v", tc.addr, tc.baseURL, err)
		case tc.err == "" && u.String() != tc.want:
			t.Errorf("%s %q: %s, want %s", tc.addr, tc.baseURL, u, tc.want)
		}
	}
}
