package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// grantOpts is a grant a test makes.
type grantOpts struct {
	schemas    []string
	from, to   time.Time // the data window; zero is open
	expires    time.Time // default 30 days from now
	recipients []string
}

// grantWith records a grant from the patient to the clinician and
// returns its id.
func (f *fixture) grantWith(o grantOpts) string {
	f.t.Helper()
	now := f.now()
	if o.expires.IsZero() {
		o.expires = now.Add(30 * 24 * time.Hour)
	}
	e := consent.New(consent.KindGrant, f.patient.ID, now)
	e.Patient, e.Clinician = f.patient.ID, f.clin.ID
	e.Grant = &consent.Grant{ID: vault.NewID("gr_"), Schemas: o.schemas, Expires: o.expires.UTC().Format(time.RFC3339Nano), Purpose: "TREAT", Recipients: o.recipients}
	if !o.from.IsZero() {
		e.Grant.DataFrom = o.from.UTC().Format(time.RFC3339Nano)
	}
	if !o.to.IsZero() {
		e.Grant.DataTo = o.to.UTC().Format(time.RFC3339Nano)
	}
	if _, err := f.led.Append(e); err != nil {
		f.t.Fatal(err)
	}
	return e.Grant.ID
}

// now is the fixture's clock.
func (f *fixture) now() time.Time {
	if f.clock != nil {
		return f.clock.Now()
	}
	return time.Now()
}

// glucoseSummary is SummarizeCGM over the patient's stored glucose in
// [from, to), read straight from the vault: what a page's figures must
// equal.
func (f *fixture) glucoseSummary(from, to time.Time, period time.Duration) stats.CGM {
	f.t.Helper()
	var pts []stats.Point
	for r, err := range f.v.Readings(f.t.Context(), f.patient.ID, schemaID("blood-glucose"), from, to) {
		if err != nil {
			f.t.Fatal(err)
		}
		if v, ok := stats.GlucoseMgDL(r.JSON); ok {
			pts = append(pts, stats.Point{Time: r.Time, Value: v})
		}
	}
	return stats.SummarizeCGM(pts, period)
}

// agpSection is the page's AGP section.
func agpSection(t *testing.T, page string) string {
	t.Helper()
	sec := regexp.MustCompile(`(?s)<section aria-labelledby="agp-h".*?</section>`).FindString(page)
	if sec == "" {
		t.Fatalf("no AGP section:\n%s", page)
	}
	return sec
}

// checkFigures checks that an AGP section shows a summary's figures, as
// package report formats them.
func checkFigures(t *testing.T, sec string, st stats.CGM) {
	t.Helper()
	for _, want := range []string{
		fmt.Sprintf("%.0f mg/dL", st.Mean), fmt.Sprintf("%.1f%%", st.GMI), fmt.Sprintf("%.1f%%", st.CV),
		fmt.Sprintf("%.0f%%", st.ActivePct), fmt.Sprintf("%d readings;", st.N),
		// The range bar's description.
		fmt.Sprintf("in range (70–180 mg/dL) %.1f%%", st.Ranges.Target), fmt.Sprintf("very low (under 54 mg/dL) %.1f%%", st.Ranges.VeryLow),
		fmt.Sprintf("high (181–250 mg/dL) %.1f%%", st.Ranges.High),
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("the AGP lacks %q", want)
		}
	}
}

