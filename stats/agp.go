package stats

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar"
)

// The ambulatory glucose profile's settings (see the package
// documentation).
const (
	// AGPBinWidth is the width of the modal day's time-of-day bins.
	AGPBinWidth = 15 * time.Minute
	// AGPMaxDailyProfiles is how many days, the newest, the daily
	// profiles show (the consensus report's two weeks).
	AGPMaxDailyProfiles = 14
)

// The modal day's percentiles, in the order of TimeOfDay.Percentiles.
const (
	P5 = iota
	P25
	P50
	P75
	P95
)

// agpPercentiles are the percentiles asked for, in the order above.
func agpPercentiles() []float64 { return []float64{5, 25, 50, 75, 95} }

// TimeOfDay is the distribution of the readings taken in one bin of the
// local day, pooled across the days of a period.
type TimeOfDay struct {
	Start       time.Duration // the bin's start on the local clock, from midnight
	N           int
	Percentiles []float64 // one per percentile asked for; nil when N is 0
}

// ByTimeOfDay pools readings by the bin of the local clock in loc they
// were taken in, bins of the given width from midnight, and returns for
// each bin, in time of day order, how many readings it holds and the
// percentiles (each in 0–100) asked for. A reading belongs to the bin of
// its wall-clock time (hour and minute): the repeated hour of an autumn
// clock change pools into the one hour of day it repeats, and the skipped
// hour of a spring one has a day fewer. The width must be a whole number
// of minutes that divides a day; any other panics.
func ByTimeOfDay(pts []Point, loc *time.Location, width time.Duration, percentiles ...float64) []TimeOfDay {
	if width < time.Minute || width%time.Minute != 0 || (24*time.Hour)%width != 0 {
		panic(fmt.Sprintf("stats: time-of-day bin width %v does not divide a day in whole minutes", width))
	}
	perBin := int(width / time.Minute)
	values := make([][]float64, int(24*time.Hour/width))
	for _, p := range pts {
		t := p.Time.In(loc)
		i := (t.Hour()*60 + t.Minute()) / perBin
		values[i] = append(values[i], p.Value)
	}
	out := make([]TimeOfDay, len(values))
	for i, vs := range values {
		out[i] = TimeOfDay{Start: time.Duration(i) * width, N: len(vs)}
		if len(vs) == 0 {
			continue
		}
		slices.Sort(vs)
		out[i].Percentiles = make([]float64, len(percentiles))
		for j, p := range percentiles {
			out[i].Percentiles[j] = Percentile(vs, p)
		}
	}
	return out
}

// DaySeries is one local day's readings.
type DaySeries struct {
	Start  time.Time // the first instant of the local day
	Points []Point   // in time order
}

// SplitDays returns every local day in loc that the window [from, to)
// touches, oldest first, each with the readings (in time order) taken on
// it; a day without readings has none. Readings outside those days are
// left out.
func SplitDays(pts []Point, from, to time.Time, loc *time.Location) []DaySeries {
	days := calendar.Days(from, to, loc)
	out := make([]DaySeries, len(days))
	for i, d := range days {
		out[i].Start = d
	}
	if len(days) == 0 {
		return out
	}
	end := calendar.Next(days[len(days)-1], loc)
	for _, p := range pts {
		if p.Time.Before(days[0]) || !p.Time.Before(end) {
			continue
		}
		i := sort.Search(len(days), func(i int) bool { return days[i].After(p.Time) }) - 1
		out[i].Points = append(out[i].Points, p)
	}
	return out
}

// AGP is the ambulatory glucose profile of a period: the consensus
// report's summary, its modal day and its daily profiles.
type AGP struct {
	From, To time.Time
	// Covered is the part of [From, To) whose readings could be read:
	// all of it on the patient's own dashboard, what her grants cover on
	// a clinician's page. Sensor activity is over it.
	Covered time.Duration
	CGM     CGM
	// ModalDay holds the 24 h / AGPBinWidth bins of the local day, each
	// with the 5th, 25th, 50th, 75th and 95th percentiles (indexes P5 to
	// P95) of the readings taken in it across the period.
	ModalDay []TimeOfDay
	// Days are the daily profiles: the newest AGPMaxDailyProfiles local
	// days of the period, oldest first, each with its readings.
	Days []DaySeries
}

// NewAGP computes the ambulatory glucose profile of glucose readings in
// mg/dL, in time order, taken in [from, to), in the patient's zone loc.
// covered is how much of the period could be read (to − from when all of
// it); sensor activity is counted over it. Readings outside [from, to)
// are left out.
func NewAGP(pts []Point, from, to time.Time, covered time.Duration, loc *time.Location) AGP {
	in := pts
	if i, j := firstAtOrAfter(pts, from), firstAtOrAfter(pts, to); i > 0 || j < len(pts) {
		in = pts[i:j]
	}
	a := AGP{From: from, To: to, Covered: covered}
	a.CGM = SummarizeCGM(in, covered)
	a.ModalDay = ByTimeOfDay(in, loc, AGPBinWidth, agpPercentiles()...)
	a.Days = SplitDays(in, from, to, loc)
	if n := len(a.Days); n > AGPMaxDailyProfiles {
		a.Days = a.Days[n-AGPMaxDailyProfiles:]
	}
	return a
}

// firstAtOrAfter is the index of the first point at or after t in points
// in time order.
func firstAtOrAfter(pts []Point, t time.Time) int {
	return sort.Search(len(pts), func(i int) bool { return !pts[i].Time.Before(t) })
}
