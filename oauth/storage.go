package oauth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is zitadel's op.Storage over the provider's records. The
// methods the SMART adapter (server.go) takes over from zitadel answer
// with an error: nothing reaches them.
type storage struct{ p *Provider }

var _ op.Storage = storage{}
var _ op.CanSetUserinfoFromRequest = storage{}

// authRequest is a request record as zitadel sees it.
type authRequest struct{ r requestRecord }

func (a authRequest) GetID() string                      { return a.r.ID }
func (a authRequest) GetACR() string                     { return "" }
func (a authRequest) GetAMR() []string                   { return []string{"hwk", "user"} } // a passkey
func (a authRequest) GetAudience() []string              { return []string{a.r.ClientID} }
func (a authRequest) GetAuthTime() time.Time             { return a.r.AuthTime }
func (a authRequest) GetClientID() string                { return a.r.ClientID }
func (a authRequest) GetNonce() string                   { return a.r.Nonce }
func (a authRequest) GetRedirectURI() string             { return a.r.RedirectURI }
func (a authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseTypeCode }
func (a authRequest) GetResponseMode() oidc.ResponseMode {
	return oidc.ResponseMode(a.r.ResponseMode)
}
func (a authRequest) GetScopes() []string { return a.r.Granted }
func (a authRequest) GetState() string    { return a.r.State }
func (a authRequest) GetSubject() string  { return a.r.UserID }
func (a authRequest) Done() bool          { return a.r.Done }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	return &oidc.CodeChallenge{Challenge: a.r.Challenge, Method: oidc.CodeChallengeMethodS256}
}

// refreshRequest is a refresh token's record as zitadel sees it.
type refreshRequest struct {
	t      tokenRecord
	secret string
	scopes []string
}

func (r *refreshRequest) GetAMR() []string            { return []string{"hwk", "user"} }
func (r *refreshRequest) GetAudience() []string       { return []string{r.t.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.t.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.t.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.t.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

var errTakenOver = errors.New("handled by the SMART adapter")

func (s storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errTakenOver
}

// AuthRequestByID serves the callback after Approve.
func (s storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := s.p.loadRequest(ctx, id)
	if err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("no such authorization request (it may have expired)")
	}
	if !s.p.now().Before(r.Expires) {
		return nil, oidc.ErrInvalidRequest().WithDescription("the authorization request has expired")
	}
	return authRequest{r}, nil
}

func (s storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errTakenOver
}

// SaveAuthCode stores the code the callback made; a request gets one code.
func (s storage) SaveAuthCode(ctx context.Context, id, code string) error {
	r, err := s.p.loadRequest(ctx, id)
	if err != nil {
		return err
	}
	if !r.Done {
		return oidc.ErrInteractionRequired()
	}
	return s.p.store.PutCode(ctx, oauthstore.Code{Hash: hashOf(code), Request: hashOf(id), Expires: s.p.now().Add(codeTTL)})
}

// DeleteAuthRequest is zitadel's last step of a code exchange, whose
// request ClaimCode already removed: it writes only when the request is
// still there, sparing the exchange a second synced write transaction.
func (s storage) DeleteAuthRequest(ctx context.Context, id string) error {
	h := hashOf(id)
	if _, err := s.p.store.Request(ctx, h); errors.Is(err, oauthstore.ErrNotFound) {
		return nil
	}
	return s.p.store.DeleteRequest(ctx, h)
}

// issue makes the tokens of one token response: an access token, and a
// refresh token when the request asked offline_access (or is a refresh).
func (s storage) issue(ctx context.Context, req op.TokenRequest, withRefresh bool, oldRefresh string) (access, refresh string, exp time.Time, err error) {
	now := s.p.now().UTC()
	var base tokenRecord
	switch r := req.(type) {
	case authRequest:
		base = tokenRecord{Family: newSecret("f_")[:24], UserID: r.r.UserID, ClientID: r.r.ClientID, Scopes: r.r.Granted, Schemas: r.r.Kept, GrantID: r.r.GrantID, Patient: r.r.LaunchPatient, AuthTime: r.r.AuthTime}
	case *refreshRequest:
		base = r.t
		base.Scopes = r.scopes
		base.Schemas = schemasOf(r.scopes)
	default:
		return "", "", exp, errors.New("unsupported token request")
	}
	base.Issued = now
	at := base
	at.Kind, at.Expires = "access", now.Add(s.p.accessTTL)
	access = newSecret(prefixAccess)
	rows := make([]oauthstore.Token, 0, 2)
	row, err := s.p.tokenRow(access, at)
	if err != nil {
		return "", "", exp, err
	}
	rows = append(rows, row)
	if withRefresh {
		rt := base
		rt.Kind, rt.Expires = "refresh", now.Add(s.p.refreshTTL)
		refresh = newSecret(prefixRefresh)
		row, err := s.p.tokenRow(refresh, rt)
		if err != nil {
			return "", "", exp, err
		}
		rows = append(rows, row)
	}
	if oldRefresh != "" {
		err = s.p.store.RotateRefresh(ctx, hashOf(oldRefresh), rows...)
		if errors.Is(err, oauthstore.ErrRotated) {
			// A reuse: whoever holds this family's tokens, the family ends.
			s.p.store.DeleteTokens(ctx, oauthstore.Filter{Family: base.Family})
			s.p.log.Warn("a rotated refresh token was presented again; its family is revoked", "client", base.ClientID)
		}
		if err != nil {
			return "", "", exp, oidc.ErrInvalidGrant().WithDescription("the refresh token is not valid")
		}
	} else if err = s.p.store.PutTokens(ctx, rows...); err != nil {
		return "", "", exp, err
	}
	s.p.sweep(ctx)
	return access, refresh, at.Expires, nil
}

func (s storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	access, _, exp, err := s.issue(ctx, req, false, "")
	return access, exp, err
}

func (s storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return s.issue(ctx, req, true, current)
}

func (s storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errTakenOver
}

func (s storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken ends a token (RFC 7009): a refresh token with its whole
// family, an access token alone. A token of another client is refused;
// an unknown one is not an error.
func (s storage) RevokeToken(ctx context.Context, token, _, clientID string) *oidc.Error {
	t, _, err := s.p.lookupToken(ctx, token)
	if errors.Is(err, errNotActive) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError()
	}
	if t.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("the token was not issued to this client")
	}
	if t.Kind == "refresh" {
		_, err = s.p.store.DeleteTokens(ctx, oauthstore.Filter{Family: t.Family})
	} else {
		err = s.p.store.DeleteToken(ctx, hashOf(token))
	}
	if err != nil {
		return oidc.ErrServerError()
	}
	return nil
}

