package api_test

// The FHIR R4 Consent that FHIRConsent renders is checked here with a real
// FHIR library: github.com/google/fhir/go (R4 jsonformat). Its validating
// unmarshaller parses the JSON into the R4 ContainedResource proto and then
// runs fhirvalidate over it, so it refuses unknown elements, codes outside a
// required binding (Consent.status, Consent.provision.type), malformed
// primitives (dateTime, id, code, uri), missing required elements (1..1,
// 1..*) and references to a resource type an element does not allow. It does
// not evaluate the resource's FHIRPath invariants, so the R4 Consent
// invariants ppc-1..ppc-5 are checked by hand below.
//
// The library is imported only by this _test.go file, so it is not linked
// into the vault binary. Version: github.com/google/fhir/go v0.7.4, the one
// the module proxy serves; it builds with Go 1.26 once its dependency
// github.com/golang/protobuf is at v1.5.4 (v1.5.0 does not compile against
// google.golang.org/protobuf v1.36).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// fhirIDs are a grant's, its patient's and its clinician's ids.
type fhirIDs struct{ grant, patient, clinician string }

var (
	// vaultIDs are shaped like the vault's own (api.newGrantID,
	// vault.NewID): a prefix with an underscore, then 16 lowercase
	// base32 characters. These are what FHIRConsent gets in production.
	vaultIDs = fhirIDs{"gr_mfrggzdfmztwq2lk", "pt_nbswy3dpo5xxe3de", "cl_onxw2zlunbuw4zzr"}
	// r4SafeIDs are the same with a hyphen, inside the R4 id alphabet, so
	// that the content checks run whatever the outcome of the id check.
	r4SafeIDs = fhirIDs{"gr-mfrggzdfmztwq2lk", "pt-nbswy3dpo5xxe3de", "cl-onxw2zlunbuw4zzr"}
)

// r4ID is the R4 id datatype's regex (https://hl7.org/fhir/R4/datatypes.html#id).
var r4ID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

type fhirCase struct {
	name       string
	g          consent.GrantState
	now        time.Time
	wantStatus cpb.ConsentStateCode_Value
	wantEnd    time.Time // provision.period.end
}

func fhirCases(t *testing.T, ids fhirIDs) []fhirCase {
	t.Helper()
	created := time.Date(2026, 3, 1, 9, 30, 15, 123456789, time.UTC)
	expires := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	revokedAt := time.Date(2026, 6, 2, 12, 0, 0, 0, time.FixedZone("EDT", -4*3600))
	revIdx := int64(42)
	ny := calendartest.Location(t, "America/New_York")
	base := func() consent.GrantState {
		return consent.GrantState{
			ID:        ids.grant,
			Index:     7,
			Patient:   ids.patient,
			Clinician: ids.clinician,
			Schemas:   []string{"omh:blood-glucose"},
			Expires:   expires,
			Purpose:   "TREAT",
			Signed:    true,
			Created:   created,
		}
	}
	var cs []fhirCase

	g := base()
	cs = append(cs, fhirCase{"active, one schema, no data window", g, created.Add(time.Hour), cpb.ConsentStateCode_ACTIVE, expires})

	g = base()
	g.Schemas = []string{"omh:blood-glucose", "omh:heart-rate:2.0", "omh:step-count"}
	g.DataFrom = time.Date(2025, 1, 1, 0, 0, 0, 0, ny)
	g.DataTo = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g.Recipients = []string{"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs4k6w0t", "sha256:9f86d081884c7d65"}
	g.Purpose = "CAREMGT"
	cs = append(cs, fhirCase{"active, several schemas, data window, recipients", g, created.Add(time.Hour), cpb.ConsentStateCode_ACTIVE, expires})

	g = base()
	g.DataFrom = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	g.Purpose = "HRESCH"
	cs = append(cs, fhirCase{"active, data window open-ended", g, created, cpb.ConsentStateCode_ACTIVE, expires})

	g = base()
	g.DataTo = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	g.Schemas = []string{"omh:heart-rate", "omh:step-count"}
	g.RevokeIndex, g.RevokedAt = &revIdx, &revokedAt
	g.Recipients = []string{"sha256:0123456789abcdef"}
	cs = append(cs, fhirCase{"revoked, data window with end only", g, revokedAt.Add(time.Minute), cpb.ConsentStateCode_INACTIVE, revokedAt})

	g = base()
	g.Purpose = "PUBHLTH"
	cs = append(cs, fhirCase{"expired exactly at now", g, expires, cpb.ConsentStateCode_INACTIVE, expires})

	g = base()
	g.DataFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	g.DataTo = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	g.Purpose = "ETREAT"
	cs = append(cs, fhirCase{"expired long ago", g, expires.AddDate(1, 0, 0), cpb.ConsentStateCode_INACTIVE, expires})

	for _, p := range api.Purposes {
		g = base()
		g.Purpose = p
		cs = append(cs, fhirCase{"purpose " + p, g, created, cpb.ConsentStateCode_ACTIVE, expires})
	}
	return cs
}

