package stats

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// every5 returns readings of the values 5 minutes apart from t0.
func every5(t0 time.Time, values ...float64) []Point {
	pts := make([]Point, len(values))
	for i, v := range values {
		pts[i] = Point{Time: t0.Add(time.Duration(i) * 5 * time.Minute), Value: v}
	}
	return pts
}

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) != math.IsNaN(want) {
		t.Errorf("%s = %.6f, want %.6f", name, got, want)
	}
}

// TestRangeOf: the consensus's bands at and around every limit.
func TestRangeOf(t *testing.T) {
	for _, tc := range []struct {
		mgdl float64
		want Range
	}{
		{-1, VeryLow}, {0, VeryLow}, {53, VeryLow}, {53.99, VeryLow},
		{54, Low}, {60, Low}, {69, Low}, {69.5, Low}, {69.99, Low},
		{70, Target}, {120, Target}, {180, Target},
		{180.01, High}, {180.5, High}, {181, High}, {250, High},
		{250.01, VeryHigh}, {250.5, VeryHigh}, {251, VeryHigh}, {600, VeryHigh},
	} {
		if got := RangeOf(tc.mgdl); got != tc.want {
			t.Errorf("RangeOf(%v) = %d, want %d", tc.mgdl, got, tc.want)
		}
	}
}

// TestSummarizeCGM: hand-computed summaries.
func TestSummarizeCGM(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                           string
		values                         []float64
		period                         time.Duration
		n                              int
		mean, sd, cv, gmi              float64
		vlow, low, target, high, vhigh float64
		active                         float64
		sufficient                     bool
	}{
		{
			// Sum 1108, mean 138.5. Deviations ±85.5, 84.5, 69.5, 68.5,
			// 41.5, 42.5, 111.5, 112.5; squares sum to 52,590; SD =
			// √(52590 / 7) = 86.6767; CV = 86.6767 / 138.5 = 62.5825%;
			// GMI = 3.31 + 0.02392 × 138.5 = 6.62292%. 53 very low; 54
			// and 69 low; 70 and 180 in range; 181 and 250 high; 251
			// very high. Eight readings 5 minutes apart over 40 minutes.
			name:   "every limit",
			values: []float64{53, 54, 69, 70, 180, 181, 250, 251}, period: 40 * time.Minute,
			n: 8, mean: 138.5, sd: 86.676739, cv: 62.582483, gmi: 6.62292,
			vlow: 12.5, low: 25, target: 25, high: 25, vhigh: 12.5, active: 100, sufficient: true,
		},
		{
			// Between the integers a reading falls in the lower band:
			// 53.9 very low; 54, 69, 69.5 low; 70, 180 in range; 180.5,
			// 181, 250 high; 250.5 very high. Sum 1358.4, mean 135.84,
			// GMI 3.31 + 3.2492928.
			name:   "between the integers",
			values: []float64{53.9, 54, 69, 69.5, 70, 180, 180.5, 181, 250, 250.5}, period: 100 * time.Minute,
			n: 10, mean: 135.84, sd: -1, cv: -1, gmi: 6.5592928,
			vlow: 10, low: 30, target: 20, high: 30, vhigh: 10, active: 50, sufficient: false,
		},
		{
			// The dashboard's old test: mean 130, sample SD 67.4949
			// (squares of the deviations sum to 41,000), CV 51.9191%.
			name:   "ten readings",
			values: []float64{50, 60, 70, 100, 180, 200, 260, 150, 120, 110}, period: 50 * time.Minute,
			n: 10, mean: 130, sd: 67.494856, cv: 51.919120, gmi: 3.31 + 0.02392*130,
			vlow: 10, low: 10, target: 60, high: 10, vhigh: 10, active: 100, sufficient: true,
		},
		{
			// SD = √((10² + 10²) / 1) = 14.1421; CV = 14.1421%;
			// GMI = 3.31 + 2.392. Two readings: a 5-minute interval is
			// assumed, 10 minutes over an hour.
			name:   "two readings",
			values: []float64{90, 110}, period: time.Hour,
			n: 2, mean: 100, sd: 14.142136, cv: 14.142136, gmi: 5.702,
			target: 100, active: 100.0 / 6,
		},
		{
			// One reading: no spread; GMI = 3.31 + 0.02392 × 120 = 6.1804.
			name:   "single reading",
			values: []float64{120}, period: 14 * 24 * time.Hour,
			n: 1, mean: 120, sd: 0, cv: 0, gmi: 6.1804,
			target: 100, active: 100 * 5.0 / (14 * 24 * 60),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := SummarizeCGM(every5(t0, tc.values...), tc.period)
			if st.N != tc.n {
				t.Errorf("N = %d, want %d", st.N, tc.n)
			}
			near(t, "mean", st.Mean, tc.mean, 1e-9)
			if tc.sd >= 0 {
				near(t, "SD", st.SD, tc.sd, 1e-6)
				near(t, "CV", st.CV, tc.cv, 1e-6)
			}
			near(t, "GMI", st.GMI, tc.gmi, 1e-9)
			near(t, "very low", st.Ranges.VeryLow, tc.vlow, 1e-9)
			near(t, "low", st.Ranges.Low, tc.low, 1e-9)
			near(t, "target", st.Ranges.Target, tc.target, 1e-9)
			near(t, "high", st.Ranges.High, tc.high, 1e-9)
			near(t, "very high", st.Ranges.VeryHigh, tc.vhigh, 1e-9)
			near(t, "active", st.ActivePct, tc.active, 1e-9)
			if st.Sufficient != tc.sufficient {
				t.Errorf("sufficient = %v, want %v", st.Sufficient, tc.sufficient)
			}
		})
	}
	if st := SummarizeCGM(nil, 14*24*time.Hour); st != (CGM{}) {
		t.Errorf("no readings: %+v, want the zero CGM", st)
	}
}

