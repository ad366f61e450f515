package oauth

import (
	"context"
	"errors"

	"github.com/jupyterhealth/vault/vault"
)

// ClinicianToken authenticates an OAuth access token for the vault's
// clinician API (api.OAuthTokens): it must be active and a clinician's,
// with a user/ scope that reads Observations. It answers as a clinician
// token (kind clinician) whose id is the token's family, so per-token
// quotas follow a login across refreshes. Every other token is
// vault.ErrTokenInvalid (an expired one vault.ErrTokenExpired); which
// patients and schemas it reaches the ledger decides, as for a vc_ token.
func (p *Provider) ClinicianToken(ctx context.Context, secret string) (vault.Token, error) {
	t, _, err := p.lookupToken(ctx, secret)
	if errors.Is(err, errNotActive) || (err == nil && t.Kind != "access") {
		return vault.Token{}, vault.ErrTokenInvalid
	}
	if err != nil {
		return vault.Token{}, err
	}
	now := p.now()
	if !now.Before(t.Expires) {
		return vault.Token{}, vault.ErrTokenExpired
	}
	if !p.active(ctx, t, now) || vault.RoleOf(t.UserID) != vault.RoleClinician || !hasObservationRead(t.Scopes, "user") {
		return vault.Token{}, vault.ErrTokenInvalid
	}
	return vault.Token{ID: t.Family, UserID: t.UserID, Kind: vault.TokenClinician, Expires: t.Expires}, nil
}
