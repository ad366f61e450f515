package stats

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

// fuzzPoints reads readings from fuzz bytes: three bytes each, a gap of
// 0–255 seconds times 10 and a value of 0–655.35 mg/dL in hundredths.
func fuzzPoints(data []byte) []Point {
	t := time.Date(2024, 3, 9, 12, 0, 0, 0, time.UTC)
	var pts []Point
	for ; len(data) >= 3; data = data[3:] {
		t = t.Add(time.Duration(data[0]) * 10 * time.Second)
		pts = append(pts, Point{Time: t, Value: float64(binary.LittleEndian.Uint16(data[1:3])) / 100})
	}
	return pts
}

// FuzzSummarizeCGM checks the summary's invariants on any readings: the
// five shares are each in [0, 100], sum to 100 and match RangeOf; the mean
// lies between the least and greatest reading; SD, CV and sensor activity
// are in range; GMI is its formula; the daily figures and the hour-of-day
// profile account for every reading.
func FuzzSummarizeCGM(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{30, 0x1c, 0x15})                                                 // 54.04
	f.Add([]byte{30, 0x18, 0x15, 30, 0x58, 0x1b, 30, 0x50, 0x46, 30, 0xa8, 0x61}) // 54.00, 70.00, 180.00, 250.00
	f.Add([]byte{255, 0xff, 0xff, 0, 0, 0, 1, 0x15, 0x1b})
	ny := calendartest.Location(f, "America/New_York")
	f.Fuzz(func(t *testing.T, data []byte) {
		pts := fuzzPoints(data)
		period := 14 * 24 * time.Hour
		st := SummarizeCGM(pts, period)
		if st.N != len(pts) {
			t.Fatalf("N %d of %d", st.N, len(pts))
		}
		if len(pts) == 0 {
			if st != (CGM{}) {
				t.Fatalf("no readings: %+v", st)
			}
			return
		}
		r := st.Ranges
		var count [VeryHigh + 1]int
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			count[RangeOf(p.Value)]++
			lo, hi = min(lo, p.Value), max(hi, p.Value)
		}
		for i, share := range []float64{r.VeryLow, r.Low, r.Target, r.High, r.VeryHigh} {
			if share < 0 || share > 100 || math.Abs(share-100*float64(count[i])/float64(len(pts))) > 1e-9 {
				t.Fatalf("band %d: %v%% for %d of %d", i, share, count[i], len(pts))
			}
		}
		if sum := r.VeryLow + r.Low + r.Target + r.High + r.VeryHigh; math.Abs(sum-100) > 1e-9 {
			t.Fatalf("the shares sum to %v", sum)
		}
		const eps = 1e-9
		if st.Mean < lo-eps || st.Mean > hi+eps {
			t.Fatalf("mean %v outside [%v, %v]", st.Mean, lo, hi)
		}
		if st.SD < 0 || st.SD > (hi-lo)+eps || len(pts) == 1 && st.SD != 0 {
			t.Fatalf("SD %v for a spread of %v", st.SD, hi-lo)
		}
		if st.CV < 0 || st.Mean > 0 && math.Abs(st.CV-100*st.SD/st.Mean) > 1e-9 {
			t.Fatalf("CV %v, SD %v, mean %v", st.CV, st.SD, st.Mean)
		}
		if st.GMI != 3.31+0.02392*st.Mean {
			t.Fatalf("GMI %v for mean %v", st.GMI, st.Mean)
		}
		if st.ActivePct < 0 || st.ActivePct > 100 || st.Sufficient != (st.ActivePct >= 70) {
			t.Fatalf("active %v%%, sufficient %v", st.ActivePct, st.Sufficient)
		}
		n := 0
		for i, d := range DailyGlucose(pts, ny) {
			n += d.N
			if d.N == 0 || d.TargetPct < 0 || d.TargetPct > 100 || d.Mean < lo-eps || d.Mean > hi+eps {
				t.Fatalf("day %d: %+v", i, d)
			}
		}
		if n != len(pts) {
			t.Fatalf("the days hold %d of %d readings", n, len(pts))
		}
		n = 0
		for h, hd := range ByHourOfDay(pts, ny, 5, 25, 50, 75, 95) {
			n += hd.N
			if hd.N > 0 && (!slices.IsSorted(hd.Percentiles) || hd.Percentiles[0] < lo || hd.Percentiles[4] > hi) {
				t.Fatalf("hour %d: %+v", h, hd)
			}
		}
		if n != len(pts) {
			t.Fatalf("the hours hold %d of %d readings", n, len(pts))
		}
	})
}

// FuzzUnitValue: on any bytes UnitValue returns a finite number or false;
// on a reading omh accepts, in the stored form, the straight read and the
// JSON decode agree for every unit-value.
func FuzzUnitValue(f *testing.F) {
	f.Add([]byte(`{"header":` + header("blood-glucose", "4.0") + `,"body":{"blood_glucose":{"value":101,"unit":"mg/dL"},` + at + `}}`))
	f.Add([]byte(`{"header":` + header("heart-rate", "2.0") + `,"body":{"heart_rate":{"unit":"beats/min","value":1e2},` + at + `}}`))
	f.Add([]byte(`{"header":` + header("blood-pressure", "4.0") + `,"body":{"systolic_blood_pressure":{"value":118.5,"unit":"mmHg"},"diastolic_blood_pressure":{"value":76,"unit":"mmHg"},` + at + `}}`))
	f.Add([]byte(`{"body":{"blood_glucose":{"value":5.5,"unit":"mmol/L"}}}`))
	f.Add([]byte(`{"body":{"blood_glucose":{"value":"NaN","unit":"mg/dL"}}}`))
	keys := []string{"blood_glucose", "heart_rate", "step_count", "systolic_blood_pressure", "diastolic_blood_pressure", "body_weight", "oxygen_saturation", "respiratory_rate", "body_temperature"}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, k := range keys {
			if v, _, ok := UnitValue(doc, k); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
				t.Fatalf("%s: %v", k, v)
			}
		}
		p, err := omh.Parse(doc)
		if err != nil {
			return
		}
		b := p.AppendJSON(nil)
		for _, k := range keys {
			qv, qu, qok := quickUnitValue(b, k)
			dv, du, dok := decodeUnitValue(b, k)
			if qok && (qv != dv || qu != du || !dok) {
				t.Fatalf("%s in %s: read %v %q, decoded %v %q %v", k, b, qv, qu, dv, du, dok)
			}
		}
	})
}
