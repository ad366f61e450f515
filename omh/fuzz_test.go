package omh

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics; every error is an *Error; whatever it
// accepts it writes as valid JSON that parses back to the same bytes.
//
//	go test ./omh -run '^$' -fuzz FuzzParse -fuzztime 3m
func FuzzParse(f *testing.F) {
	for _, in := range roundTripInputs(f) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Message == "" {
				t.Fatalf("error %T %v is not a complete *Error", err, err)
			}
			return
		}
		out := p.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("canonical output is not valid JSON:\n%s", out)
		}
		p2, err := Parse(out)
		if err != nil {
			t.Fatalf("canonical output does not parse: %v\nin:  %q\nout: %s", err, in, out)
		}
		if out2 := p2.AppendJSON(nil); !bytes.Equal(out, out2) {
			t.Fatalf("not idempotent:\nin:   %q\nout:  %s\nout2: %s", in, out, out2)
		}
		if !p2.Time.Equal(p.Time) || p2.Schema != p.Schema || p2.UUID != p.UUID || p2.SourceID != p.SourceID {
			t.Fatalf("re-parse changed the point:\n%+v\n%+v", p, p2)
		}
	})
}

// FuzzAgreement explores the schema agreement beyond the fixed corpus: the
// fuzzer picks a seed, the generator builds a valid point from it and
// applies up to four mutations, and Parse must agree with the official
// schemas (when they are present) and round-trip what it accepts.
//
//	go test ./omh -run '^$' -fuzz FuzzAgreement -fuzztime 1m
func FuzzAgreement(f *testing.F) {
	for i := range uint64(40) {
		f.Add(i, uint8(i%5))
	}
	var o *officialSchemas
	if st, err := os.Stat(filepath.Join(sharedDirOrEmpty(), "schemas", "omh")); err == nil && st.IsDir() {
		o = newOfficialSchemas(f)
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		g := newGen(seed)
		m := &models[seed%uint64(len(models))]
		body := g.validBody(m)
		id := m.id
		var lg *legacy
		if len(m.legacy) > 0 && g.maybe(0.3) {
			l := pick(g, m.legacy)
			lg = &l
			id.Version = l.version
			body = relabel(body, l)
		}
		for range n % 5 {
			g.mutate(body)
		}
		gp := genPoint{schema: id, header: g.header(id, g.instant()), body: body}
		p, err := Parse(gp.JSON())
		if err == nil {
			out := p.AppendJSON(nil)
			p2, err2 := Parse(out)
			if err2 != nil || !bytes.Equal(p2.AppendJSON(nil), out) {
				t.Fatalf("round trip: %v\n%s", err2, out)
			}
		}
		if o == nil {
			return
		}
		schemaErr := validate(o.body(t, id), gp.bodyJSON())
		if schemaErr == nil && lg != nil {
			cb, _ := json.Marshal(canonicalBody(body, lg))
			schemaErr = validate(o.body(t, m.id), cb)
		}
		if schemaErr == nil && deliberate(m, body, err) {
			return
		}
		if (schemaErr == nil) != (err == nil) {
			t.Fatalf("%s: schema says %v, Parse says %v\n%s", id, firstLine(schemaErr), err, gp.bodyJSON())
		}
	})
}
