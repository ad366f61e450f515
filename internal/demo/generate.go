package demo

import (
	"bytes"
	"fmt"
	"iter"
	"math"
	"time"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// generator makes a plausible, deterministic history: the same moment
// always gives the same values, so re-seeding is idempotent.
type generator struct{ loc *time.Location }

func newGenerator(loc *time.Location) generator { return generator{loc: loc} }

// noise is a deterministic value in [-1, 1) for (salt, n).
func noise(salt, n uint64) float64 {
	x := n*0x9E3779B97F4A7C15 + salt*0xBF58476D1CE4E5B9
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>11)/float64(1<<52) - 1
}

// mealCurve is the glucose rise t minutes after a meal of size amp.
func mealCurve(t, amp float64) float64 {
	if t < 0 || t > 240 {
		return 0
	}
	// A gamma-like rise peaking near 50 minutes, back to baseline by ~4h.
	return amp * (t / 50) * math.Exp(1-t/50)
}

func (g generator) glucose(t time.Time) int {
	lt := t.In(g.loc)
	day := uint64(lt.YearDay() + 400*lt.Year())
	mins := float64(lt.Hour()*60 + lt.Minute())
	v := 102.0
	// Dawn phenomenon between 4 and 8.
	v += 14 * math.Exp(-math.Pow((mins-390)/70, 2))
	meals := []struct{ at, amp float64 }{
		{450 + 25*noise(1, day), 45 + 25*noise(2, day)},
		{750 + 40*noise(3, day), 55 + 35*noise(4, day)},
		{1110 + 50*noise(5, day), 70 + 45*noise(6, day)},
	}
	for _, m := range meals {
		v += mealCurve(mins-m.at, m.amp)
		v += mealCurve(mins-m.at+1440, m.amp) // yesterday's late meal
	}
	// An afternoon walk on some days lowers glucose.
	if noise(7, day) > 0.2 {
		v -= 18 * math.Exp(-math.Pow((mins-1000)/35, 2))
	}
	v += 6 * noise(8, uint64(t.Unix()/300))
	return int(math.Round(math.Max(45, math.Min(380, v))))
}

func (g generator) heartRate(t time.Time) float64 {
	lt := t.In(g.loc)
	h := float64(lt.Hour()) + float64(lt.Minute())/60
	v := 64.0
	if h < 6.5 || h >= 23 {
		v = 56
	}
	day := uint64(lt.YearDay() + 400*lt.Year())
	if noise(7, day) > 0.2 && h >= 16.3 && h < 17.2 {
		v = 108
	}
	v += 4 * noise(9, uint64(t.Unix()/300))
	return math.Round(v)
}

func (g generator) steps(t time.Time) int {
	lt := t.In(g.loc)
	h := lt.Hour()
	if h < 7 || h >= 23 {
		return 0
	}
	day := uint64(lt.YearDay() + 400*lt.Year())
	n := 350 + 300*noise(10, uint64(t.Unix()/3600))
	if noise(7, day) > 0.2 && h == 16 {
		n += 3500
	}
	return int(math.Max(0, math.Round(n)))
}

func ts(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.RFC3339) }

func header(kind, name, version string, t time.Time, loc *time.Location, source string) string {
	return fmt.Sprintf(`{"uuid":%q,"schema_id":{"namespace":"omh","name":%q,"version":%q},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":%q}]}`,
		demoUUID(kind, t), name, version, ts(t, loc), source)
}

// points yields OMH data points for [start, end) as JSON.
func (g generator) points(start, end time.Time) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for t := start.Truncate(5 * time.Minute); t.Before(end); t = t.Add(5 * time.Minute) {
			if t.Before(start) {
				continue
			}
			cgm := fmt.Appendf(nil, `{"header":%s,"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q},"specimen_source":"interstitial fluid"}}`,
				header("cgm", "blood-glucose", "4.0", t, g.loc, "Dexcom G7 (synthetic)"), g.glucose(t), ts(t, g.loc))
			if !yield(cgm) {
				return
			}
			hr := fmt.Appendf(nil, `{"header":%s,"body":{"heart_rate":{"value":%g,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`,
				header("hr", "heart-rate", "2.0", t, g.loc, "Watch (synthetic)"), g.heartRate(t), ts(t, g.loc))
			if !yield(hr) {
				return
			}
			if t.Minute() == 0 {
				next := t.Add(time.Hour)
				st := fmt.Appendf(nil, `{"header":%s,"body":{"step_count":{"value":%d,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
					header("steps", "step-count", "3.0", t, g.loc, "Watch (synthetic)"), g.steps(t), ts(t, g.loc), ts(next, g.loc))
				if !yield(st) {
					return
				}
			}
			lt := t.In(g.loc)
			if lt.Hour() == 8 && lt.Minute() == 0 && (lt.Weekday() == time.Monday || lt.Weekday() == time.Thursday) {
				n := uint64(t.Unix())
				bp := fmt.Appendf(nil, `{"header":%s,"body":{"systolic_blood_pressure":{"value":%d,"unit":"mmHg"},"diastolic_blood_pressure":{"value":%d,"unit":"mmHg"},"effective_time_frame":{"date_time":%q},"body_posture":"sitting"}}`,
					header("bp", "blood-pressure", "4.0", t, g.loc, "Cuff (synthetic)"), 124+int(8*noise(11, n)), 80+int(5*noise(12, n)), ts(t, g.loc))
				if !yield(bp) {
					return
				}
			}
		}
	}
}
