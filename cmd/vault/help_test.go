package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCommandHelp: every command's flag set has a help entry; 'vault
// COMMAND -h' prints its sentence and exits 0; and the top-level usage
// gives every command a line saying what it does.
func TestCommandHelp(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`newFlagSet\("([^"]+)"`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			seen[string(m[1])] = true
		}
	}
	if len(seen) < 20 {
		t.Fatalf("found only %d commands' flag sets: %v", len(seen), seen)
	}
	for name := range seen {
		if _, ok := commandHelp[name]; !ok {
			t.Errorf("command %q has no commandHelp entry", name)
		}
	}
	for name, h := range commandHelp {
		if !seen[name] {
			t.Errorf("commandHelp has %q, which no flag set uses", name)
		}
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +[a-z]`).MatchString(usage) {
			t.Errorf("the top-level usage has no line for %q", name)
		}
		args := append(strings.Fields(name), "-h")
		out, errOut, err := runVault(t, time.Minute, args...)
		if err != nil {
			t.Errorf("vault %s -h: %v %s", name, err, errOut)
			continue
		}
		if !strings.Contains(out+errOut, "usage: vault "+name) || !strings.Contains(out+errOut, h.what) {
			t.Errorf("vault %s -h does not say what it does:\n%s%s", name, out, errOut)
		}
	}
	out, _, err := runVault(t, time.Minute, "help")
	if err != nil || !strings.Contains(out, "decrypt              decrypt an export") {
		t.Errorf("vault help: %v\n%s", err, out)
	}
}
