package stats

import (
	"math"
	"time"
)

// HourOfDay is the distribution of the readings taken in one hour of the
// local day, pooled across the days of a period.
type HourOfDay struct {
	Hour        int // 0–23, local clock
	N           int
	Percentiles []float64 // one per percentile asked for; nil when N is 0
}

// ByHourOfDay pools readings by the hour of the local day in loc they were
// taken in, and returns, for each hour from 0 to 23, how many there are
// and the percentiles (each in 0–100) asked for: for an ambulatory glucose
// profile, ByHourOfDay(pts, loc, 5, 25, 50, 75, 95). The repeated hour of
// an autumn clock change pools into its one hour of day; the skipped hour
// of a spring one has a day fewer.
func ByHourOfDay(pts []Point, loc *time.Location, percentiles ...float64) [24]HourOfDay {
	var out [24]HourOfDay
	for h, b := range ByTimeOfDay(pts, loc, time.Hour, percentiles...) {
		out[h] = HourOfDay{Hour: h, N: b.N, Percentiles: b.Percentiles}
	}
	return out
}

// Percentile returns the p-th percentile (p in 0–100, clamped) of values
// sorted in ascending order, interpolating linearly between the closest
// ranks: at rank h = (n − 1) × p / 100, x[⌊h⌋] + (h − ⌊h⌋) ×
// (x[⌊h⌋+1] − x[⌊h⌋]) (R's quantile type 7, NumPy's default). So the 0th
// is the least, the 100th the greatest and the 50th the median. It is NaN
// for no values or a NaN p.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 || math.IsNaN(p) {
		return math.NaN()
	}
	p = min(max(p, 0), 100)
	h := float64(len(sorted)-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}
