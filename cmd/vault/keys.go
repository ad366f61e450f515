package main

import (
	"fmt"
	"io"

	"github.com/jupyterhealth/vault/keys"
)

// cmdKeys dispatches 'vault keys'.
func cmdKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "new-root":
		return keysNewRoot(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "vault keys: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// keysNewRoot writes a new root key file (0600, never over an existing
// file), for a vault started with the key read-only (a container secret, a
// systemd credential).
func keysNewRoot(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys new-root", stderr)
	out := fs.String("out", "", "the key file to create (must not exist)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "usage: vault keys new-root --out FILE")
		return errUsage
	}
	if _, err := keys.CreateKeyFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (mode 0600). Back it up apart from the data and its backups: without it no backup can be read.\n", *out)
	return nil
}
