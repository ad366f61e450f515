package fhir_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// TestResourcesValidate: every resource the API returns (the
// CapabilityStatement, Patient, Practitioner, Observation, searchset
// Bundles of each, Consent, the CGM summary, an OperationOutcome)
// validates as R4 with google/fhir's validating unmarshaller.
func TestResourcesValidate(t *testing.T) {
	f := newFixture(t, 2)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose", "omh:heart-rate"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "openid fhirUser user/*.rs", oauth.Approval{})
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	pt := oauth.FHIRID(f.patient.ID)
	st, _, b := f.get(t, "/Observation?patient="+pt+"&_count=3", tok)
	if st != 200 {
		t.Fatalf("search: %d %s", st, b)
	}
	obs := decodeBundle(t, b)
	if len(obs.Entry) != 3 {
		t.Fatalf("want 3 entries, got %d", len(obs.Entry))
	}
	for _, path := range []string{
		"/metadata",
		"/Patient/" + pt,
		"/Patient",
		"/Practitioner/" + oauth.FHIRID(f.clin.ID),
		"/Observation?patient=" + pt + "&_count=3",
		strings.TrimPrefix(obs.Entry[0].FullURL, f.base),
		"/Consent?patient=" + pt,
		"/Observation/$cgm-summary?patient=" + pt,
		"/Observation?patient=" + oauth.FHIRID(f.other.ID), // an OperationOutcome
	} {
		st, hdr, b := f.get(t, path, tok)
		if !strings.HasPrefix(hdr.Get("Content-Type"), "application/fhir+json") {
			t.Errorf("%s: content type %q", path, hdr.Get("Content-Type"))
		}
		if _, err := u.UnmarshalR4(b); err != nil {
			t.Errorf("%s (%d): not valid R4: %v\n%.600s", path, st, err, b)
		}
	}
}

// TestScopesGrantsMatrix: what a token reads is its scopes and the
// ledger together; anything else is 403 (401 for a token not active).
func TestScopesGrantsMatrix(t *testing.T) {
	f := newFixture(t, 2)
	pt, other := oauth.FHIRID(f.patient.ID), oauth.FHIRID(f.other.ID)
	mid := f.start.Add(24 * time.Hour)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, mid, true)
	f.grant(t, f.patient.ID, f.otherClin.ID, []string{"omh:blood-glucose"}, time.Time{}, false)
	clin, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	clinNoFHIR, _ := f.token(t, f.otherClin.ID, "user/*.rs", oauth.Approval{})
	clinHROnly, _ := f.token(t, f.clin.ID, "user/Observation.rs?code=http://loinc.org|8867-4", oauth.Approval{})
	app, _ := f.token(t, f.patient.ID, "patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:heart-rate"}})
	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string // the OperationOutcome's code, or "" for a 200
	}{
		{"user/ reads the granted schema", clin, "/Observation?patient=" + pt + "&code=https://w3id.org/openmhealth|omh:blood-glucose&_count=1", 200, ""},
		{"user/: a schema outside the grant", clin, "/Observation?patient=" + pt + "&code=http://loinc.org|8867-4", 403, "schema_not_granted"},
		{"user/: a window wholly outside the grant", clin, "/Observation?patient=" + pt + "&date=lt" + mid.Add(-time.Hour).Format(time.RFC3339), 403, "window_not_granted"},
		{"user/: the grant does not allow FHIR", clinNoFHIR, "/Observation?patient=" + pt, 403, "fhir_not_granted"},
		{"user/: scope narrower than the grant", clinHROnly, "/Observation?patient=" + pt + "&code=https://w3id.org/openmhealth|omh:blood-glucose", 403, "scope"},
		{"user/: another patient", clin, "/Observation?patient=" + other, 403, "no_grant"},
		{"user/: Patient of another patient", clin, "/Patient/" + other, 403, "no_grant"},
		{"patient/ reads her app grant's schema", app, "/Observation?code=http://loinc.org|8867-4&_count=1", 200, ""},
		{"patient/: a schema outside the app grant", app, "/Observation?code=https://w3id.org/openmhealth|omh:blood-glucose", 403, "scope"},
		{"patient/: another patient's id", app, "/Observation?patient=" + other, 403, "other_patient"},
		{"patient/: Patient needs its scope", app, "/Patient/" + pt, 403, "scope"},
		{"patient/: Consent is its own app grant only", app, "/Consent?patient=" + pt, 200, ""},
		{"patient/: another patient's Consent", app, "/Consent?patient=" + other, 403, "other_patient"},
		{"no token", "", "/Observation?patient=" + pt, 401, "no_token"},
		{"a made-up token", "vo_nothing", "/Observation?patient=" + pt, 401, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, hdr, b := f.get(t, tc.path, tc.token)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %.400s", st, tc.status, b)
			}
			if tc.code == "" {
				if n := len(decodeBundle(t, b).Entry); n != 1 {
					t.Fatalf("%d entries, want 1", n)
				}
				return
			}
			if got := outcomeCode(t, b); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if st == 401 && !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("401 without the Bearer challenge: %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("a window partly outside is clipped", func(t *testing.T) {
		st, _, b := f.get(t, "/Observation?patient="+pt+"&code=https://w3id.org/openmhealth|omh:blood-glucose&_count=1000", clin)
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		for _, e := range decodeBundle(t, b).Entry {
			at := effective(t, e.Resource)
			if at.Before(mid) {
				t.Fatalf("a reading at %s, before the grant's window %s", at, mid)
			}
		}
	})

	t.Run("a revoke between two pages: the second is 403", func(t *testing.T) {
		third, err := f.v.CreateUser(t.Context(), vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Third"})
		if err != nil {
			t.Fatal(err)
		}
		g := f.grant(t, f.patient.ID, third.ID, []string{"omh:heart-rate"}, time.Time{}, true)
		tok, _ := f.token(t, third.ID, "user/*.rs", oauth.Approval{})
		f.revokeBetweenPages(t, "/Observation?patient="+pt+"&code=http://loinc.org|8867-4&_count=5", tok, g)
	})

	t.Run("an expired token is 401", func(t *testing.T) {
		f.skew.Store(int64(2 * time.Hour))
		defer f.skew.Store(0)
		st, hdr, b := f.get(t, "/Observation?patient="+pt, clin)
		if st != 401 || outcomeCode(t, b) != "token_expired" || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("expired: %d %q %s", st, hdr.Get("WWW-Authenticate"), b)
		}
	})
}

// effective reads an Observation's effectiveDateTime.
func effective(t testing.TB, raw []byte) time.Time {
	t.Helper()
	s := string(raw)
	i := strings.Index(s, `"effectiveDateTime":"`)
	if i < 0 {
		t.Fatalf("no effectiveDateTime: %.300s", raw)
	}
	v := s[i+len(`"effectiveDateTime":"`):]
	v = v[:strings.IndexByte(v, '"')]
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

var _ = http.StatusOK
