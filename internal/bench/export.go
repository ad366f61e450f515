package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// ExportClientCommand is the first argument that makes the running
// executable the export bench's client ([RunExportClient]).
const ExportClientCommand = "bench-export-client"

// cgmYear is one patient-year of CGM at one reading every 5 minutes.
const cgmYear = 365 * 24 * 12

// ExportConfig is what 'vault bench export' takes.
type ExportConfig struct {
	Rounds     int    // rounds of the one-year export and its baseline
	Years      int    // patient-years of CGM for the memory run; 0 skips it
	Dir        string // scratch directory; "" makes a temporary one, removed after
	CPUProfile string // a file for a CPU profile of the server during the one-year rounds, or ""
	Open       Opener
	Stderr     io.Writer // the export client's errors

	// year is the readings of a patient-year: cgmYear, unless a test
	// shrinks it.
	year int
}

// ExportReport is what [Export] measured.
type ExportReport struct {
	Year       int // readings in the one-year export
	GOMAXPROCS int
	CanonBytes int   // the year's OMH NDJSON, as stored
	AgeBytes   int64 // the year's export as sent
	// Seconds per round: the export over HTTP, the same handler in
	// process, and the raw bbolt scan plus age.
	HTTP, InProcess, Baseline []float64
	// CPU seconds (user and system) this process spent in each of them,
	// per round: for the export over HTTP that is the server's share, the
	// client being another process. On a machine shared with other work
	// the wall times carry its noise; the CPU each side needs does not.
	HTTPCPU, InProcessCPU, BaselineCPU []float64

	// The memory run, when Years > 0: the export of Years patient-years
	// (Bytes, Seconds), and the server's anonymous RSS before it and at
	// its peak, in kB.
	Years              int
	Many               ExportRun
	RSSBefore, RSSPeak uint64
}

// ExportRun is one export as the client measured it.
type ExportRun struct {
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
}

