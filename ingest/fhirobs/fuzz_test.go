package fhirobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// fuzzSink checks every point as it arrives: its canonical bytes must
// parse back to the same bytes.
type fuzzSink struct{ t *testing.T }

func (s fuzzSink) Reading(it ingest.Item) error {
	b := it.Point.AppendJSON(nil)
	p, err := omh.Parse(b)
	if err != nil {
		s.t.Fatalf("a reading's canonical JSON does not parse: %v\n%s", err, b)
	}
	if b2 := p.AppendJSON(nil); !bytes.Equal(b, b2) {
		s.t.Fatalf("a reading's canonical JSON changes when parsed again:\n%s\n%s", b, b2)
	}
	return nil
}

func (fuzzSink) Skipped(s ingest.Skip) error { return nil }

// FuzzParse: Parse never panics, and returns an *ingest.Error or points
// omh accepts unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.*json")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		// Each NDJSON line and each Bundle entry on its own, too.
		for _, line := range bytes.Split(data, []byte("\n")) {
			if bytes.HasPrefix(line, []byte(`{"resourceType":"Observation"`)) {
				f.Add(line)
			}
		}
	}
	hr := loinc("8867-4") + "," + ucum("72", "/min")
	for _, s := range []string{
		obs(hr + "," + at1),
		obs(hr + `,"effectiveDateTime":"2024-05-01T08:00:00"`),
		obs(loinc("55423-8") + "," + ucum("100", "{steps}") + `,"effectivePeriod":{"start":"2024-05-01","end":"2024-05-07"}`),
		obs(loinc("85354-9") + "," + at1 + `,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg"}}]`),
		obs(`"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"valueAttachment":{"data":"` +
			b64(`{"blood_glucose":{"value":120,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2024-05-01T08:00:00Z"}}`) + `"}`),
		`{"resourceType":"Bundle","entry":[{"resource":` + obs(hr+","+at1) + `}]}`,
	} {
		f.Add([]byte(s))
	}
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Parse(bytes.NewReader(data), ingest.Options{Location: loc}, fuzzSink{t})
		var ie *ingest.Error
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("Parse returned %T %v, want an *ingest.Error", err, err)
		}
		if ie != nil && (ie.Code == "" || ie.Message == "" || strings.ContainsRune(ie.Message, '\n')) {
			t.Fatalf("error without code or message: %+v", ie)
		}
	})
}
