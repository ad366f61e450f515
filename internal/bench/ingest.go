package bench

import (
	"bufio"
	"bytes"
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
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/vault"
)

// LoadCommand is the first argument that makes the running executable the
// ingest bench's load generator ([RunLoad]).
const LoadCommand = "bench-load"

// IngestConfig is what 'vault bench' takes.
type IngestConfig struct {
	Readings   int    // readings per uploader
	Batch      int    // readings per request and per baseline transaction
	Uploaders  int    // concurrent uploaders, one patient each
	Rounds     int    // rounds; each measures the vault and both baselines on fresh files
	PageSize   int    // bbolt page size for the vault and both baselines
	CPUProfile string // a file for a CPU profile of the vault side of the first round, or ""
	Dir        string // scratch directory; "" makes a temporary one, removed after
	Open       Opener
	Stderr     io.Writer // the load generator's errors

	// Database, when set, runs the bench on PostgreSQL (pgbaseline.go):
	// each round in a scratch schema of this database, opened with
	// OpenDatabase, against a raw pgx COPY of the same bytes.
	Database     string
	OpenDatabase func(dir, dsn string) (*Handle, error)
}

// IngestReport is what [Ingest] measured: one run per point kind.
type IngestReport struct {
	Uploaders, Readings, Batch int // as configured
	GOMAXPROCS                 int
	Rounds                     int
	Database                   bool // on PostgreSQL, against COPY
	Runs                       []IngestRun
}

// IngestRun is one point kind's figures.
type IngestRun struct {
	Kind       string // "cgm-300" or "ieee-444"
	PointBytes int    // the bytes of one round's points, without newlines
	// Seconds per round: the vault over HTTP, and raw bbolt with one
	// transaction per batch and per Uploaders batches. On PostgreSQL,
	// Baseline is the raw COPY and Group is empty.
	Vault, Baseline, Group []float64
	DBSize                 int64 // the vault's database file after the last round
	// PageBytes and BaselinePageBytes are the bytes of the database pages
	// (branch and leaf pages, in use) that hold the readings, in the vault
	// and in the per-batch baseline, after the last round.
	PageBytes, BaselinePageBytes int64
}

// Total is the readings of one round of one kind.
func (r *IngestReport) Total() int { return r.Uploaders * r.Readings }

// Rate is readings per second at the median of secs.
func (r *IngestReport) Rate(secs []float64) float64 { return float64(r.Total()) / median(secs) }

