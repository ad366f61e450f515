package fhir

import "net/http"

// extObservationValue is the cross-version extension that carries an R5
// Observation.value[x] in R4: what the generic Observation of a schema
// without a typed model holds its point in (export/fhir.go writes it).
const extObservationValue = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"

// metadata is GET /fhir/metadata: the CapabilityStatement, open to anyone
// (no token), listing only what is served.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	type param struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type operation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type        string        `json:"type"`
		Interaction []interaction `json:"interaction"`
		SearchParam []param       `json:"searchParam,omitempty"`
		Operation   []operation   `json:"operation,omitempty"`
	}
	type ext struct {
		URL      string `json:"url"`
		ValueURI string `json:"valueUri,omitempty"`
		Ext      []ext  `json:"extension,omitempty"`
	}
	read := []interaction{{"read"}, {"search-type"}}
	auth := s.base + "/auth"
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-12-06",
		"kind":         "instance",
		"software":     map[string]string{"name": "JupyterHealth Vault"},
		"implementation": map[string]string{
			"description": "JupyterHealth Vault FHIR API (read-only; every read decided by the consent ledger)",
			"url":         s.base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json"},
		"rest": []map[string]any{{
			"mode": "server",
			"security": map[string]any{
				"cors":    true,
				"service": []concept{{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}}}},
				"extension": []ext{{URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", Ext: []ext{
					{URL: "authorize", ValueURI: auth + "/authorize"},
					{URL: "token", ValueURI: auth + "/token"},
					{URL: "introspect", ValueURI: auth + "/introspect"},
					{URL: "revoke", ValueURI: auth + "/revoke"},
				}}},
			},
			"resource": []resource{
				{Type: "Patient", Interaction: read, SearchParam: []param{{"_id", "token", "the patient's id"}}},
				{Type: "Practitioner", Interaction: []interaction{{"read"}}},
				{Type: "Observation", Interaction: read, SearchParam: []param{
					{"patient", "reference", "the patient (required with user/ scopes)"},
					{"code", "token", "http://loinc.org|CODE, or https://w3id.org/openmhealth|NAMESPACE:NAME[:VERSION] (any schema the vault stores). A schema without a typed model (ieee:food-entry:0.1, ieee:sleep-stage-summary:1.0, omh:blood-glucose:2.0...) has Observations coded with its schema id alone, the stored point base64 in the R5 valueAttachment extension (" + extObservationValue + "), no category; only a whole Observation or * read scope reaches it"},
					{"category", "token", "vital-signs, laboratory or activity"},
					{"date", "date", "the reading's time; prefixes eq, ge, gt, le, lt"},
					{"_count", "number", "1 to 1000, default 100"},
					{"_sort", "string", "date or -date"},
				}, Operation: []operation{{"cgm-summary", s.base + "/OperationDefinition/cgm-summary"}}},
				{Type: "Consent", Interaction: []interaction{{"search-type"}}, SearchParam: []param{{"patient", "reference", "the patient: her grants to the clinician (user/ scopes), or the app grant of a patient's app (patient/ scopes)"}}},
			},
		}},
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}
