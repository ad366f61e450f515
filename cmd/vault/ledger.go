package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jupyterhealth/vault/api"
)

func cmdLedger(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "rebuild" {
		return ledgerRebuild(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	fs := newFlagSet("ledger verify", stderr)
	var sf storeFlags
	sf.register(fs)
	cpFile := fs.String("checkpoint", "", "a signed checkpoint kept from earlier: the log must still extend it")
	database := fs.String("database", "", "the vault's PostgreSQL database (postgres://…; or VAULT_DATABASE_URL[_FILE]), read directly when no server answers on --data's admin socket")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dsn, err := databaseURL(*database)
	if err != nil {
		return err
	}
	sf.database = dsn
	var req api.AdminVerifyRequest
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			return fmt.Errorf("--checkpoint: %v", err)
		}
		req.Checkpoint = b
	}
	verify := func(ops api.AdminOps) error {
		res, err := ops.VerifyLedger(req)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("ledger ok: %d entries replayed, %d checkpoints verified, latest at size %d, %d passkey-signed grants and %d passkey-confirmed keys verified", res.Size, res.Checkpoints, res.LatestSize, res.SignedGrants, res.ConfirmedKeys)
		if res.PriorSize != nil {
			line += fmt.Sprintf("; extends the given checkpoint at size %d", *res.PriorSize)
		}
		fmt.Fprintln(stdout, line)
		fmt.Fprintln(stdout, "verifier key (pin this out of band):", res.VerifierKey)
		return nil
	}
	if _, live := dialSocket(sf.data); !live && sf.database != "" {
		return verifyOffline(sf, stderr, verify)
	}
	return withAdmin(sf, stderr, verify)
}

// offlineOpenTimeout bounds how long verifyOffline waits for the database
// to answer.
const offlineOpenTimeout = 30 * time.Second

// verifyOffline runs verify on a PostgreSQL vault opened directly, with
// the root key, when no server answers on the admin socket (every replica
// stopped, or none on this host). It reads the ledger in one snapshot and
// writes nothing, so replicas running elsewhere do not disturb it.
func verifyOffline(sf storeFlags, stderr io.Writer, verify func(api.AdminOps) error) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), offlineOpenTimeout)
	defer cancel()
	v, st, _, err := openVault(ctx, sf, openExisting, false, 0, log)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the database did not answer in %v", offlineOpenTimeout)
		}
		return fmt.Errorf("cannot verify the ledger: no server answers on %s, and opening the database failed: %v", sockPath(sf.data), err)
	}
	defer st.Close()
	led, err := openLedger(st, v, "")
	if err != nil {
		return err
	}
	return adminError(verify(api.LocalAdmin{Vault: v, Ledger: led, Log: log}))
}

func ledgerRebuild(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger rebuild", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		n, err := ops.RebuildLedgerIndex()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "grant index rebuilt from the log: %d grants and keys\n", n)
		return nil
	})
}
