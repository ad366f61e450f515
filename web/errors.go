package web

import (
	"errors"
	"net/http"

	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
)

// Every handler returns an error, and one adapter (serve, in routes.go)
// turns it into the response: it logs the cause and shows the person a
// message they can act on, on the error page, or as {code, message} JSON
// from the /webauthn/… endpoints. A handler that succeeds writes its page,
// JSON or redirect and returns nil.
//
// A *publicError carries what the person may see. Any other error is
// internal: it answers 500 with a generic message, and its text goes only
// to the log. So a store's, the ledger's or a template's error can never
// reach a browser, whatever a handler does with it. vault.InputError (a caller's
// mistake the vault package reports) answers 400 with its own code and
// message, as it does in the API.

// publicError is a failure a person may be told about. Code is stable (a
// script or a test may go by it; docs/web.md lists them), Title heads the error
// page, Message says what to do. Cause, if any, goes only to the log.
// Neither Title nor Message may hold a secret, a name or a reading.
type publicError struct {
	Status  int
	Code    string
	Title   string
	Message string
	Cause   error
}

func (e *publicError) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Cause.Error()
	}
	return e.Code
}

func (e *publicError) Unwrap() error { return e.Cause }

// because returns a copy of e with a cause for the log.
func (e *publicError) because(cause error) *publicError {
	c := *e
	c.Cause = cause
	return &c
}

// refuse is an Error without a cause.
func refuse(status int, code, title, msg string) *publicError {
	return &publicError{Status: status, Code: code, Title: title, Message: msg}
}

// unavailable is a store or ledger failure the person may retry: 503, with
// what did not happen.
func unavailable(title, msg string, cause error) *publicError {
	return &publicError{Status: http.StatusServiceUnavailable, Code: "unavailable", Title: title, Message: msg, Cause: cause}
}

// grantsUnavailable is the answer when the ledger's grant index cannot be
// brought up to date (a replica that cannot reach the database): what the
// page would list is not known, so it is not shown as empty.
func grantsUnavailable(cause error) *publicError {
	return unavailable("Not available", "The grants could not be read just now. Try again shortly.", cause)
}

// The refusals several handlers and guards share.
var (
	errNotFound    = refuse(http.StatusNotFound, "not_found", "Page not found", "There is no page at this address, or it is not yours to see.")
	errSignedOut   = refuse(http.StatusUnauthorized, "signed_out", "Signed out", "Your session has ended. Sign in again.")
	errCSRF        = refuse(http.StatusForbidden, "csrf", "Request refused", "This request could not be verified. Reload the page and try again.")
	errBadOrigin   = refuse(http.StatusForbidden, "bad_origin", "Request refused", "This request did not come from the vault's own pages.")
	errBadForm     = refuse(http.StatusBadRequest, "bad_form", "Request refused", "The form could not be read. Reload the page and try again.")
	errBadJSON     = refuse(http.StatusBadRequest, "bad_json", "Request refused", "The request body is not the JSON this endpoint expects.")
	errBadCType    = refuse(http.StatusUnsupportedMediaType, "bad_content_type", "Request refused", "Send the request as application/json.")
	errRateLimit   = refuse(http.StatusTooManyRequests, "rate_limited", "Too many attempts", "Too many attempts came from this address. Wait a minute and try again.")
	errNotRecent   = refuse(http.StatusForbidden, "sign_in_again", "Sign in again", "For your safety, this needs a recent sign-in. Sign out, sign in again with your passkey, and try once more.")
	errBusy        = refuse(http.StatusServiceUnavailable, "busy", "Try again shortly", "The vault is busy. Try again in a minute.")
	errNoAccount   = refuse(http.StatusNotFound, "no_user", "No account", "This account no longer exists.")
	errSessionDown = refuse(http.StatusServiceUnavailable, "unavailable", "Try again shortly", "The vault could not check your sign-in just now. Try again shortly.")
	errStorageFull = refuse(http.StatusInsufficientStorage, "storage_full", "The vault's disk is full", "The vault's disk is full, so nothing was saved or sent. Its administrator must free space; then try again.")
	// errInternal is what any error that is not an *publicError becomes.
	errInternal = refuse(http.StatusInternalServerError, "internal", "Something went wrong", "Something went wrong on the vault. Try again shortly.")
)

// asPublic is what the person is shown for err.
func asPublic(err error) *publicError {
	var pe *publicError
	var ie *vault.InputError
	switch {
	case errors.As(err, &pe) && !(pe.Status >= 500 && vault.IsStorageFull(err)):
		return pe
	case vault.IsStorageFull(err):
		return errStorageFull.because(err)
	case errors.As(err, &ie):
		return &publicError{Status: http.StatusBadRequest, Code: ie.Code, Title: "Request refused", Message: ie.Message, Cause: err}
	}
	return errInternal.because(err)
}

// respond answers a failed request: it logs the failure (the route's
// pattern, never its path, which may hold an invite token; the user id;
// the cause) and writes the public message, as JSON for a JSON route and
// as the error page otherwise. sess is the request's session when the
// route found one. A response the handler had begun is left as it is.
func (s *Server) respond(w *responseWriter, r *http.Request, rt route, sess *session, err error) {
	pe := asPublic(err)
	if clientgone.Is(r, err) {
		pe = refuse(clientgone.Status, clientgone.Code, "Request abandoned", clientgone.Message).because(err)
	}
	attrs := []any{"method", r.Method, "route", rt.pattern, "status", pe.Status, "code", pe.Code}
	if sess != nil {
		attrs = append(attrs, "user", sess.UserID)
	}
	if pe.Cause != nil {
		attrs = append(attrs, "cause", pe.Cause.Error())
	}
	switch {
	case w.wrote && pe.Status == clientgone.Status:
		s.log.Info("web request abandoned after its response began", attrs...)
		return
	case w.wrote:
		s.log.Error("web request failed after its response began", attrs...)
		return
	case pe.Status >= 500:
		s.log.Error("web request failed", attrs...)
	default:
		s.log.Info("web request refused", attrs...)
	}
	// Refused before the body was read: answer at once and close, rather
	// than wait for a client that may be trickling it.
	upload.CloseIfUnread(w, r)
	if rt.guards&jsonAPI != 0 {
		writeJSON(w, pe.Status, errorBody{Code: pe.Code, Message: pe.Message})
		return
	}
	d := pageData{Title: pe.Title, Error: pe.Message, ErrorCode: pe.Code}
	if sess == nil && rt.who == anyone {
		if cur, ok := s.currentSession(r); ok {
			sess = &cur
		}
	}
	if sess != nil {
		d = s.signedData(r.Context(), *sess, pe.Title, "")
		d.Error, d.ErrorCode = pe.Message, pe.Code
	}
	if err := s.render(w, pe.Status, "error", d); err != nil {
		s.log.Error("web error page failed", "route", rt.pattern, "cause", err.Error())
		http.Error(w, errInternal.Message, http.StatusInternalServerError)
	}
}

// errorBody is the JSON of a failed /webauthn/… request, the same shape
// as the API's.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// responseWriter remembers whether the handler began its response, so
// that an error returned after it did is logged, not written over it.
type responseWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *responseWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the upload
// extends its read deadline).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