// TestDashboardAGP: the patient's dashboard shows the AGP over 14 days by
// default, with SummarizeCGM's figures over the same readings, the modal
// day, the range bar and the daily profiles as SVG; ?days= picks 7, 30
// or 90, anything else is refused.
func TestDashboardAGP(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 20})
	sess, _ := f.signIn(f.patient.ID)
	now := f.now()
	for _, days := range []int{14, 7, 30} {
		path := "/"
		if days != 14 {
			path = fmt.Sprintf("/?days=%d", days)
		}
		res := f.do(req{path: path, cookie: sess})
		page := body(t, res)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		sec := agpSection(t, page)
		from, to := now.Add(-time.Duration(days)*24*time.Hour), now.Add(time.Minute)
		st := f.glucoseSummary(from, to, to.Sub(from))
		if st.N < min(days, 20)*200 {
			t.Fatalf("%d days: only %d readings", days, st.N)
		}
		checkFigures(t, sec, st)
		if !strings.Contains(sec, fmt.Sprintf(`href="/?days=%d" aria-current="page"`, days)) {
			t.Errorf("%d days is not the current period", days)
		}
		if !strings.Contains(sec, fmt.Sprintf("(%d days)", days)) || !strings.Contains(sec, patientName) || !strings.Contains(sec, "JupyterHealth Vault · localhost:8080") {
			t.Errorf("%d days: the report's heading lacks the period, the name or the vault", days)
		}
		for _, fig := range []string{"agp-modal", "agp-ranges", "agp-daily"} {
			if !strings.Contains(sec, `<svg class="agp-fig `+fig+`"`) {
				t.Errorf("%d days: no %s figure", days, fig)
			}
		}
		// Daily profiles: one cell per day, at most 14 (20 days of
		// history: the 30-day report shows the newest 14 of its 31
		// local days, with the days before the history empty).
		daily := regexp.MustCompile(`(?s)<svg class="agp-fig agp-daily".*?</svg>`).FindString(sec)
		cells := strings.Count(daily, `fill="none" stroke="#8a8f98"/>`)
		if want := min(days+1, stats.AGPMaxDailyProfiles); cells != want {
			t.Errorf("%d days: %d daily profiles, want %d", days, cells, want)
		}
		// The modal day: two bands and a median for one run of bins
		// (every 15 minutes has readings).
		modal := regexp.MustCompile(`(?s)<svg class="agp-fig agp-modal".*?</svg>`).FindString(sec)
		if strings.Count(modal, "<polygon") != 2 || strings.Count(modal, "<polyline") != 1 {
			t.Errorf("%d days: modal day %d bands, %d medians", days, strings.Count(modal, "<polygon"), strings.Count(modal, "<polyline"))
		}
	}
	for _, bad := range []string{"8", "0", "abc", "-14", "14.0"} {
		res := f.do(req{path: "/?days=" + bad, cookie: sess})
		if b := body(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(b, "bad_period") || strings.Contains(b, "agp-fig") {
			t.Errorf("days=%s: %d", bad, res.StatusCode)
		}
	}
	// Without readings, the report says so.
	o, _ := f.signIn(f.other.ID)
	if sec := agpSection(t, body(t, f.do(req{path: "/", cookie: o}))); !strings.Contains(sec, "No glucose readings from") || strings.Contains(sec, "<svg") {
		t.Errorf("empty report:\n%s", sec)
	}
}

// TestClinicianPatientNoGrant: without an active grant from the patient,
// her page is the same 404 as an unknown id's, for any id, and nothing is
// logged; a patient cannot open it at all.
func TestClinicianPatientNoGrant(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 3})
	// An expired grant and a revoked one from Ada: neither is active.
	expired := f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}, expires: f.now().Add(time.Hour)})
	revoked := f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}})
	if _, err := f.led.Append(consent.NewRevoke(f.patient.ID, f.grantState(revoked), f.now())); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour)
	_ = expired
	sess, _ := f.signIn(f.clin.ID)
	size := f.size()
	notFound := body(t, f.do(req{path: "/patients/pt_doesnotexist", cookie: sess}))
	for _, id := range []string{f.patient.ID, f.other.ID, "pt_doesnotexist", f.clin.ID, "gr_x", "%2e%2e"} {
		res := f.do(req{path: "/patients/" + id, cookie: sess})
		b := body(t, res)
		if res.StatusCode != http.StatusNotFound || b != notFound {
			t.Errorf("%s: %d, and the page differs from an unknown id's: %v", id, res.StatusCode, b != notFound)
		}
		if strings.Contains(b, patientName) || strings.Contains(b, otherName) {
			t.Errorf("%s: the 404 names a patient", id)
		}
	}
	p, _ := f.signIn(f.patient.ID)
	if res := f.do(req{path: "/patients/" + f.patient.ID, cookie: p}); res.StatusCode != http.StatusNotFound {
		t.Errorf("a patient opened the clinician's page: %d", res.StatusCode)
	}
	if f.size() != size || len(mustAccesses(t, f.led, f.patient.ID)) != 0 {
		t.Fatal("a refused view was logged")
	}
}