// Ingest measures ingest over HTTP against raw bbolt puts of the same
// bytes, in the same run, for c.Rounds rounds, for each point kind.
func Ingest(c IngestConfig) (*IngestReport, error) {
	if c.Readings < 1 || c.Batch < 1 || c.Uploaders < 1 || c.Rounds < 1 || c.Batch > api.DefaultMaxBatch {
		return nil, fmt.Errorf("--readings, --batch, --uploaders and --rounds must be positive, and --batch at most %d", api.DefaultMaxBatch)
	}
	scratch, cleanup, err := scratchDir(c.Dir, "vault-bench-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if c.CPUProfile != "" {
		pf, err := os.Create(c.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
	}
	r := &IngestReport{Uploaders: c.Uploaders, Readings: c.Readings, Batch: c.Batch, GOMAXPROCS: runtime.GOMAXPROCS(0), Rounds: c.Rounds, Database: c.Database != ""}
	for _, k := range pointKinds {
		r.Runs = append(r.Runs, IngestRun{Kind: k.name})
	}
	for round := range c.Rounds {
		for i := range r.Runs {
			run := &r.Runs[i]
			rdir := filepath.Join(scratch, fmt.Sprint("round", round, "-", run.Kind))
			prof := ""
			if round == 0 && i == 0 {
				prof = c.CPUProfile
			}
			if c.Database != "" {
				if err := ingestPostgres(run, rdir, round, c, prof); err != nil {
					return nil, err
				}
				os.RemoveAll(rdir)
				continue
			}
			// Baselines: raw bbolt, same point bytes, time-ordered keys,
			// fsync'd transactions, no validation, crypto or index. One commits
			// a transaction per request batch; the other per uploaders x batch,
			// which is the most the vault's group commit merges here. The ratio
			// is taken against the faster of the two.
			b, n, pages, err := putBaseline(filepath.Join(rdir, "baseline.db"), run.Kind, c.Uploaders, c.Readings, c.Batch, 1, c.PageSize)
			if err != nil {
				return nil, fmt.Errorf("baseline: %v", err)
			}
			g, _, _, err := putBaseline(filepath.Join(rdir, "baseline-group.db"), run.Kind, c.Uploaders, c.Readings, c.Batch, c.Uploaders, c.PageSize)
			if err != nil {
				return nil, fmt.Errorf("baseline: %v", err)
			}
			v, size, vpages, err := ingestVault(rdir, run.Kind, c, prof, func() (*Handle, error) { return c.Open(rdir, c.PageSize) })
			if err != nil {
				return nil, err
			}
			run.Baseline, run.Group, run.Vault = append(run.Baseline, b), append(run.Group, g), append(run.Vault, v)
			run.PointBytes, run.DBSize, run.PageBytes, run.BaselinePageBytes = n, size, vpages, pages
			os.RemoveAll(rdir)
		}
	}
	return r, nil
}

// Print writes the report as 'vault bench' shows it.
func (r *IngestReport) Print(w io.Writer) error {
	total := r.Total()
	fmt.Fprintf(w, "vault bench%s: %d readings per round and point kind (%d uploaders x %d, batches of %d), median of %d rounds, GOMAXPROCS=%d\n",
		map[bool]string{true: " (PostgreSQL)"}[r.Database], total, r.Uploaders, r.Readings, r.Batch, r.Rounds, r.GOMAXPROCS)
	if r.Database {
		return r.printPostgres(w)
	}
	for _, run := range r.Runs {
		ingestRate, baseRate, groupRate := r.Rate(run.Vault), r.Rate(run.Baseline), r.Rate(run.Group)
		fmt.Fprintf(w, "\n%s: mean point %d bytes\n", run.Kind, run.PointBytes/total)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
		row := func(name string, rate float64, secs []float64) {
			fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", name, rate, median(secs), joinSecs("%.2f", secs))
		}
		row("vault ingest over HTTP (validate, seal, dedup, fsync)", ingestRate, run.Vault)
		row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", r.Batch), baseRate, run.Baseline)
		row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", r.Batch*r.Uploaders), groupRate, run.Group)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "ratio vault / faster baseline: %.2f   (targets: >= 150000 readings/s, ratio >= 0.50)\n", ingestRate/max(baseRate, groupRate))
		fmt.Fprintf(w, "database pages per reading: vault %.0f bytes, raw bbolt %.0f bytes   (target for cgm-300: <= 200)\n",
			float64(run.PageBytes)/float64(total), float64(run.BaselinePageBytes)/float64(total))
		if _, err := fmt.Fprintf(w, "vault.db after one round: %.1f MiB\n", float64(run.DBSize)/(1<<20)); err != nil {
			return err
		}
	}
	return nil
}

// ingestVault serves a fresh vault on loopback and drives it from a child
// process ([RunLoad]). It returns the load's wall time, the database
// file's size and the bytes of the pages that hold the readings.
func ingestVault(dir, kind string, c IngestConfig, cpuprofile string, open func() (*Handle, error)) (float64, int64, int64, error) {
	total := c.Uploaders * c.Readings
	h, err := open()
	if err != nil {
		return 0, 0, 0, err
	}
	defer h.Close()
	v := h.Vault
	var tokens []string
	for u := range c.Uploaders {
		p, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RolePatient, Name: fmt.Sprintf("bench patient %d", u)})
		if err != nil {
			return 0, 0, 0, err
		}
		tok, _, err := v.MintToken(context.Background(), p.ID, vault.TokenDevice, time.Hour)
		if err != nil {
			return 0, 0, 0, err
		}
		tokens = append(tokens, tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Logger: log}).Echo()}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	self, err := os.Executable()
	if err != nil {
		return 0, 0, 0, err
	}
	cmd := exec.Command(self, LoadCommand, "--url", "http://"+ln.Addr().String(), "--readings", fmt.Sprint(c.Readings), "--batch", fmt.Sprint(c.Batch), "--points", kind)
	cmd.Stdin = strings.NewReader(strings.Join(tokens, "\n"))
	cmd.Stderr = c.Stderr
	if cpuprofile != "" {
		pf, err := os.Create(cpuprofile)
		if err != nil {
			return 0, 0, 0, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return 0, 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("load generator: %v", err)
	}
	var lr loadResult
	if err := json.Unmarshal(out, &lr); err != nil {
		return 0, 0, 0, fmt.Errorf("load generator output: %v", err)
	}
	if lr.Errors > 0 || lr.Accepted != total {
		return 0, 0, 0, fmt.Errorf("load generator: %d of %d accepted, %d errors, first: %s", lr.Accepted, total, lr.Errors, lr.FirstErr)
	}
	var size int64
	if fi, err := os.Stat(h.DBFile); h.DBFile != "" && err == nil {
		size = fi.Size()
	}
	pages, err := h.ReadingPages()
	if err != nil {
		return 0, 0, 0, err
	}
	return lr.Seconds, size, pages, nil
}

