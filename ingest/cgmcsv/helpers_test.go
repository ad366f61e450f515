package cgmcsv

import (
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/omh"
)

// sample is a test file and what parsing it gives.
type sample struct {
	file    string
	loc     *time.Location // the patient's zone; nil is UTC
	points  []want
	skips   []skipWant
	secrets []string // names and serial numbers no skip may repeat
}

// checkSample parses a sample file and checks its points (which must
// round-trip), its skips, that the sink saw every row in file order, and
// that no skip repeats a secret.
func checkSample(t *testing.T, parse ingest.Parser, s sample) {
	t.Helper()
	c := ingesttest.MustParse(t, parse, ingesttest.ReadFile(t, s.file), ingest.Options{Location: s.loc})
	checkPoints(t, c.Items, s.points)
	checkSkips(t, c.Skips, s.skips)
	for i := 1; i < len(c.Order); i++ {
		if c.Order[i] <= c.Order[i-1] {
			t.Fatalf("out of order: %v", c.Order)
		}
	}
	ingesttest.NoLeak(t, c.Skips, nil, s.secrets...)
	ingesttest.CheckRoundTrip(t, c.Items)
}

// want is what a test expects of one point.
type want struct {
	line     int
	at       string // the date_time text
	value    float64
	unit     string
	specimen string
	modality string
	sheets   string // "type=ref;type=ref"
}

func checkPoints(t *testing.T, items []ingest.Item, wants []want) {
	t.Helper()
	ingesttest.CheckLen(t, items, len(wants))
	for i, w := range wants {
		it := items[i]
		p := it.Point
		bg, ok := p.Body.(*omh.BloodGlucose)
		if !ok {
			t.Fatalf("point %d: body %T", i, p.Body)
		}
		var sheets []string
		for _, d := range p.Header().ExternalDatasheets {
			sheets = append(sheets, d.Type+"="+d.Reference)
		}
		got := want{line: it.Pos.Line, at: bg.EffectiveTimeFrame.DateTime.Text, value: bg.BloodGlucose.Value,
			unit: bg.BloodGlucose.Unit, specimen: bg.SpecimenSource, modality: p.Header().Modality, sheets: strings.Join(sheets, ";")}
		if got != w {
			t.Errorf("point %d:\n got %+v\nwant %+v", i, got, w)
		}
		if p.UUID != "" || p.SourceID != "" {
			t.Errorf("point %d has an id (%q, %q); CSV rows have none", i, p.UUID, p.SourceID)
		}
		if p.Schema.String() != "omh:blood-glucose:4.0" {
			t.Errorf("point %d: schema %s", i, p.Schema)
		}
		if at, err := time.Parse(time.RFC3339Nano, w.at); err != nil || !p.Time.Equal(at) {
			t.Errorf("point %d: time %v, want %s (%v)", i, p.Time, w.at, err)
		}
	}
}

// skipWant is an expected skip: line, type and a part of the reason.
type skipWant struct {
	line   int
	typ    string
	reason string
}

func checkSkips(t *testing.T, skips []ingest.Skip, wants []skipWant) {
	t.Helper()
	if len(skips) != len(wants) {
		for _, s := range skips {
			t.Logf("%+v", s)
		}
		t.Fatalf("got %d skips, want %d", len(skips), len(wants))
	}
	for i, w := range wants {
		s := skips[i]
		if s.Pos.Line != w.line || s.Type != w.typ || !strings.Contains(s.Reason, w.reason) {
			t.Errorf("skip %d: got %+v, want line %d type %q reason containing %q", i, s, w.line, w.typ, w.reason)
		}
	}
}

// utf16le encodes s as UTF-16LE with a byte order mark.
func utf16le(s string) []byte {
	b := []byte{0xFF, 0xFE}
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
			b = append(b, byte(hi), byte(hi>>8), byte(lo), byte(lo>>8))
			continue
		}
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}
