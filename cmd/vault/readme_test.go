package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeSkipped is how many of README.md's ```sh blocks are marked
// <!-- readme-test: skip: REASON --> (building and testing the tree; the
// stock jupyterhealth-client, which comes from PyPI). A new skip is a
// deliberate change: raise it here too.
const readmeSkipped = 2

type readmeBlock struct {
	line int    // of the opening fence
	mark string // "", "skip" or "server"
	text string
}

// readmeBlocks parses README.md's fenced blocks. Every fence must be ```sh
// (a block in another language would be skipped silently); the line before
// a block may mark it for the test.
func readmeBlocks(t *testing.T, readme string) []readmeBlock {
	t.Helper()
	markRE := regexp.MustCompile(`^<!-- readme-test: (skip: .+|server) -->$`)
	lines := strings.Split(readme, "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		if lines[i] != "```sh" {
			t.Fatalf("README.md:%d: fence %q: the README test runs ```sh blocks only; write commands in one", i+1, lines[i])
		}
		b := readmeBlock{line: i + 1}
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) == "" {
				continue
			}
			if m := markRE.FindStringSubmatch(lines[j]); m != nil {
				b.mark = strings.SplitN(m[1], ":", 2)[0]
			} else if strings.Contains(lines[j], "readme-test") {
				t.Fatalf("README.md:%d: malformed readme-test mark %q", j+1, lines[j])
			}
			break
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("README.md:%d: the block is not closed", b.line)
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// TestReadme runs every README.md command block as written, top to bottom,
// in a fresh directory: the demo server block on a free port, the others
// in one bash -euo pipefail shell (as a reader runs them in one terminal),
// with this freshly built vault on PATH. Any failing command fails it.
func TestReadme(t *testing.T) {
	requirePython(t, "requests", "pandas", "cryptography", "nbconvert", "ipykernel", "matplotlib")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(readme))
	var server *readmeBlock
	var script strings.Builder
	skipped, run := 0, 0
	for i, b := range blocks {
		switch b.mark {
		case "skip":
			skipped++
		case "server":
			if server != nil {
				t.Fatalf("README.md:%d: a second server block", b.line)
			}
			server = &blocks[i]
		default:
			run++
			script.WriteString("echo '=== README.md block at line " + strconv.Itoa(b.line) + "' >&2\n")
			script.WriteString(b.text)
		}
	}
	if skipped != readmeSkipped {
		t.Fatalf("%d README blocks are marked skip, want %d: a new skip must be deliberate (change readmeSkipped)", skipped, readmeSkipped)
	}
	if server == nil || run < 3 {
		t.Fatalf("README has %d blocks to run and server block %v", run, server)
	}
	// The server block is one command: the demo. It runs on a free port
	// with a short history; every URL the other blocks use moves with it.
	cmdLine := strings.TrimSpace(strings.SplitN(strings.TrimSpace(server.text), "#", 2)[0])
	if strings.Contains(strings.TrimSpace(server.text), "\n") || !strings.HasPrefix(cmdLine, "vault serve --demo") {
		t.Fatalf("README.md:%d: the server block must be the one command 'vault serve --demo…', is %q", server.line, server.text)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	body := strings.ReplaceAll(script.String(), "localhost:8080", "localhost:"+port)

	work := t.TempDir()
	for _, d := range []string{"clients", "notebooks"} {
		if err := os.Symlink(filepath.Join(repo, d), filepath.Join(work, d)); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "HOME="+filepath.Join(work, "home"), "XDG_CONFIG_HOME=", "VAULT_DATA=", "VAULT_BASE_URL=", "VAULT_ADDR=")

	var srvLog bytes.Buffer
	srv := exec.Command("bash", "-euo", "pipefail", "-c", "exec "+cmdLine+" --addr "+addr+" --demo-days 2")
	srv.Dir, srv.Env, srv.Stderr = work, env, &srvLog
	stop := startProcess(t, srv, srvLog.String)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the README's demo server did not come up on %s:\n%s", addr, srvLog.String())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", body)
	var stdout, stderr bytes.Buffer
	sh.Dir, sh.Env, sh.Stdout, sh.Stderr = work, env, &stdout, &stderr
	err = sh.Run()
	if ctx.Err() != nil {
		t.Fatalf("the README's commands hung:\n%s\n%s", stdout.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("a README command failed (%v); the last block started is named last:\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if testing.Verbose() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	// What the README's comments promise.
	out := stdout.String()
	for _, want := range []string{
		`"accepted":1,"duplicates":0`,
		`"accepted":0,"duplicates":1`,
		`"code":"bad_unit"`, "(HTTP 400)",
		`"accepted":3,"duplicates":0`,
		`{"manifest":1,`, `{"trailer":1,`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the README's output lacks %q:\n%s", want, out)
		}
	}
	csvFile, err := os.ReadFile(filepath.Join(work, "glucose.csv"))
	if err != nil || bytes.HasPrefix(csvFile, []byte("{")) || bytes.Count(csvFile, []byte("\n")) < 2 {
		t.Errorf("glucose.csv is not a plain CSV (%v):\n%.300s", err, csvFile)
	}
	if !strings.Contains(stderr.String(), "verified: csv export of pt_") {
		t.Errorf("vault decrypt did not say the CSV export verified:\n%s", stderr.String())
	}
	stop()
	if lines := humanLines(t, srvLog.String()); len(lines) != 1 || !strings.Contains(lines[0], "http://localhost:"+port) {
		t.Errorf("the demo's start line: %q", lines)
	}
}