// GetRefreshTokenInfo serves revocation: a vr_ token is a refresh token
// (the token itself is its id), anything else is not.
func (s storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	if !strings.HasPrefix(token, prefixRefresh) {
		return "", "", op.ErrInvalidRefreshToken
	}
	return "-", token, nil
}

func (s storage) SigningKey(context.Context) (op.SigningKey, error) { return s.p.currentKey(), nil }

func (s storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s storage) KeySet(context.Context) ([]op.Key, error) { return s.p.publicKeys(), nil }

func (s storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.p.loadClient(ctx, id)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return nil, errors.New("no such client")
	}
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	return &client{c: c, p: s.p}, nil
}

// AuthorizeClientIDSecret compares the SHA-256 of the secret with the
// stored one in constant time.
func (s storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.p.loadClient(ctx, id)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return errors.New("no such client")
	}
	if err != nil {
		return oidc.ErrServerError()
	}
	if !c.secretMatches(secret) {
		return errors.New("wrong client secret")
	}
	return nil
}

func (s storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts fhirUser (and the profile claims) in the
// ID token.
func (s storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.p.userinfo(ctx, info, req.GetSubject(), scopes)
}

func (s storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	t, _, err := s.p.lookupToken(ctx, tokenID)
	if err != nil || t.Kind != "access" || !s.p.active(ctx, t, s.p.now()) {
		return oidc.ErrAccessDenied().WithDescription("the access token is not active")
	}
	return s.p.userinfo(ctx, info, t.UserID, t.Scopes)
}

func (s storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errTakenOver
}

func (s storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errTakenOver
}

func (s storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errTakenOver
}

func (s storage) Health(context.Context) error { return nil }

// userinfo fills the claims of a user: sub, fhirUser (with openid or
// fhirUser), name and preferred_username (with profile).
func (p *Provider) userinfo(ctx context.Context, info *oidc.UserInfo, userID string, scopes []string) error {
	u, err := p.users.User(ctx, userID)
	if err != nil {
		return oidc.ErrAccessDenied().WithDescription("the user is gone")
	}
	info.Subject = u.ID
	if slices.Contains(scopes, scopeFHIRUser) || slices.Contains(scopes, scopeOpenID) {
		info.AppendClaims("fhirUser", p.fhirUser(u))
	}
	if slices.Contains(scopes, scopeProfile) {
		info.Name = u.Name
		info.PreferredUsername = u.ID
	}
	return nil
}

// fhirUser is the user's FHIR resource URL, in the id form the FHIR
// export uses (pt_abc is Patient/pt-abc).
func (p *Provider) fhirUser(u vault.User) string {
	kind := "Practitioner"
	if u.Role == vault.RolePatient {
		kind = "Patient"
	}
	return p.issuer + "/" + kind + "/" + FHIRID(u.ID)
}

// FHIRID is a vault id in FHIR's id form: FHIR ids allow no underscore.
func FHIRID(id string) string { return strings.ReplaceAll(id, "_", "-") }

// schemasOf is the schemas granted scopes reach.
func schemasOf(scopes []string) []string {
	set, err := parseScopes(scopes)
	if err != nil {
		return nil
	}
	return set.Schemas
}
