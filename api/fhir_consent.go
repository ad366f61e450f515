package api

import (
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
)

// FHIR R4 Consent rendering of a grant. Codes:
//   - scope: consentscope#patient-privacy
//   - category: LOINC 59284-0 (consent document)
//   - policyRule: v3-ActCode#OPTIN
//   - provision.actor role: v3-ParticipationType#IRCP (information recipient)
//   - provision.purpose: v3-ActReason (the grant's purpose)
//   - provision.class: the granted Open mHealth schemas
//   - provision.dataPeriod: the grant's data window; provision.period: from
//     the grant's creation to its expiry (or revocation)
//   - ids: the vault's "_" becomes "-" (R4 ids allow [A-Za-z0-9-.] only);
//     identifier.value keeps the grant id as it is

type (
	fhirCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	fhirConcept struct {
		Coding []fhirCoding `json:"coding"`
		Text   string       `json:"text,omitempty"`
	}
	fhirReference struct {
		Reference string `json:"reference"`
	}
	fhirPeriod struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}
	fhirActor struct {
		Role      fhirConcept   `json:"role"`
		Reference fhirReference `json:"reference"`
	}
	fhirProvision struct {
		Type       string       `json:"type"`
		Period     *fhirPeriod  `json:"period,omitempty"`
		Actor      []fhirActor  `json:"actor"`
		Purpose    []fhirCoding `json:"purpose"`
		Class      []fhirCoding `json:"class"`
		DataPeriod *fhirPeriod  `json:"dataPeriod,omitempty"`
	}
	fhirIdentifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	// FHIRConsentResource is an R4 Consent.
	FHIRConsentResource struct {
		ResourceType string           `json:"resourceType"`
		ID           string           `json:"id"`
		Identifier   []fhirIdentifier `json:"identifier"`
		Status       string           `json:"status"`
		Scope        fhirConcept      `json:"scope"`
		Category     []fhirConcept    `json:"category"`
		Patient      fhirReference    `json:"patient"`
		DateTime     string           `json:"dateTime"`
		Performer    []fhirReference  `json:"performer"`
		PolicyRule   fhirConcept      `json:"policyRule"`
		Provision    fhirProvision    `json:"provision"`
	}
)

func fhirTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// fhirID turns a vault id into a FHIR id: R4 ids allow [A-Za-z0-9-.] only,
// and vault ids never hold "-", so mapping "_" to "-" is reversible. The
// true grant id stays in Consent.identifier.
func fhirID(id string) string { return strings.ReplaceAll(id, "_", "-") }

// FHIRConsent renders a grant as an R4 Consent.
func FHIRConsent(g consent.GrantState, now time.Time) FHIRConsentResource {
	status := "active"
	end := g.Expires
	if g.RevokeIndex != nil {
		status = "inactive"
		end = *g.RevokedAt
	} else if !now.Before(g.Expires) {
		status = "inactive"
	}
	c := FHIRConsentResource{
		ResourceType: "Consent",
		ID:           fhirID(g.ID),
		Identifier:   []fhirIdentifier{{System: "urn:jupyterhealth-vault:grant", Value: g.ID}},
		Status:       status,
		Scope:        fhirConcept{Coding: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/consentscope", Code: "patient-privacy"}}},
		Category:     []fhirConcept{{Coding: []fhirCoding{{System: "http://loinc.org", Code: "59284-0"}}}},
		Patient:      fhirReference{Reference: "Patient/" + fhirID(g.Patient)},
		DateTime:     fhirTime(g.Created),
		Performer:    []fhirReference{{Reference: "Patient/" + fhirID(g.Patient)}},
		PolicyRule:   fhirConcept{Coding: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "OPTIN"}}},
		Provision: fhirProvision{
			Type:    "permit",
			Period:  &fhirPeriod{Start: fhirTime(g.Created), End: fhirTime(end)},
			Actor:   []fhirActor{{Role: fhirConcept{Coding: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", Code: "IRCP"}}}, Reference: fhirReference{Reference: "Practitioner/" + fhirID(g.Clinician)}}},
			Purpose: []fhirCoding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActReason", Code: g.Purpose}},
		},
	}
	for _, s := range g.Schemas {
		c.Provision.Class = append(c.Provision.Class, fhirCoding{System: "https://w3id.org/openmhealth", Code: s})
	}
	if !g.DataFrom.IsZero() || !g.DataTo.IsZero() {
		c.Provision.DataPeriod = &fhirPeriod{Start: fhirTime(g.DataFrom), End: fhirTime(g.DataTo)}
	}
	return c
}
