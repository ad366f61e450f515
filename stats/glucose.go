package stats

import (
	"math"
	"slices"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar"
)

// The reporting period and the band limits of the CGM summary, in mg/dL
// (see the package documentation).
const (
	CGMDays        = 14   // the reporting period, in days
	MinActiveShare = 0.70 // the least sensor activity for a sufficient summary

	VeryLowBelow  = 54.0  // very low: < 54
	TargetFrom    = 70.0  // low: [54, 70); target: [70, 180]
	TargetTo      = 180.0 // high: (180, 250]
	VeryHighAbove = 250.0 // very high: > 250
)

// Range is one of the five glucose bands of the time-in-range consensus.
type Range int

// The bands, lowest first.
const (
	VeryLow  Range = iota // < 54 mg/dL
	Low                   // 54–69 mg/dL
	Target                // 70–180 mg/dL
	High                  // 181–250 mg/dL
	VeryHigh              // > 250 mg/dL
)

// RangeOf returns the band of a glucose value in mg/dL.
func RangeOf(mgdl float64) Range {
	switch {
	case mgdl < VeryLowBelow:
		return VeryLow
	case mgdl < TargetFrom:
		return Low
	case mgdl <= TargetTo:
		return Target
	case mgdl <= VeryHighAbove:
		return High
	}
	return VeryHigh
}

// TimeInRanges is the share of readings in each band, in percent.
type TimeInRanges struct {
	VeryLow, Low, Target, High, VeryHigh float64
}

// CGM is the summary of a period's glucose readings.
type CGM struct {
	N          int
	Mean       float64 // mg/dL (LOINC 97507-8)
	SD         float64 // sample standard deviation, mg/dL
	CV         float64 // 100 × SD / mean, percent
	GMI        float64 // 3.31 + 0.02392 × mean, percent (LOINC 97506-0)
	Ranges     TimeInRanges
	ActivePct  float64 // sensor activity over the period, percent
	Sufficient bool    // ActivePct is at least MinActiveShare
}

// SummarizeCGM summarises glucose readings in mg/dL, in time order, taken
// over a reporting period of the given length. Without readings it is the
// zero CGM (N 0).
func SummarizeCGM(pts []Point, period time.Duration) CGM {
	st := CGM{N: len(pts)}
	if len(pts) == 0 {
		return st
	}
	var sum float64
	var count [VeryHigh + 1]int
	for _, p := range pts {
		sum += p.Value
		count[RangeOf(p.Value)]++
	}
	n := float64(len(pts))
	st.Mean = sum / n
	if len(pts) > 1 {
		var ss float64
		for _, p := range pts {
			d := p.Value - st.Mean
			ss += d * d
		}
		st.SD = math.Sqrt(ss / (n - 1))
	}
	if st.Mean > 0 {
		st.CV = 100 * st.SD / st.Mean
	}
	st.GMI = 3.31 + 0.02392*st.Mean
	pct := func(r Range) float64 { return 100 * float64(count[r]) / n }
	st.Ranges = TimeInRanges{VeryLow: pct(VeryLow), Low: pct(Low), Target: pct(Target), High: pct(High), VeryHigh: pct(VeryHigh)}
	// Sensor activity: readings times the device's usual interval (the
	// median gap, between 1 and 15 minutes) over the period.
	interval := 5 * time.Minute
	if len(pts) > 2 {
		gaps := make([]time.Duration, 0, len(pts)-1)
		for i := 1; i < len(pts); i++ {
			gaps = append(gaps, pts[i].Time.Sub(pts[i-1].Time))
		}
		slices.Sort(gaps)
		interval = min(max(gaps[len(gaps)/2], time.Minute), 15*time.Minute)
	}
	st.ActivePct = min(100, 100*float64(len(pts))*float64(interval)/float64(period))
	st.Sufficient = st.ActivePct >= 100*MinActiveShare
	return st
}

// GlucoseDay is one local day's glucose figures.
type GlucoseDay struct {
	Start     time.Time // the first instant of the local day
	N         int
	Mean      float64 // mg/dL
	TargetPct float64 // percent of the day's readings in 70–180 mg/dL
}

// DailyGlucose returns the figures of each local day in loc that has
// readings (mg/dL, in time order), oldest first.
func DailyGlucose(pts []Point, loc *time.Location) []GlucoseDay {
	type acc struct {
		start  time.Time
		sum    float64
		n, tgt int
	}
	var days []*acc
	byDay := map[int64]*acc{}
	var a *acc
	var end time.Time // the end of a's day
	for _, p := range pts {
		if a == nil || p.Time.Before(a.start) || !p.Time.Before(end) {
			start := calendar.DayStart(p.Time, loc)
			if a = byDay[start.Unix()]; a == nil {
				a = &acc{start: start}
				byDay[start.Unix()] = a
				days = append(days, a)
			}
			end = calendar.Next(start, loc)
		}
		a.sum += p.Value
		a.n++
		if RangeOf(p.Value) == Target {
			a.tgt++
		}
	}
	out := make([]GlucoseDay, len(days))
	for i, a := range days {
		out[i] = GlucoseDay{Start: a.start, N: a.n, Mean: a.sum / float64(a.n), TargetPct: 100 * float64(a.tgt) / float64(a.n)}
	}
	return out
}
