package formats_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// TestSniff recognises each format's sample files from their first 8 KiB,
// and recognises nothing in files of no format.
func TestSniff(t *testing.T) {
	r := formats.New()
	for file, want := range map[string]string{
		"../apple/testdata/export_small.xml":        "apple-health",
		"../cgmcsv/testdata/dexcom_mgdl.csv":        "dexcom-clarity",
		"../cgmcsv/testdata/dexcom_mmol.csv":        "dexcom-clarity",
		"../cgmcsv/testdata/libre_us.csv":           "libreview",
		"../cgmcsv/testdata/libre_de.csv":           "libreview",
		"../nightscout/testdata/entries.json":       "nightscout",
		"../fhirobs/testdata/vitals-searchset.json": "fhir",
		"../fhirobs/testdata/bulk.ndjson":           "fhir",
		"../fhirobs/testdata/jhe-searchset.json":    "fhir",
	} {
		b, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			t.Fatal(err)
		}
		f, ok := r.Sniff(b[:min(len(b), 8<<10)])
		if !ok || f.Name != want {
			t.Errorf("%s: sniffed %q (%v), want %q", file, f.Name, ok, want)
		}
		if g, ok := r.Lookup(want); !ok || g.Name != want {
			t.Errorf("Lookup(%q) = %v", want, ok)
		}
	}
	omhPoint := `{"header":{"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"}},"body":{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"date_time":"2025-01-01T00:00:00Z"}}}`
	for _, in := range []string{omhPoint, "[" + omhPoint + "]", omhPoint + "\n" + omhPoint} {
		if f, ok := r.Sniff([]byte(in)); !ok || f.Name != "omh" {
			t.Errorf("OMH points sniffed as %q (%v)", f.Name, ok)
		}
	}
	// An export.zip is recognised too.
	x, err := os.ReadFile(filepath.FromSlash("../apple/testdata/export_small.xml"))
	if err != nil {
		t.Fatal(err)
	}
	zb := ingesttest.Zip(t, map[string]string{"apple_health_export/export.xml": string(x)})
	if f, ok := r.Sniff(zb[:min(len(zb), 8<<10)]); !ok || f.Name != "apple-health" || f.ParseAt == nil {
		t.Errorf("export.zip sniffed as %q (%v)", f.Name, ok)
	}
	for _, junk := range []string{"", "hello", "a,b,c\n1,2,3\n", `{"x":1}`, "[1,2,3]"} {
		if f, ok := r.Sniff([]byte(junk)); ok {
			t.Errorf("%q sniffed as %s", junk, f.Name)
		}
	}
}
