package nightscout

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// benchEntries is an /api/v1/entries.json array of n sgv entries as the
// server returns them.
func benchEntries(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		at := t.Add(time.Duration(i) * 5 * time.Minute)
		fmt.Fprintf(&b, `{"_id":"65a5171a2b0c6d%010x","device":"xDrip-DexcomG6","date":%d,"dateString":"%s","sgv":%d,"delta":1.5,"direction":"Flat","type":"sgv","filtered":112000,"unfiltered":112000,"rssi":100,"noise":1,"sysTime":"%s","utcOffset":-300}`,
			i, at.UnixMilli(), at.Format("2006-01-02T15:04:05.000Z"), 70+i%200, at.Format("2006-01-02T15:04:05.000Z"))
	}
	b.WriteByte(']')
	return b.Bytes()
}

func BenchmarkParseNightscout(b *testing.B) {
	const n = 20000
	ingesttest.BenchParse(b, Parse, benchEntries(n), ingest.Options{}, n)
}
