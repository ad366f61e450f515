package apple

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// The layout of export.zip: apple_health_export/ holding export.xml,
// export_cda.xml, electrocardiograms/ and workout-routes/ (as described in
// public write-ups of the export, e.g. tdda.info's "In Defence of XML").
func TestParseZip(t *testing.T) {
	small := ingesttest.ReadFile(t, "export_small.xml")
	cda := `<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>`
	tests := []struct {
		name  string
		files map[string]string
		first []string
		code  string // "" for success
	}{
		{"health app layout", map[string]string{
			"apple_health_export/export_cda.xml":                             cda,
			"apple_health_export/export.xml":                                 string(small),
			"apple_health_export/electrocardiograms/ecg_2024-03-14.csv":      "Name,Ada\n",
			"apple_health_export/workout-routes/route_2024-03-14_6.31pm.gpx": "<gpx/>",
		}, []string{"apple_health_export/export_cda.xml"}, ""},
		{"re-zipped under another folder name, with macOS metadata", map[string]string{
			"Export 2024/export.xml":            string(small),
			"Export 2024/export_cda.xml":        cda,
			"__MACOSX/Export 2024/._export.xml": "junk",
			"__MACOSX/export.xml":               "junk",
		}, nil, ""},
		{"export.xml at the top", map[string]string{"export.xml": string(small)}, nil, ""},
		{"no export.xml", map[string]string{"apple_health_export/export_cda.xml": cda}, nil, "unknown_format"},
		{"two exports", map[string]string{"a/export.xml": string(small), "b/export.xml": string(small)}, nil, "unknown_format"},
		{"the Health app's path wins over others", map[string]string{"a/export.xml": "junk", "apple_health_export/export.xml": string(small)}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := ingesttest.Zip(t, tc.files, tc.first...)
			c := &ingesttest.Sink{}
			err := ParseZip(bytes.NewReader(z), int64(len(z)), ingest.Options{}, c)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(c.Items) != 11 || len(c.Skips) != 11 {
					t.Errorf("%d readings, %d skips", len(c.Items), len(c.Skips))
				}
				return
			}
			var ie *ingest.Error
			if !errors.As(err, &ie) || ie.Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestParseZipOtherInput(t *testing.T) {
	small := ingesttest.ReadFile(t, "export_small.xml")
	// export.xml itself, handed to ParseZip.
	c := &ingesttest.Sink{}
	if err := ParseZip(bytes.NewReader(small), int64(len(small)), ingest.Options{}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.Items) != 11 {
		t.Errorf("%d readings", len(c.Items))
	}
	for name, in := range map[string][]byte{
		"garbage":       []byte("\x00\x01binary"),
		"empty":         nil,
		"truncated zip": ingesttest.Zip(t, map[string]string{"apple_health_export/export.xml": string(small)})[:100],
	} {
		err := ParseZip(bytes.NewReader(in), int64(len(in)), ingest.Options{}, &ingesttest.Sink{})
		var ie *ingest.Error
		if !errors.As(err, &ie) || (ie.Code != "unknown_format" && ie.Code != "bad_zip") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// TestParseZipDamaged: a byte flipped inside the compressed export.xml is
// a bad_zip (a flate or checksum failure), never a panic or a read error.
func TestParseZipDamaged(t *testing.T) {
	small := ingesttest.ReadFile(t, "export_small.xml")
	z := ingesttest.Zip(t, map[string]string{"apple_health_export/export.xml": string(small)})
	for _, off := range []int{200, 600, 1500, 2500} {
		bad := bytes.Clone(z)
		bad[off] ^= 0x55
		err := ParseZip(bytes.NewReader(bad), int64(len(bad)), ingest.Options{}, &ingesttest.Sink{})
		var ie *ingest.Error
		if !errors.As(err, &ie) {
			t.Errorf("offset %d: got %v (%T), want *ingest.Error", off, err, err)
			continue
		}
		t.Logf("offset %d: %s %s", off, ie.Code, ie.Message)
	}
}
