package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/apple"
	"github.com/jupyterhealth/vault/ingest/cgmcsv"
	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// countSink counts what a parser finds and keeps nothing.
type countSink struct{ readings, skipped int }

func (c *countSink) Reading(ingest.Item) error { c.readings++; return nil }
func (c *countSink) Skipped(ingest.Skip) error { c.skipped++; return nil }

// cmdBenchImport measures the importers on generated files: a synthetic
// Apple Health export.xml of --mb megabytes, against encoding/xml's
// tokeniser alone on the same file (the baseline); the whole import of it
// into a fresh vault, with the extra memory it takes; and a Dexcom Clarity
// CSV.
func cmdBenchImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench import", stderr)
	mb := fs.Int("mb", 1024, "size of the synthetic Apple Health export, in MB")
	csvRows := fs.Int("csv-rows", 500000, "rows of the synthetic Dexcom Clarity CSV")
	dir := fs.String("dir", "", "scratch directory (default: a new temporary directory, removed after)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mb < 1 || *csvRows < 1 {
		return fmt.Errorf("--mb and --csv-rows must be positive")
	}
	scratch, cleanup, err := scratchDir(*dir, "vault-bench-import-")
	if err != nil {
		return err
	}
	defer cleanup()
	xmlPath := filepath.Join(scratch, "export.xml")
	t0 := time.Now()
	if err := writeFile(xmlPath, func(w io.Writer) error { return apple.WriteSynthetic(w, *mb*1e6/480, 1) }); err != nil {
		return err
	}
	fi, err := os.Stat(xmlPath)
	if err != nil {
		return err
	}
	size := float64(fi.Size())
	fmt.Fprintf(stderr, "generated %.0f MB in %.1f s\n", size/1e6, time.Since(t0).Seconds())

	// Baseline: tokenising alone.
	tokSecs, err := timed(func() error {
		f, err := os.Open(xmlPath)
		if err != nil {
			return err
		}
		defer f.Close()
		d := xml.NewDecoder(bufio.NewReaderSize(f, 256<<10))
		d.Strict = false
		for {
			if _, err := d.RawToken(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return err
	}

	// The Apple parser alone, into a counting sink.
	var parsed countSink
	var parseSecs float64
	pBefore, pPeak, err := peakAnonRSS(func() error {
		var err error
		parseSecs, err = timed(func() error {
			f, err := os.Open(xmlPath)
			if err != nil {
				return err
			}
			defer f.Close()
			return apple.Parse(f, ingest.Options{}, &parsed)
		})
		return err
	})
	if err != nil {
		return err
	}

	// The whole import into a fresh vault: two passes, then storage.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sf := storeFlags{data: filepath.Join(scratch, "data"), keyFile: filepath.Join(scratch, "root.key")}
	v, st, _, err := openVaultWith(context.Background(), sf, openOrCreate, false, boltstore.Options{LockTimeout: time.Second}, log)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RolePatient, Name: "bench patient", TimeZone: "America/New_York"})
	if err != nil {
		return err
	}
	f, ok := formats.New().Lookup(ingest.FormatApple)
	if !ok {
		return fmt.Errorf("no %s importer", ingest.FormatApple)
	}
	var res importer.Result
	var impSecs float64
	iBefore, iPeak, err := peakAnonRSS(func() error {
		xf, err := os.Open(xmlPath)
		if err != nil {
			return err
		}
		defer xf.Close()
		impSecs, err = timed(func() error {
			in, err := importer.File{F: xf}.Input()
			if err != nil {
				return err
			}
			res, err = importer.Run(context.Background(), v, p.ID, f, in, ingest.Options{})
			return err
		})
		return err
	})
	if err != nil {
		return err
	}

	// A Dexcom Clarity CSV.
	csvPath := filepath.Join(scratch, "clarity.csv")
	if err := writeFile(csvPath, func(w io.Writer) error { return writeClarity(w, *csvRows) }); err != nil {
		return err
	}
	var csvCount countSink
	csvSecs, err := timed(func() error {
		cf, err := os.Open(csvPath)
		if err != nil {
			return err
		}
		defer cf.Close()
		return cgmcsv.ParseDexcom(cf, ingest.Options{}, &csvCount)
	})
	if err != nil {
		return err
	}

	mib := func(kb uint64) float64 { return float64(kb) / 1024 }
	fmt.Fprintf(stdout, "vault bench import: synthetic Apple Health export.xml of %.0f MB (%d readings, %d other records), GOMAXPROCS=%d\n\n",
		size/1e6, parsed.readings, parsed.skipped, runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tMB/s\treadings/s\tseconds\textra RSS MiB\t")
	fmt.Fprintf(tw, "baseline: encoding/xml tokenising alone\t%.1f\t\t%.2f\t\t\n", size/1e6/tokSecs, tokSecs)
	fmt.Fprintf(tw, "Apple parser (tokenise, map, omh.Parse)\t%.1f\t%.0f\t%.2f\t%.1f\t\n", size/1e6/parseSecs, float64(parsed.readings)/parseSecs, parseSecs, mib(pPeak-min(pPeak, pBefore)))
	fmt.Fprintf(tw, "import into a vault (check pass, store pass)\t%.1f\t%.0f\t%.2f\t%.1f\t\n", size/1e6/impSecs, float64(res.Accepted)/impSecs, impSecs, mib(iPeak-min(iPeak, iBefore)))
	tw.Flush()
	fmt.Fprintf(stdout, "\nimport: %d accepted, %d duplicates, %d skipped, in %d transactions\n", res.Accepted, res.Duplicates, res.Skipped, res.Transactions)
	fmt.Fprintf(stdout, "Dexcom Clarity CSV: %d rows in %.2f s: %.0f rows/s   (targets: Apple >= 50 MB/s with < 100 MB extra RSS; CSV >= 200,000 rows/s)\n",
		csvCount.readings+csvCount.skipped, csvSecs, float64(csvCount.readings+csvCount.skipped)/csvSecs)
	return nil
}

func timed(fn func() error) (float64, error) {
	t := time.Now()
	err := fn()
	return time.Since(t).Seconds(), err
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeClarity writes a Dexcom Clarity CSV export with n glucose rows
// after the usual metadata rows, one reading every 5 minutes.
func writeClarity(w io.Writer, n int) error {
	fmt.Fprintln(w, "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),Duration (hh:mm:ss),Glucose Rate of Change (mg/dL/min),Transmitter Time (Long Integer),Transmitter ID")
	fmt.Fprintln(w, "1,,FirstName,,Bench,,,,,,,,,")
	fmt.Fprintln(w, "2,,LastName,,Patient,,,,,,,,,")
	fmt.Fprintln(w, "3,,Device,,,Dexcom G6 Mobile App,iOS G6,,,,,,,")
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	bw := bufio.NewWriter(w)
	for i := range n {
		fmt.Fprintf(bw, "%d,%s,EGV,,,,iOS G6,%d,,,,%.1f,%d,8AB0CD\n", i+4, t.Add(time.Duration(i)*5*time.Minute).Format("2006-01-02T15:04:05"), 70+(i*7)%180, float64(i%7-3)/2, 8451234+i*300)
	}
	return bw.Flush()
}
