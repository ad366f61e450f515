package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

const principalKey = "jhvault.principal"

// principal returns the authenticated token of the request.
func principal(c echo.Context) vault.Token {
	t, _ := c.Get(principalKey).(vault.Token)
	return t
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header; the
// scheme is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// OAuthTokens checks the OAuth provider's access tokens (oauth.Provider
// implements it). ClinicianToken answers for an active clinician's access
// token with a user/ scope that reads Observations, as a clinician token;
// anything else is vault.ErrTokenInvalid or vault.ErrTokenExpired.
type OAuthTokens interface {
	ClinicianToken(ctx context.Context, token string) (vault.Token, error)
}

// oauthPrefix starts the OAuth provider's access tokens.
const oauthPrefix = "vo_"

// requireClinicianOrOAuth is requireToken(vault.TokenClinician) that also
// takes an OAuth access token a clinician got through an app (a
// JupyterHub) with a user/ Observation scope. Only the clinician's patient
// list and the export accept it: consent is checked and the export is
// age-encrypted exactly as for a vc_ token.
func (s *Server) requireClinicianOrOAuth() echo.MiddlewareFunc {
	plain := s.requireToken(vault.TokenClinician)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withVault := plain(next)
		return func(c echo.Context) error {
			secret, ok := bearer(c.Request().Header.Get("Authorization"))
			if !ok || !strings.HasPrefix(secret, oauthPrefix) || s.oauth == nil {
				return withVault(c)
			}
			tok, err := s.oauth.ClinicianToken(c.Request().Context(), secret)
			if errors.Is(err, vault.ErrTokenExpired) || errors.Is(err, vault.ErrTokenInvalid) {
				return s.authFailed(c, err)
			}
			if err != nil {
				return internal(err)
			}
			c.Set(principalKey, tok)
			return next(c)
		}
	}
}

// requireToken authenticates a bearer token and checks its kind.
//
// The token is checked first, and a valid one is never refused for what
// other requests from its address did: the per-address bucket
// (s.failures) is charged only by a failed check, and once it is empty a
// failed check answers 429 instead of 401. Many notebooks of one JupyterHub
// share an address; a busy hub, or one notebook with a stale token, must
// not lock out the rest. Being able to keep testing tokens from an address
// whose bucket is empty gains a guesser nothing: a token holds 256 random
// bits, out of reach at any request rate (see docs/api.md, Limits).
func (s *Server) requireToken(kinds ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			secret, ok := bearer(c.Request().Header.Get("Authorization"))
			if !ok {
				return newError(http.StatusUnauthorized, "missing_token", "send an API token as 'Authorization: Bearer TOKEN'")
			}
			tok, err := s.vault.Authenticate(c.Request().Context(), secret)
			if errors.Is(err, vault.ErrTokenExpired) || errors.Is(err, vault.ErrTokenInvalid) {
				return s.authFailed(c, err)
			}
			if err != nil {
				return internal(err)
			}
			allowed := false
			for _, k := range kinds {
				allowed = allowed || k == tok.Kind
			}
			if !allowed {
				return newError(http.StatusForbidden, "wrong_token_type", "a %s token cannot do this; it needs a %s token", tok.Kind, strings.Join(kinds, " or "))
			}
			c.Set(principalKey, tok)
			return next(c)
		}
	}
}

// authFailed charges a failed token check to the client's address: 401
// while its bucket lasts, 429 with Retry-After once it is empty.
func (s *Server) authFailed(c echo.Context, err error) error {
	if ok, wait := s.failures.Allow(ratelimit.ClientKey(c.RealIP())); !ok {
		s.metrics.authFailures.WithLabelValues("rate_limited").Inc()
		c.Response().Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		return newError(http.StatusTooManyRequests, "too_many_auth_failures", "too many failed token checks from this address; wait and try again with a valid token")
	}
	if errors.Is(err, vault.ErrTokenExpired) {
		s.metrics.authFailures.WithLabelValues("expired").Inc()
		return newError(http.StatusUnauthorized, "token_expired", "this token has expired; ask the vault's admin for a new one")
	}
	s.metrics.authFailures.WithLabelValues("invalid").Inc()
	return newError(http.StatusUnauthorized, "invalid_token", "this token is not valid")
}