// loadResult is what the load generator reports on its stdout.
type loadResult struct {
	Readings int     `json:"readings"`
	Accepted int     `json:"accepted"`
	Seconds  float64 `json:"seconds"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
}

// RunLoad is the load generator, run as a separate process by [Ingest]
// with the arguments after [LoadCommand]. It reads one device token per
// line on stdin, posts each uploader's readings concurrently, and writes
// what it measured as JSON on stdout.
func RunLoad(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vault "+LoadCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "base URL of the vault")
	readings := fs.Int("readings", 100000, "readings per uploader")
	batch := fs.Int("batch", 1000, "readings per request")
	kind := fs.String("points", "ieee-444", "point kind: cgm-300 or ieee-444")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var tokens []string
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			tokens = append(tokens, t)
		}
	}
	if _, err := pointKind(*kind); err != nil {
		return err
	}
	all := make([][][]byte, len(tokens))
	for u := range tokens {
		all[u], _ = bodies(*kind, u, *readings, *batch)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(tokens)}, Timeout: 5 * time.Minute}
	var mu sync.Mutex
	res := loadResult{Readings: len(tokens) * *readings}
	var wg sync.WaitGroup
	start := time.Now()
	for u, tok := range tokens {
		wg.Go(func() {
			for _, body := range all[u] {
				n, err := upload(client, *url, tok, body)
				mu.Lock()
				res.Accepted += n
				if err != nil {
					res.Errors++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(stdout).Encode(res)
}

// upload posts one NDJSON body and returns how many readings the vault
// accepted.
func upload(client *http.Client, url, token string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/readings", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var out api.IngestResponse
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Accepted, err
}

// ingestPostgres runs one round of one point kind on PostgreSQL: the
// COPY baseline, then the vault over HTTP, each in its own scratch schema.
func ingestPostgres(run *IngestRun, rdir string, round int, c IngestConfig, prof string) error {
	ctx := context.Background()
	name := fmt.Sprintf("r%d_%s", round, strings.ReplaceAll(run.Kind, "-", "_"))
	bdsn, drop, err := pgScratch(ctx, c.Database, name+"_copy")
	if err != nil {
		return err
	}
	b, n, tableBytes, err := copyBaseline(ctx, bdsn, run.Kind, c.Uploaders, c.Readings, c.Batch)
	drop()
	if err != nil {
		return fmt.Errorf("COPY baseline: %v", err)
	}
	vdsn, drop, err := pgScratch(ctx, c.Database, name+"_vault")
	if err != nil {
		return err
	}
	defer drop()
	v, _, vbytes, err := ingestVault(rdir, run.Kind, c, prof, func() (*Handle, error) { return c.OpenDatabase(rdir, vdsn) })
	if err != nil {
		return err
	}
	run.Baseline, run.Vault = append(run.Baseline, b), append(run.Vault, v)
	run.PointBytes, run.PageBytes, run.BaselinePageBytes = n, vbytes, tableBytes
	return nil
}

// printPostgres is Print for a run on PostgreSQL.
func (r *IngestReport) printPostgres(w io.Writer) error {
	total := r.Total()
	for _, run := range r.Runs {
		ingestRate, copyRate := r.Rate(run.Vault), r.Rate(run.Baseline)
		fmt.Fprintf(w, "\n%s: mean point %d bytes\n", run.Kind, run.PointBytes/total)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", "vault ingest over HTTP on PostgreSQL (validate, seal, dedup, commit)", ingestRate, median(run.Vault), joinSecs("%.2f", run.Vault))
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", fmt.Sprintf("baseline: raw pgx COPY, same bytes, 1 COPY per %d, %d connections", r.Batch, r.Uploaders), copyRate, median(run.Baseline), joinSecs("%.2f", run.Baseline))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "ratio vault / COPY: %.2f   (targets: >= 80000 readings/s, ratio >= 0.50)\n", ingestRate/copyRate)
		if _, err := fmt.Fprintf(w, "table and index bytes per reading: vault %.0f, COPY %.0f\n",
			float64(run.PageBytes)/float64(total), float64(run.BaselinePageBytes)/float64(total)); err != nil {
			return err
		}
	}
	return nil
}
