package api

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/internal/clientgone/clientgonetest"
	"github.com/labstack/echo/v4"
)

// TestClientGoneIsNotAnError: a request whose client closes the connection
// while the handler waits on the store is logged as a refusal with
// client_closed_request (499), not as the vault's failure (an ERROR line
// and a 500, which is what it was, and what an alert on 5xx would fire on).
func TestClientGoneIsNotAnError(t *testing.T) {
	logs := clientgonetest.Logged(t, func(log *slog.Logger, wait func(*http.Request) error) http.Handler {
		e := echo.New()
		e.HTTPErrorHandler = errorHandler(log)
		e.GET("/gone", func(c echo.Context) error { return wait(c.Request()) })
		return e
	})
	if !strings.Contains(logs, `"status":499`) || !strings.Contains(logs, `"code":"client_closed_request"`) {
		t.Fatalf("log:\n%s", logs)
	}
}