func r4Unmarshaller(t *testing.T) *jsonformat.Unmarshaller {
	t.Helper()
	// NewUnmarshaller (not ...WithoutValidation) runs the extended
	// validation: required elements, reference types, primitive formats.
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatalf("jsonformat.NewUnmarshaller: %v", err)
	}
	return u
}

// parseR4Consent validates b as an R4 resource and returns it as a Consent.
func parseR4Consent(u *jsonformat.Unmarshaller, b []byte) (*conpb.Consent, error) {
	cr, err := u.UnmarshalR4(b)
	if err != nil {
		return nil, err
	}
	c := cr.GetConsent()
	if c == nil {
		return nil, fmt.Errorf("parsed as %T, not a Consent", cr.GetOneofResource())
	}
	return c, nil
}

func codingsOf(cc *dpb.CodeableConcept) []string {
	var out []string
	for _, c := range cc.GetCoding() {
		out = append(out, c.GetSystem().GetValue()+"|"+c.GetCode().GetValue())
	}
	return out
}

func us(t time.Time) int64 { return t.Truncate(time.Second).UnixMicro() }

// checkConsentInvariants checks the R4 Consent invariants, which the library
// does not evaluate (https://hl7.org/fhir/R4/consent.html#invs):
//
//	ppc-1: policy.exists() or policyRule.exists()
//	ppc-2..5: a scope of patient-privacy, research, adr or treatment needs patient
func checkConsentInvariants(t *testing.T, c *conpb.Consent) {
	t.Helper()
	if len(c.GetPolicy()) == 0 && c.GetPolicyRule() == nil {
		t.Errorf("ppc-1: neither policy nor policyRule")
	}
	for _, code := range codingsOf(c.GetScope()) {
		switch code {
		case "http://terminology.hl7.org/CodeSystem/consentscope|patient-privacy",
			"http://terminology.hl7.org/CodeSystem/consentscope|research",
			"http://terminology.hl7.org/CodeSystem/consentscope|adr",
			"http://terminology.hl7.org/CodeSystem/consentscope|treatment":
			if c.GetPatient() == nil {
				t.Errorf("ppc-2..5: scope %s without patient", code)
			}
		}
	}
}

// TestFHIRConsentIsValidR4 renders grants with ids shaped as the vault
// makes them and requires the library to accept the result as an R4
// Consent, the grant's own id kept in Consent.identifier.
func TestFHIRConsentIsValidR4(t *testing.T) {
	u := r4Unmarshaller(t)
	for _, tc := range fhirCases(t, vaultIDs) {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(api.FHIRConsent(tc.g, tc.now))
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseR4Consent(u, b)
			if err != nil {
				t.Fatalf("FHIRConsent output is not a valid R4 Consent: %v\n%s", err, b)
			}
			checkConsentInvariants(t, c)
			if ids := c.GetIdentifier(); len(ids) != 1 || ids[0].GetValue().GetValue() != tc.g.ID {
				t.Errorf("identifier = %v, want the grant id %s", ids, tc.g.ID)
			}
			if c.GetPatient().GetPatientId() == nil {
				t.Errorf("patient = %v, want a reference to a Patient", c.GetPatient())
			}
			if got := c.GetStatus().GetValue(); got != tc.wantStatus {
				t.Errorf("status = %v, want %v", got, tc.wantStatus)
			}
		})
	}
}

