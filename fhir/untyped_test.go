package fhir_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

// TestUntypedSchemaCode: a search by the OMH code of a schema the vault
// stores without a typed model is refused with schema_not_served (this API
// serves the typed schemas only; a search that silently matched nothing
// would say the patient has no such readings), whatever the spelling; the
// CapabilityStatement says so; a typed schema's code still reads.
func TestUntypedSchemaCode(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	q := "/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&code="
	for _, code := range []string{
		"https://w3id.org/openmhealth|omh:rr-interval:1.0",
		"ieee:food-entry:0.1",
		"https://w3id.org/openmhealth|omh:blood-glucose:2.0",
		"http://loinc.org|99504-3,ieee:sleep-stage-summary",
	} {
		st, _, b := f.get(t, q+code, tok)
		if st != 400 || outcomeCode(t, b) != "schema_not_served" {
			t.Errorf("code=%s: %d %s", code, st, b)
		}
	}
	for _, code := range []string{"https://w3id.org/openmhealth|omh:blood-glucose", "http://loinc.org|99504-3", "omh:no-such-schema:1.0"} {
		if st, _, b := f.get(t, q+code, tok); st != 200 {
			t.Errorf("code=%s: %d %s", code, st, b)
		}
	}
	st, _, b := f.get(t, "/metadata", "")
	if st != 200 || !strings.Contains(string(b), "schema_not_served") {
		t.Errorf("metadata: %d, no word of schema_not_served", st)
	}
}
