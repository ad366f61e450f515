package api

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/internal/clientgone"
	"github.com/jupyterhealth/vault/omh"
	"github.com/labstack/echo/v4"
)

var errConsentChanged = errors.New("the consent changed while the export was being logged")

// reasonUnsigned is decideAll's deny when only unsigned grants cover a
// request and the vault requires signed ones.
const reasonUnsigned = "unsigned_grant"

// exportSchemas reads ?schema= (repeated or comma-separated) as canonical
// schema ids.
func exportSchemas(c echo.Context) ([]string, *Error) {
	var raw []string
	for _, v := range c.QueryParams()["schema"] {
		raw = append(raw, strings.Split(v, ",")...)
	}
	if len(raw) == 0 {
		return nil, newError(http.StatusBadRequest, "bad_schemas", "name at least one schema, such as schema=omh:blood-glucose:4.0")
	}
	var out []string
	for _, s := range raw {
		id, err := omh.ParseSchemaID(strings.TrimSpace(s))
		if err != nil {
			return nil, newError(http.StatusBadRequest, "bad_schemas", "each schema is namespace:name or namespace:name:version")
		}
		canon, ok := omh.CanonicalSchema(id)
		if !ok {
			return nil, newError(http.StatusBadRequest, omh.CodeUnknownSchema, "a schema is not one the vault stores")
		}
		if !slices.Contains(out, canon.String()) {
			out = append(out, canon.String())
		}
	}
	return out, nil
}

// decideAll decides every schema; it returns the windows per schema and the
// covering grants, or the first deny's reason.
func (s *Server) decideAll(clinician, patient string, schemas []string, w consent.Window, fp string, now time.Time) (map[string][]consent.Window, []export.Grant, string) {
	windows := map[string][]consent.Window{}
	var grants []export.Grant
	for _, schema := range schemas {
		d := s.ledger.Decide(consent.Request{Clinician: clinician, Patient: patient, Schema: schema, Window: w, Now: now})
		if !d.Permit {
			return nil, nil, d.Reason
		}
		// A grant that pins recipients covers only exports to them; with
		// RequireSignedGrants, only a grant the patient signed with her
		// passkey covers anything.
		var kept []consent.GrantState
		unsigned := false
		for _, g := range d.Grants {
			if len(g.Recipients) > 0 && !slices.Contains(g.Recipients, fp) {
				continue
			}
			if s.requireSigned && !g.Signed {
				unsigned = true
				continue
			}
			kept = append(kept, g)
			if !slices.ContainsFunc(grants, func(x export.Grant) bool { return x.ID == g.ID }) {
				grants = append(grants, export.Grant{ID: g.ID, Index: g.Index, Signed: g.Signed})
			}
		}
		ws := consent.ClipWindow(w, kept)
		if len(ws) == 0 {
			if unsigned {
				return nil, nil, reasonUnsigned
			}
			return nil, nil, "recipient_not_pinned"
		}
		windows[schema] = ws
	}
	slices.SortFunc(grants, func(a, b export.Grant) int { return int(a.Index - b.Index) })
	return windows, grants, ""
}

func (s *Server) chooseKey(clinician, fp string, now time.Time) (consent.KeyState, *Error) {
	var active []consent.KeyState
	for _, k := range s.ledger.ClinicianKeys(clinician) {
		if k.Active(now) {
			active = append(active, k)
		}
	}
	if fp != "" {
		for _, k := range active {
			if k.Fingerprint == fp {
				return k, nil
			}
		}
		return consent.KeyState{}, newError(http.StatusBadRequest, "bad_recipient", "no active key of yours has that fingerprint (a new key waits out its activation delay)")
	}
	switch len(active) {
	case 0:
		return consent.KeyState{}, newError(http.StatusConflict, "no_active_key", "register your hub's age key with POST /api/v1/clinician/keys first (a new key waits out its activation delay)")
	case 1:
		return active[0], nil
	}
	return consent.KeyState{}, newError(http.StatusBadRequest, "recipient_required", "you have several active keys: choose one with recipient=FINGERPRINT")
}

