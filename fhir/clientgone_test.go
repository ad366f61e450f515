package fhir

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/internal/clientgone/clientgonetest"
)

// TestClientGoneIsNotAnError: a search whose client closes the connection
// while the handler waits on the store is logged as abandoned, not as the
// server's failure (it was an ERROR line and a 500).
func TestClientGoneIsNotAnError(t *testing.T) {
	logs := clientgonetest.Logged(t, func(log *slog.Logger, wait func(*http.Request) error) http.Handler {
		s := &Server{log: log}
		return s.serve(func(_ http.ResponseWriter, r *http.Request) error { return wait(r) })
	})
	if !strings.Contains(logs, "fhir request abandoned") {
		t.Fatalf("log:\n%s", logs)
	}
}
