package api_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/omh"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkExport exports one patient-year of CGM (105,120 readings) as
// age-encrypted OMH NDJSON over HTTP on loopback, and reports beside it a
// baseline from the same run: a raw bbolt scan of the same canonical bytes
// plus age encryption, with no consent check or per-record decryption.
func BenchmarkExport(b *testing.B) {
	// The export quotas are lifted: b.N exports go with one token, on one grant.
	f := newFixture(b, api.Config{KeyActivationDelay: -1, ExportsPerMinute: 1 << 20, ExportBurstPerGrant: 1 << 30})
	const year = 105120
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var canon [][]byte
	for i := 0; i < year; i += 5000 {
		var lines []string
		for j := i; j < min(i+5000, year); j++ {
			ts := base.Add(time.Duration(j) * 5 * time.Minute).Format(time.RFC3339)
			lines = append(lines, fmt.Sprintf(`{"header":{"uuid":"6a1e0d52-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, j, ts, 70+j%150, ts))
		}
		for _, l := range lines {
			p, err := omh.Parse([]byte(l))
			if err != nil {
				b.Fatal(err)
			}
			canon = append(canon, p.AppendJSON(nil))
		}
		req, err := http.NewRequest("POST", f.srv.URL+"/api/v1/readings", strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.device)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			b.Fatalf("ingest: %v %v", err, resp.Status)
		}
		resp.Body.Close()
	}
	id := x25519(b)
	kb, _ := json.Marshal(api.KeyRequest{Label: "hub", Recipient: id.Recipient().String()})
	doB(b, f, "POST", "/api/v1/clinician/keys", f.clin, string(kb))
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	doB(b, f, "POST", "/api/v1/grants", f.ptok, string(gb))

	// Baseline: the same canonical bytes in a raw bbolt file, scanned and
	// age-encrypted.
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("r"))
		if err != nil {
			return err
		}
		for i, c := range canon {
			if err := bk.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	baseline := func() time.Duration {
		start := time.Now()
		w, _ := age.Encrypt(io.Discard, id.Recipient())
		db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("r")).ForEach(func(_, v []byte) error {
				w.Write(v)
				w.Write([]byte{'\n'})
				return nil
			})
		})
		w.Close()
		return time.Since(start)
	}

	url := f.srv.URL + "/api/v1/patients/" + f.patient.ID + "/export?schema=omh:blood-glucose:4.0"
	var vaultTime, baseTime time.Duration
	var vaultCPU, baseCPU float64
	var peak uint64
	b.ResetTimer()
	for b.Loop() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.HeapInuse
		start, cpu0 := time.Now(), cpuSeconds()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+f.clin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("export: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		vaultTime += time.Since(start)
		cpu1 := cpuSeconds()
		vaultCPU += cpu1 - cpu0
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > before && ms.HeapInuse-before > peak {
			peak = ms.HeapInuse - before
		}
		baseTime += baseline()
		baseCPU += cpuSeconds() - cpu1
	}
	n := float64(b.N)
	b.ReportMetric(vaultTime.Seconds()/n, "export-s")
	b.ReportMetric(baseTime.Seconds()/n, "baseline-s")
	b.ReportMetric(baseTime.Seconds()/vaultTime.Seconds(), "ratio")
	// CPU seconds of the process (server and client) per export and per
	// baseline: on a loaded machine these say more than the wall times.
	b.ReportMetric(vaultCPU/n, "export-cpu-s")
	b.ReportMetric(baseCPU/n, "baseline-cpu-s")
}

// cpuSeconds is the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func doB(b *testing.B, f *fixture, method, path, token, body string) {
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		b.Fatalf("%s %s: %v %v", method, path, err, resp.Status)
	}
	resp.Body.Close()
}

// BenchmarkSmallExports: one-day exports (288 CGM readings each) through
// the handler over loopback, from parallel clients (run it with -cpu 2
// and, for more clients than cores, -test.parallelism or the default
// GOMAXPROCS ones), and reports exports per second. Each export appends
// its access-start and access-end to the real bbolt ledger and carries a
// checkpoint covering its access-start, so this is what a consented read
// costs the ledger.
func BenchmarkSmallExports(b *testing.B) {
	f := newFixture(b, api.Config{KeyActivationDelay: -1, ExportsPerMinute: 1 << 30, ExportBurstPerGrant: 1 << 30})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for j := range 288 {
		ts := base.Add(time.Duration(j) * 5 * time.Minute).Format(time.RFC3339)
		lines = append(lines, fmt.Sprintf(`{"header":{"uuid":"6a1e0d52-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, j, ts, 70+j%150, ts))
	}
	doB(b, f, "POST", "/api/v1/readings", f.device, strings.Join(lines, "\n"))
	id := x25519(b)
	kb, _ := json.Marshal(api.KeyRequest{Label: "hub", Recipient: id.Recipient().String()})
	doB(b, f, "POST", "/api/v1/clinician/keys", f.clin, string(kb))
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	doB(b, f, "POST", "/api/v1/grants", f.ptok, string(gb))
	url := f.srv.URL + "/api/v1/patients/" + f.patient.ID + "/export?schema=omh:blood-glucose:4.0&from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(8) // 8 clients per GOMAXPROCS
	start, cpu0 := time.Now(), cpuSeconds()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+f.clin)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("export: %d %v", resp.StatusCode, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exports/s")
	// CPU per export, server and clients together (same process).
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N)*1e6, "cpu-µs/export")
}