// getExport streams a patient's consented readings, age-encrypted to the
// clinician's hub key. The access is logged before the first byte goes out,
// in the same serialised ledger step as the consent decision.
func (s *Server) getExport(c echo.Context) error {
	tok := principal(c)
	patient := c.Param("id")
	schemas, aerr := exportSchemas(c)
	if aerr != nil {
		return aerr
	}
	from, to, aerr := parseWindow(c)
	if aerr != nil {
		return aerr
	}
	format := c.QueryParam("format")
	if format == "" {
		format = export.Formats()[0]
	}
	if !slices.Contains(export.Formats(), format) {
		return newError(http.StatusBadRequest, "bad_format", "format must be one of %s", strings.Join(export.Formats(), ", "))
	}
	for _, schema := range schemas {
		if !export.Supports(format, schema) {
			return newError(http.StatusBadRequest, "format_unsupported", "%s readings have no %s form; export them as omh or csv", schema, format)
		}
	}
	now := time.Now()
	key, aerr := s.chooseKey(tok.UserID, c.QueryParam("recipient"), now)
	if aerr != nil {
		return aerr
	}
	recipient, _, err := parseRecipient(key.Recipient)
	if err != nil {
		return internal(err)
	}
	win := consent.Window{From: from, To: to}
	denied := func(reason string) *Error {
		s.metrics.exports.WithLabelValues(format, "refused").Inc()
		if reason == reasonUnsigned {
			return newError(http.StatusForbidden, "unsigned_grant", "this vault requires grants signed with the patient's passkey, and the grants that cover the request were made with an API token; ask the patient to make the grant again on the vault's consent page, where she signs it with her passkey")
		}
		return newError(http.StatusForbidden, "no_consent", "no active grant from this patient covers the request (%s)", reason)
	}
	windows, grants, reason := s.decideAll(tok.UserID, patient, schemas, win, key.Fingerprint, now)
	if reason != "" {
		return denied(reason)
	}
	// Only now, with a grant from this patient, is the id known to be one.
	enc, err := export.NewEncoder(format, patient)
	if err != nil {
		return internal(err)
	}

	start := consent.New(consent.KindAccessStart, tok.UserID, now)
	start.Patient, start.Clinician = patient, tok.UserID
	start.Access = &consent.Access{Schemas: schemas, Format: format, Recipient: key.Fingerprint}
	for _, g := range grants {
		start.Access.Grants = append(start.Access.Grants, g.ID)
	}
	if !from.IsZero() {
		start.Access.From = from.UTC().Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		start.Access.To = to.UTC().Format(time.RFC3339Nano)
	}
	// Decide again inside the ledger's serialised step: a revoke cannot
	// slip between the decision and the access-start.
	check := func(int64) error {
		w2, g2, r2 := s.decideAll(tok.UserID, patient, schemas, win, key.Fingerprint, time.Now())
		if r2 != "" || !slices.Equal(g2, grants) || fmt.Sprint(w2) != fmt.Sprint(windows) {
			return errConsentChanged
		}
		return nil
	}
	if aerr := s.limitExport(c.Response().Header(), start.Access.Grants, now); aerr != nil {
		s.metrics.exports.WithLabelValues(format, "rate_limited").Inc()
		return aerr
	}
	startIdx, err := s.ledger.AppendChecked(check, start)
	switch {
	case errors.Is(err, errConsentChanged):
		return denied("it changed just now")
	case err != nil:
		s.metrics.exports.WithLabelValues(format, "access_log_unavailable").Inc()
		return &Error{Status: http.StatusServiceUnavailable, Code: "access_log_unavailable", Message: "the access could not be logged, so nothing was sent; retry later", Cause: err}
	}
	manifest := export.Manifest{Manifest: 1, Patient: patient, Clinician: tok.UserID, Format: format,
		Filters: export.Filters{Schemas: schemas, From: start.Access.From, To: start.Access.To}, Windows: windows,
		Grants: grants, AccessStart: startIdx, Recipient: key.Fingerprint,
		Proofs: map[string]consent.Proof{}, Entries: map[string][]byte{}}
	// A checkpoint that covers the access-start: the newest one signed if
	// it does, or one signing shared with the exports waiting beside this
	// one (consent.Ledger.CheckpointCovering); no write.
	cp, size, err := s.ledger.CheckpointCovering(startIdx + 1)
	if err == nil {
		// The access-start and the grants it used, each with its
		// inclusion proof, from one read of the ledger.
		idxs := append([]int64{startIdx}, grantIndexes(grants)...)
		var proofs []consent.Proof
		var raws [][]byte
		proofs, raws, err = s.ledger.ProvenEntries(idxs, size)
		for k, idx := range idxs[:len(proofs)] {
			manifest.Proofs[fmt.Sprint(idx)], manifest.Entries[fmt.Sprint(idx)] = proofs[k], raws[k]
		}
	}
	if err != nil {
		s.endAccess(tok.UserID, patient, startIdx, 0, nil, true)
		return &Error{Status: http.StatusServiceUnavailable, Code: "access_log_unavailable", Message: "the export could not be prepared, so nothing was sent; retry later", Cause: err}
	}
	manifest.Checkpoint = string(cp)

	resp := c.Response()
	resp.Header().Set(echo.HeaderContentType, "application/age")
	resp.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.%s.age"`, patient, startIdx, export.Extension(format)))
	resp.Header().Set("X-Vault-Access-Start", fmt.Sprint(startIdx))
	resp.WriteHeader(http.StatusOK)
	// The age writer writes whole 64 KiB chunks (and its short header
	// lines, which net/http's own buffer gathers): a buffer of ours here
	// would only copy every chunk once more.
	aw, err := age.Encrypt(resp, recipient)
	if err != nil {
		s.endAccess(tok.UserID, patient, startIdx, 0, nil, true)
		panic(http.ErrAbortHandler)
	}
	st, err := s.exportBufs.Write(aw, &manifest, enc, s.points(c.Request().Context(), patient, schemas, windows), s.ledger.SignNote)
	if err == nil {
		err = aw.Close()
	}
	s.endAccess(tok.UserID, patient, startIdx, st.Records, st.SHA256, err != nil)
	s.metrics.exported.Add(float64(st.Records))
	s.metrics.exports.WithLabelValues(format, map[bool]string{true: "incomplete", false: "complete"}[err != nil]).Inc()
	if err != nil {
		if clientgone.Is(c.Request(), err) {
			s.log.Info("export abandoned by the client", "access_start", startIdx, "cause", err.Error())
		} else {
			s.log.Error("export stream failed", "access_start", startIdx, "cause", err.Error())
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

func grantIndexes(gs []export.Grant) []int64 {
	var out []int64
	for _, g := range gs {
		out = append(out, g.Index)
	}
	return out
}

// points yields the canonical OMH points of each schema in its windows, in
// schema order, then time order.
func (s *Server) points(ctx context.Context, patient string, schemas []string, windows map[string][]consent.Window) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, schema := range schemas {
			for _, win := range windows[schema] {
				for r, err := range s.vault.ReadingsStream(ctx, patient, schema, win.From, win.To) {
					if !yield(r.JSON, err) || err != nil {
						return
					}
				}
			}
		}
	}
}

// endAccess logs the access-end entry. Data has gone out by now, so a
// failure here is logged, not returned.
func (s *Server) endAccess(clinician, patient string, start, records int64, sum []byte, incomplete bool) {
	e := consent.New(consent.KindAccessEnd, clinician, time.Now())
	e.Patient, e.Clinician = patient, clinician
	e.Access = &consent.Access{Start: &start, Records: records, ContentHash: sum, Incomplete: incomplete}
	if _, err := s.ledger.Append(e); err != nil {
		s.log.Error("access-end not logged", "access_start", start, "cause", err.Error())
	}
}

// Access log pages. They are documented in docs/api.md.
const (
	DefaultAccessLogLimit = 100  // rows in a page when ?limit= is absent
	MaxAccessLogLimit     = 1000 // the most ?limit= may ask for
)

// AccessLogEntry is one row of GET /api/v1/access-log.
type AccessLogEntry struct {
	consent.AccessState
	ClinicianName string `json:"clinician_name,omitempty"`
	Complete      bool   `json:"complete"`
}

// AccessLogPage is the body of GET /api/v1/access-log: a page of accesses,
// newest first, and, when older ones remain, Next: the ?before= of the
// next page.
type AccessLogPage struct {
	Accesses []AccessLogEntry `json:"accesses"`
	Next     *int64           `json:"next,omitempty"`
}

// accessLogPaging reads ?before= and ?limit=.
func accessLogPaging(c echo.Context) (before int64, limit int, aerr *Error) {
	limit = DefaultAccessLogLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAccessLogLimit {
			return 0, 0, newError(http.StatusBadRequest, "bad_limit", "limit is a whole number from 1 to %d", MaxAccessLogLimit)
		}
		limit = n
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, newError(http.StatusBadRequest, "bad_cursor", "before is the next value of the page before, a positive whole number")
		}
		before = n
	}
	return before, limit, nil
}

func (s *Server) getAccessLog(c echo.Context) error {
	tok := principal(c)
	before, limit, aerr := accessLogPaging(c)
	if aerr != nil {
		return aerr
	}
	page, more, err := s.ledger.AccessPage(tok.UserID, before, limit)
	if err != nil {
		return internal(err)
	}
	out := AccessLogPage{Accesses: []AccessLogEntry{}}
	names := map[string]string{}
	for _, a := range page {
		name, ok := names[a.Clinician]
		if !ok {
			if u, err := s.vault.User(c.Request().Context(), a.Clinician); err == nil {
				name = u.Name
			}
			names[a.Clinician] = name
		}
		out.Accesses = append(out.Accesses, AccessLogEntry{AccessState: a, ClinicianName: name, Complete: a.End != nil && !a.Incomplete})
	}
	if more {
		next := page[len(page)-1].Start
		out.Next = &next
	}
	return c.JSON(http.StatusOK, out)
}
