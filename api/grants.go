package api

import (
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Grant limits (consent.NewGrant checks them).
const (
	MaxGrantSchemas    = consent.MaxGrantSchemas
	MaxGrantRecipients = consent.MaxGrantRecipients
	MaxGrantLifetime   = consent.MaxGrantLifetime
)

// Purposes are the FHIR v3 ActReason purpose-of-use codes a grant may carry.
var Purposes = consent.Purposes

// fingerprintRE is the shape of a key fingerprint in a URL (the same as
// consent.NewGrant's check on a grant's pinned recipients).
var fingerprintRE = regexp.MustCompile(`^[A-Za-z0-9:_+/=-]{1,128}$`)

// GrantRequest is the body of POST /api/v1/grants.
type GrantRequest = consent.GrantRequest

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

func (s *Server) postGrant(c echo.Context) error {
	tok := principal(c)
	var r GrantRequest
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	now := time.Now()
	// A clinician the store cannot look up (the database unreachable) is
	// the server's failure, not the request's: it must not read as an
	// unknown clinician.
	var lookupErr error
	isClinician := func(id string) bool {
		_, err := s.vault.User(c.Request().Context(), id)
		if err != nil && !errors.Is(err, vault.ErrNoUser) {
			lookupErr = err
		}
		return err == nil
	}
	e, err := consent.NewGrant(tok.UserID, r, isClinician, now)
	var re *consent.RequestError
	switch {
	case lookupErr != nil:
		return internal(lookupErr)
	case errors.As(err, &re):
		return newError(http.StatusBadRequest, re.Code, "%s", re.Message)
	case err != nil:
		return internal(err)
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
	gs, err := s.ledger.Grants(tok.UserID, "")
	if err != nil {
		return internal(err)
	}
	out := []GrantResponse{}
	for _, g := range gs {
		out = append(out, s.withKeys(grantResponse(g, now), now))
	}
	return c.JSON(http.StatusOK, out)
}

// visibleGrant returns a grant the token's user is a party to; others get
// the same 404 as a missing one.
func (s *Server) visibleGrant(c echo.Context) (consent.GrantState, *Error) {
	tok := principal(c)
	g, err := s.ledger.Grant(c.Param("id"))
	if err != nil && !errors.Is(err, consent.ErrNoGrant) {
		// The index could not be brought up to date (a replica that
		// cannot reach the database): whether the grant exists is not
		// known, so not a 404.
		return consent.GrantState{}, internal(err)
	}
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
	gs, err := s.ledger.Grants("", tok.UserID)
	if err != nil {
		return internal(err)
	}
	for _, g := range gs {
		if !g.Active(now) {
			continue
		}
		p := byPatient[g.Patient]
		if p == nil {
			u, err := s.vault.User(c.Request().Context(), g.Patient)
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
