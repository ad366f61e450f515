package bench

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
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
	"github.com/jupyterhealth/vault/vault"
)

// ImportConfig is what 'vault bench import' takes.
type ImportConfig struct {
	MB      int    // size of the synthetic Apple Health export, in MB
	CSVRows int    // rows of the synthetic Dexcom Clarity CSV
	Dir     string // scratch directory; "" makes a temporary one, removed after
	Open    Opener
	Stderr  io.Writer // progress
}

// ImportReport is what [Import] measured.
type ImportReport struct {
	XMLBytes   int64 // the size of the export.xml
	GOMAXPROCS int
	// Seconds taken by encoding/xml's tokeniser alone, the Apple parser
	// alone, and the whole import into a vault.
	TokeniseSecs, ParseSecs, ImportSecs float64
	// What the Apple parser found.
	Readings, Others int
	// The anonymous RSS (kB) before and at the peak of the parse and of
	// the import.
	ParseRSSBefore, ParseRSSPeak, ImportRSSBefore, ImportRSSPeak uint64
	Import                                                       importer.Result
	CSVRows                                                      int // readings and skipped rows of the CSV
	CSVSecs                                                      float64
}

// counter is a sink that counts what a parser finds and keeps nothing.
type counter struct{ readings, skipped int }

func (c *counter) Reading(ingest.Item) error { c.readings++; return nil }
func (c *counter) Skipped(ingest.Skip) error { c.skipped++; return nil }

// Import measures the importers on generated files: a synthetic Apple
// Health export.xml of c.MB megabytes, against encoding/xml's tokeniser
// alone on the same file (the baseline); the whole import of it into a
// fresh vault, with the extra memory it takes; and a Dexcom Clarity CSV.
func Import(c ImportConfig) (*ImportReport, error) {
	if c.MB < 1 || c.CSVRows < 1 {
		return nil, fmt.Errorf("--mb and --csv-rows must be positive")
	}
	scratch, cleanup, err := scratchDir(c.Dir, "vault-bench-import-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	xmlPath := filepath.Join(scratch, "export.xml")
	t0 := time.Now()
	if err := writeFile(xmlPath, func(w io.Writer) error { return apple.WriteSynthetic(w, c.MB*1e6/480, 1) }); err != nil {
		return nil, err
	}
	fi, err := os.Stat(xmlPath)
	if err != nil {
		return nil, err
	}
	r := &ImportReport{XMLBytes: fi.Size(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	fmt.Fprintf(c.Stderr, "generated %.0f MB in %.1f s\n", float64(r.XMLBytes)/1e6, time.Since(t0).Seconds())

	// Baseline: tokenising alone.
	r.TokeniseSecs, err = timed(func() error {
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
		return nil, err
	}

	// The Apple parser alone, into a counting sink.
	var parsed counter
	r.ParseRSSBefore, r.ParseRSSPeak, err = peakAnonRSS(func() error {
		var err error
		r.ParseSecs, err = timed(func() error { return parseFile(xmlPath, apple.Parse, &parsed) })
		return err
	})
	if err != nil {
		return nil, err
	}
	r.Readings, r.Others = parsed.readings, parsed.skipped

	// The whole import into a fresh vault: two passes, then storage.
	h, err := c.Open(scratch, 0)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	v := h.Vault
	p, err := v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "bench patient", TimeZone: "America/New_York"})
	if err != nil {
		return nil, err
	}
	f, ok := formats.New().Lookup(ingest.FormatApple)
	if !ok {
		return nil, fmt.Errorf("no %s importer", ingest.FormatApple)
	}
	r.ImportRSSBefore, r.ImportRSSPeak, err = peakAnonRSS(func() error {
		xf, err := os.Open(xmlPath)
		if err != nil {
			return err
		}
		defer xf.Close()
		r.ImportSecs, err = timed(func() error {
			in, err := importer.File{F: xf}.Input()
			if err != nil {
				return err
			}
			r.Import, err = importer.Run(context.Background(), v, p.ID, f, in, ingest.Options{})
			return err
		})
		return err
	})
	if err != nil {
		return nil, err
	}

	// A Dexcom Clarity CSV.
	csvPath := filepath.Join(scratch, "clarity.csv")
	if err := writeFile(csvPath, func(w io.Writer) error { return writeClarity(w, c.CSVRows) }); err != nil {
		return nil, err
	}
	var rows counter
	r.CSVSecs, err = timed(func() error { return parseFile(csvPath, cgmcsv.ParseDexcom, &rows) })
	if err != nil {
		return nil, err
	}
	r.CSVRows = rows.readings + rows.skipped
	return r, nil
}

// Print writes the report as 'vault bench import' shows it.
func (r *ImportReport) Print(w io.Writer) error {
	size := float64(r.XMLBytes)
	mib := func(kb uint64) float64 { return float64(kb) / 1024 }
	fmt.Fprintf(w, "vault bench import: synthetic Apple Health export.xml of %.0f MB (%d readings, %d other records), GOMAXPROCS=%d\n\n",
		size/1e6, r.Readings, r.Others, r.GOMAXPROCS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tMB/s\treadings/s\tseconds\textra RSS MiB\t")
	fmt.Fprintf(tw, "baseline: encoding/xml tokenising alone\t%.1f\t\t%.2f\t\t\n", size/1e6/r.TokeniseSecs, r.TokeniseSecs)
	fmt.Fprintf(tw, "Apple parser (tokenise, map, omh.Parse)\t%.1f\t%.0f\t%.2f\t%.1f\t\n", size/1e6/r.ParseSecs, float64(r.Readings)/r.ParseSecs, r.ParseSecs, mib(r.ParseRSSPeak-min(r.ParseRSSPeak, r.ParseRSSBefore)))
	fmt.Fprintf(tw, "import into a vault (check pass, store pass)\t%.1f\t%.0f\t%.2f\t%.1f\t\n", size/1e6/r.ImportSecs, float64(r.Import.Accepted)/r.ImportSecs, r.ImportSecs, mib(r.ImportRSSPeak-min(r.ImportRSSPeak, r.ImportRSSBefore)))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nimport: %d accepted, %d duplicates, %d skipped, in %d transactions\n", r.Import.Accepted, r.Import.Duplicates, r.Import.Skipped, r.Import.Transactions)
	_, err := fmt.Fprintf(w, "Dexcom Clarity CSV: %d rows in %.2f s: %.0f rows/s   (targets: Apple >= 50 MB/s with < 100 MB extra RSS; CSV >= 200,000 rows/s)\n",
		r.CSVRows, r.CSVSecs, float64(r.CSVRows)/r.CSVSecs)
	return err
}

// parseFile parses the file at path into sink.
func parseFile(path string, parse ingest.Parser, sink ingest.Sink) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return parse(f, ingest.Options{}, sink)
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
