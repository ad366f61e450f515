package stats

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// TestModalDayHandComputed checks the modal day against percentiles
// worked out by hand (type 7: rank h = (n − 1) × p / 100, interpolated):
//
//   - the 08:00 bin holds 100, 110, 120, 130, 140, one a day for five
//     days at 08:05 or 08:14: ranks 0.2, 1, 2, 3, 3.8 give 102, 110, 120,
//     130, 138;
//   - the 23:45 bin holds 60 and 200: ranks 0.05, 0.25, 0.5, 0.75, 0.95
//     give 67, 95, 130, 165, 193;
//   - 08:15 starts the next bin (one reading of 90: every percentile 90);
//   - the two 01:30s of New York's autumn clock change pool into the one
//     01:30 bin (50 and 70: 51, 55, 60, 65, 69);
//   - every other bin is empty, with no percentiles.
func TestModalDayHandComputed(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	var pts []Point
	add := func(at time.Time, v float64) { pts = append(pts, Point{Time: at, Value: v}) }
	for d, v := range []float64{130, 100, 140, 110, 120} { // days 1–5 of March 2026, not sorted by value
		day := time.Date(2026, 3, 1+d, 0, 0, 0, 0, ny)
		minute := 5
		if d%2 == 1 {
			minute = 14
		}
		add(day.Add(8*time.Hour+time.Duration(minute)*time.Minute), v)
		if d == 2 {
			add(day.Add(8*time.Hour+15*time.Minute), 90)
		}
		if d == 0 {
			add(day.Add(23*time.Hour+50*time.Minute), 60)
		}
		if d == 4 {
			add(day.Add(23*time.Hour+59*time.Minute), 200)
		}
	}
	// 1 November 2026: 01:30 EDT (05:30 UTC), then 01:30 EST (06:30 UTC).
	add(time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), 50)
	add(time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), 70)

	bins := ByTimeOfDay(pts, ny, AGPBinWidth, 5, 25, 50, 75, 95)
	if len(bins) != 96 {
		t.Fatalf("%d bins, want 96 of 15 minutes", len(bins))
	}
	want := map[int][]float64{
		32: {102, 110, 120, 130, 138}, // 08:00
		33: {90, 90, 90, 90, 90},      // 08:15
		95: {67, 95, 130, 165, 193},   // 23:45
		6:  {51, 55, 60, 65, 69},      // 01:30
	}
	count := map[int]int{32: 5, 33: 1, 95: 2, 6: 2}
	for i, b := range bins {
		if b.Start != time.Duration(i)*15*time.Minute {
			t.Errorf("bin %d starts at %v", i, b.Start)
		}
		w, ok := want[i]
		if !ok {
			if b.N != 0 || b.Percentiles != nil {
				t.Errorf("bin %d (%v): %d readings, percentiles %v; want none", i, b.Start, b.N, b.Percentiles)
			}
			continue
		}
		if b.N != count[i] {
			t.Errorf("bin %d: %d readings, want %d", i, b.N, count[i])
		}
		for j := range w {
			if math.Abs(b.Percentiles[j]-w[j]) > 1e-9 {
				t.Errorf("bin %d (%v): percentiles %v, want %v", i, b.Start, b.Percentiles, w)
				break
			}
		}
	}
}

// TestByTimeOfDayWidths: an hour's bins are ByHourOfDay's; a width that
// does not divide a day is refused.
func TestByTimeOfDayWidths(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	pts := cgmDays(time.Date(2026, 3, 1, 0, 0, 0, 0, ny), 3)
	hours := ByHourOfDay(pts, ny, 10, 50, 90)
	bins := ByTimeOfDay(pts, ny, time.Hour, 10, 50, 90)
	for h := range 24 {
		if hours[h].N != bins[h].N || fmt.Sprint(hours[h].Percentiles) != fmt.Sprint(bins[h].Percentiles) || hours[h].N != 36 {
			t.Fatalf("hour %d: %+v against %+v", h, hours[h], bins[h])
		}
	}
	for _, w := range []time.Duration{0, 30 * time.Second, 7 * time.Minute, 90 * time.Second} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("width %v accepted", w)
				}
			}()
			ByTimeOfDay(pts, ny, w)
		}()
	}
}

