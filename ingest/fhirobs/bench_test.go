package fhirobs

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
)

// benchInput is n heart rate entries, as a Bundle or as NDJSON.
func benchInput(b *testing.B, n int, ndjson bool) []byte {
	b.Helper()
	data, err := io.ReadAll(&bundleReader{n: n})
	if err != nil {
		b.Fatal(err)
	}
	if !ndjson {
		return data
	}
	// Take each entry's resource onto its own line.
	var out []byte
	for _, line := range bytes.Split(data, []byte(",\n")) {
		i := bytes.Index(line, []byte(`"resource":`))
		res := line[i+len(`"resource":`):]
		res = bytes.TrimSuffix(res, []byte("]}"))
		res = res[:len(res)-1] // the entry's closing brace
		out = append(out, res...)
		out = append(out, '\n')
	}
	return out
}

func benchParse(b *testing.B, data []byte, rows int) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var c countSink
	start := time.Now()
	for b.Loop() {
		c.n = 0
		if err := Parse(bytes.NewReader(data), ingest.Options{}, &c); err != nil {
			b.Fatal(err)
		}
		if c.n != rows {
			b.Fatalf("%d readings, want %d", c.n, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

func BenchmarkParseBundle(b *testing.B) {
	const n = 10000
	benchParse(b, benchInput(b, n, false), n)
}

func BenchmarkParseNDJSON(b *testing.B) {
	const n = 10000
	benchParse(b, benchInput(b, n, true), n)
}
