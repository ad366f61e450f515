package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// ContentType is the only media type the API answers in.
const ContentType = "application/fhir+json"

// Tokens verifies access tokens (oauth.Provider does).
type Tokens interface {
	ResourceToken(ctx context.Context, secret string) (oauth.AccessToken, error)
}

// Clients lists the registered OAuth clients; their redirect URIs'
// origins are the origins CORS allows (oauth.Provider does).
type Clients interface {
	Clients(ctx context.Context) ([]oauth.ClientInfo, error)
}

// Records is what the API reads of the record store (vault.Vault).
type Records interface {
	User(ctx context.Context, id string) (vault.User, error)
	Readings(ctx context.Context, patientID, schema string, from, to time.Time) iter.Seq2[vault.Reading, error]
	// Schemas lists the schemas the patient has readings of (vault.Schemas).
	Schemas(ctx context.Context, patientID string) ([]string, error)
}

// Ledger is what the API asks of the consent ledger (consent.Ledger).
type Ledger interface {
	Decide(r consent.Request) consent.Decision
	DecideApp(id, app string, r consent.Request) consent.Decision
	Grants(patient, clinician string) ([]consent.GrantState, error)
	Grant(id string) (consent.GrantState, error)
	AppendAccess(check func(next int64) error, start, end consent.Entry) (int64, error)
}

// Sealer seals the paging cursors (the master keyset, keys.Master).
type Sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
}

// Config is what New needs.
type Config struct {
	// BaseURL is the vault's public base URL; the FHIR base is BaseURL/fhir.
	BaseURL *url.URL
	Tokens  Tokens
	Clients Clients
	Records Records
	Ledger  Ledger
	Sealer  Sealer
	// RequireSignedGrants: only grants the patient signed with her passkey
	// cover a clinician's reads (serve --require-signed-grants).
	RequireSignedGrants bool
	Logger              *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Server is the FHIR API.
type Server struct {
	base          string // BaseURL/fhir, no trailing slash
	tokens        Tokens
	clients       Clients
	records       Records
	ledger        Ledger
	sealer        Sealer
	requireSigned bool
	log           *slog.Logger
	now           func() time.Time
	handler       http.Handler
	pages         sync.Pool // *[]byte: page buffers, reused (a 1,000-Observation page is about 1 MB)
}

// New makes the API.
func New(c Config) (*Server, error) {
	if c.BaseURL == nil || c.Tokens == nil || c.Clients == nil || c.Records == nil || c.Ledger == nil || c.Sealer == nil {
		return nil, errors.New("fhir: BaseURL, Tokens, Clients, Records, Ledger and Sealer are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	s := &Server{base: strings.TrimSuffix(c.BaseURL.String(), "/") + "/fhir", tokens: c.Tokens, clients: c.Clients,
		records: c.Records, ledger: c.Ledger, sealer: c.Sealer, requireSigned: c.RequireSignedGrants, log: c.Logger, now: c.Now}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the API; mount it at /fhir/ (it expects the full path).
// The OAuth provider keeps /fhir/auth/ and /fhir/.well-known/.
func (s *Server) Handler() http.Handler { return s.handler }

// Error is a refusal, answered as an OperationOutcome: Status is the HTTP
// status, Code the OperationOutcome issue code, Reason the vault's stable
// error code (in details.coding, docs/fhir.md), Message what to do.
type Error struct {
	Status  int
	Code    string // OperationOutcome.issue.code: invalid, not-found, forbidden, login, not-supported, exception, throttled
	Reason  string
	Message string
	Cause   error // logged, never sent
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func refuse(status int, code, reason, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// The vault's error codes system in OperationOutcome.issue.details.
const reasonSystem = "https://jupyterhealth.org/vault/fhir-error"

type outcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []issue `json:"issue"`
}

type issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Details     *concept `json:"details,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// handlerFunc is a route's handler: it writes its answer, or returns an
// error the one error path answers.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// serve runs a route with CORS, the one error path and JSON headers.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.cors(w, r)
		err := h(w, r)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Code: "exception", Reason: "internal", Message: "the server failed; retry later", Cause: err}
		}
		if clientgone.Is(r, err) {
			e = &Error{Status: clientgone.Status, Code: "exception", Reason: clientgone.Code, Message: clientgone.Message, Cause: err}
			s.log.Info("fhir request abandoned", "path", r.URL.Path, "cause", err.Error())
		}
		if e.Status >= 500 {
			s.log.Error("fhir request failed", "path", r.URL.Path, "reason", e.Reason, "cause", fmt.Sprint(e.Cause))
		}
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.base+`", error="invalid_token", error_description="`+e.Message+`"`)
		}
		writeJSON(w, e.Status, outcome{ResourceType: "OperationOutcome", Issue: []issue{{Severity: "error", Code: e.Code,
			Details: &concept{Coding: []coding{{System: reasonSystem, Code: e.Reason}}}, Diagnostics: e.Message}}})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	writeBytes(w, status, b)
}

func writeBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", ContentType+"; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// cors answers the origins of registered clients (the scheme, host and
// port of a redirect URI), exactly, on every answer, errors included. The
// metadata is open to any origin. Credentials are never needed: the API
// reads a bearer token, not cookies.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin == "" {
		return
	}
	allowed := r.URL.Path == "/fhir/metadata"
	if !allowed {
		cs, err := s.clients.Clients(r.Context())
		if err != nil {
			s.log.Warn("fhir cors: clients not read", "cause", err.Error())
		}
		for _, c := range cs {
			for _, u := range c.RedirectURIs {
				if originOf(u) == origin {
					allowed = true
				}
			}
		}
	}
	if !allowed {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Location, Content-Location, WWW-Authenticate")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Accept, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
	}
}

// originOf is a URL's origin, scheme://host[:port], or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// bearer verifies the request's access token.
func (s *Server) bearer(r *http.Request) (oauth.AccessToken, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return oauth.AccessToken{}, refuse(http.StatusUnauthorized, "login", "no_token", "send an OAuth access token: Authorization: Bearer vo_…")
	}
	t, err := s.tokens.ResourceToken(r.Context(), strings.TrimSpace(secret))
	switch {
	case errors.Is(err, vault.ErrTokenExpired):
		return t, refuse(http.StatusUnauthorized, "login", "token_expired", "the access token has expired; refresh it or sign in again")
	case errors.Is(err, vault.ErrTokenInvalid):
		return t, refuse(http.StatusUnauthorized, "login", "invalid_token", "the access token is not active (unknown, revoked, or its grant is gone); sign in again")
	case err != nil:
		return t, &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "unavailable", Message: "the token could not be checked; retry later", Cause: err}
	}
	if t.Context == "" {
		return t, refuse(http.StatusForbidden, "forbidden", "scope", "the token carries no patient/ or user/ resource scope")
	}
	return t, nil
}
