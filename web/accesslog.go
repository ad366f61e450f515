package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/vault"
)

// MaxAccessLogRows is how many exports a page of the access log lists,
// newest first; an "Older exports" link (?before=) shows the next page.
const MaxAccessLogRows = 500

// accessLogBody is the access log page's own data: a page of rows, and the
// link to the older ones when there are any.
type accessLogBody struct {
	Rows  []accessView
	Older string // the next page's URL, or "" on the last
	Paged bool   // this is not the newest page
}

// fhirFormat is the format of an access through the FHIR API; jheFormat
// through the JupyterHealth Exchange–compatible API (package jhe), which
// reads with the FHIR API's code.
const (
	fhirFormat = "fhir"
	jheFormat  = "jhe"
)

var errBadCursor = refuse(http.StatusBadRequest, "bad_cursor", "Request refused", "This link to older exports is not valid. Open the access log again from the menu.")

type accessView struct {
	When      string
	Clinician string
	Schemas   string
	Window    string
	Format    string
	Records   string
	Status    string
	Class     string
	Grants    string
	Start     int64
	End       string
}

// accessLogPage shows the patient who pulled what, when, and how many
// records: the access-start and access-end entries each export and each
// view of her report in the browser log, from the ledger's index.
func (s *Server) accessLogPage(w http.ResponseWriter, r *http.Request, sess session) error {
	u, _ := s.vault.User(r.Context(), sess.UserID)
	loc := u.Location()
	var before int64
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return errBadCursor
		}
		before = n
	}
	page, more, err := s.ledger.AccessPage(sess.UserID, before, MaxAccessLogRows)
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Access log unavailable", Message: "The access log could not be read just now. Try again shortly.", Cause: err}
	}
	body := accessLogBody{Paged: before > 0}
	if more {
		body.Older = "/access-log?before=" + strconv.FormatInt(page[len(page)-1].Start, 10)
	}
	names := map[string]string{}
	for _, a := range page {
		if a.App != "" {
			// An app the patient authorised (its client id; the apps
			// page names it).
			body.Rows = append(body.Rows, accessViewOf(a, "app "+a.App, loc))
			continue
		}
		name, ok := names[a.Clinician]
		if !ok {
			name = a.Clinician // a clinician no longer in the directory
			if c, err := s.vault.User(r.Context(), a.Clinician); err == nil && c.Role == vault.RoleClinician {
				name = c.Name
			}
			names[a.Clinician] = name
		}
		body.Rows = append(body.Rows, accessViewOf(a, name, loc))
	}
	d := s.signedData(r.Context(), sess, "Access log", "access-log")
	d.Body = body
	return s.render(w, http.StatusOK, "access-log", d)
}

func accessViewOf(a consent.AccessState, clinician string, loc *time.Location) accessView {
	v := accessView{When: fmtTime(a.Time, loc), Clinician: clinician, Schemas: schemaList(a.Schemas), Format: strings.ToUpper(a.Format),
		Grants: strings.Join(a.Grants, ", "), Start: a.Start}
	from, _ := time.Parse(time.RFC3339Nano, a.From)
	to, _ := time.Parse(time.RFC3339Nano, a.To)
	v.Window = windowText(from, to, loc)
	switch {
	case a.Format == fhirFormat || a.Format == jheFormat:
		// A read through the FHIR API (package fhir) or the JupyterHealth
		// Exchange–compatible API (package jhe): both entries are logged
		// before the answer is sent.
		v.Format = "read through the FHIR API"
		if a.Format == jheFormat {
			v.Format = "read through the JupyterHealth Exchange–compatible API"
		}
		switch {
		case a.End == nil || a.Incomplete:
			v.Status, v.Class, v.Records = "not sent", "warn", "–"
		default:
			v.Status, v.Class, v.Records = "sent", "ok", strconv.FormatInt(a.Records, 10)
		}
	case a.Format == reportFormat:
		// A view in the browser (clinician_patient.go): both entries are
		// logged before the page is sent, so without a complete end
		// nothing was shown.
		v.Format = "viewed the report in the browser"
		switch {
		case a.End == nil || a.Incomplete:
			v.Status, v.Class, v.Records = "not shown", "warn", "–"
		default:
			v.Status, v.Class, v.Records = "shown", "ok", strconv.FormatInt(a.Records, 10)+" summarised"
		}
	case a.End == nil:
		v.Status, v.Class, v.Records = "in progress, or stopped before it was logged", "warn", "–"
	case a.Incomplete:
		v.Status, v.Class, v.Records = "cut short", "warn", strconv.FormatInt(a.Records, 10)+" sent"
	default:
		v.Status, v.Class, v.Records = "complete", "ok", strconv.FormatInt(a.Records, 10)
	}
	if a.Format != reportFormat && a.Format != fhirFormat && a.Format != jheFormat {
		v.Format = "exported as " + v.Format
	}
	if a.End != nil {
		v.End = "#" + strconv.FormatInt(*a.End, 10)
	}
	return v
}

// windowText describes a half-open window [from, to) for people; a zero
// end is open. An end at a local midnight (as the consent form makes) is
// shown as the last day it includes.
func windowText(from, to time.Time, loc *time.Location) string {
	day := func(t time.Time) string { return t.In(loc).Format("2 Jan 2006") }
	last := func(t time.Time) string {
		if calendar.IsDayStart(t, loc) {
			t = t.Add(-time.Nanosecond)
		}
		return day(t)
	}
	switch {
	case from.IsZero() && to.IsZero():
		return "all data"
	case to.IsZero():
		return "from " + day(from)
	case from.IsZero():
		return "up to " + last(to)
	}
	return day(from) + " to " + last(to)
}
