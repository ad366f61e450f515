package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/ingest/importer"
)

// cmdImport imports a file into a patient's records, through the running
// server's socket, or on the database file when no server runs.
func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	var sf storeFlags
	sf.register(fs)
	patient := fs.String("patient", "", "the patient's id (pt_…)")
	format := fs.String("format", "", "one of "+strings.Join(formats.New().Names(), ", ")+" (default: recognised from the file)")
	dateOrder := fs.String("date-order", "", "month-first or day-first, for CSV dates such as 03-04-2025 when the file doesn't settle it")
	if err := parseFlagsArgs(fs, args, 1); err != nil {
		return err
	}
	if *patient == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: vault import --patient ID [--format F] [--date-order month-first|day-first] FILE")
		return errUsage
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		// Ctrl-C stops the import, on the server too.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		res, err := ops.Import(ctx, api.AdminImportRequest{Patient: *patient, Format: *format, DateOrder: *dateOrder}, f)
		if err != nil {
			return err
		}
		printImport(stdout, res)
		return nil
	})
}

func printImport(w io.Writer, res importer.Result) {
	fmt.Fprintf(w, "%s: %d readings: %d accepted, %d duplicates; %d rows skipped (%d transactions)\n",
		res.Format, res.Readings, res.Accepted, res.Duplicates, res.Skipped, res.Transactions)
	for _, s := range res.Schemas() {
		c := res.BySchema[s]
		fmt.Fprintf(w, "  %-28s %8d accepted %8d duplicates\n", s, c.Accepted, c.Duplicates)
	}
	for t, n := range res.SkippedBy {
		fmt.Fprintf(w, "  skipped %-36s %8d\n", t, n)
	}
}
