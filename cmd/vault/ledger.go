package main

import (
	"fmt"
	"io"
	"os"

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
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var req api.AdminVerifyRequest
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			return fmt.Errorf("--checkpoint: %v", err)
		}
		req.Checkpoint = b
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
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
	})
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
