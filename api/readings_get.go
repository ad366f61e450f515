package api

import (
	"bufio"
	"net/http"
	"time"

	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// parseWindow reads ?from= and ?to= (RFC 3339; both optional) as [from, to).
func parseWindow(c echo.Context) (from, to time.Time, err *Error) {
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := c.QueryParam(p.name)
		if v == "" {
			continue
		}
		t, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			return from, to, newError(http.StatusBadRequest, "bad_time", "%s must be an RFC 3339 time with an offset, such as 2025-01-31T00:00:00Z", p.name)
		}
		if !vault.TimeInRange(t) {
			return from, to, newError(http.StatusBadRequest, "bad_time", "%s must be between 1900 and 2200", p.name)
		}
		*p.dst = t
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, newError(http.StatusBadRequest, "bad_window", "from must be earlier than to; the window is [from, to)")
	}
	return from, to, nil
}

// parseSchemas reads ?schema=. Without it every accepted schema the
// patient has readings of is read (vault.Schemas: the store lists them,
// rather than a scan of each of the hundred or so accepted ones);
// namespace:name without a version means the stored (canonical) version.
func (s *Server) parseSchemas(c echo.Context, patientID string) ([]string, *Error) {
	v := c.QueryParam("schema")
	if v == "" {
		all, err := s.vault.Schemas(c.Request().Context(), patientID)
		if err != nil {
			return nil, storeError(err)
		}
		return all, nil
	}
	id, err := omh.ParseSchemaID(v)
	if err == nil {
		// An older version that ingest normalises is stored (and so read)
		// under its canonical version.
		if c, ok := omh.CanonicalSchema(id); ok {
			return []string{c.String()}, nil
		}
	}
	return nil, newError(http.StatusBadRequest, omh.CodeUnknownSchema, "schema must be one the vault stores, written namespace:name:version, such as omh:blood-glucose:4.0")
}

// getReadings streams the patient's own readings as NDJSON, in time order
// within each schema.
func (s *Server) getReadings(c echo.Context) error {
	tok := principal(c)
	schemas, aerr := s.parseSchemas(c, tok.UserID)
	if aerr != nil {
		return aerr
	}
	from, to, aerr := parseWindow(c)
	if aerr != nil {
		return aerr
	}
	ctx := c.Request().Context()
	w := c.Response()
	var bw *bufio.Writer
	for _, schema := range schemas {
		for r, err := range s.vault.Readings(ctx, tok.UserID, schema, from, to) {
			if err != nil {
				if bw == nil {
					return storeError(err)
				}
				// The status is sent: abort so the client sees a broken
				// stream rather than a complete-looking partial one.
				if clientgone.Is(c.Request(), err) {
					s.log.Info("readings stream abandoned by the client", "patient", tok.UserID, "cause", err.Error())
				} else {
					s.log.Error("readings stream failed", "patient", tok.UserID, "cause", err.Error())
				}
				panic(http.ErrAbortHandler)
			}
			if bw == nil {
				w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
				bw = bufio.NewWriterSize(w, 64<<10)
			}
			bw.Write(r.JSON)
			bw.WriteByte('\n')
		}
	}
	if bw == nil {
		w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	return bw.Flush()
}