// TestClinicianPatientView: with a grant, the page shows the AGP over
// the glucose the grant covers, with the figures SummarizeCGM gives over
// exactly those readings; each view is in the patient's access log
// (access-start and access-end, format "report", the covering grant)
// before the page is sent, and the patient's access log and ledger pages
// say so in words.
func TestClinicianPatientView(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 20})
	gid := f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose", "omh:heart-rate"}})
	sess, _ := f.signIn(f.clin.ID)
	now := f.now()
	res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess})
	page := body(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d\n%s", res.StatusCode, page)
	}
	from, to := now.Add(-14*24*time.Hour), now.Add(time.Minute)
	st := f.glucoseSummary(from, to, to.Sub(from))
	checkFigures(t, agpSection(t, page), st)
	if !strings.Contains(page, `<svg class="chart hr"`) || strings.Contains(page, `<svg class="chart steps"`) || !strings.Contains(page, "Steps are not covered by the grants") {
		t.Error("heart rate (granted) should show and steps (not granted) should not")
	}
	acc := mustAccesses(t, f.led, f.patient.ID)
	if len(acc) != 1 {
		t.Fatalf("%d accesses logged, want 1", len(acc))
	}
	a := acc[0]
	if a.Format != "report" || a.Clinician != f.clin.ID || !slices.Equal(a.Grants, []string{gid}) ||
		!slices.Equal(a.Schemas, []string{"omh:blood-glucose:4.0", "omh:heart-rate:2.0"}) || a.End == nil || a.Incomplete {
		t.Fatalf("access row %+v", a)
	}
	// The records: the glucose readings and the heart-rate readings read.
	hr := 0
	for r, err := range f.v.Readings(t.Context(), f.patient.ID, schemaID("heart-rate"), from, to) {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := stats.HeartRate(r.JSON); ok {
			hr++
		}
	}
	if a.Records != int64(st.N+hr) {
		t.Errorf("records %d, want %d glucose + %d heart rate", a.Records, st.N, hr)
	}
	if !strings.Contains(page, fmt.Sprintf("entry #%d of the consent ledger", a.Start)) {
		t.Error("the page does not name its access-start entry")
	}
	// A second view is a second row.
	if res := f.do(req{path: "/patients/" + f.patient.ID + "?days=7", cookie: sess}); res.StatusCode != http.StatusOK {
		t.Fatalf("second view: %d", res.StatusCode)
	}
	if n := len(mustAccesses(t, f.led, f.patient.ID)); n != 2 {
		t.Fatalf("%d accesses after two views", n)
	}
	// The patient reads it in words.
	p, _ := f.signIn(f.patient.ID)
	log := body(t, f.do(req{path: "/access-log", cookie: p}))
	if strings.Count(log, "viewed the report in the browser") != 2 || !strings.Contains(log, clinicianName) || !strings.Contains(log, fmt.Sprintf("%d summarised", a.Records)) || strings.Contains(log, "REPORT") {
		t.Errorf("access log page:\n%s", log)
	}
	led := body(t, f.do(req{path: "/ledger", cookie: p}))
	if !strings.Contains(led, "opened your report") || !strings.Contains(led, "Report view ended") {
		t.Errorf("ledger page does not describe the views")
	}
	// The API's access log returns the views with format "report",
	// complete once shown.
	secret, _ := f.mint(f.patient.ID, vault.TokenPatient, time.Hour)
	ar := httptest.NewRequest(http.MethodGet, "/api/v1/access-log", nil)
	ar.Header.Set("Authorization", "Bearer "+secret)
	aw := httptest.NewRecorder()
	api.New(api.Config{Vault: f.v, Ledger: f.led}).Echo().ServeHTTP(aw, ar)
	var apiLog api.AccessLogPage
	if err := json.Unmarshal(aw.Body.Bytes(), &apiLog); err != nil || aw.Code != http.StatusOK {
		t.Fatalf("API access log: %d %v", aw.Code, err)
	}
	if len(apiLog.Accesses) != 2 || apiLog.Accesses[1].Format != "report" || !apiLog.Accesses[1].Complete || apiLog.Accesses[1].Records != a.Records {
		t.Errorf("API access log %+v", apiLog.Accesses)
	}
	// The clinician's patient list links to the page.
	if list := body(t, f.do(req{path: "/patients", cookie: sess})); !strings.Contains(list, `href="/patients/`+f.patient.ID+`"`) {
		t.Error("the patients list does not link to the patient's page")
	}
}

