package web

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

// TestActivityCharts: the dashboard draws heart rate as hourly means and
// steps as daily bars over the 14 days, as SVG beside the glucose chart.
func TestActivityCharts(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := time.Now()
	var pts []*omh.Point
	add := func(s string) {
		p, err := omh.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		pts = append(pts, p)
	}
	hdr := func(name, version string, at time.Time) string {
		return fmt.Sprintf(`{"schema_id":{"namespace":"omh","name":%q,"version":%q},"source_creation_date_time":%q}`, name, version, at.UTC().Format(time.RFC3339))
	}
	// Heart rate every 20 minutes for the last 3 days (two readings an
	// hour at 60 and 80: hourly means of 70), and a day of steps as four
	// readings of 1,000 each, 5 days ago.
	start := now.Add(-72 * time.Hour).Truncate(time.Hour)
	for at := start; at.Before(now.Add(-time.Hour)); at = at.Add(30 * time.Minute) {
		v := 60
		if at.Minute() == 30 {
			v = 80
		}
		add(fmt.Sprintf(`{"header":%s,"body":{"heart_rate":{"value":%d,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`, hdr("heart-rate", "2.0", at), v, at.UTC().Format(time.RFC3339)))
	}
	loc := calendartest.Location(t, f.patient.TimeZone)
	d5 := now.In(loc).AddDate(0, 0, -5)
	noon := time.Date(d5.Year(), d5.Month(), d5.Day(), 9, 0, 0, 0, loc)
	for i := range 4 {
		s := noon.Add(time.Duration(i) * 2 * time.Hour)
		add(fmt.Sprintf(`{"header":%s,"body":{"step_count":{"value":1000,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
			hdr("step-count", "3.0", s), s.UTC().Format(time.RFC3339), s.Add(time.Hour).UTC().Format(time.RFC3339)))
	}
	if _, err := f.v.Ingest(context.Background(), f.patient.ID, pts); err != nil {
		t.Fatal(err)
	}
	sess, _ := f.signIn(f.patient.ID)
	b := body(t, f.do(req{path: "/", cookie: sess}))
	hr := regexp.MustCompile(`<svg class="chart hr".*?</svg>`).FindString(b)
	if hr == "" || !strings.Contains(b, "70 beats/min") || !strings.Contains(b, "hours with readings") {
		t.Fatalf("no heart-rate chart or figures:\n%s", b)
	}
	// Hourly means: one point per hour, joined (about 70 hours, one run).
	path := regexp.MustCompile(`class="line hr-line" d="([^"]*)"`).FindStringSubmatch(hr)
	if path == nil || strings.Count(path[1], "M") != 1 || strings.Count(path[1], "L") < 60 {
		t.Fatalf("heart-rate path %q", path)
	}
	steps := regexp.MustCompile(`<svg class="chart steps".*?</svg>`).FindString(b)
	if strings.Count(steps, `<rect class="bar"`) != 1 || !strings.Contains(steps, d5.Format("2 Jan")+": 4000 steps") {
		t.Fatalf("steps chart:\n%s", steps)
	}
	if !strings.Contains(b, "<td>"+d5.Format("Mon 2 Jan")+"</td><td>4000</td>") {
		t.Fatal("the steps table lacks the day")
	}
	// Without readings, the sections say so.
	o, _ := f.signIn(f.other.ID)
	ob := body(t, f.do(req{path: "/", cookie: o}))
	if !strings.Contains(ob, "No heart-rate readings") || !strings.Contains(ob, "No step counts") {
		t.Fatal("empty activity sections")
	}
}
