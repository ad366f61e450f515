package fhirobs

import (
	"bytes"
	"io"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
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

func BenchmarkParseBundle(b *testing.B) {
	const n = 10000
	ingesttest.BenchParse(b, Parse, benchInput(b, n, false), ingest.Options{}, n)
}

func BenchmarkParseNDJSON(b *testing.B) {
	const n = 10000
	ingesttest.BenchParse(b, Parse, benchInput(b, n, true), ingest.Options{}, n)
}
