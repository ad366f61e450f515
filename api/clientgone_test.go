package api

import (
	"bytes"
	"log/slog"
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
	var logs bytes.Buffer
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.NewJSONHandler(&logs, nil)))
	a := clientgonetest.New()
	e.GET("/gone", func(c echo.Context) error { return a.Wait(c.Request()) })
	a.Run(t, e)
	got := logs.String()
	if strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, `"status":499`) || !strings.Contains(got, `"code":"client_closed_request"`) {
		t.Fatalf("log:\n%s", got)
	}
}
