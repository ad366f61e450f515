package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/vault"
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
	case "rotate":
		return keysRotate(args[1:], stdout, stderr)
	case "rotate-oidc":
		return keysRotateOIDC(args[1:], stdout, stderr) // client.go
	case "status":
		return keysStatus(args[1:], stdout, stderr)
	case "change-root":
		return keysChangeRoot(args[1:], stdout, stderr)
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

// keysRotate adds a new master primary and re-wraps every patient key
// under it, online through the running server, or on the file. A rotation
// cut short is finished by running it again.
func keysRotate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys rotate", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		t := time.Now()
		res, err := ops.RotateKeys(context.Background())
		if err != nil {
			return err
		}
		verb := "rotated"
		if res.Resumed {
			verb = "finished the interrupted rotation"
		}
		fmt.Fprintf(stdout, "%s: master key %d -> %d; %d patient keys re-wrapped, %d in all, in %.1f s\n", verb, res.Previous, res.Target, res.Rewrapped, res.Patients, time.Since(t).Seconds())
		return printKeyStatus(ops, stdout)
	})
}

func keysStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys status", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error { return printKeyStatus(ops, stdout) })
}

func printKeyStatus(ops api.AdminOps, w io.Writer) error {
	ks, err := ops.KeyStatus(context.Background())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "root: %s; %d patient keys\n", ks.Root, ks.Patients)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER KEY\tSTATUS\tPRIMARY\tPATIENT KEYS IT WRAPS")
	for _, k := range ks.Keys {
		fmt.Fprintf(tw, "%d\t%s\t%v\t%d\n", k.ID, k.Status, k.Primary, k.PatientBlobs)
	}
	tw.Flush()
	if ks.Unknown > 0 {
		fmt.Fprintf(w, "WARNING: %d patient keys are wrapped by no key in the keyset and do not open\n", ks.Unknown)
	}
	if r := ks.Rotation; r != nil {
		fmt.Fprintf(w, "rotation to %d under way since %s: %d of %d re-wrapped; run 'vault keys rotate' to finish it\n", r.Target, r.Started.Format(time.RFC3339), r.Done, r.Total)
	} else {
		fmt.Fprintln(w, "no rotation under way")
	}
	return nil
}

// keysChangeRoot re-wraps the master under a new root key file or
// passphrase, with the server stopped. Only the master changes; the old
// root opens nothing in the file afterwards (backups taken before still
// need it).
func keysChangeRoot(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys change-root", stderr)
	var sf storeFlags
	sf.register(fs)
	newKey := fs.String("new-root-key-file", "", "the new root key file (make one with 'vault keys new-root')")
	newPass := fs.String("new-passphrase-file", "", "a file holding the new root passphrase")
	database := fs.String("database", "", "the vault's PostgreSQL database (postgres://…; or VAULT_DATABASE_URL[_FILE]), with every server on it stopped")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dsn, err := databaseURL(*database)
	if err != nil {
		return err
	}
	sf.database = dsn
	if (*newKey == "") == (*newPass == "") {
		fmt.Fprintln(stderr, "usage: vault keys change-root (--new-root-key-file FILE | --new-passphrase-file FILE)")
		return errUsage
	}
	if err := refuseLive(sf.data, "the root changes only offline"); err != nil {
		return err
	}
	var newRoot *keys.Root
	var info vault.RootInfo
	if *newKey != "" {
		if inside(*newKey, sf.data) {
			return fmt.Errorf("the new root key file %s is inside the data directory; keep it elsewhere", *newKey)
		}
		if newRoot, err = keys.LoadKeyFile(*newKey); err != nil {
			return err
		}
		info = vault.RootInfo{Kind: newRoot.Kind()}
	} else {
		b, err := os.ReadFile(*newPass)
		if err != nil {
			return err
		}
		pass := strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return errors.New("the new passphrase file is empty")
		}
		p := keys.NewArgon2Params()
		if insecureTestArgon2 {
			p = keys.InsecureTestArgon2Params()
		}
		if newRoot, err = keys.RootFromPassphrase([]byte(pass), p); err != nil {
			return err
		}
		info = vault.RootInfo{Kind: newRoot.Kind(), Argon2: &p}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, st, oldRoot, err := openVault(context.Background(), sf, openExisting, false, 2*time.Second, log)
	if err != nil {
		return err
	}
	defer st.Close()
	led, err := openLedger(st, v, "")
	if err != nil {
		return err
	}
	err = v.ChangeRoot(context.Background(), oldRoot, newRoot, info)
	if errors.Is(err, vault.ErrScrubPending) {
		if sf.database != "" {
			fmt.Fprintln(stderr, "warning: the new root is in place, but rewriting the meta table (VACUUM FULL meta) to drop the old wrapping failed; run it on the database")
		} else {
			fmt.Fprintln(stderr, "warning: the new root is in place, but compacting away the old wrapping was cut short; it finishes at the next start")
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if _, err := led.Append(consent.NewAdmin("root-change", "", oldRoot.Kind()+" -> "+newRoot.Kind(), time.Now())); err != nil {
		fmt.Fprintf(stderr, "warning: the root changed but its ledger entry failed: %v\n", err)
	}
	fmt.Fprintf(stdout, "the master keyset is now wrapped by the new %s root; the old one opens nothing in %s (older backups still need it: keep it as long as them)\n", newRoot.Kind(), sf.data)
	return nil
}
