package api

import (
	"errors"
	"github.com/jupyterhealth/vault/internal/ratelimit"
	"net/http"
	"strings"

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

// requireToken authenticates a bearer token and checks its kind.
func (s *Server) requireToken(kinds ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			secret, ok := bearer(c.Request().Header.Get("Authorization"))
			if !ok {
				return newError(http.StatusUnauthorized, "missing_token", "send an API token as 'Authorization: Bearer TOKEN'")
			}
			addr := ratelimit.ClientKey(c.RealIP())
			if !s.failures.Take(addr) {
				s.metrics.authFailures.WithLabelValues("rate_limited").Inc()
				return newError(http.StatusTooManyRequests, "too_many_auth_failures", "too many failed sign-in attempts from this address; wait a minute and try again")
			}
			tok, err := s.vault.Authenticate(c.Request().Context(), secret)
			switch {
			case errors.Is(err, vault.ErrTokenExpired):
				s.metrics.authFailures.WithLabelValues("expired").Inc()
				return newError(http.StatusUnauthorized, "token_expired", "this token has expired; ask the vault's admin for a new one")
			case errors.Is(err, vault.ErrTokenInvalid):
				s.metrics.authFailures.WithLabelValues("invalid").Inc()
				return newError(http.StatusUnauthorized, "invalid_token", "this token is not valid")
			case err != nil:
				s.failures.GiveBack(addr)
				return internal(err)
			}
			s.failures.GiveBack(addr) // a valid token costs nothing
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
