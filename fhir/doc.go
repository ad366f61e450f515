// Package fhir serves the vault's read-only FHIR R4 API under
// {base-url}/fhir, beside the OAuth provider (package oauth) whose access
// tokens it accepts (docs/fhir.md).
//
// What it serves: the CapabilityStatement (metadata, open), Patient
// (read, and the search of the patients who granted a clinician),
// Practitioner (read, the signed-in clinician), Observation (read, and a
// search by patient, code, category, date, _count and _sort, paged with
// an opaque sealed cursor), Consent (search by patient) and the CGM
// summary of the HL7 CGM IG (the $cgm-summary operation). JSON only
// (application/fhir+json); every error is an OperationOutcome.
//
// Which schemas: every one the vault stores (schemas.go). A typed schema
// is an Observation with its LOINC codes and value; one without a typed
// model (ieee:food-entry:0.1, omh:blood-glucose:2.0) is the export's
// generic Observation, coded with the schema id, the stored point in an
// R5 valueAttachment. Only a whole Observation read scope reaches those.
//
// How a read is decided. The token says who reads (oauth.AccessToken):
// a patient's app (patient/ scopes) reads her data under its app grant
// (consent.Ledger.DecideApp), a clinician (user/ scopes) what patients
// granted her (consent.Ledger.Decide), and only under grants whose
// patient allowed reading through the FHIR API (consent.Grant.FHIR; app
// grants always do: an app reads through nothing else). Each schema is
// the intersection of the token's scopes and the grants, each window is
// clipped to the grants, and everything is decided again on every
// request, so a revoke stops the next page.
//
// How a read is logged. Every response that carries readings (an
// Observation read, a search page, a CGM summary) is one access in the
// patient's log: an access-start with format "fhir" appended with the
// decision made again inside the ledger's serialised step, and an
// access-end with the number of resources, appended after the page is
// rendered and before a byte of it is sent. If either append fails the
// client gets 503 and no data (fail-closed).
//
// Another surface reads the same way through Server.Read (reads.go):
// package jhe serves JupyterHealth Exchange's read API with this
// decision, access log and paging, rendering the pages its own way.
package fhir
