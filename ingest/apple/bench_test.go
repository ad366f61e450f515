package apple

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/internal/procstat"
)

// benchRecords makes about 50 MB of synthetic export.xml.
const benchRecords = 105_000

var benchData = sync.OnceValues(func() ([]byte, error) {
	var buf bytes.Buffer
	err := WriteSynthetic(&buf, benchRecords, 1)
	return buf.Bytes(), err
})

// BenchmarkParse reports MB/s and rows/s (readings plus skipped elements)
// on about 50 MB of synthetic export.xml.
func BenchmarkParse(b *testing.B) {
	data, err := benchData()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var c ingesttest.Count
	for b.Loop() {
		c = ingesttest.Count{}
		if err := Parse(bytes.NewReader(data), ingest.Options{}, &c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(c.Readings+c.Skips)/perOp, "rows/s")
	b.ReportMetric(float64(c.Readings)/perOp, "readings/s")
	// On a shared machine wall time varies with the load; the process's
	// CPU time per op (user and system, GC included) does much less.
	if cpu := (cpuTime() - cpu0).Seconds() / float64(b.N); cpu > 0 {
		b.ReportMetric(float64(len(data))/1e6/cpu, "MB/cpu-s")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseZip is BenchmarkParse through export.zip (deflate).
func BenchmarkParseZip(b *testing.B) {
	data, err := benchData()
	if err != nil {
		b.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, err := zw.Create(exportPath)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	z := zbuf.Bytes()
	b.SetBytes(int64(len(data))) // uncompressed bytes, to compare with Parse
	b.ResetTimer()
	cpu0 := cpuTime()
	var c ingesttest.Count
	for b.Loop() {
		c = ingesttest.Count{}
		if err := ParseZip(bytes.NewReader(z), int64(len(z)), ingest.Options{}, &c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(c.Readings+c.Skips)/(b.Elapsed().Seconds()/float64(b.N)), "rows/s")
	if cpu := (cpuTime() - cpu0).Seconds() / float64(b.N); cpu > 0 {
		b.ReportMetric(float64(len(data))/1e6/cpu, "MB/cpu-s")
	}
}

// BenchmarkParseLarge parses a multi-GB synthetic export.xml from disk and
// reports the growth of the process's peak resident memory while it runs.
// It runs only with APPLE_BENCH_GB set to the size in GB (1 for 1 GB);
// the file goes to APPLE_BENCH_DIR, or the benchmark's temporary directory.
//
//	APPLE_BENCH_GB=1 go test ./ingest/apple -run '^$' -bench BenchmarkParseLarge -benchtime 1x
func BenchmarkParseLarge(b *testing.B) {
	env := os.Getenv("APPLE_BENCH_GB")
	if env == "" {
		b.Skip("set APPLE_BENCH_GB=1 to parse a 1 GB synthetic export")
	}
	gb, err := strconv.ParseFloat(env, 64)
	if err != nil || gb <= 0 {
		b.Fatalf("APPLE_BENCH_GB=%q: want a size in GB", env)
	}
	dir := os.Getenv("APPLE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	name := filepath.Join(dir, "export.xml")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(name)
	records := int(gb * 1e9 / 482) // about 482 bytes a record
	if err := WriteSynthetic(f, records, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for b.Loop() {
		if err := resetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		before := procstat.KB("VmRSS")
		in, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		var c ingesttest.Count
		start, cpu0 := time.Now(), cpuTime()
		err = Parse(in, ingest.Options{}, &c)
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
		peak := procstat.KB("VmHWM")
		b.ReportMetric((float64(peak)-float64(before))/1024, "peakRSSgrowthMB")
		b.ReportMetric(float64(peak)/1024, "peakRSSMB")
		b.ReportMetric(float64(fi.Size())/1e6/cpu.Seconds(), "MB/cpu-s")
		b.Logf("%d bytes, %d readings, %d skips in %v (%.1f MB/s; %v CPU, %.1f MB/cpu-s); RSS before %d MB, peak %d MB",
			fi.Size(), c.Readings, c.Skips, elapsed, float64(fi.Size())/elapsed.Seconds()/1e6, cpu, float64(fi.Size())/1e6/cpu.Seconds(), before/1024, peak/1024)
	}
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
