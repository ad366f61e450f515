package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
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
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// benchPoint is a blood-glucose 4.0 point in the IEEE 1752 dialect, about
// 400 bytes, as a CGM uploader sends it.
func benchPoint(buf []byte, uploader, i int, t time.Time) []byte {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:], uint64(uploader)<<40|uint64(i))
	binary.BigEndian.PutUint64(u[8:], uint64(t.UnixNano()))
	u[6], u[8] = (u[6]&0x0f)|0x40, (u[8]&0x3f)|0x80
	ts := t.UTC().Format(time.RFC3339)
	return fmt.Appendf(buf, `{"header":{"uuid":"%x-%x-%x-%x-%x","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"%s","modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"bench-cgm"}]},"body":{"blood_glucose":{"unit":"mg/dL","value":%d},"effective_time_frame":{"date_time":"%s"},"specimen_source":"interstitial fluid"}}`,
		u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], ts, 70+(i*7)%180, ts)
}

// benchBodies builds one uploader's NDJSON request bodies.
func benchBodies(uploader, readings, batch int) (bodies [][]byte, pointBytes int) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < readings; i += batch {
		var b []byte
		for j := i; j < min(i+batch, readings); j++ {
			start := len(b)
			b = benchPoint(b, uploader, j, base.Add(time.Duration(j)*5*time.Minute))
			pointBytes += len(b) - start
			b = append(b, '\n')
		}
		bodies = append(bodies, b)
	}
	return bodies, pointBytes
}

