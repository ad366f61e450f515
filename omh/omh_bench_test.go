// Benchmarks over the canonical form of the six supported official
// examples (about 430 bytes each), round robin:
//
//	go test ./omh -run '^$' -bench . -benchmem -count 5
//
// Figures (median of 5; AMD EPYC, 2 vCPUs, Go 1.26.8, linux/amd64;
// the machine was shared, so expect some noise):
//
//	BenchmarkParse-2           1917 ns/op   225 MB/s   848 B/op   4 allocs/op
//	BenchmarkAppendJSON-2       240 ns/op                0 B/op   0 allocs/op
//	BenchmarkParseAppend-2     2335 ns/op              848 B/op   4 allocs/op
//	BenchmarkParseParallel-2   1303 ns/op              848 B/op   4 allocs/op  (2 goroutines, wall time per op)
//
// Parse is about a quarter jsontext's strict validation, a fifth fastjson's
// tree, and the rest the model, with four allocations: the Point (with the
// decoder state), its strings' arena, the body, the datasheet slice.
// Parse + AppendJSON stays under the 3 µs per point the ingest path allows
// (150,000 readings/s over HTTP on 2 cores).

package omh

import (
	"os"
	"path/filepath"
	"testing"
)

// benchPoints returns the canonical form of every supported example.
func benchPoints(b *testing.B) [][]byte {
	files, _ := filepath.Glob(filepath.Join(sharedDirOrEmpty(), "schemas", "examples", "*.json"))
	var pts [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if p, err := Parse(raw); err == nil {
			pts = append(pts, p.AppendJSON(nil))
		}
	}
	if len(pts) == 0 {
		b.Skip("examples not found; set VAULT_SHARED_DIR")
	}
	return pts
}

func BenchmarkParse(b *testing.B) {
	pts := benchPoints(b)
	var n int64
	for _, p := range pts {
		n += int64(len(p))
	}
	b.SetBytes(n / int64(len(pts)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Parse(pts[i%len(pts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	var ps []*Point
	for _, raw := range benchPoints(b) {
		p, _ := Parse(raw)
		ps = append(ps, p)
	}
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = ps[i%len(ps)].AppendJSON(buf[:0])
		i++
	}
}

// BenchmarkParseAppend is the ingest hot path: parse a point, write its
// canonical form.
func BenchmarkParseAppend(b *testing.B) {
	pts := benchPoints(b)
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, err := Parse(pts[i%len(pts)])
		if err != nil {
			b.Fatal(err)
		}
		buf = p.AppendJSON(buf[:0])
		i++
	}
}

// BenchmarkParseParallel shows Parse scaling over GOMAXPROCS cores.
func BenchmarkParseParallel(b *testing.B) {
	pts := benchPoints(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := Parse(pts[i%len(pts)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
