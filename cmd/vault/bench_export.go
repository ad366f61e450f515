package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// cgmYear is one patient-year of CGM at one reading every 5 minutes.
const cgmYear = 365 * 24 * 12

// cmdBenchExport measures exports: one patient-year of CGM as age-encrypted
// OMH NDJSON over HTTP, against a baseline from the same run (the same
// canonical bytes in a raw bbolt bucket, scanned and age-encrypted, with no
// consent check or per-record decryption), and the server's extra memory
// while it streams many patient-years. The client is a separate process,
// so the server's RSS is its own.
func cmdBenchExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench export", stderr)
	rounds := fs.Int("rounds", 5, "rounds of the one-year export and its baseline")
	years := fs.Int("years", 10, "patient-years of CGM for the memory run (0 skips it)")
	dir := fs.String("dir", "", "scratch directory (default: a new temporary directory, removed after)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server during the one-year rounds to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rounds < 1 || *years < 0 {
		return fmt.Errorf("--rounds must be positive and --years not negative")
	}
	scratch, cleanup, err := scratchDir(*dir, "vault-bench-export-")
	if err != nil {
		return err
	}
	defer cleanup()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	sf := storeFlags{data: filepath.Join(scratch, "data"), keyFile: filepath.Join(scratch, "root.key")}
	v, st, _, err := openVaultWith(context.Background(), sf, openOrCreate, false, boltstore.Options{LockTimeout: time.Second}, log)
	if err != nil {
		return err
	}
	defer st.Close()
	led, err := consent.Open(st.Ledger(), v.Master(), consent.Options{Origin: "bench.invalid"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Ledger: led, Logger: log, KeyActivationDelay: -1}).Echo()}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	clin, err := v.CreateUser(context.Background(), vault.NewUser{Role: vault.RoleClinician, Name: "bench clinician"})
	if err != nil {
		return err
	}
	ctok, _, err := v.MintToken(context.Background(), clin.ID, vault.TokenClinician, time.Hour)
	if err != nil {
		return err
	}
	if err := benchPost(url+"/api/v1/clinician/keys", ctok, api.KeyRequest{Label: "bench hub", Recipient: id.Recipient().String()}); err != nil {
		return err
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
				buf = benchPoint(buf[:0], 0, j, start.Add(time.Duration(j)*5*time.Minute))
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
		err = benchPost(url+"/api/v1/grants", ptok, api.GrantRequest{Clinician: clin.ID, Schemas: []string{"omh:blood-glucose"},
			ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
		return p.ID, canon, err
	}
	oneYear, canon, err := patient("bench patient, one year", cgmYear, true)
	if err != nil {
		return err
	}
	var canonBytes int
	for _, c := range canon {
		canonBytes += len(c) + 1
	}

	db, err := bolt.Open(filepath.Join(scratch, "baseline.db"), 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("r"))
		for i, c := range canon {
			if err == nil {
				err = b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), c)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	baseline := func() (float64, error) {
		t0 := time.Now()
		w, err := age.Encrypt(io.Discard, id.Recipient())
		if err != nil {
			return 0, err
		}
		err = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("r")).ForEach(func(_, v []byte) error {
				w.Write(v)
				_, err := w.Write([]byte{'\n'})
				return err
			})
		})
		if err == nil {
			err = w.Close()
		}
		return time.Since(t0).Seconds(), err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	fetch := func(patient string) (exportRun, error) {
		cmd := exec.Command(self, "bench-export-client", "--url", url+"/api/v1/patients/"+patient+"/export?schema=omh:blood-glucose:4.0")
		cmd.Stdin = strings.NewReader(ctok)
		cmd.Stderr = stderr
		out, err := cmd.Output()
		if err != nil {
			return exportRun{}, fmt.Errorf("export client: %v", err)
		}
		var r exportRun
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

	var vaultSecs, baseSecs, localSecs []float64
	var bytesOut int64
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	for range *rounds {
		r, err := fetch(oneYear)
		if err != nil {
			return err
		}
		b, err := baseline()
		if err != nil {
			return err
		}
		l, err := inProcess(oneYear)
		if err != nil {
			return err
		}
		vaultSecs, baseSecs, localSecs, bytesOut = append(vaultSecs, r.Seconds), append(baseSecs, b), append(localSecs, l), r.Bytes
	}

	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	var manyID string
	var rssBefore, rssPeak uint64
	var many exportRun
	if *years > 0 {
		if manyID, _, err = patient("bench patient, many years", *years*cgmYear, false); err != nil {
			return err
		}
		// Anonymous memory is what an export costs: the database is
		// mmapped, so reading it also maps file pages that the kernel can
		// drop at will.
		rssBefore, rssPeak, err = peakAnonRSS(func() error {
			var err error
			many, err = fetch(manyID)
			return err
		})
		if err != nil {
			return err
		}
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(stdout, "vault bench export: one patient-year of CGM (%d readings, %.1f MiB of OMH NDJSON, %.1f MiB age), median of %d rounds, GOMAXPROCS=%d\n\n",
		cgmYear, float64(canonBytes)/(1<<20), float64(bytesOut)/(1<<20), *rounds, runtime.GOMAXPROCS(0))
	fmt.Fprintln(tw, "measurement\treadings/s\tmedian s\tall rounds s\t")
	row := func(name string, secs []float64) {
		var all []string
		for _, s := range secs {
			all = append(all, fmt.Sprintf("%.3f", s))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%s\t\n", name, cgmYear/median(secs), median(secs), strings.Join(all, " "))
	}
	row("vault export over HTTP (consent, ledger, decrypt, age, trailer)", vaultSecs)
	row("vault export handler in process (no network)", localSecs)
	row("baseline: raw bbolt scan + age, same bytes", baseSecs)
	tw.Flush()
	fmt.Fprintf(stdout, "\nratio baseline / vault over HTTP: %.2f; in process: %.2f   (targets: <= 0.3 s, ratio >= 0.4)\n",
		median(baseSecs)/median(vaultSecs), median(baseSecs)/median(localSecs))
	if *years > 0 {
		fmt.Fprintf(stdout, "%d patient-years (%d readings, %.0f MiB age) in %.2f s: server anonymous RSS %.1f MiB before, peak %.1f MiB, extra %.1f MiB   (target: extra < 30 MiB)\n",
			*years, *years*cgmYear, float64(many.Bytes)/(1<<20), many.Seconds,
			float64(rssBefore)/1024, float64(rssPeak)/1024, float64(rssPeak-min(rssPeak, rssBefore))/1024)
	}
	return nil
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

type exportRun struct {
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
}

// cmdBenchExportClient is the export client of 'vault bench export', run as
// a separate process: it reads the clinician token on stdin, fetches the
// export and discards it.
func cmdBenchExportClient(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench-export-client", os.Stderr)
	url := fs.String("url", "", "export URL")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tok, err := io.ReadAll(os.Stdin)
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
	return json.NewEncoder(stdout).Encode(exportRun{Seconds: time.Since(t0).Seconds(), Bytes: n})
}

func benchPost(url, token string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		out, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, out)
	}
	return nil
}

// procStatusKB reads a kB field of /proc/self/status (0 where there is
// none, as off Linux).
func procStatusKB(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// peakAnonRSS runs fn and samples this process's anonymous RSS (RssAnon)
// every 2 ms meanwhile; it returns the figure before (after handing freed
// memory back) and the peak, in kB.
func peakAnonRSS(fn func() error) (before, peak uint64, err error) {
	debug.FreeOSMemory()
	before = procStatusKB("RssAnon")
	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		p := before
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				sampled <- p
				return
			case <-t.C:
				p = max(p, procStatusKB("RssAnon"))
			}
		}
	}()
	err = fn()
	close(stop)
	return before, <-sampled, err
}
