package stats

import (
	"time"
)

// HourMean is the mean of one clock hour's readings.
type HourMean struct {
	Start time.Time // the hour's first instant
	N     int
	Mean  float64
}

// HourlyMeans returns the mean of each clock hour in loc that has readings
// (in time order), oldest first. Hours are the local clock's: from :00 to
// :00 local time, which in a zone a half or quarter hour off UTC is not
// the UTC hour.
func HourlyMeans(pts []Point, loc *time.Location) []HourMean {
	type acc struct {
		sum float64
		n   int
	}
	var order []time.Time
	hours := map[int64]*acc{}
	for _, p := range pts {
		h := hourStart(p.Time, loc)
		a := hours[h.Unix()]
		if a == nil {
			a = &acc{}
			hours[h.Unix()] = a
			order = append(order, h)
		}
		a.sum += p.Value
		a.n++
	}
	out := make([]HourMean, len(order))
	for i, h := range order {
		a := hours[h.Unix()]
		out[i] = HourMean{Start: h, N: a.n, Mean: a.sum / float64(a.n)}
	}
	return out
}

// hourStart returns the first instant of the local clock hour that holds
// t. The offset in force at t decides, so the two 01:00 hours of an autumn
// clock change are two hours.
func hourStart(t time.Time, loc *time.Location) time.Time {
	_, off := t.In(loc).Zone()
	s := (t.Unix() + int64(off)) % 3600
	if s < 0 {
		s += 3600
	}
	return t.Add(-time.Duration(s)*time.Second - time.Duration(t.Nanosecond()))
}

// DayTotal is one local day's total of a series.
type DayTotal struct {
	Start time.Time // the first instant of the local day
	N     int       // readings counted
	Total float64
}

// DailyTotals adds up a series (steps) by local day in loc: one DayTotal
// for every day the window [from, to) touches, oldest first, with zero for
// a day without readings. A reading counts in full on the day its time
// falls on (for a step count, the start of its interval); a negative value
// or a reading outside those days is not counted.
func DailyTotals(pts []Point, from, to time.Time, loc *time.Location) []DayTotal {
	days := SplitDays(pts, from, to, loc)
	out := make([]DayTotal, len(days))
	for i, d := range days {
		out[i].Start = d.Start
		for _, p := range d.Points {
			if p.Value >= 0 {
				out[i].Total += p.Value
				out[i].N++
			}
		}
	}
	return out
}

// ActiveDayMean returns the mean total of the days whose total is above
// zero, or 0 when none is.
func ActiveDayMean(days []DayTotal) float64 {
	sum, n := 0.0, 0
	for i := len(days) - 1; i >= 0; i-- { // newest first, as the dashboard always added them
		if days[i].Total > 0 {
			sum, n = sum+days[i].Total, n+1
		}
	}
	return sum / float64(max(n, 1))
}

// Summary describes a set of values.
type Summary struct {
	N              int
	Mean, Min, Max float64
}

// Describe returns the number, mean, least and greatest of values; all
// zero when there are none.
func Describe(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	s := Summary{N: len(values), Min: values[0], Max: values[0]}
	sum := 0.0
	for _, v := range values {
		s.Min, s.Max, sum = min(s.Min, v), max(s.Max, v), sum+v
	}
	s.Mean = sum / float64(len(values))
	return s
}
