// Package clientgone tells a request its client gave up on from one the
// vault failed. A client that closes its connection (a notebook
// interrupted, a phone that lost its network, a load generator stopped)
// cancels the request's context: whatever the handler was waiting on
// returns context.Canceled, and an answer already streaming meets a
// broken pipe or a reset. That is not the vault's failure: the error
// paths log it as a refusal, not an error, and count it under Status, so
// that an alert on 5xx answers fires for the vault's own failures only.
package clientgone

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"
)

// Status is the status a request its client abandoned is logged and
// counted with: 499, "client closed request", as nginx logs it. Nobody
// reads the answer; it exists for the log and the metrics.
const Status = 499

// Code is the error code logged with Status.
const Code = "client_closed_request"

// Message is the message an abandoned request's answer carries.
const Message = "the client closed the connection before the answer was ready"

// Is reports whether err is what a handler meets when r's client has
// gone: r's context is cancelled (the server saw the connection close),
// and err is that cancellation, or a write the closed connection refused
// (a broken pipe, a reset) in an answer already streaming. A cancellation
// or a write error while the request's context is still live is the
// vault's failure and is not matched.
func Is(r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		// The write can fail a moment before the server's reader sees
		// the same close and cancels the context: give it that moment.
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(closeNoticed):
			return false
		}
	}
	return r.Context().Err() != nil && errors.Is(err, context.Canceled)
}

// closeNoticed bounds how long Is waits, after a refused write, for the
// server to notice the closed connection.
const closeNoticed = 100 * time.Millisecond
