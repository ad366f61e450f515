package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// The CGM summary follows the HL7 CGM IG (hl7.fhir.uv.cgm) and the
// international consensus on time in range it builds on:
//
//   - the reporting period is the last 14 days;
//   - times in ranges are shares of the glucose readings in the period:
//     very low < 54, low 54–69, target 70–180, high 181–250, very high > 250
//     mg/dL (a reading between the integers, 69.5, falls in the lower band,
//     so the bands are < 54, [54, 70), [70, 180], (180, 250], > 250);
//   - mean glucose is the arithmetic mean (LOINC 97507-8);
//   - GMI (%) = 3.31 + 0.02392 × mean glucose in mg/dL (LOINC 97506-0);
//   - CV (%) = 100 × SD / mean, with the sample standard deviation;
//   - readings in mmol/L are converted at 18.0156 mg/dL per mmol/L;
//   - the summary is flagged as thin when the sensor was active less than
//     70% of the period (the consensus's minimum for 14 days).
const (
	cgmDays        = 14
	mgdlPerMmol    = 18.0156
	minActiveShare = 0.70
)

// glucosePoint is one reading in mg/dL.
type glucosePoint struct {
	T    time.Time
	MgDL float64
}

// cgmStats is the period's summary.
type cgmStats struct {
	N                                   int
	Mean, SD, CV, GMI                   float64
	VeryLow, Low, InRange, High, VeryHi float64 // percent of readings
	ActivePct                           float64
	Sufficient                          bool
}

func glucoseStats(pts []glucosePoint, period time.Duration) cgmStats {
	st := cgmStats{N: len(pts)}
	if len(pts) == 0 {
		return st
	}
	var sum float64
	var vl, lo, in, hi, vh int
	for _, p := range pts {
		v := p.MgDL
		sum += v
		switch {
		case v < 54:
			vl++
		case v < 70:
			lo++
		case v <= 180:
			in++
		case v <= 250:
			hi++
		default:
			vh++
		}
	}
	n := float64(len(pts))
	st.Mean = sum / n
	if len(pts) > 1 {
		var ss float64
		for _, p := range pts {
			d := p.MgDL - st.Mean
			ss += d * d
		}
		st.SD = math.Sqrt(ss / (n - 1))
	}
	if st.Mean > 0 {
		st.CV = 100 * st.SD / st.Mean
	}
	st.GMI = 3.31 + 0.02392*st.Mean
	pct := func(k int) float64 { return 100 * float64(k) / n }
	st.VeryLow, st.Low, st.InRange, st.High, st.VeryHi = pct(vl), pct(lo), pct(in), pct(hi), pct(vh)
	// Sensor activity: readings times the device's usual interval (the
	// median gap, between 1 and 15 minutes) over the period.
	interval := 5 * time.Minute
	if len(pts) > 2 {
		gaps := make([]time.Duration, 0, len(pts)-1)
		for i := 1; i < len(pts); i++ {
			gaps = append(gaps, pts[i].T.Sub(pts[i-1].T))
		}
		slices.Sort(gaps)
		interval = min(max(gaps[len(gaps)/2], time.Minute), 15*time.Minute)
	}
	st.ActivePct = min(100, 100*float64(len(pts))*float64(interval)/float64(period))
	st.Sufficient = st.ActivePct >= 100*minActiveShare
	return st
}

// readingJSON is the part of a stored point the dashboard reads.
type readingJSON struct {
	Body map[string]json.RawMessage `json:"body"`
}

type unitValue struct {
	Value json.Number `json:"value"`
	Unit  string      `json:"unit"`
}

func bodyUnitValue(body map[string]json.RawMessage, key string) (unitValue, bool) {
	raw, ok := body[key]
	if !ok {
		return unitValue{}, false
	}
	var uv unitValue
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&uv); err != nil || uv.Value == "" {
		return unitValue{}, false
	}
	return uv, true
}

// glucoseOf reads a blood-glucose reading in mg/dL.
func glucoseOf(b []byte) (float64, bool) {
	var r readingJSON
	if json.Unmarshal(b, &r) != nil {
		return 0, false
	}
	uv, ok := bodyUnitValue(r.Body, "blood_glucose")
	if !ok {
		return 0, false
	}
	v, err := uv.Value.Float64()
	if err != nil {
		return 0, false
	}
	switch uv.Unit {
	case "mg/dL":
		return v, true
	case "mmol/L":
		return v * mgdlPerMmol, true
	}
	return 0, false
}

// schemaNames are the dashboard's names for the stored schemas.
var schemaNames = map[string]string{
	"blood-glucose": "Glucose", "heart-rate": "Heart rate", "step-count": "Steps",
	"blood-pressure": "Blood pressure", "body-weight": "Body weight",
	"oxygen-saturation": "Oxygen saturation", "respiratory-rate": "Respiratory rate",
	"body-temperature": "Body temperature", "physical-activity": "Physical activity",
	"sleep-episode": "Sleep",
}