type loadResult struct {
	Readings int     `json:"readings"`
	Accepted int     `json:"accepted"`
	Seconds  float64 `json:"seconds"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
}

// cmdBenchLoad is the load generator, run as a separate process by 'vault
// bench'. It reads one device token per line on stdin.
func cmdBenchLoad(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench-load", os.Stderr)
	url := fs.String("url", "", "base URL of the vault")
	readings := fs.Int("readings", 100000, "readings per uploader")
	batch := fs.Int("batch", 1000, "readings per request")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var tokens []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			tokens = append(tokens, t)
		}
	}
	bodies := make([][][]byte, len(tokens))
	for u := range tokens {
		bodies[u], _ = benchBodies(u, *readings, *batch)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(tokens)}, Timeout: 5 * time.Minute}
	var mu sync.Mutex
	res := loadResult{Readings: len(tokens) * *readings}
	var wg sync.WaitGroup
	start := time.Now()
	for u, tok := range tokens {
		wg.Go(func() {
			for _, body := range bodies[u] {
				req, _ := http.NewRequest(http.MethodPost, *url+"/api/v1/readings", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				var out api.IngestResponse
				if err == nil {
					if resp.StatusCode != http.StatusCreated {
						b, _ := io.ReadAll(resp.Body)
						err = fmt.Errorf("%s: %s", resp.Status, b)
					} else {
						err = json.NewDecoder(resp.Body).Decode(&out)
					}
					resp.Body.Close()
				}
				mu.Lock()
				res.Accepted += out.Accepted
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

// cmdBench measures ingest over HTTP against raw bbolt puts of the same
// bytes, in the same run, and prints the medians of several rounds with
// their ratio.
func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	readings := fs.Int("readings", 50000, "readings per uploader")
	batch := fs.Int("batch", 1000, "readings per request and per baseline transaction")
	uploaders := fs.Int("uploaders", 4, "concurrent uploaders, one patient each")
	rounds := fs.Int("rounds", 3, "rounds; each measures the vault and both baselines on fresh files")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the vault side of the HTTP runs to this file")
	pageSize := fs.Int("page-size", boltstore.DefaultPageSize, "bbolt page size for the vault and both baselines")
	dir := fs.String("dir", "", "scratch directory (default: a new temporary directory, removed after)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *readings < 1 || *batch < 1 || *uploaders < 1 || *rounds < 1 || *batch > api.DefaultMaxBatch {
		return fmt.Errorf("--readings, --batch, --uploaders and --rounds must be positive, and --batch at most %d", api.DefaultMaxBatch)
	}
	scratch, cleanup, err := scratchDir(*dir, "vault-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
	}
	total := *readings * *uploaders
	var vaultSecs, baseSecs, groupSecs []float64
	var pointBytes int
	var dbSize int64
	for r := range *rounds {
		rdir := filepath.Join(scratch, fmt.Sprint("round", r))
		// Baselines: raw bbolt, same point bytes, time-ordered keys,
		// fsync'd transactions, no validation, crypto or index. One commits
		// a transaction per request batch; the other per uploaders x batch,
		// which is the most the vault's group commit merges here. The ratio
		// is taken against the faster of the two.
		b, n, err := benchBaseline(filepath.Join(rdir, "baseline.db"), *uploaders, *readings, *batch, 1, *pageSize)
		if err != nil {
			return fmt.Errorf("baseline: %v", err)
		}
		g, _, err := benchBaseline(filepath.Join(rdir, "baseline-group.db"), *uploaders, *readings, *batch, *uploaders, *pageSize)
		if err != nil {
			return fmt.Errorf("baseline: %v", err)
		}
		prof := ""
		if r == 0 {
			prof = *cpuprofile
		}
		v, size, err := benchVault(rdir, *uploaders, *readings, *batch, *pageSize, prof, stderr)
		if err != nil {
			return err
		}
		baseSecs, groupSecs, vaultSecs = append(baseSecs, b), append(groupSecs, g), append(vaultSecs, v)
		pointBytes, dbSize = n, size
		os.RemoveAll(rdir)
	}
	rate := func(secs []float64) float64 { return float64(total) / median(secs) }
	ingestRate, baseRate, groupRate := rate(vaultSecs), rate(baseSecs), rate(groupSecs)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(stdout, "vault bench: %d readings per round (%d uploaders x %d, batches of %d, mean point %d bytes), median of %d rounds, GOMAXPROCS=%d\n\n",
		total, *uploaders, *readings, *batch, pointBytes/total, *rounds, runtime.GOMAXPROCS(0))
	fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
	row := func(name string, rate float64, secs []float64) {
		var all []string
		for _, s := range secs {
			all = append(all, fmt.Sprintf("%.2f", s))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", name, rate, median(secs), strings.Join(all, " "))
	}
	row("vault ingest over HTTP (validate, seal, dedup, fsync)", ingestRate, vaultSecs)
	row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", *batch), baseRate, baseSecs)
	row(fmt.Sprintf("baseline: raw bbolt puts, same bytes, 1 tx per %d", *batch**uploaders), groupRate, groupSecs)
	tw.Flush()
	fmt.Fprintf(stdout, "\nratio vault / faster baseline: %.2f   (targets: >= 150000 readings/s, ratio >= 0.50)\n", ingestRate/max(baseRate, groupRate))
	fmt.Fprintf(stdout, "vault.db after one round: %.1f MiB (%.0f bytes per reading)\n", float64(dbSize)/(1<<20), float64(dbSize)/float64(total))
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchVault serves a fresh vault on loopback and drives it from a child
// process ('vault bench-load'). It returns the load's wall time.
func benchVault(dir string, uploaders, readings, batch, pageSize int, cpuprofile string, stderr io.Writer) (float64, int64, error) {
	total := uploaders * readings
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sf := storeFlags{data: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "root.key")}
	v, st, _, err := openVaultWith(context.Background(), sf, openOrCreate, false, boltstore.Options{LockTimeout: time.Second, PageSize: pageSize}, log)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	var tokens []string
	for u := range uploaders {
		p, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RolePatient, Name: fmt.Sprintf("bench patient %d", u)})
		if err != nil {
			return 0, 0, err
		}
		tok, _, err := v.MintToken(context.Background(), p.ID, vault.TokenDevice, time.Hour)
		if err != nil {
			return 0, 0, err
		}
		tokens = append(tokens, tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Logger: log}).Echo()}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self, "bench-load", "--url", "http://"+ln.Addr().String(), "--readings", fmt.Sprint(readings), "--batch", fmt.Sprint(batch))
	cmd.Stdin = strings.NewReader(strings.Join(tokens, "\n"))
	cmd.Stderr = stderr
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
	if fi, err := os.Stat(dbPath(sf.data)); err == nil {
		size = fi.Size()
	}
	return lr.Seconds, size, nil
}

func benchBaseline(path string, uploaders, readings, batch, perTx, pageSize int) (secs float64, pointBytes int, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, InitialMmapSize: 256 << 20, PageSize: pageSize})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	type kv struct{ k, v []byte }
	var txs [][]kv
	for u := range uploaders {
		bodies, n := benchBodies(u, readings, batch)
		pointBytes += n
		i := 0
		for _, body := range bodies {
			var tx []kv
			for line := range bytes.Lines(body) {
				k := make([]byte, 24)
				binary.BigEndian.PutUint64(k, uint64(u)<<56|uint64(i))
				rand.Read(k[8:])
				tx = append(tx, kv{k, bytes.TrimSuffix(line, []byte("\n"))})
				i++
			}
			txs = append(txs, tx)
		}
	}
	if perTx > 1 {
		// Interleave uploaders as concurrent requests arrive, perTx batches
		// to a transaction.
		var merged [][]kv
		per := len(txs) / uploaders
		for i := 0; i < per; i++ {
			var m []kv
			for u := range uploaders {
				m = append(m, txs[u*per+i]...)
			}
			merged = append(merged, m)
		}
		txs = merged
	}
	start := time.Now()
	for _, tx := range txs {
		err := db.Update(func(t *bolt.Tx) error {
			b, err := t.CreateBucketIfNotExists([]byte("readings"))
			if err != nil {
				return err
			}
			for _, p := range tx {
				if err := b.Put(p.k, p.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, errors.New(err.Error())
		}
	}
	return time.Since(start).Seconds(), pointBytes, nil
}

// scratchDir is dir, or a new temporary directory removed by cleanup.
func scratchDir(dir, prefix string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}