// TestClinicianPatientRevoked: a revoke takes effect on the next load:
// the page is 404 and nothing more is logged.
func TestClinicianPatientRevoked(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 3})
	gid := f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}})
	sess, _ := f.signIn(f.clin.ID)
	if res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess}); res.StatusCode != http.StatusOK || !strings.Contains(body(t, res), "agp-modal") {
		t.Fatalf("before the revoke: %d", res.StatusCode)
	}
	if _, err := f.led.Append(consent.NewRevoke(f.patient.ID, f.grantState(gid), f.now())); err != nil {
		t.Fatal(err)
	}
	size := f.size()
	res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess})
	if b := body(t, res); res.StatusCode != http.StatusNotFound || strings.Contains(b, "agp") || strings.Contains(b, patientName) {
		t.Fatalf("after the revoke: %d", res.StatusCode)
	}
	if f.size() != size || len(mustAccesses(t, f.led, f.patient.ID)) != 1 {
		t.Fatal("the refused view was logged")
	}
}

// TestClinicianPatientWindow: readings outside the grant's data window
// are not shown: the figures are SummarizeCGM's over the readings inside
// it (sensor activity over the time it covers), the page says what is
// covered, and a grant whose window misses the period, or that pins
// export recipients, shows no glucose at all.
func TestClinicianPatientWindow(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 14})
	now := f.now()
	dataFrom := now.Add(-3 * 24 * time.Hour).Truncate(time.Hour)
	f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}, from: dataFrom})
	sess, _ := f.signIn(f.clin.ID)
	page := body(t, f.do(req{path: "/patients/" + f.patient.ID, cookie: sess}))
	to := now.Add(time.Minute)
	st := f.glucoseSummary(dataFrom, to, to.Sub(dataFrom))
	all := f.glucoseSummary(now.Add(-14*24*time.Hour), to, 14*24*time.Hour)
	if st.N >= all.N/3 || st.N < 700 {
		t.Fatalf("fixture: %d readings in the window of %d", st.N, all.N)
	}
	sec := agpSection(t, page)
	checkFigures(t, sec, st)
	if strings.Contains(sec, fmt.Sprintf("%d readings;", all.N)) || !strings.Contains(sec, "Your grants cover "+windowText(dataFrom, to, calendarLoc(t, f.patient))+" of this period") {
		t.Error("the report shows readings outside the grant's window, or does not say what it covers")
	}
	// The daily profiles draw no trace on a day before the window.
	daily := regexp.MustCompile(`(?s)<svg class="agp-fig agp-daily".*?</svg>`).FindString(sec)
	if n := strings.Count(daily, "no readings"); n < 10 {
		t.Errorf("%d days without readings in the daily profiles, want the 10 or more before the window", n)
	}
	if a := mustAccesses(t, f.led, f.patient.ID)[0]; a.Records != int64(st.N) {
		t.Errorf("logged %d records, shown %d", a.Records, st.N)
	}

	// Another clinician-patient pair: a window that ends before the
	// period, and a grant that pins recipients: no glucose is read.
	g := newFixture(t, fixtureOpts{clock: true, days: 3})
	g.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}, to: g.now().Add(-30 * 24 * time.Hour)})
	g.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}, recipients: []string{"ab12"}})
	gs, _ := g.signIn(g.clin.ID)
	size := g.size()
	res := g.do(req{path: "/patients/" + g.patient.ID, cookie: gs})
	b := body(t, res)
	if res.StatusCode != http.StatusOK || strings.Contains(b, "agp-fig") || !strings.Contains(b, "cover none of glucose") {
		t.Fatalf("uncovered: %d\n%s", res.StatusCode, b)
	}
	if g.size() != size {
		t.Fatal("a view that read nothing was logged")
	}
}

