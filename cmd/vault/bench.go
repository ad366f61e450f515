package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/bench"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/postgres"
)

// The benches themselves live in internal/bench; these commands parse
// their flags and print their reports.

// cmdBench measures ingest over HTTP against raw bbolt puts of the same
// bytes, in the same run, and prints the medians of several rounds with
// their ratio.
func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	c := bench.IngestConfig{Open: benchOpen, Stderr: stderr}
	fs.IntVar(&c.Readings, "readings", 50000, "readings per uploader")
	fs.IntVar(&c.Batch, "batch", 1000, "readings per request and per baseline transaction")
	fs.IntVar(&c.Uploaders, "uploaders", 4, "concurrent uploaders, one patient each")
	fs.IntVar(&c.Rounds, "rounds", 3, "rounds; each measures the vault and both baselines on fresh files")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the vault side of the HTTP runs to this file")
	fs.IntVar(&c.PageSize, "page-size", boltstore.DefaultPageSize, "bbolt page size for the vault and both baselines")
	fs.StringVar(&c.Dir, "dir", "", "scratch directory (default: a new temporary directory, removed after)")
	database := fs.String("database", "", "run on this PostgreSQL database instead of bbolt (postgres://…; or VAULT_DATABASE_URL[_FILE]): each round in a scratch schema, dropped after, against a raw pgx COPY of the same bytes")
	return runBench(fs, args, stdout, func() (report, error) {
		if *database != "" {
			dsn, err := databaseURL(*database)
			if err != nil {
				return nil, err
			}
			if err := checkDSN(dsn); err != nil {
				return nil, err
			}
			c.Database, c.OpenDatabase = dsn, benchOpenPostgres
		}
		return bench.Ingest(c)
	})
}

// cmdBenchExport measures exports of a patient-year of CGM against a raw
// bbolt scan plus age of the same bytes, and the server's extra memory
// while it streams many patient-years.
func cmdBenchExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench export", stderr)
	c := bench.ExportConfig{Open: benchOpen, Stderr: stderr}
	fs.IntVar(&c.Rounds, "rounds", 5, "rounds of the one-year export and its baseline")
	fs.IntVar(&c.Years, "years", 10, "patient-years of CGM for the memory run (0 skips it)")
	fs.StringVar(&c.Dir, "dir", "", "scratch directory (default: a new temporary directory, removed after)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the server during the one-year rounds to this file, each sample labelled measurement=http, in-process or baseline (go tool pprof -tagfocus)")
	return runBench(fs, args, stdout, func() (report, error) { return bench.Export(c) })
}

// cmdBenchImport measures the importers on a synthetic Apple Health export
// and a Dexcom Clarity CSV.
func cmdBenchImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench import", stderr)
	c := bench.ImportConfig{Open: benchOpen, Stderr: stderr}
	fs.IntVar(&c.MB, "mb", 1024, "size of the synthetic Apple Health export, in MB")
	fs.IntVar(&c.CSVRows, "csv-rows", 500000, "rows of the synthetic Dexcom Clarity CSV")
	fs.StringVar(&c.Dir, "dir", "", "scratch directory (default: a new temporary directory, removed after)")
	return runBench(fs, args, stdout, func() (report, error) { return bench.Import(c) })
}