// TestFHIRConsentContent renders grants whose ids are already in the R4 id
// alphabet, validates them, and checks what each element says.
func TestFHIRConsentContent(t *testing.T) {
	u := r4Unmarshaller(t)
	for _, tc := range fhirCases(t, r4SafeIDs) {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(api.FHIRConsent(tc.g, tc.now))
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseR4Consent(u, b)
			if err != nil {
				t.Fatalf("FHIRConsent output is not a valid R4 Consent: %v\n%s", err, b)
			}
			checkConsentInvariants(t, c)

			if got := c.GetId().GetValue(); got != tc.g.ID {
				t.Errorf("id = %q, want %q", got, tc.g.ID)
			}
			if ids := c.GetIdentifier(); len(ids) != 1 || ids[0].GetValue().GetValue() != tc.g.ID ||
				ids[0].GetSystem().GetValue() != "urn:jupyterhealth-vault:grant" {
				t.Errorf("identifier = %v, want urn:jupyterhealth-vault:grant|%s", ids, tc.g.ID)
			}
			if got := c.GetStatus().GetValue(); got != tc.wantStatus {
				t.Errorf("status = %v, want %v", got, tc.wantStatus)
			}
			if got := codingsOf(c.GetScope()); len(got) != 1 || got[0] != "http://terminology.hl7.org/CodeSystem/consentscope|patient-privacy" {
				t.Errorf("scope = %v", got)
			}
			if got := c.GetPatient().GetPatientId().GetValue(); got != tc.g.Patient {
				t.Errorf("patient = %q (%v), want Patient/%s", got, c.GetPatient(), tc.g.Patient)
			}
			if len(c.GetPerformer()) != 1 || c.GetPerformer()[0].GetPatientId().GetValue() != tc.g.Patient {
				t.Errorf("performer = %v, want the patient", c.GetPerformer())
			}
			if got, want := c.GetDateTime().GetValueUs(), us(tc.g.Created); got != want {
				t.Errorf("dateTime = %d us, want %d (created, to the second)", got, want)
			}

			p := c.GetProvision()
			if got := p.GetType().GetValue(); got != cpb.ConsentProvisionTypeCode_PERMIT {
				t.Errorf("provision.type = %v, want permit", got)
			}
			if len(p.GetPurpose()) != 1 || p.GetPurpose()[0].GetCode().GetValue() != tc.g.Purpose ||
				p.GetPurpose()[0].GetSystem().GetValue() != "http://terminology.hl7.org/CodeSystem/v3-ActReason" {
				t.Errorf("provision.purpose = %v, want v3-ActReason#%s", p.GetPurpose(), tc.g.Purpose)
			}
			if len(p.GetActor()) != 1 {
				t.Fatalf("provision.actor = %v, want one", p.GetActor())
			}
			a := p.GetActor()[0]
			if got := a.GetReference().GetPractitionerId().GetValue(); got != tc.g.Clinician {
				t.Errorf("provision.actor.reference = %v, want Practitioner/%s", a.GetReference(), tc.g.Clinician)
			}
			if got := codingsOf(a.GetRole()); len(got) != 1 || got[0] != "http://terminology.hl7.org/CodeSystem/v3-ParticipationType|IRCP" {
				t.Errorf("provision.actor.role = %v", got)
			}
			if got, want := p.GetPeriod().GetStart().GetValueUs(), us(tc.g.Created); got != want {
				t.Errorf("provision.period.start = %d, want %d", got, want)
			}
			if got, want := p.GetPeriod().GetEnd().GetValueUs(), us(tc.wantEnd); got != want {
				t.Errorf("provision.period.end = %d, want %d", got, want)
			}
			var class []string
			for _, cl := range p.GetClassValue() {
				if cl.GetSystem().GetValue() != "https://w3id.org/openmhealth" {
					t.Errorf("provision.class system = %q", cl.GetSystem().GetValue())
				}
				class = append(class, cl.GetCode().GetValue())
			}
			if strings.Join(class, ",") != strings.Join(tc.g.Schemas, ",") {
				t.Errorf("provision.class = %v, want %v", class, tc.g.Schemas)
			}
			dp := p.GetDataPeriod()
			if tc.g.DataFrom.IsZero() && tc.g.DataTo.IsZero() {
				if dp != nil {
					t.Errorf("provision.dataPeriod = %v, want none", dp)
				}
			} else {
				if tc.g.DataFrom.IsZero() != (dp.GetStart() == nil) || !tc.g.DataFrom.IsZero() && dp.GetStart().GetValueUs() != us(tc.g.DataFrom) {
					t.Errorf("provision.dataPeriod.start = %v, want %v", dp.GetStart(), tc.g.DataFrom)
				}
				if tc.g.DataTo.IsZero() != (dp.GetEnd() == nil) || !tc.g.DataTo.IsZero() && dp.GetEnd().GetValueUs() != us(tc.g.DataTo) {
					t.Errorf("provision.dataPeriod.end = %v, want %v", dp.GetEnd(), tc.g.DataTo)
				}
			}
		})
	}
}

