package nightscout

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// FuzzNightscout: Parse never panics, every error is a complete
// *ingest.Error, and every point round-trips through omh.Parse to the same
// bytes.
//
//	go test ./ingest/nightscout -run '^$' -fuzz '^FuzzNightscout$' -fuzztime 60s
func FuzzNightscout(f *testing.F) {
	f.Add(readFile(f, "entries.json"))
	f.Add(readFile(f, "entries.ndjson"))
	f.Add([]byte(`{"_id":"a1","type":"sgv","sgv":120,"date":1704067200000,"utcOffset":-300,"device":"x\u0000"}`))
	f.Add([]byte(`[{"type":"mbg","mbg":"5.5e1","dateString":"0001-01-01T00:00:00.5-0030"},{"type":"cal"}]`))
	loc := newYork(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &collect{}
		err := Parse(bytes.NewReader(in), ingest.Options{Location: loc}, c)
		if err != nil {
			var e *ingest.Error
			if !errors.As(err, &e) || e.Code == "" || e.Message == "" {
				t.Fatalf("error %T %v is not a complete *ingest.Error", err, err)
			}
			return
		}
		for _, it := range c.items {
			out := it.Point.AppendJSON(nil)
			p2, err := omh.Parse(out)
			if err != nil {
				t.Fatalf("%v: canonical point does not parse: %v\n%s", it.Pos, err, out)
			}
			if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) {
				t.Fatalf("%v: not idempotent:\n%s\n%s", it.Pos, out, out2)
			}
		}
		for _, s := range c.skips {
			if s.Type != skipType(s.Type) && s.Type != typeNone {
				t.Fatalf("skip type %q not chosen by the parser", s.Type)
			}
		}
	})
}