// Export measures exports: one patient-year of CGM as age-encrypted OMH
// NDJSON over HTTP, against a baseline from the same run (the same
// canonical bytes in a raw bbolt bucket, scanned and age-encrypted, with no
// consent check or per-record decryption), and the server's extra memory
// while it streams many patient-years. The client is a separate process
// ([RunExportClient]), so the server's RSS is its own.
func Export(c ExportConfig) (*ExportReport, error) {
	if c.Rounds < 1 || c.Years < 0 {
		return nil, fmt.Errorf("--rounds must be positive and --years not negative")
	}
	if c.year == 0 {
		c.year = cgmYear
	}
	scratch, cleanup, err := scratchDir(c.Dir, "vault-bench-export-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	h, err := c.Open(scratch, 0)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	v := h.Vault
	led, err := h.Ledger("bench.invalid")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	url := "http://" + ln.Addr().String()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	// The export quotas (per token, per grant) are lifted: this measures an
	// export, and runs more of them with one token on one grant than the
	// quotas allow.
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Ledger: led, Logger: log, KeyActivationDelay: -1, ExportsPerMinute: 1 << 20, ExportBurstPerGrant: unlimitedExports}).Echo()}
	// The profile labels each measurement's CPU (goroutines inherit their
	// creator's labels: the server's connections and the export's
	// decryption workers carry "http"), so `go tool pprof -tagfocus
	// measurement=http` shows the export over HTTP alone.
	go pprof.Do(context.Background(), pprof.Labels("measurement", "http"), func(context.Context) { srv.Serve(ln) })
	defer srv.Shutdown(context.Background())

	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	clin, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RoleClinician, Name: "bench clinician"})
	if err != nil {
		return nil, err
	}
	ctok, _, err := v.MintToken(context.Background(), clin.ID, vault.TokenClinician, time.Hour)
	if err != nil {
		return nil, err
	}
	if err := post(url+"/api/v1/clinician/keys", ctok, api.KeyRequest{Label: "bench hub", Recipient: id.Recipient().String()}); err != nil {
		return nil, err
	}
	// patient makes a patient with n readings of CGM and a grant to the
	// clinician; it returns the canonical bytes stored.
	start := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	patient := func(name string, n int, keep bool) (string, [][]byte, error) {
		p, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RolePatient, Name: name})
		if err != nil {
			return "", nil, err
		}
		var canon [][]byte
		var buf []byte
		for i := 0; i < n; i += 10000 {
			var pts []*omh.Point
			for j := i; j < min(i+10000, n); j++ {
				buf = point(buf[:0], 0, j, start.Add(time.Duration(j)*5*time.Minute))
				pt, err := omh.Parse(buf)
				if err != nil {
					return "", nil, err
				}
				pts = append(pts, pt)
				if keep {
					canon = append(canon, pt.AppendJSON(nil))
				}
			}
			if _, err := v.Ingest(context.Background(), p.ID, pts); err != nil {
				return "", nil, err
			}
		}
		ptok, _, err := v.MintToken(context.Background(), p.ID, vault.TokenPatient, time.Hour)
		if err != nil {
			return "", nil, err
		}
		err = post(url+"/api/v1/grants", ptok, api.GrantRequest{Clinician: clin.ID, Schemas: []string{"omh:blood-glucose"},
			ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
		return p.ID, canon, err
	}
	oneYear, canon, err := patient("bench patient, one year", c.year, true)
	if err != nil {
		return nil, err
	}
	r := &ExportReport{Year: c.year, GOMAXPROCS: runtime.GOMAXPROCS(0), Years: c.Years}
	for _, b := range canon {
		r.CanonBytes += len(b) + 1
	}

	base, err := openScanBaseline(filepath.Join(scratch, "baseline.db"), canon)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	baseline := func() (float64, error) { return base.scan(id.Recipient()) }

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fetch := func(patient string) (ExportRun, error) {
		cmd := exec.Command(self, ExportClientCommand, "--url", url+"/api/v1/patients/"+patient+"/export?schema=omh:blood-glucose:4.0")
		cmd.Stdin = strings.NewReader(ctok)
		cmd.Stderr = c.Stderr
		out, err := cmd.Output()
		if err != nil {
			return ExportRun{}, fmt.Errorf("export client: %v", err)
		}
		var r ExportRun
		return r, json.Unmarshal(out, &r)
	}

	// inProcess runs the same handler with no network: auth, consent,
	// the ledger step, decryption, age and the trailer, into a discarding
	// ResponseWriter. Beside the HTTP figure it shows what the transport
	// costs.
	handler := srv.Handler
	inProcess := func(patient string) (float64, error) {
		req, err := http.NewRequest(http.MethodGet, "/api/v1/patients/"+patient+"/export?schema=omh:blood-glucose:4.0", nil)
		if err != nil {
			return 0, err
		}
		req.RemoteAddr = "127.0.0.1:1"
		req.Header.Set("Authorization", "Bearer "+ctok)
		w := &discardResponse{header: http.Header{}}
		t0 := time.Now()
		handler.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			return 0, fmt.Errorf("in-process export: status %d", w.status)
		}
		return time.Since(t0).Seconds(), nil
	}

	if c.CPUProfile != "" {
		pf, err := os.Create(c.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
	}
	for range c.Rounds {
		cpu0 := cpuSeconds()
		run, err := fetch(oneYear)
		if err != nil {
			return nil, err
		}
		cpu1 := cpuSeconds()
		var b, l float64
		pprof.Do(context.Background(), pprof.Labels("measurement", "baseline"), func(context.Context) { b, err = baseline() })
		if err != nil {
			return nil, err
		}
		cpu2 := cpuSeconds()
		pprof.Do(context.Background(), pprof.Labels("measurement", "in-process"), func(context.Context) { l, err = inProcess(oneYear) })
		if err != nil {
			return nil, err
		}
		cpu3 := cpuSeconds()
		r.HTTP, r.Baseline, r.InProcess, r.AgeBytes = append(r.HTTP, run.Seconds), append(r.Baseline, b), append(r.InProcess, l), run.Bytes
		r.HTTPCPU, r.BaselineCPU, r.InProcessCPU = append(r.HTTPCPU, cpu1-cpu0), append(r.BaselineCPU, cpu2-cpu1), append(r.InProcessCPU, cpu3-cpu2)
	}
	if c.CPUProfile != "" {
		pprof.StopCPUProfile()
	}

	if c.Years > 0 {
		manyID, _, err := patient("bench patient, many years", c.Years*c.year, false)
		if err != nil {
			return nil, err
		}
		// Anonymous memory is what an export costs: the database is
		// mmapped, so reading it also maps file pages that the kernel can
		// drop at will.
		r.RSSBefore, r.RSSPeak, err = peakAnonRSS(func() error {
			var err error
			r.Many, err = fetch(manyID)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Print writes the report as 'vault bench export' shows it.
func (r *ExportReport) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "vault bench export: one patient-year of CGM (%d readings, %.1f MiB of OMH NDJSON, %.1f MiB age), median of %d rounds, GOMAXPROCS=%d\n\n",
		r.Year, float64(r.CanonBytes)/(1<<20), float64(r.AgeBytes)/(1<<20), len(r.HTTP), r.GOMAXPROCS)
	fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
	row := func(name string, secs []float64) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%s\t\n", name, float64(r.Year)/median(secs), median(secs), joinSecs("%.3f", secs))
	}
	row("vault export over HTTP (consent, ledger, decrypt, age, trailer)", r.HTTP)
	row("vault export handler in process (no network)", r.InProcess)
	row("baseline: raw bbolt scan + age, same bytes", r.Baseline)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nratio baseline / vault over HTTP: %.2f; in process: %.2f   (targets: <= 0.3 s, ratio >= 0.4)\n",
		median(r.Baseline)/median(r.HTTP), median(r.Baseline)/median(r.InProcess))
	if err != nil || len(r.HTTPCPU) == 0 {
		return err
	}
	_, err = fmt.Fprintf(w, "CPU s (this process; median): server over HTTP %.3f, in process %.3f, baseline %.3f; CPU ratio baseline / server over HTTP: %.2f, in process: %.2f\n",
		median(r.HTTPCPU), median(r.InProcessCPU), median(r.BaselineCPU),
		median(r.BaselineCPU)/median(r.HTTPCPU), median(r.BaselineCPU)/median(r.InProcessCPU))
	if r.Years > 0 {
		_, err = fmt.Fprintf(w, "%d patient-years (%d readings, %.0f MiB age) in %.2f s: server anonymous RSS %.1f MiB before, peak %.1f MiB, extra %.1f MiB   (target: extra < 30 MiB)\n",
			r.Years, r.Years*r.Year, float64(r.Many.Bytes)/(1<<20), r.Many.Seconds,
			float64(r.RSSBefore)/1024, float64(r.RSSPeak)/1024, float64(r.RSSPeak-min(r.RSSPeak, r.RSSBefore))/1024)
	}
	return err
}

// cpuSeconds is the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// discardResponse is an http.ResponseWriter that keeps only the status.
type discardResponse struct {
	header http.Header
	status int
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardResponse) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(b), nil
}

// RunExportClient is the export client of [Export], run as a separate
// process with the arguments after [ExportClientCommand]: it reads the
// clinician token on stdin, fetches the export, discards it, and writes an
// [ExportRun] as JSON on stdout.
func RunExportClient(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vault "+ExportClientCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "export URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("export: %s: %s", resp.Status, b)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(ExportRun{Seconds: time.Since(t0).Seconds(), Bytes: n})
}

// unlimitedExports lifts the per-grant export limit: the bench measures
// exports, many on one grant, not their rate limit.
const unlimitedExports = 1 << 30
