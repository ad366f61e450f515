package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// UserInfo answers as zitadel's does, except that a token that is not (or
// no longer) active — unknown, expired, revoked, its grant or its user gone
// — is 401 invalid_token with a WWW-Authenticate challenge (RFC 6750 §3.1)
// rather than zitadel's 403 access_denied: a client such as JupyterHub's
// authenticator reads the 401 as "refresh the token".
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.UserInfo(ctx, r)
	var oe *oidc.Error
	if err != nil && errors.As(err, &oe) && oe.ErrorType == oidc.AccessDenied {
		return nil, op.NewStatusError(&oidc.Error{ErrorType: "invalid_token", Description: "the access token is not active"}, http.StatusUnauthorized)
	}
	return resp, err
}

// bearerChallenge adds RFC 6750's WWW-Authenticate challenge to the
// userinfo endpoint's 401 answers.
func bearerChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(challengeWriter{w}, r)
	})
}

type challengeWriter struct{ http.ResponseWriter }

func (c challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the access token is not active"`)
	}
	c.ResponseWriter.WriteHeader(code)
}
