// Command vault is JupyterHealth Vault: one binary that serves the vault and
// administers it.
//
//	vault serve [--data DIR] [--addr HOST:PORT] [--base-url URL] [--demo [--demo-days N]]
//	vault admin user add --role patient|clinician --name NAME [--org ORG] [--tz ZONE]
//	vault admin user delete --user ID
//	vault admin token --user ID --kind device|patient|clinician [--ttl DURATION]
//	vault admin ledger-key
//	vault admin invite --user ID [--ttl DURATION]
//	vault admin client add --name NAME --redirect-uri URI [--redirect-uri URI …] [--confidential] [--jwks-file FILE | --jwks-uri URL] [--launch-uri URL]
//	vault admin client list [--json] | remove --client ID
//	vault admin records status|rewrite
//	vault ledger verify [--checkpoint FILE]
//	vault ledger rebuild
//	vault config [serve's flags]
//	vault healthcheck [--addr HOST:PORT]
//	vault keys new-root --out FILE
//	vault keys rotate | status | rotate-oidc
//	vault keys change-root (--new-root-key-file FILE | --new-passphrase-file FILE)
//	vault import --patient ID [--format F] FILE
//	vault backup --out FILE
//	vault restore --in FILE --data DIR
//	vault decrypt -i IDENTITY [-o OUT] [FILE]
//	vault bench [flags]
//	vault bench export [--rounds N] [--years N]
//	vault bench import [--mb N] [--csv-rows N]
//	vault bench load [--clients N] [--pause D] [--duration D]
//	vault version
//
// The root key comes from --root-key-file (default
// $XDG_CONFIG_HOME/jupyterhealth-vault/root.key) or from
// VAULT_ROOT_PASSPHRASE / VAULT_ROOT_PASSPHRASE_FILE.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	_ "time/tzdata" // patients' time zones load on a distroless image too, which has no zoneinfo

	"github.com/jupyterhealth/vault/internal/bench"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

const usage = `usage:
  vault serve [--data DIR] [--addr HOST:PORT] [--base-url URL] [--demo [--demo-days N]]
  vault admin user add --role patient|clinician --name NAME [--org ORG] [--tz ZONE]
  vault admin user delete --user ID
  vault admin token --user ID --kind device|patient|clinician [--ttl DURATION]
  vault admin ledger-key
  vault admin invite --user ID [--ttl DURATION]
  vault admin client add --name NAME --redirect-uri URI [--redirect-uri URI ...] [--confidential]
                        [--jwks-file FILE | --jwks-uri URL] [--launch-uri URL]
  vault admin client list [--json] | remove --client ID
  vault admin records status|rewrite
  vault ledger verify [--checkpoint FILE]
  vault ledger rebuild
  vault config [serve's flags]
  vault healthcheck [--addr HOST:PORT]
  vault keys new-root --out FILE
  vault keys rotate | status | rotate-oidc
  vault keys change-root (--new-root-key-file FILE | --new-passphrase-file FILE)
  vault import --patient ID [--format F] FILE
  vault backup --out FILE
  vault restore --in FILE --data DIR
  vault decrypt -i IDENTITY [-o OUT] [FILE]
  vault bench [--readings N] [--batch N] [--uploaders N]
  vault bench export [--rounds N] [--years N]
  vault bench import [--mb N] [--csv-rows N]
  vault bench load [--clients N] [--pause D] [--duration D]
  vault version

Every command takes --data DIR (default ./vault-data) and --root-key-file FILE.
Run 'vault COMMAND -h' for a command's flags.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// tuneGC trades memory for ingest throughput: sealing allocates per
// reading, and at the default GOGC=100 the collector takes about a quarter
// of ingest time (docs/benchmarks.md). An explicit GOGC wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// errUsage marks a usage mistake: exit status 2.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		tuneGC()
		err = cmdServe(args[1:], stderr)
	case "admin":
		err = cmdAdmin(args[1:], stdout, stderr)
	case "ledger":
		err = cmdLedger(args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	case "keys":
		err = cmdKeys(args[1:], stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(args[1:], stdout, stderr)
	case "import":
		err = cmdImport(args[1:], stdout, stderr)
	case "backup":
		err = cmdBackup(args[1:], stdout, stderr)
	case "restore":
		err = cmdRestore(args[1:], stdout, stderr)
	case "decrypt":
		err = cmdDecrypt(args[1:], os.Stdin, stdout, stderr)
	case "bench":
		tuneGC()
		switch {
		case len(args) > 1 && args[1] == "export":
			err = cmdBenchExport(args[2:], stdout, stderr)
		case len(args) > 1 && args[1] == "load":
			err = cmdBenchLoad(args[2:], stdout, stderr)
		case len(args) > 1 && args[1] == "import":
			err = cmdBenchImport(args[2:], stdout, stderr)
		default:
			err = cmdBench(args[1:], stdout, stderr)
		}
	case bench.LoadCommand:
		err = bench.RunLoad(args[1:], os.Stdin, stdout, stderr)
	case bench.MixCommand:
		err = bench.RunMix(args[1:], os.Stdin, stdout, stderr)
	case bench.ExportClientCommand:
		err = bench.RunExportClient(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "vault", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "vault: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "vault:", err)
	return 1
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vault "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns flag errors into errUsage (already printed).
// Settings (see config.go) are also read from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	return parseFlagsArgs(fs, args, 0)
}

// parseFlagsArgs is parseFlags for a command that takes up to maxArgs
// arguments after its flags.
func parseFlagsArgs(fs *flag.FlagSet, args []string, maxArgs int) error {
	fs.VisitAll(func(f *flag.Flag) {
		if isSetting(f.Name) {
			f.Usage += " [env " + envName(f.Name) + "]"
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > maxArgs {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(maxArgs))
		return errUsage
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return errUsage
	}
	return nil
}
