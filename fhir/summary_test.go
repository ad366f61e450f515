package fhir_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/jupyterhealth/vault/oauth"
)

// TestCGMSummaryReadBack: each Observation of the CGM summary can be
// read back by its id: the same resource (computed again from the same
// readings), valid R4, decided by the ledger and logged as one access
// like any read; an id of a measure that does not exist, of a period
// longer than a year or of a malformed shape is 404, another patient's
// (no grant) 403.
func TestCGMSummaryReadBack(t *testing.T) {
	f := newFixture(t, 2)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	pt := oauth.FHIRID(f.patient.ID)
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	st, _, b := f.get(t, "/Observation/$cgm-summary?patient="+pt, tok)
	if st != 200 {
		t.Fatal(st, string(b))
	}
	bd := decodeBundle(t, b)
	if len(bd.Entry) != 5 {
		t.Fatalf("%d summary Observations, want 5", len(bd.Entry))
	}
	for _, e := range bd.Entry {
		if !strings.HasPrefix(e.FullURL, f.base+"/Observation/cgm-") {
			t.Fatalf("fullUrl %s", e.FullURL)
		}
		before := len(mustAccesses(t, f.ledger, f.patient.ID))
		st, _, got := f.get(t, e.FullURL, tok)
		if st != 200 {
			t.Fatalf("%s: %d %s", e.FullURL, st, got)
		}
		var want, have bytes.Buffer
		if err := json.Compact(&want, e.Resource); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&have, got); err != nil {
			t.Fatal(err)
		}
		if want.String() != have.String() {
			t.Errorf("%s read back differs:\n got %s\nwant %s", e.FullURL, have.String(), want.String())
		}
		if _, err := u.UnmarshalR4(got); err != nil {
			t.Errorf("%s: not valid R4: %v", e.FullURL, err)
		}
		acc := mustAccesses(t, f.ledger, f.patient.ID)
		if len(acc) != before+1 || acc[0].Format != "fhir" || acc[0].End == nil || acc[0].Records != 2*288 {
			t.Fatalf("%s: access log %d → %d, newest %+v", e.FullURL, before, len(acc), acc[0])
		}
	}
	id := strings.TrimPrefix(bd.Entry[0].FullURL, f.base+"/Observation/") // cgm-<patient>-<first>-<last>-tir
	parts := strings.Split(id, "-")
	for _, c := range []struct {
		name, id string
		status   int
		reason   string
	}{
		{"unknown measure", strings.Join(append(parts[:4:4], "median"), "-"), 404, "not_found"},
		{"more than a year", strings.Join([]string{"cgm", parts[1], "20200101", "20260101", "tir"}, "-"), 404, "not_found"},
		{"end before start", strings.Join([]string{"cgm", parts[1], parts[3], "20000101", "tir"}, "-"), 404, "not_found"},
		{"not a date", strings.Join([]string{"cgm", parts[1], "2026x101", parts[3], "tir"}, "-"), 404, "not_found"},
		{"another patient", strings.Join([]string{"cgm", oauth.FHIRID(f.other.ID)[3:], parts[2], parts[3], "tir"}, "-"), 403, "no_grant"},
	} {
		st, _, b := f.get(t, "/Observation/"+c.id, tok)
		if st != c.status || outcomeCode(t, b) != c.reason {
			t.Errorf("%s (%s): %d %s, want %d %s", c.name, c.id, st, b, c.status, c.reason)
		}
	}
}