// TestSensorActivity: readings × the median gap (held to 1–15 minutes)
// over the period, against the 70% threshold.
func TestSensorActivity(t *testing.T) {
	period := 14 * 24 * time.Hour
	series := func(n int, gap time.Duration) []Point {
		pts := make([]Point, n)
		for i := range pts {
			pts[i] = Point{Time: time.Unix(int64(i)*int64(gap/time.Second), 0), Value: 100}
		}
		return pts
	}
	for _, tc := range []struct {
		name       string
		pts        []Point
		active     float64
		sufficient bool
	}{
		{"10 of 14 days at 5 minutes", series(10*288, 5*time.Minute), 100 * 10.0 / 14, true}, // 71.43%
		{"9 of 14 days at 5 minutes", series(9*288, 5*time.Minute), 100 * 9.0 / 14, false},   // 64.29%
		{"exactly 70%", series(2352, 6*time.Minute), 70, true},                               // 2352 × 6 min = 14,112 of 20,160 min
		{"a reading short of 70%", series(2351, 6*time.Minute), 100 * 2351 * 6.0 / (14 * 24 * 60), false},
		{"15-minute sensor", series(10*96, 15*time.Minute), 100 * 10.0 / 14, true},
		{"gaps over 15 minutes count as 15", series(100, time.Hour), 100 * 100 * 15.0 / (14 * 24 * 60), false},
		{"gaps under a minute count as one", series(1000, 30*time.Second), 100 * 1000.0 / (14 * 24 * 60), false},
		{"at most 100%", series(20*288, 5*time.Minute), 100, true},
	} {
		st := SummarizeCGM(tc.pts, period)
		near(t, tc.name, st.ActivePct, tc.active, 1e-9)
		if st.Sufficient != tc.sufficient {
			t.Errorf("%s: sufficient = %v (%.4f%%)", tc.name, st.Sufficient, st.ActivePct)
		}
	}
}

// TestDailyGlucose: local days in the patient's zone, across both clock
// changes in New York and in a zone half an hour off UTC.
func TestDailyGlucose(t *testing.T) {
	for _, tc := range []struct {
		name string
		zone string
		pts  []Point
		want []string // start, readings, mean, share in range
	}{
		{"spring forward", "America/New_York", readings(t,
			"2024-03-09T23:30:00-05:00 100",
			"2024-03-10T00:00:00-05:00 50", // the 23-hour day: 50, 70, 180, 200
			"2024-03-10T01:59:00-05:00 70",
			"2024-03-10T03:00:00-04:00 180",
			"2024-03-10T23:59:00-04:00 200",
			"2024-03-11T00:00:00-04:00 181",
		), []string{
			"2024-03-09T00:00:00-05:00 1 100 100%",
			"2024-03-10T00:00:00-05:00 4 125 50%",
			"2024-03-11T00:00:00-04:00 1 181 0%",
		}},
		{"fall back", "America/New_York", readings(t,
			"2024-11-03T00:30:00-04:00 60", // the 25-hour day, 01:30 twice
			"2024-11-03T01:30:00-04:00 80",
			"2024-11-03T01:30:00-05:00 100",
			"2024-11-03T23:30:00-05:00 260",
			"2024-11-04T00:00:00-05:00 54",
		), []string{
			"2024-11-03T00:00:00-04:00 4 125 50%",
			"2024-11-04T00:00:00-05:00 1 54 0%",
		}},
		{"half-hour offset", "Asia/Kolkata", readings(t,
			"2024-03-09T18:29:00Z 69", // 23:59 IST
			"2024-03-09T18:30:00Z 70", // 00:00 IST the next day
			"2024-03-10T18:29:59Z 180",
		), []string{
			"2024-03-09T00:00:00+05:30 1 69 0%",
			"2024-03-10T00:00:00+05:30 2 125 100%",
		}},
		{"single reading", "America/New_York", readings(t, "2024-06-01T12:00:00Z 250"), []string{"2024-06-01T00:00:00-04:00 1 250 0%"}},
		{"none", "America/New_York", nil, nil},
	} {
		loc := calendartest.Location(t, tc.zone)
		var got []string
		for _, d := range DailyGlucose(tc.pts, loc) {
			got = append(got, fmt.Sprintf("%s %d %v %v%%", d.Start.In(loc).Format(time.RFC3339), d.N, d.Mean, d.TargetPct))
		}
		sameRows(t, tc.name, got, tc.want)
	}
}
