package stats

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// TestHourlyMeans: means by local clock hour, including a zone half an
// hour off UTC and the repeated hour of an autumn clock change.
func TestHourlyMeans(t *testing.T) {
	for _, tc := range []struct {
		name string
		zone string
		pts  []Point
		want []string // start, readings, mean
	}{
		{"UTC", "UTC", readings(t,
			"2024-03-10T08:00:00Z 60",
			"2024-03-10T08:59:59Z 80",
			"2024-03-10T09:00:00Z 90",
			"2024-03-10T11:30:00Z 75",
		), []string{"2024-03-10T08:00:00Z 2 70", "2024-03-10T09:00:00Z 1 90", "2024-03-10T11:00:00Z 1 75"}},
		{"half-hour offset: hours run :00 to :00 local, not UTC", "Asia/Kolkata", readings(t,
			"2024-03-10T10:00:00+05:30 60", // 04:30 UTC
			"2024-03-10T10:29:00+05:30 70", // 04:59 UTC
			"2024-03-10T10:30:00+05:30 80", // 05:00 UTC
			"2024-03-10T11:29:00+05:30 100",
		), []string{"2024-03-10T10:00:00+05:30 3 70", "2024-03-10T11:00:00+05:30 1 100"}},
		{"quarter-hour offset", "Asia/Kathmandu", readings(t,
			"2024-03-10T10:59:00+05:45 60",
			"2024-03-10T11:00:00+05:45 80",
		), []string{"2024-03-10T10:00:00+05:45 1 60", "2024-03-10T11:00:00+05:45 1 80"}},
		{"fall back: 01:00 twice", "America/New_York", readings(t,
			"2024-11-03T01:10:00-04:00 60",
			"2024-11-03T01:50:00-04:00 62",
			"2024-11-03T01:10:00-05:00 90",
			"2024-11-03T02:10:00-05:00 70",
		), []string{"2024-11-03T01:00:00-04:00 2 61", "2024-11-03T01:00:00-05:00 1 90", "2024-11-03T02:00:00-05:00 1 70"}},
		{"spring forward: 01:59 then 03:00", "America/New_York", readings(t,
			"2024-03-10T01:59:00-05:00 60",
			"2024-03-10T03:00:00-04:00 80",
		), []string{"2024-03-10T01:00:00-05:00 1 60", "2024-03-10T03:00:00-04:00 1 80"}},
		{"none", "UTC", nil, nil},
	} {
		loc := calendartest.Location(t, tc.zone)
		var got []string
		for _, h := range HourlyMeans(tc.pts, loc) {
			got = append(got, fmt.Sprintf("%s %d %v", h.Start.In(loc).Format(time.RFC3339), h.N, h.Mean))
		}
		sameRows(t, tc.name, got, tc.want)
	}
}

// TestDailyTotals: a total for every local day the window touches,
// across the spring clock change in New York and a day without a
// midnight in Havana.
func TestDailyTotals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		zone     string
		from, to string
		pts      []Point
		want     []string // start, readings counted, total
	}{
		{"spring forward", "America/New_York", "2024-03-08T12:00:00-05:00", "2024-03-11T12:00:00-04:00", readings(t,
			"2024-03-07T23:00:00-05:00 999", // before the first day: not counted
			"2024-03-08T09:00:00-05:00 1000",
			"2024-03-08T23:59:59-05:00 500",
			"2024-03-10T00:00:00-05:00 300",
			"2024-03-10T03:00:00-04:00 700",
			"2024-03-10T12:00:00-04:00 -50", // negative: not counted
			"2024-03-11T09:00:00-04:00 0",   // counted, adds nothing
			"2024-03-12T00:00:00-04:00 999", // after the last day: not counted
		), []string{
			"2024-03-08T00:00:00-05:00 2 1500",
			"2024-03-09T00:00:00-05:00 0 0",
			"2024-03-10T00:00:00-05:00 2 1000",
			"2024-03-11T00:00:00-04:00 1 0",
		}},
		{"no midnight", "America/Havana", "2024-03-09T12:00:00-05:00", "2024-03-11T12:00:00-04:00", readings(t,
			"2024-03-09T23:59:00-05:00 100",
			"2024-03-10T01:00:00-04:00 200", // the first instant of 10 March
			"2024-03-11T00:00:00-04:00 400",
		), []string{
			"2024-03-09T00:00:00-05:00 1 100",
			"2024-03-10T01:00:00-04:00 1 200",
			"2024-03-11T00:00:00-04:00 1 400",
		}},
		{"half-hour offset", "Asia/Kolkata", "2024-03-09T12:00:00+05:30", "2024-03-10T12:00:00+05:30", readings(t,
			"2024-03-09T18:29:00Z 10", // 23:59 IST
			"2024-03-09T18:30:00Z 20", // 00:00 IST
		), []string{
			"2024-03-09T00:00:00+05:30 1 10",
			"2024-03-10T00:00:00+05:30 1 20",
		}},
		{"empty window", "UTC", "2024-03-09T12:00:00Z", "2024-03-09T12:00:00Z", readings(t, "2024-03-09T12:00:00Z 5"), nil},
	} {
		loc := calendartest.Location(t, tc.zone)
		var got []string
		for _, d := range DailyTotals(tc.pts, rfc(t, tc.from), rfc(t, tc.to), loc) {
			got = append(got, fmt.Sprintf("%s %d %v", d.Start.In(loc).Format(time.RFC3339), d.N, d.Total))
		}
		sameRows(t, tc.name, got, tc.want)
	}
}

