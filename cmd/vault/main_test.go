package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the vault command for testscript and
// for the end-to-end tests, and stops the shared demo server at the end.
func TestMain(m *testing.M) {
	testscript.Main(withSharedServer{m}, map[string]func(){
		"vault": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// Keep the default root key out of the real home directory.
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/config")
			e.Setenv("HOME", e.WorkDir+"/home")
			return nil
		},
	})
}
