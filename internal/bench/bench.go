// Package bench holds the test benches behind 'vault bench': what an admin
// runs on a VM to size it, and what docs/benchmarks.md quotes.
//
//   - [Ingest] serves a fresh vault on loopback and drives it from a
//     separate load-generator process, against raw bbolt puts of the same
//     bytes in the same run;
//   - [Export] streams a patient-year of CGM as an age-encrypted export,
//     against a raw bbolt scan plus age of the same bytes, and measures the
//     server's extra memory while it streams many patient-years;
//   - [Import] times the Apple Health and Dexcom Clarity importers on
//     generated files, against encoding/xml's tokeniser alone.
//
// Each returns a report whose Print method writes the table the command
// shows. The load generator and the export client run as separate
// processes, so that the server's CPU and memory are its own: the bench
// starts the running executable again with [LoadCommand] or
// [ExportClientCommand] as its first argument, and that executable hands
// the rest of its arguments to [RunLoad] or [RunExportClient]. cmd/vault
// does; a test binary does the same from its TestMain.
//
// The package lives in internal/ and not beside the product's packages:
// nothing but cmd/vault (and its tests) has any use for it, and keeping it
// out of the module's public API lets it change with the command. Its
// raw-bbolt baselines (baseline.go) are the one use of bbolt outside
// store/boltstore; the vault itself it opens only through the [Opener]
// cmd/vault passes in, which opens it exactly as every command does.
package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/procstat"
	"github.com/jupyterhealth/vault/vault"
)

// Opener opens a new vault in the empty directory dir, its root key beside
// the data, with bbolt pages of pageSize bytes (0: the store's default).
type Opener func(dir string, pageSize int) (*Handle, error)

// Handle is a vault an [Opener] opened.
type Handle struct {
	Vault *vault.Vault
	// DBFile is the database file, whose size the ingest report gives.
	DBFile string
	// ReadingPages returns the bytes of the database pages that hold the
	// readings (of every patient), for the ingest report's bytes per
	// reading.
	ReadingPages func() (int64, error)
	// Ledger opens the consent ledger in the same database; origin names
	// a new log.
	Ledger func(origin string) (*consent.Ledger, error)
	// Close closes the store.
	Close func() error
}

// point is a blood-glucose 4.0 point in the IEEE 1752 dialect, about 400
// bytes, as a CGM uploader sends it.
func point(buf []byte, uploader, i int, t time.Time) []byte {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:], uint64(uploader)<<40|uint64(i))
	binary.BigEndian.PutUint64(u[8:], uint64(t.UnixNano()))
	u[6], u[8] = (u[6]&0x0f)|0x40, (u[8]&0x3f)|0x80
	ts := t.UTC().Format(time.RFC3339)
	return fmt.Appendf(buf, `{"header":{"uuid":"%x-%x-%x-%x-%x","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"%s","modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"bench-cgm"}]},"body":{"blood_glucose":{"unit":"mg/dL","value":%d},"effective_time_frame":{"date_time":"%s"},"specimen_source":"interstitial fluid"}}`,
		u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], ts, 70+(i*7)%180, ts)
}

// smallPoint is a blood-glucose 4.0 point in the OMH dialect with nothing
// optional but the modality, about 300 bytes: the CGM point of issue 17's
// independent measurement.
func smallPoint(buf []byte, uploader, i int, t time.Time) []byte {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:], uint64(uploader)<<40|uint64(i))
	binary.BigEndian.PutUint64(u[8:], uint64(t.UnixNano()))
	u[6], u[8] = (u[6]&0x0f)|0x40, (u[8]&0x3f)|0x80
	ts := t.UTC().Format(time.RFC3339)
	return fmt.Appendf(buf, `{"header":{"uuid":"%x-%x-%x-%x-%x","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"%s","modality":"sensed"},"body":{"blood_glucose":{"unit":"mg/dL","value":%d},"effective_time_frame":{"date_time":"%s"}}}`,
		u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], ts, 70+(i*7)%180, ts)
}

// pointKinds are the points the ingest bench sends, by name: the ~300-byte
// CGM point and the ~444-byte IEEE 1752 one.
var pointKinds = []struct {
	name string
	make func(buf []byte, uploader, i int, t time.Time) []byte
}{
	{"cgm-300", smallPoint},
	{"ieee-444", point},
}

// pointKind returns the generator of the named points.
func pointKind(name string) (func(buf []byte, uploader, i int, t time.Time) []byte, error) {
	for _, k := range pointKinds {
		if k.name == name {
			return k.make, nil
		}
	}
	return nil, fmt.Errorf("unknown point kind %q", name)
}

// bodies builds one uploader's NDJSON request bodies of the named points.
func bodies(kind string, uploader, readings, batch int) (out [][]byte, pointBytes int) {
	point, err := pointKind(kind)
	if err != nil {
		panic(err) // the bench names only its own kinds
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < readings; i += batch {
		var b []byte
		for j := i; j < min(i+batch, readings); j++ {
			start := len(b)
			b = point(b, uploader, j, base.Add(time.Duration(j)*5*time.Minute))
			pointBytes += len(b) - start
			b = append(b, '\n')
		}
		out = append(out, b)
	}
	return out, pointBytes
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// joinSecs formats each of secs with format, space-separated.
func joinSecs(format string, secs []float64) string {
	var all []string
	for _, s := range secs {
		all = append(all, fmt.Sprintf(format, s))
	}
	return strings.Join(all, " ")
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

// post sends body as JSON with a bearer token and wants a 2xx answer.
func post(url, token string, body any) error {
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

// peakAnonRSS runs fn and samples this process's anonymous RSS (RssAnon)
// every 2 ms meanwhile; it returns the figure before (after handing freed
// memory back) and the peak, in kB.
func peakAnonRSS(fn func() error) (before, peak uint64, err error) {
	debug.FreeOSMemory()
	before = procstat.KB("RssAnon")
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
				p = max(p, procstat.KB("RssAnon"))
			}
		}
	}()
	err = fn()
	close(stop)
	return before, <-sampled, err
}
