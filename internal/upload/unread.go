package upload

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
)

// A refusal answered before the body is read (a second upload from one
// patient, a bad token, a full patient queue) must not wait for the body:
// net/http reads up to 256 KiB of an unread body before it sends the
// answer, to keep the connection, and a client that trickles that body
// would be waited on. [TrackBody] notes whether the body was read to its
// end, and [CloseIfUnread] asks for the connection to be closed after the
// answer (Connection: close), so the answer goes out at once.

type trackedKey struct{}

// tracked is a request body that notes when it has been read to its end.
type tracked struct {
	io.ReadCloser
	done atomic.Bool
}

func (t *tracked) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.done.Store(true)
	}
	return n, err
}

// TrackBody returns r with its body wrapped so that [CloseIfUnread] can
// tell whether it was read to its end. A request without a body is
// returned as it is.
func TrackBody(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r
	}
	t := &tracked{ReadCloser: r.Body}
	r = r.WithContext(context.WithValue(r.Context(), trackedKey{}, t))
	r.Body = t
	return r
}

// CloseIfUnread sets Connection: close on w's header when r (from
// [TrackBody], or a request derived from it) has a body that was not read
// to its end. Call it before the answer's header is written.
func CloseIfUnread(w http.ResponseWriter, r *http.Request) {
	if t, ok := r.Context().Value(trackedKey{}).(*tracked); ok && !t.done.Load() {
		w.Header().Set("Connection", "close")
	}
}
