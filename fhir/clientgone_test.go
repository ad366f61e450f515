package fhir

import (
	"bytes"
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
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	a := clientgonetest.New()
	a.Run(t, s.serve(func(_ http.ResponseWriter, r *http.Request) error { return a.Wait(r) }))
	got := logs.String()
	if strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, "fhir request abandoned") {
		t.Fatalf("log:\n%s", got)
	}
}
