// Command vault is JupyterHealth Vault: one binary that serves the vault and
// administers it. 'vault help' lists the commands with a line each, and
// 'vault COMMAND -h' says what one does and lists its flags (commandHelp).
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

const usage = `usage: vault COMMAND [flags]

Run the vault:
  serve                run the vault: the API, the web UI and the admin socket (--demo seeds demo data)
  config               print the settings serve would use, where each came from, and whether they are valid
  healthcheck          ask a running vault's /healthz (for container health checks)

Administer it (through the running server's socket, or on the file when none runs):
  admin user add       create a patient or clinician account; prints its id
  admin user list      list accounts: ids, roles, created, time zones, names (to find a lost id)
  admin user show      show one account, its API tokens and its grants
  admin user delete    crypto-shred a patient: her keys are destroyed at once (asks first, or --yes)
  admin token          mint an API token for a user; shown once
  admin invite         make a one-time link for a user to enrol a passkey in the web UI
  admin ledger-key     print the consent ledger's verifier key, for clients to pin
  admin client add     register an OAuth client (a SMART app or a JupyterHub) and print its id
  admin client list    list the OAuth clients
  admin client remove  remove an OAuth client: its tokens stop working
  admin records status   count the stored records by format (old ones take three times the space)
  admin records rewrite  move records of an older format to the current, compact one; resumable
  admin compact        give the free pages of a stopped vault's file back to the disk (offline; checked before the swap)
  import               import a patient's file (Apple Health, Dexcom, LibreView, Nightscout, FHIR, OMH)
  ledger verify        replay the consent ledger and check its checkpoints and signed grants
  ledger rebuild       rebuild the grant index from the ledger
  keys new-root        make a new root key file
  keys rotate          rotate the master key and re-wrap every patient key under it
  keys status          show the master keys and any rotation under way
  keys change-root     re-seal the vault under a new root key or passphrase
  keys rotate-oidc     rotate the OAuth provider's ID-token signing key
  backup               write a consistent, encrypted backup of the database
  restore              restore a backup into a new data directory, after checking it
  migrate              copy a stopped bbolt vault into an empty PostgreSQL database, verified record by record

Use an export:
  decrypt              decrypt an export; --verify-key checks its signed trailer, --data-only writes the plain data

Measure it:
  bench                measure ingest throughput against a raw bbolt baseline (--database: PostgreSQL, against COPY)
  bench export         measure export time and memory
  bench import         measure file import throughput
  bench load           run a mixed load against a scratch server and report latency
  version              print the version

Every command takes --data DIR (default ./vault-data) and --root-key-file FILE.
Run 'vault COMMAND -h' for what a command does and its flags.
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
		err = cmdAdmin(args[1:], os.Stdin, stdout, stderr)
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
	case "migrate":
		err = cmdMigrate(args[1:], stdout, stderr)
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
	fs.Usage = func() {
		h := commandHelp[name]
		fmt.Fprintf(stderr, "usage: vault %s %s\n\n%s\n\nflags:\n", name, h.synopsis, h.what)
		fs.PrintDefaults()
	}
	return fs
}

// commandHelp is each command's synopsis and what it does, for 'vault
// COMMAND -h'. TestCommandHelp checks that every command has one.
var commandHelp = map[string]struct{ synopsis, what string }{
	"serve":                 {"[--data DIR] [--addr HOST:PORT] [--base-url URL] [--demo [--demo-days N]]", "Run the vault: the HTTP API and the web UI on --addr, Prometheus metrics on --metrics-addr, and the admin socket DIR/admin.sock. The base URL (the origin every passkey is bound to) is http://localhost:PORT for a loopback --addr; set --base-url for any other. --demo seeds patient Ada and clinician Dr. Rivera and writes DIR/demo/credentials.json."},
	"config":                {"[serve's flags]", "Print the settings serve would run with, where each came from (flag, environment, default), and whether they are valid. Secrets show only as set or not."},
	"healthcheck":           {"[--addr HOST:PORT]", "Ask a running vault's /healthz and exit 0 when it answers 200: the container health check."},
	"admin user add":        {"--role patient|clinician --name NAME [--org ORG] [--tz ZONE]", "Create an account and print its id (pt_… or cl_…). The name is stored encrypted."},
	"admin user list":       {"[--role patient|clinician] [--json]", "List accounts: id, role, created, time zone, organisation and name, to find a lost id. Names are decrypted for this terminal only and never logged."},
	"admin user show":       {"--user ID [--json]", "Show one account: its name, role, created time and time zone, its API tokens (ids, kinds, expiry, last use; never secrets), and the grants it gave or received."},
	"admin user delete":     {"--user ID [--yes]", "Crypto-shred a patient at once: her grants end and her keys are destroyed, so her readings can never be read again (older backups still hold the keys). On a terminal it asks for the id to be typed again; elsewhere it needs --yes."},
	"admin token":           {"--user ID --kind device|patient|clinician [--ttl DURATION]", "Mint an API token for a user and print it; it is shown only this once and stored hashed."},
	"admin ledger-key":      {"", "Print the consent ledger's verifier key. Clients (jhvault, vault decrypt --verify-key) pin it, out of band, to check checkpoints and exports."},
	"admin invite":          {"--user ID [--ttl DURATION]", "Print a one-time link for a user to enrol a passkey in the web UI; send it by a channel you trust."},
	"admin client add":      {"--name NAME --redirect-uri URI [--redirect-uri URI …] [--confidential] [--jwks-file FILE | --jwks-uri URL] [--launch-uri URL]", "Register an OAuth client: a SMART app (public, PKCE) or a confidential one such as JupyterHub, which gets a secret (shown once) or authenticates with its JWK Set. Prints one JSON object with its client_id (oc_…) and, for a secret, client_secret, shown only this once; docs/oauth.md."},
	"admin client list":     {"[--json]", "List the OAuth clients: id, name, whether confidential, authentication method, when registered, and redirect URIs."},
	"admin client remove":   {"--client ID", "Remove an OAuth client: it ends the client and every token it holds."},
	"admin records status":  {"", "Count every patient's records by format: format 1 (a wrapped key per record, written before compact records) and format 2 (compact). Reads each record's first byte; decrypts none."},
	"admin records rewrite": {"[--batch N]", "Re-seal every record of an older format in the current, compact format, in compare-and-swap batches of N records (default 1000) while the server runs (or on the file); each record is decrypted and checked first, and each committed batch is reported (on stderr on the file, in the server's log through it). Resumable: run it again after an interruption. An admin entry in the ledger records the counts."},
	"admin compact":         {"[--data DIR]", "With the server stopped, copy the live pages of DIR/vault.db into DIR/vault.db.compact (bbolt's compaction), fsync it, check it (bbolt's page check; every patient's record count and every reading read identically; the ledger verifies to the same tree head), then rename it over the old file and fsync the directory, so a crash at any point leaves the old file or the new one, whole. Refuses while a server holds the file or answers on the admin socket, and when the disk lacks room for the copy. Prints the sizes before and after. After 'vault admin records rewrite' the freed pages stay in the file, which only this gives back to the disk (docs/self-hosting.md, step 8). On a PostgreSQL vault it refuses."},
	"keys rotate-oidc":      {"", "Make a new ID-token signing key current for the OAuth provider; the JWKS lists it and the previous one, so ID tokens signed before still verify (docs/oauth.md#keys)."},
	"ledger verify":         {"[--checkpoint FILE] [--database DSN]", "Replay the consent ledger from its first entry: recompute the Merkle tree, check every signed checkpoint, every passkey-signed grant and confirmed key, and (with --checkpoint) consistency with a checkpoint kept from before. Through a running server's admin socket in --data; on PostgreSQL with no server answering there (every replica stopped, or none on this host), it opens the database directly with the root key (--database, VAULT_DATABASE_URL or VAULT_DATABASE_URL_FILE), reads the ledger in one snapshot and writes nothing."},
	"ledger rebuild":        {"", "Rebuild the grant index from the ledger, after 'vault ledger verify' found it untrusted. On PostgreSQL, through any replica's admin socket: every other replica on the database then rebuilds its own in-memory index from the log (a ledger-rebuilt event), denying every decision until it is done."},
	"keys new-root":         {"--out FILE", "Write a new random root key file (0600), to keep apart from the data directory."},
	"keys rotate":           {"", "Add a new master key and re-wrap every patient key under it; an interrupted rotation is finished."},
	"keys status":           {"", "Show the master keys, how many patient keys each wraps, and any rotation under way."},
	"keys change-root":      {"(--new-root-key-file FILE | --new-passphrase-file FILE) [--database postgres://…]", "Re-seal the vault's master keys under a new root key file or passphrase (the server must be stopped; on PostgreSQL, every server on the database)."},
	"import":                {"--patient ID [--format F] FILE", "Import a patient's export file from Apple Health, Dexcom Clarity, LibreView, Nightscout, FHIR R4 or OMH JSON; the format is detected unless --format names it."},
	"backup":                {"--out FILE", "Write a consistent backup of the database (encrypted data only; the root key is not in it), online through the socket or on the file."},
	"restore":               {"--in FILE --data DIR", "Restore a backup into a new data directory, after checking the ledger and that every record opens under the root key."},
	"migrate":               {"--data DIR --database postgres://… [--restart]", "Copy a stopped bbolt vault (records sealed as they are, keys, the ledger, web and OAuth rows, API tokens) into an empty PostgreSQL database, then read every row back and compare it byte for byte; the copied ledger must replay to the same tree head and extend the vault's newest checkpoint. The same root key opens the copy. Restartable, not resumable: a copy that stops leaves the database marked unfinished, serve refuses it, and --restart empties it and starts over. docs/scaling.md#moving-a-bbolt-vault-to-postgresql"},
	"decrypt":               {"-i IDENTITY [--verify-key KEY [--data-only]] [-o OUT] [FILE]", "Decrypt an age file, such as an export (X25519 or post-quantum age1pq1 identities). With --verify-key (from 'vault admin ledger-key') it first checks the export's manifest checkpoint and signed trailer (record count, SHA-256 of the data lines, signature by that key); with --data-only it then writes only the data lines: a plain CSV, or NDJSON of OMH points or FHIR Observations. Nothing is written unless the check passes."},
	"bench":                 {"[--readings N] [--batch N] [--uploaders N] [--database postgres://…]", "Measure ingest throughput and the database pages per reading on a scratch vault, for ~300- and ~444-byte points, each against raw bbolt puts of the same bytes. With --database: on PostgreSQL, each round in a scratch schema of that database (dropped after), against a raw pgx COPY of the same bytes."},
	"bench export":          {"[--rounds N] [--years N]", "Measure export time and memory on a scratch vault."},
	"bench import":          {"[--mb N] [--csv-rows N]", "Measure file import throughput on a scratch vault."},
	"bench load":            {"[--clients N] [--pause D] [--duration D] [--attack | --database DSN [--replicas N]]", "Run a mixed load (uploads, reads, exports, pages) against a scratch 'vault serve' and report latency; with --attack, also flood sign-in and trickle uploads, and measure honest clients' sign-ins and uploads against the 1 s target; with --database, against N replicas on PostgreSQL, round robin, after the same load on bbolt as the baseline."},
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
