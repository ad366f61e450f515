package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onTTY runs the vault under a real pseudo-terminal (Python's pty module,
// Debian's python3), waits for the confirmation prompt, types typed and
// returns what the terminal showed and the exit status.
const onTTY = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while b"Type the id again" not in out:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        chunk = b""
    if not chunk:
        break
    out += chunk
os.write(fd, os.environ["TYPED"].encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
`

// TestAdminUserDeleteConfirmsOnTerminal: on a terminal, user delete asks
// for the id to be typed again; a wrong one deletes nothing, the right one
// deletes.
func TestAdminUserDeleteConfirmsOnTerminal(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "root.key")
	initVault(t, data, key)
	id, errOut, err := runVault(t, time.Minute, "admin", "user", "add", "--data", data, "--root-key-file", key, "--role", "patient", "--name", "Ada")
	if err != nil {
		t.Fatalf("user add: %v: %s", err, errOut)
	}
	del := func(typed string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, debianPython, "-c", onTTY, "vault", "admin", "user", "delete", "--data", data, "--root-key-file", key, "--user", id)
		cmd.Env = append(os.Environ(), "TYPED="+typed)
		out, err := cmd.Output()
		if ctx.Err() != nil {
			t.Fatalf("delete on a terminal hung: %s", out)
		}
		return string(out), err
	}
	listed := func() bool {
		out, errOut, err := runVault(t, time.Minute, "admin", "user", "list", "--data", data, "--root-key-file", key)
		if err != nil {
			t.Fatalf("user list: %v: %s", err, errOut)
		}
		return strings.Contains(out, id)
	}

	out, err := del("pt_someoneelse")
	if err == nil || !strings.Contains(out, "Type the id again to confirm") || !strings.Contains(out, "does not match") {
		t.Fatalf("a wrong id typed: err %v, terminal showed %q", err, out)
	}
	if !listed() {
		t.Fatal("a wrong id typed, yet the patient is gone")
	}
	out, err = del(id)
	if err != nil || !strings.Contains(out, "deleted "+id) {
		t.Fatalf("the id typed again: err %v, terminal showed %q", err, out)
	}
	if listed() {
		t.Fatal("the id was confirmed, yet the patient is still listed")
	}
}

// TestConfirmDelete: the confirmation itself, for each answer.
func TestConfirmDelete(t *testing.T) {
	for _, tc := range []struct {
		name, typed string
		terminal    bool
		want        string // "" means confirmed
	}{
		{"typed again", "pt_abc\n", true, ""},
		{"typed with spaces", "  pt_abc  \n", true, ""},
		{"no newline before EOF", "pt_abc", true, ""},
		{"another id", "pt_abd\n", true, "does not match"},
		{"nothing typed", "", true, "does not match"},
		{"yes is not the id", "yes\n", true, "does not match"},
		{"no terminal", "pt_abc\n", false, "pass --yes"},
	} {
		var prompt strings.Builder
		err := confirmDelete(strings.NewReader(tc.typed), tc.terminal, &prompt, "pt_abc")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		case tc.terminal && !strings.Contains(prompt.String(), "Type the id again"):
			t.Errorf("%s: no prompt on the terminal: %q", tc.name, prompt.String())
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(r) {
		t.Error("a pipe is taken for a terminal")
	}
}
