package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/report"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// The ambulatory glucose profile (AGP) on the patient's dashboard and on
// the clinician's patient page: package stats computes it, package report
// draws it, the partial templates/partials/agp.html lays it out. Both
// pages take ?days= for the period.

// agpPeriods are the periods the report offers, in days; the first
// default is stats.CGMDays.
var agpPeriods = [...]int{7, 14, 30, 90}

var errBadPeriod = refuse(http.StatusBadRequest, "bad_period", "Request refused", "The glucose report covers 7, 14, 30 or 90 days: choose one of the periods above the report.")

// agpDays reads ?days=: absent is stats.CGMDays, anything not offered is
// refused.
func agpDays(r *http.Request) (int, error) {
	v := r.URL.Query().Get("days")
	if v == "" {
		return stats.CGMDays, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || !slices.Contains(agpPeriods[:], n) {
		return 0, errBadPeriod
	}
	return n, nil
}

// periodLink is one of the report's period choices.
type periodLink struct {
	Days    int
	Href    string
	Current bool
}

// agpView is what the agp partial reads.
type agpView struct {
	Report  report.AGP
	Patient string // the patient's name, for the printed page
	Vault   string // the vault's name and host, for the printed page
	Periods []periodLink
	TZ      string
	// Covered says what a clinician's grants cover, when they do not
	// cover the whole period ("" on the patient's own dashboard).
	Covered string
}

// vaultName names this vault on a printed report: the product and the
// host people reach it at.
func (s *Server) vaultName() string { return "JupyterHealth Vault · " + s.base.Host }

// newAGPView lays out an AGP for a page at path.
func (s *Server) newAGPView(a stats.AGP, patient vault.User, path string, days int) agpView {
	loc := patient.Location()
	v := agpView{Report: report.Build(a, loc), Patient: patient.Name, Vault: s.vaultName(), TZ: loc.String()}
	for _, d := range agpPeriods {
		v.Periods = append(v.Periods, periodLink{Days: d, Href: path + "?days=" + strconv.Itoa(d), Current: d == days})
	}
	return v
}

// agpPeriod is the report's period ending now: [now − days, now + 1 min),
// the minute so a reading stamped this instant is in.
func agpPeriod(now time.Time, days int) (from, to time.Time) {
	return now.Add(-time.Duration(days) * 24 * time.Hour), now.Add(time.Minute)
}

// glucoseIn reads a patient's glucose (mg/dL) in each window, through the
// page cache, in time order. Windows are in order and do not overlap, as
// consent.ClipWindow returns them.
func (s *Server) glucoseIn(ctx context.Context, u vault.User, windows []consent.Window) ([]stats.Point, error) {
	return s.seriesIn(ctx, u, "glucose", schemaID("blood-glucose"), stats.GlucoseMgDL, windows)
}

func (s *Server) seriesIn(ctx context.Context, u vault.User, series, schema string, value func([]byte) (float64, bool), windows []consent.Window) ([]stats.Point, error) {
	var out []stats.Point
	for _, w := range windows {
		pts, err := s.dailySeries(ctx, u, series, schema, value, w.From, w.To)
		if err != nil {
			return nil, err
		}
		out = append(out, pts...)
	}
	return out, nil
}

// dashboardPage is the dashboard's data: the figures (cgm.go) and the AGP.
type dashboardPage struct {
	dashboardBody
	AGP agpView
}

// dashboardAGP is the AGP of the patient's own readings over the period.
func (s *Server) dashboardAGP(ctx context.Context, u vault.User, days int, now time.Time) (agpView, error) {
	from, to := agpPeriod(now, days)
	pts, err := s.glucoseIn(ctx, u, []consent.Window{{From: from, To: to}})
	if err != nil {
		return agpView{}, err
	}
	a := stats.NewAGP(pts, from, to, to.Sub(from), u.Location())
	return s.newAGPView(a, u, "/", days), nil
}