// describeReading renders a reading's main value for the latest-readings
// table.
func describeReading(name string, b []byte) string {
	var r readingJSON
	if json.Unmarshal(b, &r) != nil {
		return "recorded"
	}
	uvString := func(key string) (string, bool) {
		uv, ok := bodyUnitValue(r.Body, key)
		if !ok {
			return "", false
		}
		v, err := uv.Value.Float64()
		if err != nil {
			return "", false
		}
		return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + " " + uv.Unit, true
	}
	switch name {
	case "blood-pressure":
		sys, ok1 := bodyUnitValue(r.Body, "systolic_blood_pressure")
		dia, ok2 := bodyUnitValue(r.Body, "diastolic_blood_pressure")
		if ok1 && ok2 {
			return sys.Value.String() + "/" + dia.Value.String() + " " + sys.Unit
		}
	case "physical-activity":
		var a string
		if json.Unmarshal(r.Body["activity_name"], &a) == nil && a != "" {
			return a
		}
	}
	if s, ok := uvString(strings.ReplaceAll(name, "-", "_")); ok {
		return s
	}
	return "recorded"
}

type latestReading struct {
	Name  string
	Value string
	When  string
}

type statTile struct {
	Label, Value, Note string
}

type rangeBar struct {
	Label, Class string
	Pct          float64
	PctText      string
}

type dayRow struct {
	Day, Mean, TIR string
	N              int
}

type dashboardBody struct {
	Name        string
	HasGlucose  bool
	Stats       cgmStats
	Tiles       []statTile
	Ranges      []rangeBar
	Chart       template.HTML
	ChartDesc   string
	Days        []dayRow
	Latest      []latestReading
	PeriodText  string
	Sufficiency string
	TZ          string
	Activity    activityBody // heart rate and steps (patient_charts.go)
}

// buildDashboard reads the last 14 days of glucose and the latest
// reading of each schema, decrypting through the vault.
func (s *Server) buildDashboard(ctx context.Context, u vault.User, now time.Time) (dashboardBody, error) {
	loc := u.Location()
	b := dashboardBody{Name: u.Name, TZ: loc.String()}
	from := now.Add(-cgmDays * 24 * time.Hour)
	glucoseSchema := ""
	for _, id := range omh.Supported() {
		if id.Name == "blood-glucose" {
			glucoseSchema = id.String()
		}
	}
	// Through the in-memory cache of daily series (cache.go).
	pts, err := s.dailySeries(ctx, u, "glucose", glucoseSchema, glucoseValue, from, now.Add(time.Minute))
	if err != nil {
		return b, err
	}
	b.PeriodText = from.In(loc).Format("2 Jan") + " – " + now.In(loc).Format("2 Jan 2006")
	if len(pts) > 0 {
		b.HasGlucose = true
		st := glucoseStats(pts, now.Sub(from))
		b.Stats = st
		b.Tiles = []statTile{
			{"Time in range (70–180 mg/dL)", fmt.Sprintf("%.0f%%", st.InRange), "goal: over 70%"},
			{"Mean glucose", fmt.Sprintf("%.0f mg/dL", st.Mean), ""},
			{"GMI", fmt.Sprintf("%.1f%%", st.GMI), "glucose management indicator"},
			{"Glucose variability (CV)", fmt.Sprintf("%.1f%%", st.CV), "goal: 36% or less"},
			{"Sensor active", fmt.Sprintf("%.0f%%", st.ActivePct), fmt.Sprintf("%d readings", st.N)},
		}
		b.Ranges = []rangeBar{
			{Label: "Very high (over 250)", Class: "vhigh", Pct: st.VeryHi},
			{Label: "High (181–250)", Class: "high", Pct: st.High},
			{Label: "In range (70–180)", Class: "inrange", Pct: st.InRange},
			{Label: "Low (54–69)", Class: "low", Pct: st.Low},
			{Label: "Very low (under 54)", Class: "vlow", Pct: st.VeryLow},
		}
		for i := range b.Ranges {
			b.Ranges[i].PctText = fmt.Sprintf("%.1f%%", b.Ranges[i].Pct)
		}
		if !st.Sufficient {
			b.Sufficiency = "The sensor was active less than 70% of these 14 days, so these figures may not be representative."
		}
		b.Chart, b.ChartDesc = glucoseChart(pts, from, now, loc, st)
		b.Days = dailyRows(pts, loc)
	}
	act, err := s.buildActivity(ctx, u, from, now.Add(time.Minute))
	if err != nil {
		return b, err
	}
	b.Activity = act
	// The latest reading of each schema, looked for in the last two days
	// and then the last 30.
	for _, id := range omh.Supported() {
		name := schemaNames[id.Name]
		if name == "" {
			name = id.Name
		}
		last, err := s.latestReading(ctx, u, id.String(), now) // cache.go
		if err != nil {
			return b, err
		}
		if last == nil {
			continue
		}
		b.Latest = append(b.Latest, latestReading{Name: name, Value: describeReading(id.Name, last.JSON), When: fmtTime(last.Time, loc)})
	}
	return b, nil
}

