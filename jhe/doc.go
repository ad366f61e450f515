// Package jhe serves the read API of JupyterHealth Exchange under
// {base-url}/jhe, so the stock notebook client (jupyterhealth-client)
// works against the vault with only JHE_URL and JHE_TOKEN changed
// (docs/jhe-compat.md).
//
// What it serves: the calls the client makes, and nothing more. Under
// /jhe/api/v1: the signed-in clinician's profile, her patients (paged as
// JupyterHealth Exchange pages them: count, absolute next and previous,
// results), a patient, a patient's consents, studies, organizations,
// data sources and an always-empty global_lookup. Under /jhe/FHIR/R5 (and
// the older lowercase /jhe/fhir/r5): the Observation search by patient,
// by study (patient._has:Group:member:_id), by code and _count, as a
// searchset Bundle that always has entry and link, each Observation
// carrying the vault's canonical Open mHealth point in base64 in
// valueAttachment; and the CapabilityStatement (metadata). Every error
// is JSON with a detail member, which the client prints.
//
// How consent maps. JupyterHealth Exchange has organizations, studies
// (cohorts with requested scopes) and per-study consents; the vault has
// grants from one patient to one clinician. Each active grant to the
// clinician that allows reading through the FHIR API is one study of a
// single patient (gr-…), its schemas the study's consented scopes; the
// clinician's organization and a root organization (id 0) are the
// organizations. The mapping never widens access: it only names what
// the ledger allows.
//
// How a read is decided and logged: by package fhir, not a copy of it.
// A page of Observations is fhir.Server.Read: the ledger decides (only
// grants that allow FHIR reads count, windows are clipped), the page is
// in the patient's access log (format "jhe", decided again in the same
// ledger transaction) before a byte of it is sent, the
// paging cursor is sealed and bound to the sign-in and the search, and
// every page is decided again, so a revoke stops the next one.
//
// Tokens: a clinician's OAuth access token (vo_, with a user/ scope; the
// one a JupyterHub that signed her in through the vault holds) or her
// vault API token (vc_). Nothing else is accepted.
package jhe
