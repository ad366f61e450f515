package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// TokenResponse describes one of the caller's API tokens: never its
// secret or hash.
type TokenResponse struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Expired  bool       `json:"expired"`
	// Current marks the token that made this request.
	Current bool `json:"current"`
}

// TokensResponse is the body of GET /api/v1/tokens.
type TokensResponse struct {
	Tokens []TokenResponse `json:"tokens"`
}

// getTokens lists the patient's tokens (device and patient), newest first.
func (s *Server) getTokens(c echo.Context) error {
	tok := principal(c)
	list, err := s.vault.Tokens(c.Request().Context(), tok.UserID)
	if err != nil {
		return internal(err)
	}
	now := time.Now()
	out := TokensResponse{Tokens: []TokenResponse{}}
	for _, t := range list {
		r := TokenResponse{ID: t.ID, Kind: t.Kind, Created: t.Created, Expires: t.Expires, Expired: t.Expired(now), Current: t.ID == tok.ID}
		if !t.LastUsed.IsZero() {
			lu := t.LastUsed
			r.LastUsed = &lu
		}
		out.Tokens = append(out.Tokens, r)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// deleteToken revokes one of the patient's tokens; it fails to
// authenticate from then on. Another user's token answers 404, as a
// missing one.
func (s *Server) deleteToken(c echo.Context) error {
	tok := principal(c)
	err := consent.RevokeToken(c.Request().Context(), s.vault, s.ledger, tok.UserID, c.Param("id"), time.Now())
	switch {
	case errors.Is(err, vault.ErrNoToken):
		return newError(http.StatusNotFound, "no_token", "you have no token with that id")
	case err != nil:
		return internal(err)
	}
	s.log.Info("token revoked by its user", "user", tok.UserID, "token_id", c.Param("id"))
	return c.NoContent(http.StatusNoContent)
}
