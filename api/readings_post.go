package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"runtime"
	"sync"

	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// IngestResponse is the body of a successful POST /api/v1/readings.
type IngestResponse = vault.IngestResult

// postReadings stores one OMH point, a JSON array of them, or NDJSON, for
// the token's patient. The batch is atomic: any invalid point and nothing
// is stored.
func (s *Server) postReadings(c echo.Context) error {
	ct := c.Request().Header.Get("Content-Type")
	res, _, err := s.IngestUpload(c.Response(), c.Request(), principal(c), func(body []byte) ([][]byte, error) {
		raws, aerr := s.splitPoints(ct, body)
		if aerr != nil {
			return nil, aerr
		}
		return raws, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, res)
}

// IngestUpload is the path of POST /api/v1/readings, for the routes that
// take Open mHealth points inside another wrapper (the JupyterHealth
// Exchange–compatible surface's FHIR Observations): tok, a patient's or a
// device's token the caller has authenticated, is the patient's; the
// patient's own slot is taken first (her devices queue behind each other,
// never behind another patient's), then the body is read whole, at most
// MaxBodyBytes and at no less than the minimum rate, and only then one of
// the slots every patient shares is held while split cuts the body into
// one raw JSON point each (at most MaxBatch), and every point is validated,
// normalised and sealed; the slot is given back, and the batch is stored
// atomically (one invalid point and nothing is stored; a point stored
// before is a duplicate). It returns the counts
// and the points as stored (each with its uuid, derived when the point had
// none); a refusal is an *Error with the native API's status and code, or
// split's own error unchanged.
func (s *Server) IngestUpload(w http.ResponseWriter, req *http.Request, tok vault.Token, split func(body []byte) ([][]byte, error)) (vault.IngestResult, []*omh.Point, error) {
	if tok.Kind != vault.TokenPatient && tok.Kind != vault.TokenDevice {
		return vault.IngestResult{}, nil, newError(http.StatusForbidden, "wrong_token_type", "a %s token cannot upload readings; it needs a device or patient token", tok.Kind)
	}
	if !s.ingestPer.Acquire(req.Context(), tok.UserID) {
		return vault.IngestResult{}, nil, newError(http.StatusServiceUnavailable, "busy", "the vault is busy; retry shortly")
	}
	defer s.ingestPer.Release(tok.UserID)
	rate := s.uploadRate
	rate.Max = ingestReadTimeout
	body, err := readBody(req, w, s.maxBody, rate)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.metrics.rejected.WithLabelValues("body_too_large").Inc()
		return vault.IngestResult{}, nil, newError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes; split it into smaller batches", s.maxBody)
	case errors.Is(err, upload.ErrTooSlow):
		s.metrics.rejected.WithLabelValues("upload_too_slow").Inc()
		return vault.IngestResult{}, nil, tooSlow(s.uploadRate)
	case err != nil:
		return vault.IngestResult{}, nil, newError(http.StatusBadRequest, "body_unreadable", "the request body could not be read")
	}
	select {
	case s.ingestSlots <- struct{}{}:
	case <-req.Context().Done():
		return vault.IngestResult{}, nil, newError(http.StatusServiceUnavailable, "busy", "the vault is busy; retry shortly")
	}
	// The slot bounds the CPU phase (split, parse, validate, seal) only:
	// it is given back before the store's commit, so that the batches
	// waiting for the disk are not capped by it and go into one group
	// commit together.
	release := sync.OnceFunc(func() { <-s.ingestSlots })
	defer release()
	raws, err := split(body)
	if err != nil {
		var aerr *Error
		if errors.As(err, &aerr) {
			s.metrics.rejected.WithLabelValues(aerr.Code).Inc()
		}
		return vault.IngestResult{}, nil, err
	}
	if len(raws) > s.maxBatch {
		s.metrics.rejected.WithLabelValues("batch_too_large").Inc()
		return vault.IngestResult{}, nil, s.tooMany()
	}
	if len(raws) == 0 {
		return vault.IngestResult{}, nil, newError(http.StatusBadRequest, "empty_batch", "the request body holds no data points")
	}
	pts, aerr := parsePoints(raws)
	if aerr != nil {
		s.metrics.rejected.WithLabelValues(aerr.Code).Inc()
		return vault.IngestResult{}, nil, aerr
	}
	sealed, err := s.vault.Seal(req.Context(), tok.UserID, pts)
	if err != nil {
		return vault.IngestResult{}, nil, storeError(err)
	}
	release()
	res, err := s.vault.Store(req.Context(), sealed)
	if err != nil {
		return vault.IngestResult{}, nil, storeError(err)
	}
	s.metrics.ingested.WithLabelValues("accepted").Add(float64(res.Accepted))
	s.metrics.ingested.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	return res, pts, nil
}

