package web

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
)

// formatLabels name the import formats for people.
var formatLabels = map[string]string{
	ingest.FormatApple:      "Apple Health export (export.zip or export.xml)",
	ingest.FormatDexcom:     "Dexcom Clarity CSV export",
	ingest.FormatLibre:      "LibreView (FreeStyle Libre) CSV export",
	ingest.FormatFHIR:       "FHIR R4 Observations (JSON, NDJSON or a Bundle)",
	ingest.FormatNightscout: "Nightscout entries (JSON)",
}

type countView struct {
	Label      string
	Schema     string
	Accepted   int
	Duplicates int
}

type skipView struct {
	Where, Type, Reason string
}

type uploadResult struct {
	Format       string
	Readings     int
	Accepted     int
	Duplicates   int
	Skipped      int
	BySchema     []countView
	SkippedBy    []countView // Label is the source's type; Accepted its count
	SkipRows     []skipView
	MoreSkips    bool
	Transactions int
}

type uploadBody struct {
	Enabled    bool
	Formats    []option
	DateOrders []option
	MaxText    string
	Result     *uploadResult
}

func (s *Server) uploadForm(format, dateOrder string) uploadBody {
	b := uploadBody{Enabled: s.importers != nil, MaxText: byteSize(s.maxUpload)}
	b.Formats = []option{{Value: "", Label: "Recognise it from the file", Selected: format == ""}}
	if s.importers != nil {
		for _, n := range s.importers.Names() {
			l := formatLabels[n]
			if l == "" {
				l = n
			}
			b.Formats = append(b.Formats, option{Value: n, Label: l, Selected: n == format})
		}
	}
	b.DateOrders = []option{
		{Value: "", Label: "Work it out from the file", Selected: dateOrder == ""},
		{Value: ingest.DateMonthFirst, Label: "Month first (03/10/2024 is 10 March)", Selected: dateOrder == ingest.DateMonthFirst},
		{Value: ingest.DateDayFirst, Label: "Day first (03/10/2024 is 3 October)", Selected: dateOrder == ingest.DateDayFirst},
	}
	return b
}

// byteSize writes a size for people: "2 GiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (s *Server) uploadPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Upload", "upload")
	d.Body = s.uploadForm("", "")
	return s.render(w, http.StatusOK, "upload", d)
}

// upload imports the form's file into the patient's records: it is
// spooled, age-encrypted to a key only in memory, then parsed twice by
// importer.Import (checked whole, then stored), as POST /api/v1/imports
// does. The form is csrf, format, date_order, then file, in that order;
// multipartCSRF has read the csrf part already. What is wrong with the
// file or the form is said on the form; a failure of the vault's is an
// error.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Upload", "upload")
	fail := func(status int, format, dateOrder, msg string) error {
		d.Body, d.Error = s.uploadForm(format, dateOrder), msg
		return s.render(w, status, "upload", d)
	}
	if s.importers == nil {
		return refuse(http.StatusNotFound, "no_uploads", "No uploads", "This vault takes no uploads.")
	}
	// One upload per patient at a time; the file is spooled whole (at no
	// less than the minimum rate multipartCSRF's reader holds it to)
	// before it waits for one of the slots every patient shares.
	if !s.uploadPer.TryAcquire(sess.UserID) {
		return refuse(http.StatusTooManyRequests, "busy", "Try again shortly", "An upload of yours is importing right now. Try again when it has finished.")
	}
	defer s.uploadPer.Release(sess.UserID)
	mr := multipartOf(r)
	var format, dateOrder string
	var file *multipart.Part
	for file == nil {
		p, err := mr.NextPart()
		if err == io.EOF {
			return fail(http.StatusBadRequest, format, dateOrder, "Choose a file to upload.")
		}
		if err != nil {
			return fail(http.StatusBadRequest, format, dateOrder, "The upload did not arrive whole. Send it again.")
		}
		switch p.FormName() {
		case "file":
			file = p
		case "format", "date_order":
			v, err := io.ReadAll(io.LimitReader(p, 64))
			if err != nil {
				return fail(http.StatusBadRequest, format, dateOrder, "The upload did not arrive whole. Send it again.")
			}
			if p.FormName() == "format" {
				format = string(v)
			} else {
				dateOrder = string(v)
			}
		}
	}
	var f importer.Format
	if format != "" {
		var ok bool
		if f, ok = s.importers.Lookup(format); !ok {
			return fail(http.StatusBadRequest, "", dateOrder, "Choose a format from the list.")
		}
	}
	sp, err := importer.Spool(file, s.spoolDir, s.maxUpload)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, upload.ErrTooSlow):
		return refuse(http.StatusRequestTimeout, "upload_too_slow", "Upload too slow",
			fmt.Sprintf("The file arrived slower than %s a second, so the vault stopped waiting for it. Upload it again on a faster connection.", byteSize(s.uploadRate.MinBytesPerSecond)))
	case errors.Is(err, importer.ErrTooLarge) || errors.As(err, &mbe):
		return fail(http.StatusRequestEntityTooLarge, format, dateOrder, fmt.Sprintf("The file is larger than the upload limit of %s.", byteSize(s.maxUpload)))
	case vault.IsStorageFull(err):
		// The spool (in the data directory) could not be written.
		return errStorageFull.because(err)
	case err != nil:
		s.log.Warn("web upload failed", "user", sess.UserID, "cause", err.Error())
		return fail(http.StatusBadRequest, format, dateOrder, "The upload did not arrive whole. Send it again.")
	}
	defer sp.Close()
	if sp.Size() == 0 {
		return fail(http.StatusBadRequest, format, dateOrder, "The file is empty.")
	}
	select {
	case s.uploadSlots <- struct{}{}:
		defer func() { <-s.uploadSlots }()
	case <-r.Context().Done():
		return refuse(http.StatusServiceUnavailable, "unavailable", "Try again shortly", "Other uploads are importing right now. Try again in a minute.")
	}
	// As with the API, a browser that goes away stops the import; a file
	// big enough to be stored in parts says how far it got, and uploading
	// it again finishes it.
	res, err := importer.Import(r.Context(), s.vault, s.importers, sess.UserID, f, dateOrder, sp)
	if err != nil {
		status, msg := uploadError(err, res)
		if status >= 500 {
			code := "import_failed"
			if errors.Is(err, importer.ErrStopped) {
				code = "import_incomplete" // as the API says it
			}
			return &publicError{Status: status, Code: code, Title: "Not imported", Message: msg, Cause: fmt.Errorf("import %s: %w", res.Format, err)}
		}
		return fail(status, format, dateOrder, msg)
	}
	s.log.Info("web import", "user", sess.UserID, "format", res.Format, "readings", res.Readings, "accepted", res.Accepted, "duplicates", res.Duplicates, "skipped", res.Skipped)
	b := s.uploadForm(format, dateOrder)
	b.Result = resultView(res)
	d.Body = b
	d.Notice = fmt.Sprintf("Imported %d new readings (%d were already stored).", res.Accepted, res.Duplicates)
	return s.render(w, http.StatusOK, "upload", d)
}

