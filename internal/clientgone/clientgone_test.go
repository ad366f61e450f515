package clientgone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
)

func TestIs(t *testing.T) {
	live := httptest.NewRequest("GET", "/", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := live.WithContext(ctx)
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		name string
		req  bool // the request's own context cancelled
		err  error
		want bool
	}{
		{"client gone, store returns its cancellation", true, context.Canceled, true},
		{"client gone, cancellation wrapped", true, fmt.Errorf("scan: %w", context.Canceled), true},
		{"client gone, but a real failure", true, other, false},
		{"client gone, no error", true, nil, false},
		{"client gone, a streaming write refused", true, &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, true},
		{"client gone, connection reset", true, fmt.Errorf("export: %w", syscall.ECONNRESET), true},
		{"client there, a cancellation of something else", false, context.Canceled, false},
		{"client there, a write refused", false, syscall.EPIPE, false},
		{"client there, a real failure", false, other, false},
	} {
		r := live
		if tc.req {
			r = gone
		}
		if got := Is(r, tc.err); got != tc.want {
			t.Errorf("%s: Is = %v, want %v", tc.name, got, tc.want)
		}
	}
}
