package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// DefaultExportStallTimeout is how long an export waits for a client that
// has stopped reading before it gives up (Config.ExportStallTimeout).
const DefaultExportStallTimeout = time.Minute

// stallLimit is for a route that streams a long answer (the export). The
// public listener has no whole-response write timeout, since an export
// may rightly take long on a slow link; in its place every write here has
// a deadline of stall from when it starts, so a client that stops reading
// is dropped after stall (and the export ends, logged incomplete) instead
// of holding the handler, and what it holds open, for ever.
func stallLimit(stall time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			resp := c.Response()
			rc := http.NewResponseController(resp.Writer)
			if rc.SetWriteDeadline(time.Now().Add(stall)) != nil {
				// The connection can't take deadlines (an in-process
				// recorder): nothing to bound.
				return next(c)
			}
			// What the handler leaves buffered goes out under the last
			// write's deadline; net/http clears it after the response.
			resp.Writer = &stallWriter{ResponseWriter: resp.Writer, rc: rc, stall: stall}
			return next(c)
		}
	}
}

// stallWriter sets a write deadline of stall before each write.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.stall)); err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(p)
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *stallWriter) Flush() {
	if w.rc.SetWriteDeadline(time.Now().Add(w.stall)) == nil {
		_ = w.rc.Flush()
	}
}
