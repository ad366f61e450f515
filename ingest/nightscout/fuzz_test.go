package nightscout

import (
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// FuzzNightscout: Parse never panics, every error is a complete
// *ingest.Error, and every point round-trips through omh.Parse to the same
// bytes.
//
//	go test ./ingest/nightscout -run '^$' -fuzz '^FuzzNightscout$' -fuzztime 60s
func FuzzNightscout(f *testing.F) {
	f.Add(ingesttest.ReadFile(f, "entries.json"))
	f.Add(ingesttest.ReadFile(f, "entries.ndjson"))
	f.Add([]byte(`{"_id":"a1","type":"sgv","sgv":120,"date":1704067200000,"utcOffset":-300,"device":"x\u0000"}`))
	f.Add([]byte(`[{"type":"mbg","mbg":"5.5e1","dateString":"0001-01-01T00:00:00.5-0030"},{"type":"cal"}]`))
	loc := ingesttest.NewYork(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := ingesttest.Fuzz(t, Parse, in, ingest.Options{Location: loc})
		if c == nil {
			return
		}
		for _, s := range c.Skips {
			if s.Type != skipType(s.Type) && s.Type != typeNone {
				t.Fatalf("skip type %q not chosen by the parser", s.Type)
			}
		}
	})
}
