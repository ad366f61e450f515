package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// TestMain lets the test binary be the benches' child processes, as the
// vault binary is: the benches start os.Executable() with LoadCommand or
// ExportClientCommand.
func TestMain(m *testing.M) {
	if len(os.Args) < 2 || (os.Args[1] != LoadCommand && os.Args[1] != ExportClientCommand) {
		os.Exit(m.Run())
	}
	run := RunLoad
	if os.Args[1] == ExportClientCommand {
		run = RunExportClient
	}
	if err := run(os.Args[2:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// open is an Opener as cmd/vault's, without its flags and passphrases: a
// new key file and a bbolt store in dir, whose integrity is checked when
// the test ends.
func open(t *testing.T) Opener {
	return func(dir string, pageSize int) (*Handle, error) {
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			return nil, err
		}
		root, err := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "data", "vault.db")
		st, err := boltstore.Open(path, boltstore.Options{PageSize: pageSize})
		if err != nil {
			return nil, err
		}
		v, err := vault.Open(t.Context(), st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
		if err != nil {
			st.Close()
			return nil, err
		}
		return &Handle{
			Vault:        v,
			DBFile:       path,
			ReadingPages: func() (int64, error) { return st.ReadingPages(t.Context()) },
			Ledger: func(origin string) (*consent.Ledger, error) {
				return consent.Open(st.Ledger(), v.Master(), consent.Options{Origin: origin})
			},
			Close: func() error {
				if err := st.Close(); err != nil {
					return err
				}
				if err := boltstore.Check(path); err != nil {
					t.Errorf("integrity of %s: %v", path, err)
				}
				return nil
			},
		}, nil
	}
}

// checkPositive fails on a measurement that is not a positive number.
func checkPositive(t *testing.T, name string, xs ...float64) {
	t.Helper()
	for _, x := range xs {
		if !(x > 0) {
			t.Errorf("%s: %v, want a positive number", name, xs)
			return
		}
	}
}

// checkLines matches the report line by line against patterns.
func checkLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(patterns), out)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(`^` + p + `$`).MatchString(lines[i]) {
			t.Errorf("line %d:\n%s\ndoes not match\n%s", i+1, lines[i], p)
		}
	}
}

const num = `[0-9]+(\.[0-9]+)?`

func TestIngest(t *testing.T) {
	var stderr bytes.Buffer
	r, err := Ingest(IngestConfig{Readings: 150, Batch: 50, Uploaders: 2, Rounds: 1, PageSize: boltstore.DefaultPageSize,
		Dir: t.TempDir(), Open: open(t), Stderr: &stderr})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	if r.Total() != 300 || len(r.Runs) != 2 {
		t.Fatalf("%d readings, %d point kinds", r.Total(), len(r.Runs))
	}
	for i, want := range []struct {
		kind   string
		lo, hi int
	}{{"cgm-300", 280, 330}, {"ieee-444", 400, 500}} {
		run := r.Runs[i]
		if run.Kind != want.kind || len(run.Vault) != 1 || len(run.Baseline) != 1 || len(run.Group) != 1 {
			t.Fatalf("run %d: %s, %d/%d/%d rounds", i, run.Kind, len(run.Vault), len(run.Baseline), len(run.Group))
		}
		checkPositive(t, "vault seconds", run.Vault...)
		checkPositive(t, "baseline seconds", run.Baseline...)
		checkPositive(t, "group baseline seconds", run.Group...)
		checkPositive(t, "rates", r.Rate(run.Vault), r.Rate(run.Baseline), r.Rate(run.Group))
		checkPositive(t, "sizes", float64(run.PointBytes), float64(run.DBSize), float64(run.PageBytes), float64(run.BaselinePageBytes))
		if mean := run.PointBytes / r.Total(); mean < want.lo || mean > want.hi {
			t.Errorf("%s: mean point %d bytes, want %d to %d", run.Kind, mean, want.lo, want.hi)
		}
		// The raw baseline stores at least the points' bytes in its pages.
		if run.BaselinePageBytes < int64(run.PointBytes) {
			t.Errorf("%s: baseline pages %d bytes for %d bytes of points", run.Kind, run.BaselinePageBytes, run.PointBytes)
		}
	}
	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	var want []string
	want = append(want, `vault bench: 300 readings per round and point kind \(2 uploaders x 150, batches of 50\), median of 1 rounds, GOMAXPROCS=[0-9]+`)
	for _, k := range []string{`cgm-300: mean point [23][0-9][0-9] bytes`, `ieee-444: mean point 4[0-9][0-9] bytes`} {
		want = append(want, ``, k,
			` +measurement  readings/s  median s  all rounds s`,
			`  vault ingest over HTTP \(validate, seal, dedup, fsync\) +[0-9]+ +`+num+` +`+num,
			` +baseline: raw bbolt puts, same bytes, 1 tx per 50 +[0-9]+ +`+num+` +`+num,
			` +baseline: raw bbolt puts, same bytes, 1 tx per 100 +[0-9]+ +`+num+` +`+num,
			`ratio vault / faster baseline: `+num+`   \(targets: >= 150000 readings/s, ratio >= 0.50\)`,
			`database pages per reading: vault [0-9]+ bytes, raw bbolt [0-9]+ bytes   \(target for cgm-300: <= 200\)`,
			`vault.db after one round: `+num+` MiB`)
	}
	checkLines(t, out.String(), want...)
}