// TestClinicianPatientFailClosed: when the access-start or the
// access-end cannot be appended, the clinician gets an error and none of
// the patient's figures.
func TestClinicianPatientFailClosed(t *testing.T) {
	var fl *flakyLedger
	f := newFixture(t, fixtureOpts{clock: true, days: 3, wrapLedger: func(s consent.Store) consent.Store {
		fl = &flakyLedger{Store: s}
		fl.failAt.Store(-1)
		return fl
	}})
	f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}})
	sess, _ := f.signIn(f.clin.ID)
	for _, c := range []struct {
		name  string
		after int64 // updates that succeed first
	}{{"access-start", 0}, {"access-end", 1}} {
		fl.failAt.Store(fl.updates.Load() + c.after)
		res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess})
		b := body(t, res)
		fl.failAt.Store(-1)
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "access_log_unavailable") || strings.Contains(b, "agp-fig") || strings.Contains(b, "mg/dL") {
			t.Errorf("%s fails: %d\n%s", c.name, res.StatusCode, b)
		}
		if strings.Contains(b, errCanary.Error()) {
			t.Errorf("%s: the cause reached the page", c.name)
		}
	}
	// Neither view counts as shown: the first was never logged, the
	// second has its start and no end.
	acc := mustAccesses(t, f.led, f.patient.ID)
	if len(acc) != 1 || acc[0].End != nil {
		t.Fatalf("accesses after the failures: %+v", acc)
	}
	p, _ := f.signIn(f.patient.ID)
	if log := body(t, f.do(req{path: "/access-log", cookie: p})); !strings.Contains(log, "not shown") {
		t.Error("the access log does not say the view was not shown")
	}
	// And the next view works.
	if res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess}); res.StatusCode != http.StatusOK {
		t.Fatalf("after the failures: %d", res.StatusCode)
	}
}

// flakyLedger is the ledger's real store, failing its Update number
// failAt (counted from 0; -1 never).
type flakyLedger struct {
	consent.Store
	updates atomic.Int64
	failAt  atomic.Int64
}

func (s *flakyLedger) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	if n := s.updates.Add(1) - 1; n == s.failAt.Load() {
		return errCanary
	}
	return s.Store.Update(ctx, fn)
}

// TestClinicianPatientRateLimit: a clinician's views are bounded at
// MaxReportViewsPerMinute, refused 429 with Retry-After past it, and
// nothing is logged for a refused one.
func TestClinicianPatientRateLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{clock: true, days: 1})
	f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose"}})
	sess, _ := f.signIn(f.clin.ID)
	for i := range MaxReportViewsPerMinute {
		if res := f.do(req{path: "/patients/" + f.patient.ID + "?days=7", cookie: sess}); res.StatusCode != http.StatusOK {
			t.Fatalf("view %d: %d", i+1, res.StatusCode)
		}
	}
	size := f.size()
	res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess})
	if b := body(t, res); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || strings.Contains(b, "agp-fig") {
		t.Fatalf("view past the limit: %d", res.StatusCode)
	}
	if f.size() != size {
		t.Fatal("a refused view was logged")
	}
	f.clock.Advance(time.Minute)
	if res := f.do(req{path: "/patients/" + f.patient.ID, cookie: sess}); res.StatusCode != http.StatusOK {
		t.Fatalf("a minute later: %d", res.StatusCode)
	}
}

// calendarLoc is a user's time zone, loaded or failing the test.
func calendarLoc(t *testing.T, u vault.User) *time.Location {
	t.Helper()
	return calendartest.Location(t, u.TimeZone)
}

// mustAccesses is a patient's whole access log, newest first; a read
// error fails the test.
func mustAccesses(t testing.TB, l *consent.Ledger, patient string) []consent.AccessState {
	t.Helper()
	as, err := l.Accesses(patient, 0)
	if err != nil {
		t.Fatal(err)
	}
	return as
}