func TestActiveDayMean(t *testing.T) {
	for _, tc := range []struct {
		totals []float64
		want   float64
	}{
		{[]float64{1000, 0, 3000, 500}, 1500}, // (1000 + 3000 + 500) / 3
		{[]float64{0, 0}, 0},
		{nil, 0},
		{[]float64{4000}, 4000},
	} {
		days := make([]DayTotal, len(tc.totals))
		for i, v := range tc.totals {
			days[i].Total = v
		}
		if got := ActiveDayMean(days); got != tc.want {
			t.Errorf("ActiveDayMean(%v) = %v, want %v", tc.totals, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		values []float64
		want   Summary
	}{
		{[]float64{70, 90, 62, 80}, Summary{N: 4, Mean: 75.5, Min: 62, Max: 90}}, // 302 / 4
		{[]float64{72}, Summary{N: 1, Mean: 72, Min: 72, Max: 72}},
		{nil, Summary{}},
	} {
		if got := Describe(tc.values); got != tc.want {
			t.Errorf("Describe(%v) = %+v, want %+v", tc.values, got, tc.want)
		}
	}
}

// TestPercentile: linear interpolation between closest ranks.
func TestPercentile(t *testing.T) {
	four := []float64{10, 20, 30, 40}
	for _, tc := range []struct {
		sorted []float64
		p      float64
		want   float64
	}{
		{four, 0, 10},
		{four, 5, 11.5},  // rank 0.15: 10 + 0.15 × 10
		{four, 25, 17.5}, // rank 0.75
		{four, 50, 25},   // rank 1.5: the median
		{four, 75, 32.5}, // rank 2.25
		{four, 95, 38.5}, // rank 2.85
		{four, 100, 40},  // the greatest
		{four, -10, 10},  // clamped
		{four, 110, 40},  // clamped
		{[]float64{7}, 5, 7},
		{[]float64{7}, 95, 7},
		{[]float64{1, 2, 3, 4, 5}, 50, 3},
	} {
		near(t, "percentile", Percentile(tc.sorted, tc.p), tc.want, 1e-12)
	}
	if v := Percentile(nil, 50); !math.IsNaN(v) {
		t.Errorf("no values: %v, want NaN", v)
	}
	if v := Percentile(four, math.NaN()); !math.IsNaN(v) {
		t.Errorf("NaN p: %v, want NaN", v)
	}
}

// TestByHourOfDay: readings pooled by local hour of day across days,
// through a clock change and in a zone half an hour off UTC.
func TestByHourOfDay(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	// 08:15 local on three days around the spring change (13:15, 13:15
	// and 12:15 UTC), and 23:59 local once.
	pts := []Point{
		{rfc(t, "2024-03-09T08:15:00-05:00"), 100},
		{rfc(t, "2024-03-10T08:15:00-04:00"), 200},
		{rfc(t, "2024-03-10T23:59:00-04:00"), 300},
		{rfc(t, "2024-03-11T08:15:00-04:00"), 150},
	}
	got := ByHourOfDay(pts, ny, 0, 50, 100, 25)
	for h, hd := range got {
		if hd.Hour != h {
			t.Fatalf("hour %d says %d", h, hd.Hour)
		}
		switch h {
		case 8:
			if hd.N != 3 || len(hd.Percentiles) != 4 || hd.Percentiles[0] != 100 || hd.Percentiles[1] != 150 || hd.Percentiles[2] != 200 || hd.Percentiles[3] != 125 {
				t.Errorf("08: %+v, want 3 readings, 100 150 200 125", hd)
			}
		case 23:
			if hd.N != 1 || hd.Percentiles[1] != 300 {
				t.Errorf("23: %+v", hd)
			}
		default:
			if hd.N != 0 || hd.Percentiles != nil {
				t.Errorf("%02d: %+v, want empty", h, hd)
			}
		}
	}
	if pts[1].Value != 200 || pts[3].Value != 150 {
		t.Error("the input was reordered")
	}
	// 04:45 UTC is 10:15 in Kolkata.
	kol := ByHourOfDay([]Point{{rfc(t, "2024-03-10T04:45:00Z"), 90}}, calendartest.Location(t, "Asia/Kolkata"), 50)
	if kol[10].N != 1 || kol[4].N != 0 {
		t.Errorf("Kolkata: hour 10 has %d, hour 4 has %d", kol[10].N, kol[4].N)
	}
}