// cgmDays is n days of 5-minute readings from start, cycling through
// values from 40 to 320 so every range has some.
func cgmDays(start time.Time, n int) []Point {
	var pts []Point
	for i, at := 0, start; at.Before(start.Add(time.Duration(n) * 24 * time.Hour)); i, at = i+1, at.Add(5*time.Minute) {
		pts = append(pts, Point{Time: at, Value: float64(40 + (i*37)%281)})
	}
	return pts
}

// TestAGPAgreesWithSummary: the AGP's figures are SummarizeCGM's over the
// readings in its period (those outside are left out), its sensor
// activity is over the time covered, and its daily profiles are the
// newest 14 local days, empty ones included.
func TestAGPAgreesWithSummary(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, ny)
	pts := cgmDays(start, 40)
	from, to := time.Date(2026, 2, 5, 0, 0, 0, 0, ny), time.Date(2026, 3, 7, 0, 0, 0, 0, ny) // 30 days
	// A gap of two whole days (19 and 20 February) with no readings.
	var kept []Point
	for _, p := range pts {
		if d := p.Time.In(ny).Day(); p.Time.In(ny).Month() == time.February && (d == 19 || d == 20) {
			continue
		}
		kept = append(kept, p)
	}
	a := NewAGP(kept, from, to, to.Sub(from), ny)
	var in []Point
	for _, p := range kept {
		if !p.Time.Before(from) && p.Time.Before(to) {
			in = append(in, p)
		}
	}
	if want := SummarizeCGM(in, to.Sub(from)); a.CGM != want {
		t.Fatalf("AGP summary %+v, want SummarizeCGM's %+v", a.CGM, want)
	}
	if a.CGM.N != 28*288 {
		t.Fatalf("%d readings, want 28 days of 288", a.CGM.N)
	}
	// 28 of 30 days have readings: 93.3% active; over the 28 days covered, 100%.
	if math.Abs(a.CGM.ActivePct-100*28.0/30) > 1e-9 {
		t.Errorf("active %v%%", a.CGM.ActivePct)
	}
	if c := NewAGP(kept, from, to, 28*24*time.Hour, ny); c.CGM.ActivePct != 100 {
		t.Errorf("active over the covered time %v%%", c.CGM.ActivePct)
	}
	n := 0
	for _, b := range a.ModalDay {
		n += b.N
		if b.N != 28*3 {
			t.Fatalf("bin %v holds %d readings, want 3 a day for 28 days", b.Start, b.N)
		}
	}
	if len(a.Days) != AGPMaxDailyProfiles || !a.Days[0].Start.Equal(time.Date(2026, 2, 21, 0, 0, 0, 0, ny)) || !a.Days[13].Start.Equal(time.Date(2026, 3, 6, 0, 0, 0, 0, ny)) {
		t.Fatalf("daily profiles from %v to %v (%d)", a.Days[0].Start, a.Days[len(a.Days)-1].Start, len(a.Days))
	}
	for _, d := range a.Days {
		if len(d.Points) != 288 {
			t.Errorf("%v: %d readings", d.Start, len(d.Points))
		}
	}
	// Over 7 days including the gap, the two empty days are there, empty.
	w := NewAGP(kept, time.Date(2026, 2, 17, 0, 0, 0, 0, ny), time.Date(2026, 2, 24, 0, 0, 0, 0, ny), 7*24*time.Hour, ny)
	if len(w.Days) != 7 || len(w.Days[2].Points) != 0 || len(w.Days[3].Points) != 0 || len(w.Days[4].Points) != 288 {
		t.Fatalf("7 days with a gap: %d days", len(w.Days))
	}
	if w.CGM.N != 5*288 {
		t.Fatalf("7 days with a gap: %d readings", w.CGM.N)
	}
}

// TestSplitDaysClockChange: the day of a spring clock change is 23 hours
// and holds 23 hours of readings; readings outside the window's days are
// left out.
func TestSplitDaysClockChange(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	from := time.Date(2026, 3, 7, 0, 0, 0, 0, ny)
	to := time.Date(2026, 3, 10, 0, 0, 0, 0, ny)
	pts := cgmDays(from.Add(-24*time.Hour), 5)
	days := SplitDays(pts, from, to, ny)
	got := []int{}
	for _, d := range days {
		got = append(got, len(d.Points))
	}
	if fmt.Sprint(got) != "[288 276 288]" {
		t.Fatalf("readings a day %v, want [288 276 288]", got)
	}
}