// uploadError says why an import failed, and what to do.
func uploadError(err error, res importer.Result) (int, string) {
	var ie *ingest.Error
	switch {
	case errors.Is(err, importer.ErrBadDateOrder):
		return http.StatusBadRequest, "Choose a date order from the list."
	case errors.Is(err, importer.ErrUnrecognised):
		return http.StatusBadRequest, "The file's format was not recognised. Choose its format from the list and upload it again."
	case errors.Is(err, vault.ErrNoUser), errors.Is(err, importer.ErrNotPatient):
		return http.StatusNotFound, "This account can't import readings."
	case errors.As(err, &ie) && !errors.Is(err, importer.ErrStopped):
		msg := upperFirst(ie.Pos.String()) + ": " + ie.Message + ". Nothing was imported."
		if ie.Code == "ambiguous_date" {
			msg += " Choose how to read its dates (month first or day first) and upload it again."
		}
		return http.StatusBadRequest, msg
	case errors.Is(err, importer.ErrStopped):
		return http.StatusServiceUnavailable, fmt.Sprintf("The import stopped after %d of %d readings were stored. Upload the same file again to finish it: what is stored already counts as duplicates.",
			res.Accepted+res.Duplicates, res.Readings)
	}
	return http.StatusServiceUnavailable, "The file could not be imported just now. Nothing was stored; try again shortly."
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func resultView(res importer.Result) *uploadResult {
	v := &uploadResult{Format: formatLabels[res.Format], Readings: res.Readings, Accepted: res.Accepted, Duplicates: res.Duplicates,
		Skipped: res.Skipped, Transactions: res.Transactions, MoreSkips: res.Skipped > len(res.SkipRows)}
	if v.Format == "" {
		v.Format = res.Format
	}
	for _, schema := range res.Schemas() {
		c := res.BySchema[schema]
		v.BySchema = append(v.BySchema, countView{Label: schemaLabel(schemaName(schema)), Schema: schema, Accepted: c.Accepted, Duplicates: c.Duplicates})
	}
	for t, n := range res.SkippedBy {
		v.SkippedBy = append(v.SkippedBy, countView{Label: t, Accepted: n})
	}
	slices.SortFunc(v.SkippedBy, func(a, b countView) int { return strings.Compare(a.Label, b.Label) })
	for _, sk := range res.SkipRows {
		v.SkipRows = append(v.SkipRows, skipView{Where: upperFirst(sk.Pos.String()), Type: sk.Type, Reason: sk.Reason})
	}
	return v
}

// schemaName drops a schema id's version: omh:blood-glucose:4.0 is
// omh:blood-glucose.
func schemaName(id string) string {
	if i := strings.LastIndexByte(id, ':'); i > strings.IndexByte(id, ':') {
		return id[:i]
	}
	return id
}
