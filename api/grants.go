package api

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Grant limits.
const (
	MaxGrantSchemas    = 20
	MaxGrantRecipients = 10
	MaxGrantLifetime   = 5 * 365 * 24 * time.Hour
)

// Purposes are the FHIR v3 ActReason purpose-of-use codes a grant may carry.
var Purposes = []string{"TREAT", "ETREAT", "CAREMGT", "HRESCH", "CLINTRL", "PATRQT", "FAMRQT", "PUBHLTH", "HOPERAT"}

var fingerprintRE = regexp.MustCompile(`^[A-Za-z0-9:_+/=-]{1,128}$`)

// GrantRequest is the body of POST /api/v1/grants.
type GrantRequest struct {
	Clinician  string   `json:"clinician"`
	Schemas    []string `json:"schemas"`
	DataFrom   string   `json:"data_from,omitempty"`
	DataTo     string   `json:"data_to,omitempty"`
	ExpiresAt  string   `json:"expires_at"`
	Purpose    string   `json:"purpose"`
	Recipients []string `json:"recipients,omitempty"`
}

// GrantResponse is a grant with its status now.
type GrantResponse struct {
	consent.GrantState
	Status string `json:"status"` // active, expired or revoked
	// ClinicianKeys are the keys the clinician has registered (and
	// removed), from the ledger: where exports under this grant can go.
	// They are shown on GET /api/v1/grants and GET /api/v1/grants/{id}, so
	// a patient sees a new key, and its activation time, before it is used.
	ClinicianKeys []KeyResponse `json:"clinician_keys,omitempty"`
}

// withKeys adds the clinician's keys to a grant response, for a live
// grant; a grant that can no longer be used doesn't need them.
func (s *Server) withKeys(r GrantResponse, now time.Time) GrantResponse {
	if r.Status != "active" {
		return r
	}
	r.ClinicianKeys = []KeyResponse{}
	for _, k := range s.ledger.ClinicianKeys(r.Clinician) {
		r.ClinicianKeys = append(r.ClinicianKeys, keyResponse(k, now))
	}
	return r
}

func grantResponse(g consent.GrantState, now time.Time) GrantResponse {
	st := "active"
	switch {
	case g.RevokeIndex != nil:
		st = "revoked"
	case !now.Before(g.Expires):
		st = "expired"
	}
	return GrantResponse{GrantState: g, Status: st}
}

func badGrant(code, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, code, format, args...)
}

// grantSchemas checks and normalises a grant's schema list: namespace:name
// covers every version; a version the vault normalises becomes canonical.
func grantSchemas(in []string) ([]string, *Error) {
	if len(in) == 0 || len(in) > MaxGrantSchemas {
		return nil, badGrant("bad_schemas", "schemas must list 1 to %d schema ids, such as omh:blood-glucose or omh:heart-rate:2.0", MaxGrantSchemas)
	}
	var out []string
	for _, s := range in {
		id, err := omh.ParseSchemaID(s)
		if err != nil {
			return nil, badGrant("bad_schemas", "each schema is namespace:name or namespace:name:version, such as omh:blood-glucose")
		}
		c, ok := omh.CanonicalSchema(id)
		if !ok {
			return nil, badGrant(omh.CodeUnknownSchema, "a schema in the grant is not one the vault stores")
		}
		norm := c.Namespace + ":" + c.Name
		if id.Version != "" {
			norm = c.String()
		}
		if !slices.Contains(out, norm) {
			out = append(out, norm)
		}
	}
	return out, nil
}

