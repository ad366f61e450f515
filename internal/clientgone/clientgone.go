// Package clientgone tells a request its client gave up on from one the
// vault failed. A client that closes its connection (a notebook
// interrupted, a phone that lost its network, a load generator stopped)
// cancels the request's context, and whatever the handler was waiting on
// returns context.Canceled. That is not the vault's failure: the error
// paths log it as a refusal, not an error, and count it under Status, so
// that an alert on 5xx answers fires for the vault's own failures only.
package clientgone

import (
	"context"
	"errors"
	"net/http"
)

// Status is the status a request its client abandoned is logged and
// counted with: 499, "client closed request", as nginx logs it. Nobody
// reads the answer; it exists for the log and the metrics.
const Status = 499

// Code is the error code logged with Status.
const Code = "client_closed_request"

// Message is the message an abandoned request's answer carries.
const Message = "the client closed the connection before the answer was ready"

// Is reports whether err is the cancellation of r's own context: the
// client went away before the answer was ready. A cancellation the
// request did not cause (its context still live) is the vault's failure
// and is not matched.
func Is(r *http.Request, err error) bool {
	return err != nil && r.Context().Err() != nil && errors.Is(err, context.Canceled)
}