// TestFHIRConsentValidatorRefuses is the negative control: the same rendering,
// spoiled in one place, must be refused, so the test above can fail.
func TestFHIRConsentValidatorRefuses(t *testing.T) {
	u := r4Unmarshaller(t)
	// The richest case (data window, several schemas), with R4-safe ids so
	// that each mutation below is the only thing wrong with the resource.
	cs := fhirCases(t, r4SafeIDs)
	g := cs[1].g
	good, err := json.Marshal(api.FHIRConsent(g, cs[1].now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseR4Consent(u, good); err != nil {
		t.Fatalf("the unspoiled control is refused: %v\n%s", err, good)
	}
	for _, m := range []struct {
		name   string
		mutate func(map[string]any)
	}{
		{"status not in consent-state-codes", func(r map[string]any) { r["status"] = "bogus" }},
		{"unknown element", func(r map[string]any) { r["grantedBy"] = "someone" }},
		{"provision.type not in consent-provision-type", func(r map[string]any) { prov(r)["type"] = "maybe" }},
		{"dateTime not a FHIR dateTime", func(r map[string]any) { r["dateTime"] = "yesterday" }},
		{"period.end not a FHIR dateTime", func(r map[string]any) { prov(r)["period"].(map[string]any)["end"] = "2027-13-45T00:00:00Z" }},
		{"required scope missing", func(r map[string]any) { delete(r, "scope") }},
		{"required category missing", func(r map[string]any) { delete(r, "category") }},
		{"required actor.role missing", func(r map[string]any) {
			delete(prov(r)["actor"].([]any)[0].(map[string]any), "role")
		}},
		{"patient referring to a Device", func(r map[string]any) {
			r["patient"] = map[string]any{"reference": "Device/d1"}
		}},
		{"id outside the R4 id regex", func(r map[string]any) { r["id"] = "gr_" + strings.Repeat("x", 70) }},
		{"purpose as a CodeableConcept, not a Coding", func(r map[string]any) {
			prov(r)["purpose"] = []any{map[string]any{"coding": []any{map[string]any{"code": "TREAT"}}}}
		}},
		{"wrong resourceType", func(r map[string]any) { r["resourceType"] = "Contract" }},
	} {
		t.Run(m.name, func(t *testing.T) {
			var r map[string]any
			if err := json.Unmarshal(good, &r); err != nil {
				t.Fatal(err)
			}
			m.mutate(r)
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(b, good) {
				t.Fatal("the mutation changed nothing")
			}
			_, err = parseR4Consent(u, b)
			if err == nil {
				t.Fatalf("the validator accepted a spoiled Consent:\n%s", b)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func prov(r map[string]any) map[string]any { return r["provision"].(map[string]any) }

// TestFHIRConsentIDs checks the ids the rendering puts where R4 wants an id
// datatype (Consent.id) or a literal relative reference Type/id (patient,
// performer, provision.actor.reference), against the R4 id regex. The
// library checks Consent.id itself; it does not check the id part of a
// reference, so this test does.
func TestFHIRConsentIDs(t *testing.T) {
	for _, tc := range fhirCases(t, vaultIDs)[:1] {
		c := api.FHIRConsent(tc.g, tc.now)
		check := func(where, id string) {
			if !r4ID.MatchString(id) {
				t.Errorf("%s %q is not an R4 id ([A-Za-z0-9\\-.]{1,64}, https://hl7.org/fhir/R4/datatypes.html#id)", where, id)
			}
		}
		check("Consent.id", c.ID)
		// The id of a literal reference is its last path segment, whether
		// the reference is relative (Patient/x) or absolute (https://.../Patient/x).
		refID := func(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }
		check("Consent.patient reference id", refID(c.Patient.Reference))
		for _, p := range c.Performer {
			check("Consent.performer reference id", refID(p.Reference))
		}
		for _, a := range c.Provision.Actor {
			check("Consent.provision.actor.reference id", refID(a.Reference.Reference))
		}
	}
}
