package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// The clinician's patient page (GET /patients/{id}): the AGP over the
// glucose the patient's grants cover, and heart rate and steps over the
// last 14 days when granted. It is a read of the patient's data like an
// export, and is checked and logged like one (docs/ledger.md, "Views in
// the browser"):
//
//  1. no active grant from the patient to the clinician: 404, the same
//     page as an unknown id, so ids can't be probed;
//  2. each of the report's schemas is decided against the grants
//     (consent.Ledger.Decide), and the period clipped to what the
//     covering grants' data windows allow (consent.ClipWindow);
//  3. the access-start entry (format "report", the covering grants, the
//     schemas and the period) is appended with AppendChecked, whose check
//     decides again inside the ledger's serialised step, so a revoke
//     cannot slip between the decision and the log;
//  4. only then are the readings in the clipped windows read and the page
//     rendered, into memory;
//  5. the access-end entry (how many readings the page summarises) is
//     appended, and only then is the page sent.
//
// If either append fails, the clinician sees an error and no data
// (fail-closed). A revoke takes effect on the next request: step 1 or 2
// refuses it.

// MaxReportViewsPerMinute bounds one clinician's patient-page views (a
// token bucket): each view appends two ledger entries.
const MaxReportViewsPerMinute = 30

// reportFormat is the access entries' format for a view in the browser.
const reportFormat = "report"

var (
	errConsentChangedWeb = errors.New("the consent changed while the view was being logged")
	errReportNotLogged   = refuse(http.StatusServiceUnavailable, "access_log_unavailable", "Not shown",
		"This view could not be recorded in the patient's access log, so nothing is shown. Try again shortly.")
	errReportConsentChanged = refuse(http.StatusConflict, "consent_changed", "Consent changed",
		"The patient's consent changed just now, so nothing is shown. Reload the page.")
	errReportRate = refuse(http.StatusTooManyRequests, "rate_limited", "Too many views",
		"You opened patient reports too often in the last minute. Wait a minute and try again.")
)

// reportSchemas are what the page shows: glucose as the AGP, heart rate
// and steps as the dashboard's activity charts.
func reportSchemas() []string {
	return []string{schemaID("blood-glucose"), schemaID("heart-rate"), schemaID("step-count")}
}

// reportScope is what the grants let a view read.
type reportScope struct {
	windows map[string][]consent.Window // schema → the clipped windows; absent: not covered
	grants  []consent.GrantState        // the covering grants, in ledger order
}

// key is the scope in a comparable form, for the check inside the
// ledger's step.
func (sc reportScope) key() string {
	var b strings.Builder
	for _, schema := range reportSchemas() {
		fmt.Fprintf(&b, "%s=%v;", schema, sc.windows[schema])
	}
	for _, g := range sc.grants {
		fmt.Fprintf(&b, "%s@%d;", g.ID, g.Index)
	}
	return b.String()
}

// decideReport decides each of the report's schemas over its window
// (glucose over agp, the others over act). A grant that pins export
// recipients covers exports to those hub keys only, never a view in the
// browser; with RequireSignedGrants an unsigned grant covers nothing.
func (s *Server) decideReport(clinician, patient string, agp, act consent.Window, now time.Time) reportScope {
	sc := reportScope{windows: map[string][]consent.Window{}}
	for i, schema := range reportSchemas() {
		win := act
		if i == 0 {
			win = agp
		}
		d := s.ledger.Decide(consent.Request{Clinician: clinician, Patient: patient, Schema: schema, Window: win, Now: now})
		if !d.Permit {
			continue
		}
		var kept []consent.GrantState
		for _, g := range d.Grants {
			if len(g.Recipients) > 0 || (s.requireSigned && !g.Signed) {
				continue
			}
			kept = append(kept, g)
		}
		ws := consent.ClipWindow(win, kept)
		if len(ws) == 0 {
			continue
		}
		sc.windows[schema] = ws
		for _, g := range kept {
			if !slices.ContainsFunc(sc.grants, func(x consent.GrantState) bool { return x.ID == g.ID }) {
				sc.grants = append(sc.grants, g)
			}
		}
	}
	slices.SortFunc(sc.grants, func(a, b consent.GrantState) int { return int(a.Index - b.Index) })
	return sc
}

// clinicianPatientBody is the page's own data.
type clinicianPatientBody struct {
	ID, Name    string
	Grants      []grantView
	AGP         agpView
	HasGlucose  bool // glucose is covered in the period
	HasHR       bool // heart rate is covered in the last 14 days
	HasSteps    bool
	Activity    activityBody
	Nothing     bool           // the grants cover none of the report's data in the period
	AccessStart int64          // the view's access-start entry
	Shown       string         // the data types shown, in words
	Apps        []launchButton // "Open in app" (launch.go)
}

