package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Importers are the file formats POST /api/v1/imports takes
// (ingest/formats).
type Importers = importer.Registry

// Import limits.
const (
	DefaultMaxImportBytes = 2 << 30 // an Apple Health export.zip of several years
	// maxConcurrentImports bounds the imports parsing and storing at once,
	// over all patients: each parses its file twice and holds one
	// transaction's readings. An upload is spooled whole before it waits
	// for one, so a slow upload never holds one.
	maxConcurrentImports = 2
	// maxImportsPerPatient bounds one patient's imports in flight
	// (uploading or importing); another is refused with 429
	// too_many_imports. It also bounds the spool space per patient.
	maxImportsPerPatient = 1
	// importReadTimeout bounds an upload's whole body, whatever its rate
	// (which must also stay above the minimum upload rate).
	importReadTimeout = 30 * time.Minute
)

// ImportResponse is the answer to POST /api/v1/imports.
type ImportResponse = importer.Result

// postImport imports a file: the raw body, or the "file" part of a
// multipart form. ?format= names the format; without it the format is
// recognised from the file's start.
func (s *Server) postImport(c echo.Context) error {
	if s.importers == nil {
		return newError(http.StatusNotFound, "not_found", "this vault takes no imports")
	}
	tok := principal(c)
	if !s.importPer.TryAcquire(tok.UserID) {
		return newError(http.StatusTooManyRequests, "too_many_imports", "an import of yours is running; retry when it has finished")
	}
	defer s.importPer.Release(tok.UserID)
	var f importer.Format
	if name := c.QueryParam("format"); name != "" {
		var ok bool
		if f, ok = s.importers.Lookup(name); !ok {
			return newError(http.StatusBadRequest, "bad_format", "format must be one of %s, or left out to be recognised", strings.Join(s.importers.Names(), ", "))
		}
	}
	req, w := c.Request(), c.Response()
	// An upload of a few GB on a home uplink takes longer than the
	// server's read timeout allows an ordinary request, but it must keep
	// up the minimum rate. The limit applies to the whole request, form
	// and all.
	rate := s.uploadRate
	rate.Max = importReadTimeout
	req.Body = http.MaxBytesReader(w, io.NopCloser(rate.Reader(w, req.Body)), s.maxImport+64<<10)
	body, aerr := importBody(req)
	if aerr != nil {
		return aerr
	}
	sp, err := importer.Spool(body, s.spoolDir, s.maxImport)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, upload.ErrTooSlow):
		return tooSlow(s.uploadRate)
	case errors.Is(err, importer.ErrTooLarge) || errors.As(err, &mbe):
		return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the file is larger than the import limit of %d bytes", s.maxImport)
	case vault.IsStorageFull(err):
		// The spool (in the data directory) could not be written.
		return storageFull(err)
	case err != nil:
		return &Error{Status: http.StatusBadRequest, Code: "upload_failed", Message: "the upload did not arrive whole; send it again", Cause: err}
	}
	defer sp.Close()
	if sp.Size() == 0 {
		return newError(http.StatusBadRequest, "empty_file", "the file is empty")
	}
	// The upload is on disk: now wait for one of the slots every patient
	// shares, held only while the file is parsed and stored.
	select {
	case s.importSlots <- struct{}{}:
		defer func() { <-s.importSlots }()
	case <-req.Context().Done():
		return newError(http.StatusServiceUnavailable, "busy", "the vault is busy; retry shortly")
	}
	res, err := runImport(req.Context(), s.vault, s.importers, tok.UserID, f, c.QueryParam("date_order"), sp)
	s.metrics.ingested.WithLabelValues("accepted").Add(float64(res.Accepted))
	s.metrics.ingested.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	if err != nil {
		outcome := "refused"
		if res.Accepted+res.Duplicates > 0 {
			outcome = "incomplete"
		}
		s.metrics.imports.WithLabelValues(cmp.Or(res.Format, f.Name, "unknown"), outcome).Inc()
		return err
	}
	s.metrics.imports.WithLabelValues(res.Format, "complete").Inc()
	s.log.Info("import", "format", res.Format, "readings", res.Readings, "accepted", res.Accepted, "duplicates", res.Duplicates, "skipped", res.Skipped, "transactions", res.Transactions)
	return c.JSON(http.StatusCreated, res)
}

// runImport runs importer.Import and maps its refusals to responses.
func runImport(ctx context.Context, v *vault.Vault, importers Importers, patientID string, f importer.Format, dateOrder string, src importer.Source) (importer.Result, error) {
	res, err := importer.Import(ctx, v, importers, patientID, f, dateOrder, src)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, importer.ErrBadDateOrder):
		return res, newError(http.StatusBadRequest, "bad_date_order", "date order must be %s or %s", ingest.DateMonthFirst, ingest.DateDayFirst)
	case errors.Is(err, vault.ErrNoUser):
		return res, newError(http.StatusNotFound, "no_user", "no such patient")
	case errors.Is(err, importer.ErrNotPatient):
		return res, newError(http.StatusBadRequest, "bad_user", "only a patient's records can be imported")
	case errors.Is(err, importer.ErrUnrecognised):
		return res, newError(http.StatusBadRequest, "unknown_format", "the file's format was not recognised; name it with format (one of %s)", strings.Join(importers.Names(), ", "))
	}
	return res, importError(err, res)
}

// importError maps an import's failure to a response. A malformed file is
// a 400 naming the line or element; a storage failure part way is a 503
// that says how far it got and that re-running the import finishes it.
func importError(err error, res importer.Result) *Error {
	var ie *ingest.Error
	switch {
	case errors.As(err, &ie) && !errors.Is(err, importer.ErrStopped):
		msg := ie.Pos.String() + ": " + ie.Message + "; nothing was imported"
		if ie.Code == "ambiguous_date" {
			msg += " (say how to read the dates with date_order=" + ingest.DateMonthFirst + " or " + ingest.DateDayFirst + ")"
		}
		return &Error{Status: http.StatusBadRequest, Code: ie.Code, Message: msg, Field: ie.Pos.Element}
	case errors.Is(err, importer.ErrStopped):
		ae := storeError(err)
		switch ae.Code {
		case "internal":
			ae = &Error{Status: http.StatusServiceUnavailable, Code: "import_incomplete", Cause: err}
			ae.Message = importIncomplete(res)
		case "shutting_down":
			ae.Message = importIncomplete(res)
		}
		// Otherwise (the patient was deleted meanwhile) sending the file
		// again would not help: the store's own answer stands.
		return ae
	}
	return storeError(err)
}

func importIncomplete(res importer.Result) string {
	return fmt.Sprintf("the import stopped after %d of %d readings were stored; send the same file again to finish it (what is stored already counts as duplicates)",
		res.Accepted+res.Duplicates, res.Readings)
}

// importBody returns the upload: the raw body, or the first file part of a
// multipart form (named "file").
func importBody(req *http.Request) (io.Reader, *Error) {
	mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/form-data" {
		return req.Body, nil
	}
	mr := multipart.NewReader(req.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, newError(http.StatusBadRequest, "no_file", "the form has no part named file")
		}
		if err != nil {
			return nil, newError(http.StatusBadRequest, "bad_multipart", "the multipart form is malformed")
		}
		if p.FormName() == "file" {
			return p, nil
		}
	}
}
