package report

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/stats"
)

// day is n days of 5-minute readings from start, skipping [skipFrom,
// skipTo) of every day's clock.
func day(start time.Time, n int, skipFrom, skipTo time.Duration) []stats.Point {
	var pts []stats.Point
	for i, at := 0, start; at.Before(start.Add(time.Duration(n) * 24 * time.Hour)); i, at = i+1, at.Add(5*time.Minute) {
		if c := at.Sub(at.Truncate(24 * time.Hour)); c >= skipFrom && c < skipTo {
			continue
		}
		pts = append(pts, stats.Point{Time: at, Value: float64(60 + i%200)})
	}
	return pts
}

// TestBuild: the figures carry the summary's numbers in words, a gap in
// the modal day splits its bands, and a period without readings has no
// figures.
func TestBuild(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	from, to := start, start.Add(7*24*time.Hour)
	// No readings from 02:00 to 03:00 on any day: two runs of bins.
	a := stats.NewAGP(day(start, 7, 2*time.Hour, 3*time.Hour), from, to, to.Sub(from), time.UTC)
	r := Build(a, time.UTC)
	if !r.HasData || r.Days != 7 || r.Period != "1 Mar – 7 Mar 2026" || r.N != a.CGM.N || r.DailyCount != 7 {
		t.Fatalf("report %+v", r)
	}
	modal := string(r.ModalDay)
	if strings.Count(modal, "<polygon") != 4 || strings.Count(modal, "<polyline") != 2 {
		t.Errorf("a gap should split the bands: %d polygons, %d medians", strings.Count(modal, "<polygon"), strings.Count(modal, "<polyline"))
	}
	// The band names at the right end stay 11 units apart.
	ys := regexp.MustCompile(`<text x="672" y="([0-9.]+)" font-size="11"[^>]*>(\d+)%</text>`).FindAllStringSubmatch(modal, -1)
	if len(ys) != 5 {
		t.Fatalf("band names %v", ys)
	}
	for i := 1; i < len(ys); i++ {
		a, _ := strconv.ParseFloat(ys[i-1][1], 64)
		b, _ := strconv.ParseFloat(ys[i][1], 64)
		if b-a < 10.9 {
			t.Errorf("band names %s%% and %s%% are %v apart", ys[i-1][2], ys[i][2], b-a)
		}
	}
	if !strings.Contains(string(r.RangeBar), "in range (70–180 mg/dL) "+pct(a.CGM.Ranges.Target)) {
		t.Errorf("range bar description: %s", r.RangeBar)
	}
	if strings.Count(string(r.Daily), ">no readings<") != 0 || strings.Count(string(r.Daily), "<path") != 7 {
		t.Errorf("daily profiles: %d traces", strings.Count(string(r.Daily), "<path"))
	}
	empty := Build(stats.NewAGP(nil, from, to, to.Sub(from), time.UTC), time.UTC)
	if empty.HasData || empty.ModalDay != "" || empty.Tiles != nil {
		t.Errorf("empty report %+v", empty)
	}
}