// cmdBenchLoad serves a seeded vault with 'vault serve' and drives it from
// a separate process with many clients in a mixed workload; with --attack
// that process also attacks the server and measures honest clients.
func cmdBenchLoad(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench load", stderr)
	c := bench.MixConfig{Open: benchOpen, Stderr: stderr}
	fs.IntVar(&c.Clients, "clients", 200, "concurrent clients, each with its own clinician token")
	fs.DurationVar(&c.Pause, "pause", 200*time.Millisecond, "mean pause between a client's requests (exponential); 0 is saturation")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long the clients run")
	fs.IntVar(&c.Patients, "patients", 20, "patients with two days of CGM, a device and a grant to the clinician")
	ops := fs.String("ops", strings.Join(bench.MixOps, ","), "the operations drawn, each with the same probability (comma-separated, from the default); one alone measures what the server and the clients can do with nothing else in the way")
	fs.IntVar(&c.DemoDays, "demo-days", 30, "days of demo data the server seeds besides (--demo); 0: none")
	fs.BoolVar(&c.KeepLimits, "keep-limits", false, "keep the server's per-token and per-grant export limits (default: lifted, so exports are measured, not refused)")
	fs.StringVar(&c.Dir, "dir", "", "scratch directory (default: a new temporary directory, removed after)")
	database := fs.String("database", "", "serve the mix from --replicas 'vault serve --database' processes on this PostgreSQL database (postgres://…; a password in ~/.pgpass, not here), in a scratch schema dropped after, the clients' requests spread over them round robin; the same mix against one bbolt process runs first, as the baseline")
	fs.IntVar(&c.Replicas, "replicas", 2, "with --database: how many replicas serve the mix (1 to 32)")
	attack := fs.Bool("attack", false, "meanwhile, attack as issue 12's findings 1 and 2 did (a sign-in flood from many addresses, uploads trickled from one device token) and measure honest patients' passkey sign-ins and uploads against the target (each within 1 s, none failing)")
	var ac bench.AttackConfig
	fs.IntVar(&ac.Addrs, "attack-addrs", 300, "with --attack: client addresses of the sign-in flood (127.0.2.1 on), each beginning 25 sign-ins a minute")
	fs.IntVar(&ac.Trickles, "attack-trickles", 16, "with --attack: connections trickling uploads from one device token (2 of them imports)")
	fs.IntVar(&ac.Honest, "attack-honest", 4, "with --attack: honest patients, each from an address of her own, uploading every second and signing in every 5 s")
	return runBench(fs, args, stdout, func() (report, error) {
		if *attack {
			c.Attack = &ac
		}
		if given(fs, "ops") {
			c.Ops = strings.Split(*ops, ",")
		}
		if *database != "" {
			dsn, err := databaseURL(*database)
			if err != nil {
				return nil, err
			}
			if err := checkDSN(dsn); err != nil {
				return nil, err
			}
			c.Database, c.OpenDatabase = dsn, benchOpenPostgres
		} else if given(fs, "replicas") {
			return nil, errors.New("--replicas needs --database: replicas share a PostgreSQL database")
		} else {
			c.Replicas = 0 // the flag's default is for --database; bbolt serves from one process
		}
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		c.Exe = exe
		return bench.Mix(c)
	})
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// report is what a bench returns.
type report interface{ Print(io.Writer) error }

// runBench parses a bench command's flags, runs it and prints its report.
func runBench(fs *flag.FlagSet, args []string, stdout io.Writer, run func() (report, error)) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r, err := run()
	if err != nil {
		return err
	}
	return r.Print(stdout)
}

// benchOpenPostgres opens a new vault on PostgreSQL (dsn names the
// bench's scratch schema), its root key in DIR/root.key.
func benchOpenPostgres(dir, dsn string) (*bench.Handle, error) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sf := storeFlags{data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "root.key"), database: dsn}
	v, st, _, err := openVaultWith(context.Background(), sf, openOrCreate, false, boltstore.Options{}, log)
	if err != nil {
		return nil, err
	}
	pst, ok := st.(*postgres.Store)
	if !ok {
		st.Close()
		return nil, errors.New("not a PostgreSQL vault")
	}
	return &bench.Handle{
		Vault:        v,
		ReadingPages: func() (int64, error) { return pst.ReadingBytes(context.Background()) },
		Ledger:       func(origin string) (*consent.Ledger, error) { return openLedger(st, v, origin) },
		Close:        st.Close,
	}, nil
}

// benchOpen is the benches' bench.Opener: a new vault in DIR/data with its
// root key in DIR/root.key, opened as every command opens one.
func benchOpen(dir string, pageSize int) (*bench.Handle, error) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sf := storeFlags{data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "root.key")}
	v, st, _, err := openVaultWith(context.Background(), sf, openOrCreate, false, boltstore.Options{LockTimeout: time.Second, PageSize: pageSize}, log)
	if err != nil {
		return nil, err
	}
	bst, ok := st.(*boltstore.Store) // sf names no PostgreSQL database
	if !ok {
		st.Close()
		return nil, errors.New("vault bench runs on bbolt only")
	}
	return &bench.Handle{
		Vault:        v,
		DBFile:       dbPath(sf.data),
		ReadingPages: func() (int64, error) { return bst.ReadingPages(context.Background()) },
		Ledger:       func(origin string) (*consent.Ledger, error) { return openLedger(st, v, origin) },
		Close:        st.Close,
	}, nil
}
