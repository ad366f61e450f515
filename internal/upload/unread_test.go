package upload

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCloseIfUnread: a refusal closes the connection when the request's
// body was left unread, or read part way, and not when it was read to its
// end or there was none.
func TestCloseIfUnread(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		read  int // bytes read before the answer; -1 all
		close bool
	}{
		{"unread", "0123456789", 0, true},
		{"read part way", "0123456789", 4, true},
		{"read to the end", "0123456789", -1, false},
		{"no body", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = http.NoBody
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := TrackBody(httptest.NewRequest(http.MethodPost, "/upload", body))
			// A handler may derive requests and wrap the body further.
			r = r.WithContext(r.Context())
			r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
			switch {
			case tc.read < 0:
				if _, err := io.ReadAll(r.Body); err != nil {
					t.Fatal(err)
				}
			case tc.read > 0:
				if _, err := io.ReadFull(r.Body, make([]byte, tc.read)); err != nil {
					t.Fatal(err)
				}
			}
			w := httptest.NewRecorder()
			CloseIfUnread(w, r)
			if got := w.Header().Get("Connection") == "close"; got != tc.close {
				t.Fatalf("Connection: %q, want close %v", w.Header().Get("Connection"), tc.close)
			}
		})
	}
}
