package jhe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// Reads is the FHIR API's decision, access log and paging (fhir.Server).
type Reads interface {
	Read(ctx context.Context, req fhir.ReadRequest, render func(page []fhir.Reading, next string) ([]byte, error)) ([]byte, error)
	ReadableGrants(t oauth.AccessToken, patient string) ([]consent.GrantState, error)
}

// OAuthTokens verifies the OAuth provider's access tokens (oauth.Provider).
type OAuthTokens interface {
	ResourceToken(ctx context.Context, secret string) (oauth.AccessToken, error)
}

// Accounts authenticates vault API tokens and reads users (vault.Vault).
type Accounts interface {
	Authenticate(ctx context.Context, secret string) (vault.Token, error)
	User(ctx context.Context, id string) (vault.User, error)
}

// Config is what New needs.
type Config struct {
	// BaseURL is the vault's public base URL; the surface is BaseURL/jhe,
	// and every link it writes is absolute under it (never from Host).
	BaseURL  *url.URL
	Reads    Reads
	OAuth    OAuthTokens
	Accounts Accounts
	// Uploads is the native API's upload path; nil leaves the surface
	// read-only (POST answers 405 read_only).
	Uploads Uploads
	Logger  *slog.Logger
}

// Server is the JupyterHealth Exchange–compatible surface.
type Server struct {
	base     string // BaseURL/jhe, no trailing slash
	reads    Reads
	oauth    OAuthTokens
	accounts Accounts
	uploads  Uploads
	log      *slog.Logger
	handler  http.Handler
}

// New makes the surface.
func New(c Config) (*Server, error) {
	if c.BaseURL == nil || c.Reads == nil || c.OAuth == nil || c.Accounts == nil {
		return nil, errors.New("jhe: BaseURL, Reads, OAuth and Accounts are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{base: strings.TrimSuffix(c.BaseURL.String(), "/") + "/jhe", reads: c.Reads, oauth: c.OAuth, accounts: c.Accounts, uploads: c.Uploads, log: c.Logger}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the surface; mount it at /jhe/ (it expects the full
// path).
func (s *Server) Handler() http.Handler { return s.handler }

// Error is a refusal: Status the HTTP status, Code the stable error code
// (docs/jhe-compat.md), Detail what to do. It is answered as
// {"detail": …, "code": …, "message": …}: the client prints detail.
type Error struct {
	Status int
	Code   string
	Detail string
	Index  *int   // an upload's failing entry (0 for a lone Observation)
	Field  string // an upload's failing field, as a JSON path
	Cause  error  // logged, never sent
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

func refuse(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, a...)}
}

type errorBody struct {
	Detail  string `json:"detail"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   *int   `json:"index,omitempty"`
	Field   string `json:"field,omitempty"`
}

// handlerFunc is a route's handler: it writes its answer, or returns an
// error the one error path answers.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// serve runs a route through the one error path. A refusal of the FHIR
// API (a *fhir.Error: the ledger's 403s, a bad cursor, the access log
// unavailable) keeps its status and reason.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var e *Error
		var fe *fhir.Error
		var ae *api.Error
		switch {
		case errors.As(err, &e):
		case errors.As(err, &fe):
			e = &Error{Status: fe.Status, Code: fe.Reason, Detail: fe.Message, Cause: fe.Cause}
		case errors.As(err, &ae):
			e = &Error{Status: ae.Status, Code: ae.Code, Detail: ae.Message, Index: ae.Index, Field: ae.Field, Cause: ae.Cause}
		default:
			e = &Error{Status: http.StatusInternalServerError, Code: "internal", Detail: "the server failed; retry later", Cause: err}
		}
		if e.Status >= 500 && vault.IsStorageFull(err) {
			e = &Error{Status: http.StatusInsufficientStorage, Code: "storage_full", Detail: "the vault's disk is full, so nothing was stored; an admin must free space, then retry", Cause: err}
		}
		if clientgone.Is(r, err) {
			e = &Error{Status: clientgone.Status, Code: clientgone.Code, Detail: clientgone.Message, Cause: err}
			s.log.Info("jhe request abandoned", "path", r.URL.Path, "cause", err.Error())
		}
		if e.Status >= 500 {
			s.log.Error("jhe request failed", "path", r.URL.Path, "code", e.Code, "cause", fmt.Sprint(e.Cause))
		}
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.base+`", error="invalid_token"`)
		}
		writeJSON(w, e.Status, errorBody{Detail: e.Detail, Code: e.Code, Message: e.Detail, Index: e.Index, Field: e.Field})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	writeBytes(w, status, "application/json", b)
}

func writeBytes(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType+"; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// oauthPrefix and clinicianPrefix start the two kinds of token accepted.
const (
	oauthPrefix     = "vo_"
	clinicianPrefix = "vc_"
)

// bearer authenticates the request as a clinician: an OAuth access token
// with a user/ scope (its scopes bound what it reads), or a vc_ API token
// (every schema; the ledger decides). A vc_ token's reads are bound to
// the token, as a sign-in's are to its family.
func (s *Server) bearer(r *http.Request) (oauth.AccessToken, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return oauth.AccessToken{}, refuse(http.StatusUnauthorized, "missing_token", "send the clinician's token as Authorization: Bearer TOKEN (JHE_TOKEN): an OAuth access token (vo_…) or a vault clinician token (vc_…)")
	}
	var t oauth.AccessToken
	var err error
	switch {
	case strings.HasPrefix(secret, oauthPrefix):
		t, err = s.oauth.ResourceToken(r.Context(), secret)
		if err == nil && t.Context != "user" {
			return t, refuse(http.StatusForbidden, "wrong_token_type", "this surface reads what patients granted a clinician: it needs a clinician's token with a user/ scope, such as user/Observation.rs")
		}
	case strings.HasPrefix(secret, clinicianPrefix):
		var vt vault.Token
		vt, err = s.accounts.Authenticate(r.Context(), secret)
		if err == nil && vt.Kind != vault.TokenClinician {
			return t, refuse(http.StatusForbidden, "wrong_token_type", "this surface needs a clinician's token (vo_… or vc_…)")
		}
		if err == nil {
			t = oauth.AccessToken{UserID: vt.UserID, Family: "vc:" + vt.ID, Context: "user", Schemas: oauth.AllSchemas(), AllObservations: true, PatientRead: true, Expires: vt.Expires}
		}
	default:
		if _, err := s.accounts.Authenticate(r.Context(), secret); err == nil {
			return t, refuse(http.StatusForbidden, "wrong_token_type", "this surface needs a clinician's token (vo_… or vc_…)")
		}
		err = vault.ErrTokenInvalid
	}
	switch {
	case errors.Is(err, vault.ErrTokenExpired):
		return t, refuse(http.StatusUnauthorized, "token_expired", "the token has expired: sign in to the hub again, or ask the vault's admin for a new one")
	case errors.Is(err, vault.ErrTokenInvalid):
		return t, refuse(http.StatusUnauthorized, "invalid_token", "the token is not valid")
	case err != nil:
		return t, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Detail: "the token could not be checked; retry later", Cause: err}
	}
	return t, nil
}
