package fhir_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/jupyterhealth/vault/oauth"
)

// TestAppConsent: a patient's app (patient/ scopes) reads one Consent,
// the app grant its token was issued under, with the app as its actor,
// valid R4; not her grants to clinicians, not her other apps' grants;
// with or without the patient parameter; and after the grant's revoke,
// nothing (the token itself stops).
func TestAppConsent(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose"}, time.Time{}, true)
	app, info := f.token(t, f.patient.ID, "patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:blood-glucose"}})
	// A second app with its own grant, which the first must not see.
	f.token(t, f.patient.ID, "patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:heart-rate"}})
	grants, err := f.ledger.AppGrants(f.patient.ID)
	if err != nil || len(grants) != 2 {
		t.Fatalf("%d app grants, want 2", len(grants))
	}
	var mine string
	for _, g := range grants {
		if g.App == info.ID {
			mine = g.ID
		}
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/Consent?patient=" + oauth.FHIRID(f.patient.ID), "/Consent"} {
		st, _, b := f.get(t, path, app)
		if st != 200 {
			t.Fatalf("%s: %d %s", path, st, b)
		}
		bd := decodeBundle(t, b)
		if len(bd.Entry) != 1 {
			t.Fatalf("%s: %d Consents, want 1 (its own app grant)", path, len(bd.Entry))
		}
		var c struct {
			ResourceType string
			Identifier   []struct{ Value string }
			Status       string
			Provision    struct {
				Actor []struct {
					Reference struct {
						Reference  string
						Identifier struct{ System, Value string }
					}
				}
				Class []struct{ Code string }
			}
		}
		if err := json.Unmarshal(bd.Entry[0].Resource, &c); err != nil {
			t.Fatal(err)
		}
		a := c.Provision.Actor
		if c.ResourceType != "Consent" || len(c.Identifier) != 1 || c.Identifier[0].Value != mine || c.Status != "active" ||
			len(a) != 1 || a[0].Reference.Reference != "" || a[0].Reference.Identifier.Value != info.ID ||
			len(c.Provision.Class) != 1 || c.Provision.Class[0].Code != "omh:blood-glucose" {
			t.Fatalf("%s: not its own app grant: %s", path, bd.Entry[0].Resource)
		}
		if _, err := u.UnmarshalR4(bd.Entry[0].Resource); err != nil {
			t.Fatalf("not valid R4: %v\n%s", err, bd.Entry[0].Resource)
		}
	}
	g, err := f.ledger.Grant(mine)
	if err != nil {
		t.Fatal(err)
	}
	f.revoke(t, g)
	if st, _, b := f.get(t, "/Consent", app); st != 401 || outcomeCode(t, b) != "invalid_token" {
		t.Fatalf("after the revoke: %d %s", st, b)
	}
}
