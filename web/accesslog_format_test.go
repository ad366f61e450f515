package web

import (
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
)

// TestAccessViewFormats: the access log names where each read went: a
// read through the FHIR API or the JupyterHealth Exchange–compatible API
// is "sent" once both entries are in, never "exported".
func TestAccessViewFormats(t *testing.T) {
	end := int64(9)
	for _, tc := range []struct {
		format, want, status string
		end                  *int64
	}{
		{"fhir", "read through the FHIR API", "sent", &end},
		{"jhe", "read through the JupyterHealth Exchange–compatible API", "sent", &end},
		{"jhe", "read through the JupyterHealth Exchange–compatible API", "not sent", nil},
		{"report", "viewed the report in the browser", "shown", &end},
		{"omh", "exported as OMH", "complete", &end},
	} {
		v := accessViewOf(consent.AccessState{Format: tc.format, End: tc.end, Records: 3, Time: time.Now()}, "Dr. Rivera", time.UTC)
		if v.Format != tc.want || v.Status != tc.status {
			t.Errorf("%s (end %v): %q %q, want %q %q", tc.format, tc.end != nil, v.Format, v.Status, tc.want, tc.status)
		}
	}
}
