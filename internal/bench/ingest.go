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
}

// IngestReport is what [Ingest] measured.
type IngestReport struct {
	Uploaders, Readings, Batch int // as configured
	GOMAXPROCS                 int
	PointBytes                 int // the bytes of one round's points, without newlines
	// Seconds per round: the vault over HTTP, and raw bbolt with one
	// transaction per batch and per Uploaders batches.
	Vault, Baseline, Group []float64
	DBSize                 int64 // the vault's database file after the last round
}

// Total is the readings of one round.
func (r *IngestReport) Total() int { return r.Uploaders * r.Readings }

// Rate is readings per second at the median of secs.
func (r *IngestReport) Rate(secs []float64) float64 { return float64(r.Total()) / median(secs) }

// Ingest measures ingest over HTTP against raw bbolt puts of the same
// bytes, in the same run, for c.Rounds rounds.
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
	r := &IngestReport{Uploaders: c.Uploaders, Readings: c.Readings, Batch: c.Batch, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	for round := range c.Rounds {
		rdir := filepath.Join(scratch, fmt.Sprint("round", round))
		// Baselines: raw bbolt, same point bytes, time-ordered keys,
		// fsync'd transactions, no validation, crypto or index. One commits
		// a transaction per request batch; the other per uploaders x batch,
		// which is the most the vault's group commit merges here. The ratio
		// is taken against the faster of the two.
		b, n, err := putBaseline(filepath.Join(rdir, "baseline.db"), c.Uploaders, c.Readings, c.Batch, 1, c.PageSize)
		if err != nil {
			return nil, fmt.Errorf("baseline: %v", err)
		}
		g, _, err := putBaseline(filepath.Join(rdir, "baseline-group.db"), c.Uploaders, c.Readings, c.Batch, c.Uploaders, c.PageSize)
		if err != nil {
			return nil, fmt.Errorf("baseline: %v", err)
		}
		prof := ""
		if round == 0 {
			prof = c.CPUProfile
		}
		v, size, err := ingestVault(rdir, c, prof)
		if err != nil {
			return nil, err
		}
		r.Baseline, r.Group, r.Vault = append(r.Baseline, b), append(r.Group, g), append(r.Vault, v)
		r.PointBytes, r.DBSize = n, size
		os.RemoveAll(rdir)
	}
	return r, nil
}

// Print writes the report as 'vault bench' shows it.
func (r *IngestReport) Print(w io.Writer) error {
	total := r.Total()
	ingestRate, baseRate, groupRate := r.Rate(r.Vault), r.Rate(r.Baseline), r.Rate(r.Group)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "vault bench: %d readings per round (%d uploaders x %d, batches of %d, mean point %d bytes), median of %d rounds, GOMAXPROCS=%d\n\n",
		total, r.Uploaders, r.Readings, r.Batch, r.PointBytes/total, len(r.Vault), r.GOMAXPROCS)
	fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
	row := func(name string, rate float64, secs []float64) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", name, rate, median(secs), joinSecs("%.2f", secs))
	}
	row("vault ingest over HTTP (validate, seal, dedup, fsync)", ingestRate, r.Vault)
	row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", r.Batch), baseRate, r.Baseline)
	row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", r.Batch*r.Uploaders), groupRate, r.Group)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nratio vault / faster baseline: %.2f   (targets: >= 150000 readings/s, ratio >= 0.50)\n", ingestRate/max(baseRate, groupRate))
	_, err := fmt.Fprintf(w, "vault.db after one round: %.1f MiB (%.0f bytes per reading)\n", float64(r.DBSize)/(1<<20), float64(r.DBSize)/float64(total))
	return err
}

// ingestVault serves a fresh vault on loopback and drives it from a child
// process ([RunLoad]). It returns the load's wall time and the database
// file's size.
func ingestVault(dir string, c IngestConfig, cpuprofile string) (float64, int64, error) {
	total := c.Uploaders * c.Readings
	h, err := c.Open(dir, c.PageSize)
	if err != nil {
		return 0, 0, err
	}
	defer h.Close()
	v := h.Vault
	var tokens []string
	for u := range c.Uploaders {
		p, err := v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: fmt.Sprintf("bench patient %d", u)})
		if err != nil {
			return 0, 0, err
		}
		tok, _, err := v.MintToken(p.ID, vault.TokenDevice, time.Hour)
		if err != nil {
			return 0, 0, err
		}
		tokens = append(tokens, tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Logger: log}).Echo()}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self, LoadCommand, "--url", "http://"+ln.Addr().String(), "--readings", fmt.Sprint(c.Readings), "--batch", fmt.Sprint(c.Batch))
	cmd.Stdin = strings.NewReader(strings.Join(tokens, "\n"))
	cmd.Stderr = c.Stderr
	if cpuprofile != "" {
		pf, err := os.Create(cpuprofile)
		if err != nil {
			return 0, 0, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("load generator: %v", err)
	}
	var lr loadResult
	if err := json.Unmarshal(out, &lr); err != nil {
		return 0, 0, fmt.Errorf("load generator output: %v", err)
	}
	if lr.Errors > 0 || lr.Accepted != total {
		return 0, 0, fmt.Errorf("load generator: %d of %d accepted, %d errors, first: %s", lr.Accepted, total, lr.Errors, lr.FirstErr)
	}
	var size int64
	if fi, err := os.Stat(h.DBFile); err == nil {
		size = fi.Size()
	}
	return lr.Seconds, size, nil
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
	all := make([][][]byte, len(tokens))
	for u := range tokens {
		all[u], _ = bodies(u, *readings, *batch)
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
