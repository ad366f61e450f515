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
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// The dashboard's glucose figures are package stats's CGM summary (time
// in ranges, mean, GMI, CV and sensor activity, as the HL7 CGM IG defines
// them) over the last stats.CGMDays days; this file lays them out.

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
	switch name {
	case "blood-pressure":
		sys, unit, ok1 := stats.UnitValue(b, "systolic_blood_pressure")
		dia, _, ok2 := stats.UnitValue(b, "diastolic_blood_pressure")
		if ok1 && ok2 {
			return number(sys) + "/" + number(dia) + " " + unit
		}
	case "physical-activity":
		var r struct {
			Body struct {
				ActivityName string `json:"activity_name"`
			} `json:"body"`
		}
		if json.Unmarshal(b, &r) == nil && r.Body.ActivityName != "" {
			return r.Body.ActivityName
		}
	}
	if v, unit, ok := stats.UnitValue(b, strings.ReplaceAll(name, "-", "_")); ok {
		return f1(v) + " " + unit
	}
	return "recorded"
}

// number writes a value as the vault's canonical JSON does (the shortest
// decimal that reads back as it).
func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

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
	Stats       stats.CGM
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
	from := now.Add(-stats.CGMDays * 24 * time.Hour)
	// Through the in-memory cache of daily series (cache.go).
	pts, err := s.dailySeries(ctx, u, "glucose", schemaID("blood-glucose"), stats.GlucoseMgDL, from, now.Add(time.Minute))
	if err != nil {
		return b, err
	}
	b.PeriodText = from.In(loc).Format("2 Jan") + " – " + now.In(loc).Format("2 Jan 2006")
	if len(pts) > 0 {
		b.HasGlucose = true
		st := stats.SummarizeCGM(pts, now.Sub(from))
		b.Stats = st
		b.Tiles = []statTile{
			{"Time in range (70–180 mg/dL)", fmt.Sprintf("%.0f%%", st.Ranges.Target), "goal: over 70%"},
			{"Mean glucose", fmt.Sprintf("%.0f mg/dL", st.Mean), ""},
			{"GMI", fmt.Sprintf("%.1f%%", st.GMI), "glucose management indicator"},
			{"Glucose variability (CV)", fmt.Sprintf("%.1f%%", st.CV), "goal: 36% or less"},
			{"Sensor active", fmt.Sprintf("%.0f%%", st.ActivePct), fmt.Sprintf("%d readings", st.N)},
		}
		b.Ranges = []rangeBar{
			{Label: "Very high (over 250)", Class: "vhigh", Pct: st.Ranges.VeryHigh},
			{Label: "High (181–250)", Class: "high", Pct: st.Ranges.High},
			{Label: "In range (70–180)", Class: "inrange", Pct: st.Ranges.Target},
			{Label: "Low (54–69)", Class: "low", Pct: st.Ranges.Low},
			{Label: "Very low (under 54)", Class: "vlow", Pct: st.Ranges.VeryLow},
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

// dailyRows lays out the daily figures, newest day first.
func dailyRows(pts []stats.Point, loc *time.Location) []dayRow {
	days := stats.DailyGlucose(pts, loc)
	out := make([]dayRow, 0, len(days))
	for _, d := range slices.Backward(days) {
		out = append(out, dayRow{Day: d.Start.In(loc).Format("Mon 2 Jan"), Mean: fmt.Sprintf("%.0f", d.Mean), TIR: fmt.Sprintf("%.0f%%", d.TargetPct), N: d.N})
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
func glucoseChart(pts []stats.Point, from, to time.Time, loc *time.Location, st stats.CGM) (template.HTML, string) {
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 { return chLeft + chPlotW*t.Sub(from).Seconds()/span }
	y := func(v float64) float64 {
		v = min(max(v, chMin), chMax)
		return chTop + chPlotH*(1-(v-chMin)/(chMax-chMin))
	}
	desc := fmt.Sprintf("Glucose readings from %s to %s: %d readings, %.0f%% in the 70 to 180 mg/dL target range, mean %.0f mg/dL.",
		from.In(loc).Format("2 Jan"), to.In(loc).Format("2 Jan 2006"), st.N, st.Ranges.Target, st.Mean)
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
	dayAxis(w, from, to, loc, x, chPlotH) // day gridlines at local midnights
	w(`<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f1(chLeft), f1(chTop), f1(chPlotW), f1(chPlotH))
	// The readings.
	sb.WriteString(`<path class="line" d="`)
	for i, p := range pts {
		cmd := "L"
		if i == 0 || p.Time.Sub(pts[i-1].Time) > gapBreak {
			cmd = "M"
		}
		sb.WriteString(cmd)
		sb.WriteString(f1(x(p.Time)))
		sb.WriteByte(' ')
		sb.WriteString(f1(y(p.Value)))
	}
	sb.WriteString(`"/>`)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()), desc
}