// tooSlow is the answer to a body cut for arriving below the minimum rate.
func tooSlow(r upload.Rate) *Error {
	return newError(http.StatusRequestTimeout, "upload_too_slow", "the request body arrived slower than %d bytes a second (after the first %s); the connection was cut", r.MinBytesPerSecond, r.Grace)
}

// readAhead is the most of a body's announced length that readBody
// allocates before the bytes arrive.
const readAhead = 256 << 10

// readBody reads the whole body, at most limit bytes, at no less than rate,
// sized up front from Content-Length when the client sent one, up to
// readAhead.
func readBody(r *http.Request, w http.ResponseWriter, limit int64, rate upload.Rate) ([]byte, error) {
	rd := http.MaxBytesReader(w, io.NopCloser(rate.Reader(w, r.Body)), limit)
	if r.ContentLength <= 0 || r.ContentLength > limit {
		return io.ReadAll(rd)
	}
	// The buffer grows as the body arrives: a client that announces 16 MiB
	// and trickles it must not have it allocated up front.
	buf := bytes.NewBuffer(make([]byte, 0, min(r.ContentLength+1, readAhead)))
	_, err := buf.ReadFrom(rd)
	return buf.Bytes(), err
}

func isNDJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return true
	}
	return false
}

func indexed(i int, code, format string, args ...any) *Error {
	e := newError(http.StatusBadRequest, code, format, args...)
	e.Index = &i
	return e
}

// splitPoints cuts a body into one raw JSON value per point.
func (s *Server) splitPoints(contentType string, body []byte) ([][]byte, *Error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, newError(http.StatusBadRequest, "empty_batch", "the request body holds no data points")
	}
	var (
		out  [][]byte
		aerr *Error
	)
	if isNDJSON(contentType) {
		for line := range bytes.Lines(trimmed) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(out) == s.maxBatch {
				return nil, s.tooMany()
			}
			out = append(out, line)
		}
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if trimmed[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, indexed(0, omh.CodeMalformedJSON, "the body is not valid JSON")
		}
		if out, aerr = s.decodeValues(dec); aerr != nil {
			return nil, aerr
		}
		if _, err := dec.Token(); err != nil {
			return nil, indexed(len(out), omh.CodeMalformedJSON, "the JSON array is not closed properly")
		}
		if dec.More() {
			return nil, indexed(len(out), omh.CodeMalformedJSON, "unexpected data after the JSON array")
		}
		if len(out) == 0 {
			return nil, newError(http.StatusBadRequest, "empty_batch", "the array holds no data points")
		}
		return out, nil
	}
	// One object, or several concatenated (NDJSON sent without its type).
	return s.decodeValues(dec)
}

// decodeValues reads JSON values from dec while it has more, at most
// maxBatch of them.
func (s *Server) decodeValues(dec *json.Decoder) ([][]byte, *Error) {
	var out [][]byte
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, indexed(len(out), omh.CodeMalformedJSON, "point %d is not valid JSON", len(out))
		}
		if len(out) == s.maxBatch {
			return nil, s.tooMany()
		}
		out = append(out, raw)
	}
	return out, nil
}

func (s *Server) tooMany() *Error {
	return newError(http.StatusRequestEntityTooLarge, "batch_too_large", "a batch may hold at most %d points; split it", s.maxBatch)
}

// parsePoints validates every point, spread over all cores for large
// batches, and reports the lowest failing index.
func parsePoints(raws [][]byte) ([]*omh.Point, *Error) {
	pts := make([]*omh.Point, len(raws))
	workers := runtime.GOMAXPROCS(0)
	if len(raws) < 256 {
		workers = 1
	}
	chunk := (len(raws) + workers - 1) / workers
	firstBad := make([]int, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(raws))
		firstBad[w] = -1
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				p, err := omh.Parse(raws[i])
				if err == nil && !vault.TimeInRange(p.Time) {
					err = &omh.Error{Code: omh.CodeInvalidTime, Field: "body.effective_time_frame", Message: "the reading's time must be between 1900 and 2200"}
				}
				if err != nil {
					firstBad[w], errs[w] = i, err
					return
				}
				pts[i] = p
			}
		})
	}
	wg.Wait()
	for w := range workers {
		if firstBad[w] < 0 {
			continue
		}
		i := firstBad[w]
		var oe *omh.Error
		if errors.As(errs[w], &oe) {
			e := indexed(i, oe.Code, "point %d: %s", i, oe.Message)
			e.Field = oe.Field
			return nil, e
		}
		return nil, indexed(i, omh.CodeInvalidValue, "point %d is not a valid data point", i)
	}
	return pts, nil
}