func rfc3339(name, v string, required bool) (time.Time, *Error) {
	if v == "" {
		if required {
			return time.Time{}, badGrant("bad_time", "%s is required, as an RFC 3339 time such as 2027-01-01T00:00:00Z", name)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !vault.TimeInRange(t) {
		return time.Time{}, badGrant("bad_time", "%s must be an RFC 3339 time with an offset, between 1900 and 2200", name)
	}
	return t.UTC(), nil
}

func (s *Server) postGrant(c echo.Context) error {
	tok := principal(c)
	var r GrantRequest
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	if vault.RoleOf(r.Clinician) != vault.RoleClinician {
		return badGrant("unknown_clinician", "clinician must be a clinician id from GET /api/v1/clinicians")
	}
	if _, err := s.vault.User(r.Clinician); err != nil {
		return badGrant("unknown_clinician", "clinician must be a clinician id from GET /api/v1/clinicians")
	}
	schemas, aerr := grantSchemas(r.Schemas)
	if aerr != nil {
		return aerr
	}
	from, aerr := rfc3339("data_from", r.DataFrom, false)
	if aerr != nil {
		return aerr
	}
	to, aerr := rfc3339("data_to", r.DataTo, false)
	if aerr != nil {
		return aerr
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return badGrant("bad_window", "data_from must be earlier than data_to; the window is [data_from, data_to)")
	}
	exp, aerr := rfc3339("expires_at", r.ExpiresAt, true)
	if aerr != nil {
		return aerr
	}
	now := time.Now()
	if !exp.After(now) || exp.Sub(now) > MaxGrantLifetime {
		return badGrant("bad_expiry", "expires_at must be in the future and at most five years away")
	}
	if !slices.Contains(Purposes, r.Purpose) {
		return badGrant("bad_purpose", "purpose must be a FHIR v3 ActReason code: %s", strings.Join(Purposes, ", "))
	}
	if len(r.Recipients) > MaxGrantRecipients {
		return badGrant("bad_recipients", "a grant may pin at most %d recipient fingerprints", MaxGrantRecipients)
	}
	for _, fp := range r.Recipients {
		if !fingerprintRE.MatchString(fp) {
			return badGrant("bad_recipients", "each recipient fingerprint is 1 to 128 characters of letters, digits and :_+/=-")
		}
	}
	e := consent.New(consent.KindGrant, tok.UserID, now)
	e.Patient, e.Clinician = tok.UserID, r.Clinician
	e.Grant = &consent.Grant{ID: vault.NewID("gr_"), Schemas: schemas, Expires: exp.Format(time.RFC3339Nano), Purpose: r.Purpose, Recipients: r.Recipients}
	if !from.IsZero() {
		e.Grant.DataFrom = from.Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		e.Grant.DataTo = to.Format(time.RFC3339Nano)
	}
	if _, err := s.ledger.Append(e); err != nil {
		return internal(err)
	}
	g, err := s.ledger.Grant(e.Grant.ID)
	if err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusCreated, grantResponse(g, now))
}

func (s *Server) getGrants(c echo.Context) error {
	tok := principal(c)
	now := time.Now()
	out := []GrantResponse{}
	for _, g := range s.ledger.Grants(tok.UserID, "") {
		out = append(out, s.withKeys(grantResponse(g, now), now))
	}
	return c.JSON(http.StatusOK, out)
}

// visibleGrant returns a grant the token's user is a party to; others get
// the same 404 as a missing one.
func (s *Server) visibleGrant(c echo.Context) (consent.GrantState, *Error) {
	tok := principal(c)
	g, err := s.ledger.Grant(c.Param("id"))
	if err != nil || (g.Patient != tok.UserID && g.Clinician != tok.UserID) {
		return consent.GrantState{}, newError(http.StatusNotFound, "no_grant", "no grant with that id is yours")
	}
	return g, nil
}

func (s *Server) getGrant(c echo.Context) error {
	g, aerr := s.visibleGrant(c)
	if aerr != nil {
		return aerr
	}
	switch c.QueryParam("format") {
	case "", "json":
		now := time.Now()
		return c.JSON(http.StatusOK, s.withKeys(grantResponse(g, now), now))
	case "fhir":
		return c.JSON(http.StatusOK, FHIRConsent(g, time.Now()))
	}
	return newError(http.StatusBadRequest, "bad_format", "format must be json or fhir")
}

func (s *Server) revokeGrant(c echo.Context) error {
	tok := principal(c)
	g, aerr := s.visibleGrant(c)
	if aerr != nil {
		return aerr
	}
	if g.Patient != tok.UserID {
		return newError(http.StatusNotFound, "no_grant", "no grant with that id is yours")
	}
	if _, err := s.ledger.Append(consent.NewRevoke(tok.UserID, g, time.Now())); err != nil {
		if errors.Is(err, consent.ErrRevoked) {
			return newError(http.StatusConflict, "already_revoked", "this grant is already revoked")
		}
		return internal(err)
	}
	g, err := s.ledger.Grant(g.ID)
	if err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusOK, grantResponse(g, time.Now()))
}

// PatientEntry is one row of GET /api/v1/clinician/patients.
type PatientEntry struct {
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	Grants []GrantResponse `json:"grants"`
}

func (s *Server) getClinicianPatients(c echo.Context) error {
	tok := principal(c)
	now := time.Now()
	byPatient := map[string]*PatientEntry{}
	var order []string
	for _, g := range s.ledger.Grants("", tok.UserID) {
		if !g.Active(now) {
			continue
		}
		p := byPatient[g.Patient]
		if p == nil {
			u, err := s.vault.User(g.Patient)
			if err != nil {
				continue // deleted patient
			}
			p = &PatientEntry{ID: u.ID, Name: u.Name}
			byPatient[g.Patient] = p
			order = append(order, g.Patient)
		}
		p.Grants = append(p.Grants, grantResponse(g, now))
	}
	out := []PatientEntry{}
	for _, id := range order {
		out = append(out, *byPatient[id])
	}
	return c.JSON(http.StatusOK, out)
}
