package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Error is what a handler returns for a request that fails. Code and Message
// go to the client; Cause goes only to the log. Message must never hold a
// reading's value, a name or a token.
type Error struct {
	Status  int
	Code    string
	Message string
	Index   *int   // the failing point of a batch
	Field   string // the failing field, as a JSON path
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Cause.Error()
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Cause }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "the vault could not complete the request; the error has been logged", Cause: cause}
}

// storageFull is the answer to a write the full disk refused: 507, whatever
// the handler made of the failure (an export's access_log_unavailable, an
// upload's internal), so a client and a monitor see one stable code.
func storageFull(cause error) *Error {
	return &Error{Status: http.StatusInsufficientStorage, Code: "storage_full", Message: "the vault's disk is full, so nothing was stored or sent; an admin must free space, then retry", Cause: cause}
}

// storeError maps what the vault returns to a response.
func storeError(err error) *Error {
	switch {
	case errors.Is(err, vault.ErrNoPatient):
		return newError(http.StatusForbidden, "no_patient", "this token's patient no longer exists")
	case errors.Is(err, vault.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "the vault is shutting down; retry shortly", Cause: err}
	}
	return internal(err)
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   *int   `json:"index,omitempty"`
	Field   string `json:"field,omitempty"`
}

// errorHandler is the one place errors become responses.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		var ae *Error
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &he):
			ae = fromEcho(he)
		default:
			ae = internal(err)
		}
		if ae.Status >= 500 && vault.IsStorageFull(err) {
			ae = storageFull(err)
		}
		if clientgone.Is(c.Request(), err) {
			ae = &Error{Status: clientgone.Status, Code: clientgone.Code, Message: clientgone.Message, Cause: err}
		}
		attrs := []any{"method", c.Request().Method, "route", c.Path(), "status", ae.Status, "code", ae.Code}
		if ae.Cause != nil {
			attrs = append(attrs, "cause", ae.Cause.Error())
		}
		if ae.Status >= 500 {
			log.Error("request failed", attrs...)
		} else {
			log.Info("request refused", attrs...)
		}
		if c.Response().Committed {
			return
		}
		// Refused before the body was read: answer at once and close,
		// rather than wait for a client that may be trickling it.
		upload.CloseIfUnread(c.Response(), c.Request())
		body := ErrorBody{Code: ae.Code, Message: ae.Message, Index: ae.Index, Field: ae.Field}
		if c.Request().Method == http.MethodHead {
			c.NoContent(ae.Status)
			return
		}
		c.JSON(ae.Status, body)
	}
}

func fromEcho(he *echo.HTTPError) *Error {
	switch he.Code {
	case http.StatusNotFound:
		return newError(he.Code, "not_found", "no such endpoint; see docs/api.md")
	case http.StatusMethodNotAllowed:
		return newError(he.Code, "method_not_allowed", "this endpoint does not accept that method")
	case http.StatusRequestEntityTooLarge:
		return newError(he.Code, "body_too_large", "the request body is too large")
	case http.StatusUnsupportedMediaType:
		return newError(he.Code, "unsupported_media_type", "unsupported content type")
	}
	if he.Code >= 400 && he.Code < 500 {
		return newError(he.Code, "bad_request", "the request could not be understood")
	}
	return internal(he)
}
