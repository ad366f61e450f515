package oauth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// AccessToken is what a resource server (the FHIR API) learns from an
// active access token: who, through which client, under which scopes and,
// for a patient's app, which app grant in the ledger.
type AccessToken struct {
	UserID   string // pt_… for a patient's app, cl_… for a clinician
	ClientID string
	Family   string // the sign-in the token comes from (stable across refreshes)
	GrantID  string // patient/ scopes: the app grant in the ledger
	// Context is "patient" (patient/ scopes: the user's own data) or
	// "user" (user/ scopes: what patients granted the user); "" when the
	// token carries no resource scope.
	Context string
	Scopes  []string
	// Schemas are the vault schemas the Observation scopes read, in the
	// stable order of AllSchemas.
	Schemas []string
	// PatientRead: a Patient.rs (or *.rs) scope in Context.
	PatientRead bool
	// AllObservations: an Observation.rs (or *.rs) scope in Context
	// without a granular parameter. Only it reaches the schemas the
	// vault stores without a typed model (ieee:food-entry:0.1...): they
	// have no category or LOINC code a granular scope could name, and
	// Schemas does not list them.
	AllObservations bool
	Expires         time.Time
}

// ResourceToken verifies an access token for a resource server: it must
// be an access token (not a refresh token), unexpired, and active (its
// user and client still there, a patient app's grant still in force). An
// expired one is vault.ErrTokenExpired; any other failure is
// vault.ErrTokenInvalid (or a store error), and callers never learn more.
func (p *Provider) ResourceToken(ctx context.Context, secret string) (AccessToken, error) {
	t, _, err := p.lookupToken(ctx, secret)
	if errors.Is(err, errNotActive) || (err == nil && t.Kind != "access") {
		return AccessToken{}, vault.ErrTokenInvalid
	}
	if err != nil {
		return AccessToken{}, err
	}
	now := p.now()
	if !now.Before(t.Expires) {
		return AccessToken{}, vault.ErrTokenExpired
	}
	if !p.active(ctx, t, now) {
		return AccessToken{}, vault.ErrTokenInvalid
	}
	set, err := parseScopes(t.Scopes)
	if err != nil {
		return AccessToken{}, vault.ErrTokenInvalid
	}
	a := AccessToken{UserID: t.UserID, ClientID: t.ClientID, Family: t.Family, GrantID: t.GrantID,
		Scopes: slices.Clone(t.Scopes), Schemas: set.Schemas, Expires: t.Expires}
	switch {
	case set.Patient:
		a.Context = "patient"
	case set.User:
		a.Context = "user"
	}
	for _, rs := range set.Resources {
		if rs.Context == a.Context && (rs.Resource == "Patient" || rs.Resource == "*") {
			a.PatientRead = true
		}
		if rs.Context == a.Context && rs.Whole {
			a.AllObservations = true
		}
	}
	// The roles must fit the context: a patient's app reads her own data
	// under its grant, a clinician what patients granted her.
	if (a.Context == "patient" && (vault.RoleOf(t.UserID) != vault.RolePatient || t.GrantID == "")) ||
		(a.Context == "user" && vault.RoleOf(t.UserID) != vault.RoleClinician) {
		return AccessToken{}, vault.ErrTokenInvalid
	}
	return a, nil
}
