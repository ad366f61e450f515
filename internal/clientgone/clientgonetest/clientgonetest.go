// Package clientgonetest drives a handler through a request its client
// abandons, on a real loopback server, for the tests of every surface's
// error path.
package clientgonetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Abandoner is one abandoned request: the handler under test calls Wait
// where a real one would wait on the store, and Run sends the request and
// goes away while the handler waits.
type Abandoner struct {
	entered chan struct{}
}

// New returns an Abandoner for one request.
func New() *Abandoner { return &Abandoner{entered: make(chan struct{})} }

// Wait blocks until r's client has gone, then returns what a store read
// returns then: its context's cancellation, wrapped.
func (a *Abandoner) Wait(r *http.Request) error {
	close(a.entered)
	<-r.Context().Done()
	return fmt.Errorf("reading the store: %w", r.Context().Err())
}

// Run serves h on a loopback server, sends it one GET, cancels the request
// once h has called Wait, and returns when h has returned.
func (a *Abandoner) Run(t *testing.T, h http.Handler) {
	t.Helper()
	returned := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+"/gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-a.entered:
	case err := <-errc:
		t.Fatalf("the handler answered before it waited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never called Wait")
	}
	cancel()
	<-errc
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after its client went away")
	}
}

// Logged builds a surface's handler with a logger writing JSON lines and a
// wait to call where a real handler would wait on the store, runs it
// through an abandoned request, fails the test if anything was logged at
// ERROR, and returns the log.
func Logged(t *testing.T, build func(log *slog.Logger, wait func(*http.Request) error) http.Handler) string {
	t.Helper()
	var logs bytes.Buffer
	a := New()
	a.Run(t, build(slog.New(slog.NewJSONHandler(&logs, nil)), a.Wait))
	got := logs.String()
	if strings.Contains(got, `"level":"ERROR"`) {
		t.Fatalf("an abandoned request was logged as an error:\n%s", got)
	}
	return got
}