func TestExport(t *testing.T) {
	var stderr bytes.Buffer
	r, err := Export(ExportConfig{Rounds: 1, Years: 2, Dir: t.TempDir(), Open: open(t), Stderr: &stderr, year: 300})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	if r.Year != 300 || len(r.HTTP) != 1 || len(r.InProcess) != 1 || len(r.Baseline) != 1 || len(r.HTTPCPU) != 1 || len(r.InProcessCPU) != 1 || len(r.BaselineCPU) != 1 {
		t.Fatalf("%d readings, %d/%d/%d rounds, %d/%d/%d CPU figures", r.Year, len(r.HTTP), len(r.InProcess), len(r.Baseline), len(r.HTTPCPU), len(r.InProcessCPU), len(r.BaselineCPU))
	}
	checkPositive(t, "HTTP seconds", r.HTTP...)
	checkPositive(t, "in-process seconds", r.InProcess...)
	checkPositive(t, "baseline seconds", r.Baseline...)
	// An age file is its plaintext plus a header and 16 bytes a 64 KiB
	// chunk; the export adds a trailer.
	if r.CanonBytes < 300*400 || r.AgeBytes <= int64(r.CanonBytes) {
		t.Errorf("%d bytes of NDJSON exported as %d bytes of age", r.CanonBytes, r.AgeBytes)
	}
	if r.Many.Bytes <= r.AgeBytes*3/2 || r.Many.Seconds <= 0 {
		t.Errorf("two years: %+v, one year %d bytes", r.Many, r.AgeBytes)
	}
	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	checkLines(t, out.String(),
		`vault bench export: one patient-year of CGM \(300 readings, `+num+` MiB of OMH NDJSON, `+num+` MiB age\), median of 1 rounds, GOMAXPROCS=[0-9]+`,
		``,
		` +measurement  readings/s  median s  all rounds s`,
		`  vault export over HTTP \(consent, ledger, decrypt, age, trailer\) +[0-9]+ +`+num+` +`+num,
		` +vault export handler in process \(no network\) +[0-9]+ +`+num+` +`+num,
		` +baseline: raw bbolt scan \+ age, same bytes +[0-9]+ +`+num+` +`+num,
		``,
		`ratio baseline / vault over HTTP: `+num+`; in process: `+num+`   \(targets: <= 0.3 s, ratio >= 0.4\)`,
		// A few hundred readings may take less CPU than the clock's tick:
		// the ratios may be NaN or infinite.
		`CPU s \(this process; median\): server over HTTP `+num+`, in process `+num+`, baseline `+num+`; CPU ratio baseline / server over HTTP: \S+, in process: \S+`,
		`2 patient-years \(600 readings, `+num+` MiB age\) in `+num+` s: server anonymous RSS `+num+` MiB before, peak `+num+` MiB, extra `+num+` MiB   \(target: extra < 30 MiB\)`,
	)
}

func TestImport(t *testing.T) {
	var stderr bytes.Buffer
	r, err := Import(ImportConfig{MB: 1, CSVRows: 300, Dir: t.TempDir(), Open: open(t), Stderr: &stderr})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.Bytes())
	}
	checkPositive(t, "seconds", r.TokeniseSecs, r.ParseSecs, r.ImportSecs, r.CSVSecs)
	checkPositive(t, "counts", float64(r.XMLBytes), float64(r.Readings), float64(r.Others))
	if r.Import.Accepted != r.Readings || r.Import.Skipped != r.Others || r.Import.Duplicates != 0 {
		t.Errorf("the parser found %d readings and %d others, the import %+v", r.Readings, r.Others, r.Import)
	}
	if r.CSVRows != 303 { // and the three metadata rows
		t.Errorf("%d CSV rows, want 303", r.CSVRows)
	}
	if !strings.HasPrefix(stderr.String(), "generated 1 MB in ") {
		t.Errorf("stderr: %q", stderr.String())
	}
	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	checkLines(t, out.String(),
		`vault bench import: synthetic Apple Health export.xml of 1 MB \([0-9]+ readings, [0-9]+ other records\), GOMAXPROCS=[0-9]+`,
		``,
		` +measurement  MB/s  readings/s  seconds  extra RSS MiB`,
		` +baseline: encoding/xml tokenising alone +`+num+` +`+num+` +`,
		` +Apple parser \(tokenise, map, omh.Parse\) +`+num+` +[0-9]+ +`+num+` +`+num,
		`  import into a vault \(check pass, store pass\) +`+num+` +[0-9]+ +`+num+` +`+num,
		``,
		`import: [0-9]+ accepted, 0 duplicates, [0-9]+ skipped, in [0-9]+ transactions`,
		`Dexcom Clarity CSV: 303 rows in `+num+` s: [0-9]+ rows/s   \(targets: Apple >= 50 MB/s with < 100 MB extra RSS; CSV >= 200,000 rows/s\)`,
	)
}

func TestConfigRefused(t *testing.T) {
	for name, run := range map[string]func() error{
		"ingest, no readings": func() error { _, err := Ingest(IngestConfig{Batch: 1, Uploaders: 1, Rounds: 1}); return err },
		"ingest, batch > max": func() error {
			_, err := Ingest(IngestConfig{Readings: 1, Batch: 1 << 20, Uploaders: 1, Rounds: 1})
			return err
		},
		"export, no rounds":    func() error { _, err := Export(ExportConfig{}); return err },
		"export, minus a year": func() error { _, err := Export(ExportConfig{Rounds: 1, Years: -1}); return err },
		"import, no MB":        func() error { _, err := Import(ImportConfig{CSVRows: 1}); return err },
	} {
		if err := run(); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
