package main

import (
	"os"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the vault command for testscript and
// for the end-to-end tests, and stops the shared demo server at the end.
func TestMain(m *testing.M) {
	// The test-only Argon2id hook: reachable from tests (and the commands
	// they run, which re-enter here), never from the shipped binary.
	insecureTestArgon2 = os.Getenv("VAULT_INSECURE_TEST_ARGON2") == "1"
	// Likewise the throwaway PostgreSQL clusters' fsync=off (pgtest).
	allowUnsafeDurability = os.Getenv("VAULT_TEST_UNSAFE_DURABILITY") == "1"
	// And the step at which 'vault admin compact' stops to be killed.
	compactStopAt = os.Getenv("VAULT_TEST_COMPACT_STOP")
	// Under -race every child vault process would sleep 1 s as it exits
	// (the race detector's default atexit_sleep_ms); the tests start
	// hundreds. A race in a child still fails it: the report is printed and
	// the exit status set before that sleep.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	// Tests start many servers at once: each gets its metrics listener on
	// a free loopback port, not all on the one default.
	if os.Getenv("VAULT_METRICS_ADDR") == "" {
		os.Setenv("VAULT_METRICS_ADDR", "127.0.0.1:0")
	}
	testscript.Main(withSharedServer{m}, map[string]func(){
		"vault": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfor FILE waits (up to 60s) until FILE exists, such as a
			// server's admin socket.
			"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: waitfor FILE")
				}
				path := ts.MkAbs(args[0])
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if _, err := os.Stat(path); err == nil {
						return
					}
				}
				ts.Fatalf("%s did not appear within 60s", args[0])
			},
		},
		Setup: func(e *testscript.Env) error {
			// Keep the default root key out of the real home directory.
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/config")
			e.Setenv("HOME", e.WorkDir+"/home")
			e.Setenv("VAULT_METRICS_ADDR", "127.0.0.1:0") // as in TestMain
			return nil
		},
	})
}