func dailyRows(pts []glucosePoint, loc *time.Location) []dayRow {
	type acc struct {
		sum   float64
		n, in int
	}
	var days []string
	m := map[string]*acc{}
	for _, p := range pts {
		d := p.T.In(loc).Format("Mon 2 Jan")
		a := m[d]
		if a == nil {
			a = &acc{}
			m[d] = a
			days = append(days, d)
		}
		a.sum += p.MgDL
		a.n++
		if p.MgDL >= 70 && p.MgDL <= 180 {
			a.in++
		}
	}
	var out []dayRow
	for i := len(days) - 1; i >= 0; i-- {
		a := m[days[i]]
		out = append(out, dayRow{Day: days[i], Mean: fmt.Sprintf("%.0f", a.sum/float64(a.n)), TIR: fmt.Sprintf("%.0f%%", 100*float64(a.in)/float64(a.n)), N: a.n})
	}
	return out
}

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chW, chH         = 720.0, 280.0
	chLeft, chRight  = 48.0, 12.0
	chTop, chBottom  = 12.0, 36.0
	chMin, chMax     = 40.0, 400.0
	gapBreak         = 30 * time.Minute
	chPlotW, chPlotH = chW - chLeft - chRight, chH - chTop - chBottom
)

func f1(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// glucoseChart draws the period's readings as an SVG line over the 70–180
// target band, with day gridlines in the patient's time zone. Readings
// more than 30 minutes apart are not joined. Values outside 40–400 are
// drawn at the edge.
func glucoseChart(pts []glucosePoint, from, to time.Time, loc *time.Location, st cgmStats) (template.HTML, string) {
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 { return chLeft + chPlotW*t.Sub(from).Seconds()/span }
	y := func(v float64) float64 {
		v = min(max(v, chMin), chMax)
		return chTop + chPlotH*(1-(v-chMin)/(chMax-chMin))
	}
	desc := fmt.Sprintf("Glucose readings from %s to %s: %d readings, %.0f%% in the 70 to 180 mg/dL target range, mean %.0f mg/dL.",
		from.In(loc).Format("2 Jan"), to.In(loc).Format("2 Jan 2006"), st.N, st.InRange, st.Mean)
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w(`<svg class="chart" viewBox="0 0 %s %s" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">`, f1(chW), f1(chH))
	w(`<title id="chart-title">Glucose, last 14 days</title><desc id="chart-desc">%s</desc>`, template.HTMLEscapeString(desc))
	// Target band and reference lines.
	w(`<rect class="band" x="%s" y="%s" width="%s" height="%s"/>`, f1(chLeft), f1(y(180)), f1(chPlotW), f1(y(70)-y(180)))
	for _, v := range []float64{54, 250} {
		w(`<line class="ref" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(chLeft), f1(chLeft+chPlotW), f1(y(v)), f1(y(v)))
	}
	// Y axis labels.
	for _, v := range []float64{54, 70, 180, 250, 400} {
		w(`<text class="ylab" x="%s" y="%s">%s</text>`, f1(chLeft-6), f1(y(v)+4), f1(v))
	}
	w(`<text class="yunit" x="%s" y="%s">mg/dL</text>`, f1(chLeft-6), f1(chH-6))
	// Day gridlines at local midnights.
	d0 := from.In(loc)
	day := time.Date(d0.Year(), d0.Month(), d0.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	for i := 0; !day.After(to); i++ {
		xd := x(day)
		w(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(xd), f1(xd), f1(chTop), f1(chTop+chPlotH))
		if i%2 == 0 {
			w(`<text class="xlab" x="%s" y="%s">%s</text>`, f1(xd), f1(chH-18), day.Format("2 Jan"))
		}
		day = day.AddDate(0, 0, 1)
	}
	w(`<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f1(chLeft), f1(chTop), f1(chPlotW), f1(chPlotH))
	// The readings.
	sb.WriteString(`<path class="line" d="`)
	for i, p := range pts {
		cmd := "L"
		if i == 0 || p.T.Sub(pts[i-1].T) > gapBreak {
			cmd = "M"
		}
		sb.WriteString(cmd)
		sb.WriteString(f1(x(p.T)))
		sb.WriteByte(' ')
		sb.WriteString(f1(y(p.MgDL)))
	}
	sb.WriteString(`"/>`)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()), desc
}
