package fhirobs

import (
	"bytes"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// FuzzParse: Parse keeps what every parser promises (ingesttest.Fuzz).
func FuzzParse(f *testing.F) {
	for _, data := range samples(f) {
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
	loc := ingesttest.NewYork(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ingesttest.Fuzz(t, Parse, data, ingest.Options{Location: loc})
	})
}