func (s *Server) clinicianPatientPage(w http.ResponseWriter, r *http.Request, sess session) error {
	id := r.PathValue("id")
	days, err := agpDays(r)
	if err != nil {
		return err
	}
	now := s.now()
	// 1. Any active grant at all, or 404 (before anything else, so an
	// unknown id and one without a grant answer alike).
	var active []consent.GrantState
	if vault.RoleOf(id) == vault.RolePatient {
		gs, err := s.ledger.Grants(id, sess.UserID)
		if err != nil {
			return grantsUnavailable(err)
		}
		for _, g := range gs {
			if g.Active(now) {
				active = append(active, g)
			}
		}
	}
	if len(active) == 0 {
		return errNotFound
	}
	pu, err := s.vault.User(r.Context(), id)
	if err != nil {
		return errNotFound // a patient deleted since
	}
	if ok, wait := s.reportLimiter.Allow(sess.UserID); !ok {
		w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		return errReportRate
	}
	cu, _ := s.vault.User(r.Context(), sess.UserID)
	body := clinicianPatientBody{ID: pu.ID, Name: pu.Name, Apps: s.launchButtons(r.Context(), sess, pu.ID)}
	for _, g := range active {
		body.Grants = append(body.Grants, grantViewOf(g, cu.Location()))
	}
	// 2. Decide each schema over its period.
	agpFrom, to := agpPeriod(now, days)
	actFrom, _ := agpPeriod(now, stats.CGMDays)
	agpWin, actWin := consent.Window{From: agpFrom, To: to}, consent.Window{From: actFrom, To: to}
	sc := s.decideReport(sess.UserID, id, agpWin, actWin, now)
	d := s.signedData(r.Context(), sess, pu.Name, "patients")
	if len(sc.windows) == 0 {
		// Nothing of the patient's data is read, so nothing is logged.
		body.Nothing = true
		body.AGP = s.newAGPView(stats.AGP{}, pu, "/patients/"+id, days)
		d.Body = body
		return s.render(w, http.StatusOK, "clinician_patient", d)
	}
	// 3. The access-start, decided again inside the ledger's step.
	start := consent.New(consent.KindAccessStart, sess.UserID, now)
	start.Patient, start.Clinician = id, sess.UserID
	start.Access = &consent.Access{Format: reportFormat, From: earliest(agpFrom, actFrom).UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano)}
	for _, schema := range reportSchemas() {
		if sc.windows[schema] != nil {
			start.Access.Schemas = append(start.Access.Schemas, schema)
		}
	}
	for _, g := range sc.grants {
		start.Access.Grants = append(start.Access.Grants, g.ID)
	}
	want := sc.key()
	startIdx, err := s.ledger.AppendChecked(func(int64) error {
		if s.decideReport(sess.UserID, id, agpWin, actWin, s.now()).key() != want {
			return errConsentChangedWeb
		}
		return nil
	}, start)
	switch {
	case errors.Is(err, errConsentChangedWeb):
		return errReportConsentChanged
	case err != nil:
		return errReportNotLogged.because(err)
	}
	// 4. Read what the grants cover, and render into memory.
	page, records, err := s.renderPatientReport(r.Context(), d, body, pu, sc, days, agpFrom, actFrom, to, startIdx)
	if err != nil {
		s.endView(sess.UserID, id, startIdx, 0, true)
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Report unavailable", Message: "The patient's readings could not be read just now. Try again shortly.", Cause: err}
	}
	// 5. The access-end, before anything is sent.
	if err := s.endView(sess.UserID, id, startIdx, records, false); err != nil {
		return errReportNotLogged.because(err)
	}
	s.log.Info("patient report viewed", "clinician", sess.UserID, "patient", id, "access_start", startIdx)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(page)
	return nil
}

// renderPatientReport reads the readings the scope covers and renders
// the page into memory; it returns the page and how many readings it
// summarises.
func (s *Server) renderPatientReport(ctx context.Context, d pageData, body clinicianPatientBody, pu vault.User, sc reportScope, days int, agpFrom, actFrom, to time.Time, startIdx int64) ([]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	loc := pu.Location()
	var records int64
	gw := sc.windows[schemaID("blood-glucose")]
	pts, err := s.glucoseIn(ctx, pu, gw)
	if err != nil {
		return nil, 0, err
	}
	records += int64(len(pts))
	var covered time.Duration
	for _, w := range gw {
		covered += w.To.Sub(w.From)
	}
	body.HasGlucose = gw != nil
	body.AGP = s.newAGPView(stats.NewAGP(pts, agpFrom, to, covered, loc), pu, "/patients/"+pu.ID, days)
	if gw != nil && (len(gw) != 1 || !gw[0].From.Equal(agpFrom) || !gw[0].To.Equal(to)) {
		var parts []string
		for _, w := range gw {
			parts = append(parts, windowText(w.From, w.To, loc))
		}
		body.AGP.Covered = "Your grants cover " + strings.Join(parts, "; ") + " of this period: readings outside it are not shown, and the sensor activity is counted over the time covered."
	}
	hw, stw := sc.windows[schemaID("heart-rate")], sc.windows[schemaID("step-count")]
	body.HasHR, body.HasSteps = hw != nil, stw != nil
	if body.Activity, err = s.activityIn(ctx, pu, actFrom, to, hw, stw); err != nil {
		return nil, 0, err
	}
	records += int64(body.Activity.Readings)
	var shown []string
	for _, schema := range reportSchemas() {
		if sc.windows[schema] != nil {
			shown = append(shown, schema)
		}
	}
	body.Shown, body.AccessStart = schemaList(shown), startIdx
	d.Body = body
	t, ok := s.pages.pages["clinician_patient"]
	if !ok {
		return nil, 0, errors.New("no template clinician_patient")
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, 0, fmt.Errorf("template clinician_patient: %w", err)
	}
	return buf.Bytes(), records, nil
}

// endView appends a view's access-end entry: how many readings the page
// summarises, or that it was not shown (incomplete).
func (s *Server) endView(clinician, patient string, start, records int64, incomplete bool) error {
	e := consent.New(consent.KindAccessEnd, clinician, s.now())
	e.Patient, e.Clinician = patient, clinician
	e.Access = &consent.Access{Start: &start, Format: reportFormat, Records: records, Incomplete: incomplete}
	_, err := s.ledger.Append(e)
	if err != nil {
		s.log.Error("report view access-end not logged", "access_start", start, "cause", err.Error())
	}
	return err
}

// earliest is the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
