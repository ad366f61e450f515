package jhe_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/jupyterhealth/vault/oauth"
)

// BenchmarkPatientYear: a patient-year of CGM (105,120 readings) pulled
// through /jhe/FHIR/R5/Observation with _count=1000 by a client on
// loopback, as jupyterhealth-client pages it (absolute next links), each
// Observation's base64 OMH point decoded and parsed. Target: 3 s.
func BenchmarkPatientYear(b *testing.B) {
	f := newFixture(b, 365)
	f.grant(b, f.patient.ID, []string{"omh:blood-glucose"}, f.start, f.start.AddDate(1, 0, 0), true)
	first := "/FHIR/R5/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&code=" + bgCode + "&_count=1000"
	b.ResetTimer()
	for b.Loop() {
		next, n := first, 0
		for next != "" {
			st, body := f.get(b, next, f.vc)
			if st != 200 {
				b.Fatal(st, string(body))
			}
			var obs []observation
			obs, next = searchset(b, body)
			for _, o := range obs {
				raw, err := base64.StdEncoding.DecodeString(o.ValueAttachment.Data)
				if err != nil {
					b.Fatal(err)
				}
				var point map[string]any
				if err := json.Unmarshal(raw, &point); err != nil {
					b.Fatal(err)
				}
			}
			n += len(obs)
		}
		if n != 105120 {
			b.Fatalf("%d readings, want 105120", n)
		}
	}
}
