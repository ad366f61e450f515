package web

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// activityBody is the dashboard's heart-rate and steps part: two charts
// over the same 14 days as the glucose chart, server-rendered SVG.
type activityBody struct {
	HasHR, HasSteps bool
	HRChart         template.HTML
	StepsChart      template.HTML
	HRMean          string // mean of the hourly means, beats/min
	HRRange         string // lowest and highest hourly mean
	HRHours         int    // hours with a reading
	StepsDays       []stepsDay
	StepsMean       string // mean steps a day, over days with any
	Readings        int    // heart-rate and step readings read
}

type stepsDay struct {
	Day   string
	Steps string
}

// schemaID returns the supported schema id (namespace:name:version) of a
// schema name, or "".
func schemaID(name string) string {
	for _, id := range omh.Supported() {
		if id.Name == name {
			return id.String()
		}
	}
	return ""
}

// buildActivity reads the period's heart rate (as hourly means) and steps
// (as daily totals, each reading counted on the local day it starts).
func (s *Server) buildActivity(ctx context.Context, u vault.User, from, to time.Time) (activityBody, error) {
	all := []consent.Window{{From: from, To: to}}
	return s.activityIn(ctx, u, from, to, all, all)
}

// activityIn is buildActivity over the readings in the given windows of
// [from, to) only: heart rate in hr, steps in steps (as
// consent.ClipWindow returns them; none reads nothing). The clinician's
// patient page passes what the grants cover.
func (s *Server) activityIn(ctx context.Context, u vault.User, from, to time.Time, hr, steps []consent.Window) (activityBody, error) {
	loc := u.Location()
	var b activityBody
	if id := schemaID("heart-rate"); id != "" {
		series, err := s.seriesIn(ctx, u, "heart-rate", id, stats.HeartRate, hr) // agp.go, through the cache
		if err != nil {
			return b, err
		}
		b.Readings += len(series)
		if hours := stats.HourlyMeans(series, loc); len(hours) > 0 {
			pts := make([]stats.Point, len(hours)) // (time, value): the hour's middle and its mean
			means := make([]float64, len(hours))
			for i, h := range hours {
				pts[i] = stats.Point{Time: h.Start.Add(30 * time.Minute), Value: h.Mean}
				means[i] = h.Mean
			}
			m := stats.Describe(means)
			b.HasHR, b.HRHours = true, m.N
			b.HRMean = fmt.Sprintf("%.0f beats/min", m.Mean)
			b.HRRange = fmt.Sprintf("%.0f–%.0f beats/min", m.Min, m.Max)
			b.HRChart = hrChart(pts, from, to, loc, b)
		}
	}
	if id := schemaID("step-count"); id != "" {
		series, err := s.seriesIn(ctx, u, "steps", id, stats.Steps, steps) // agp.go, through the cache
		if err != nil {
			return b, err
		}
		b.Readings += len(series)
		days := stats.DailyTotals(series, from, to, loc)
		if slices.ContainsFunc(days, func(d stats.DayTotal) bool { return d.N > 0 }) {
			b.HasSteps = true
			for _, d := range slices.Backward(days) {
				b.StepsDays = append(b.StepsDays, stepsDay{Day: d.Start.In(loc).Format("Mon 2 Jan"), Steps: fmt.Sprintf("%.0f", d.Total)})
			}
			b.StepsMean = fmt.Sprintf("%.0f", stats.ActiveDayMean(days))
			b.StepsChart = stepsChart(days, to, loc, b.StepsMean)
		}
	}
	return b, nil
}

// Activity charts share the glucose chart's width and margins, shorter.
const (
	acH     = 200.0
	acPlotH = acH - chTop - chBottom
	hrGap   = 90 * time.Minute // hourly means further apart are not joined
)

// niceMax rounds a chart's top up to a round number.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// dayAxis draws day gridlines at the local midnights in (from, to] and
// every other label.
func dayAxis(w func(string, ...any), from, to time.Time, loc *time.Location, x func(time.Time) float64, h float64) {
	for i, day := 0, calendar.Next(from, loc); !day.After(to); i, day = i+1, calendar.Next(day, loc) {
		xd := x(day)
		w(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(xd), f1(xd), f1(chTop), f1(chTop+h))
		if i%2 == 0 {
			w(`<text class="xlab" x="%s" y="%s">%s</text>`, f1(xd), f1(chTop+h+18), day.Format("2 Jan"))
		}
	}
}

// hrChart draws hourly mean heart rate as a line; hours more than 90
// minutes apart are not joined.
func hrChart(pts []stats.Point, from, to time.Time, loc *time.Location, b activityBody) template.HTML {
	lo, hi := 40.0, 120.0
	for _, p := range pts {
		lo, hi = min(lo, math.Floor(p.Value/10)*10), max(hi, math.Ceil(p.Value/20)*20)
	}
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 { return chLeft + chPlotW*t.Sub(from).Seconds()/span }
	y := func(v float64) float64 { return chTop + acPlotH*(1-(v-lo)/(hi-lo)) }
	desc := fmt.Sprintf("Hourly mean heart rate from %s to %s: %d hours with readings, mean %s, hourly means %s.",
		from.In(loc).Format("2 Jan"), to.In(loc).Format("2 Jan 2006"), b.HRHours, b.HRMean, b.HRRange)
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w(`<svg class="chart hr" viewBox="0 0 %s %s" role="img" aria-labelledby="hr-title hr-desc" xmlns="http://www.w3.org/2000/svg">`, f1(chW), f1(acH))
	w(`<title id="hr-title">Heart rate, last 14 days</title><desc id="hr-desc">%s</desc>`, template.HTMLEscapeString(desc))
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		w(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(chLeft), f1(chLeft+chPlotW), f1(y(v)), f1(y(v)))
		w(`<text class="ylab" x="%s" y="%s">%s</text>`, f1(chLeft-6), f1(y(v)+4), f1(v))
	}
	w(`<text class="yunit" x="%s" y="%s">bpm</text>`, f1(chLeft-6), f1(acH-6))
	dayAxis(w, from, to, loc, x, acPlotH)
	w(`<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f1(chLeft), f1(chTop), f1(chPlotW), f1(acPlotH))
	sb.WriteString(`<path class="line hr-line" d="`)
	for i, p := range pts {
		cmd := "L"
		if i == 0 || p.Time.Sub(pts[i-1].Time) > hrGap {
			cmd = "M"
		}
		// A lone hour is drawn as a short tick so it shows.
		sb.WriteString(cmd + f1(x(p.Time)) + " " + f1(y(p.Value)))
		if cmd == "M" && (i+1 == len(pts) || pts[i+1].Time.Sub(p.Time) > hrGap) {
			sb.WriteString("h1")
		}
	}
	sb.WriteString(`"/></svg>`)
	return template.HTML(sb.String())
}

// stepsChart draws daily step totals as bars, one per local day.
func stepsChart(days []stats.DayTotal, to time.Time, loc *time.Location, mean string) template.HTML {
	top := 1000.0
	for _, d := range days {
		top = max(top, niceMax(d.Total))
	}
	n := float64(len(days))
	slot := chPlotW / n
	y := func(v float64) float64 { return chTop + acPlotH*(1-v/top) }
	desc := fmt.Sprintf("Steps a day from %s to %s: a mean of %s steps on days with any; the table below lists each day.",
		days[0].Start.In(loc).Format("2 Jan"), to.In(loc).Format("2 Jan 2006"), mean)
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w(`<svg class="chart steps" viewBox="0 0 %s %s" role="img" aria-labelledby="steps-title steps-desc" xmlns="http://www.w3.org/2000/svg">`, f1(chW), f1(acH))
	w(`<title id="steps-title">Steps, last 14 days</title><desc id="steps-desc">%s</desc>`, template.HTMLEscapeString(desc))
	for _, v := range []float64{0, top / 2, top} {
		w(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(chLeft), f1(chLeft+chPlotW), f1(y(v)), f1(y(v)))
		w(`<text class="ylab" x="%s" y="%s">%s</text>`, f1(chLeft-6), f1(y(v)+4), f1(v))
	}
	w(`<text class="yunit" x="%s" y="%s">steps</text>`, f1(chLeft-6), f1(acH-6))
	for i, d := range days {
		x0 := chLeft + slot*float64(i)
		label := d.Start.In(loc).Format("2 Jan")
		if d.Total > 0 {
			w(`<rect class="bar" x="%s" y="%s" width="%s" height="%s"><title>%s: %.0f steps</title></rect>`,
				f1(x0+slot*0.15), f1(y(d.Total)), f1(slot*0.7), f1(chTop+acPlotH-y(d.Total)), label, d.Total)
		}
		if i%2 == 0 {
			w(`<text class="xlab" x="%s" y="%s">%s</text>`, f1(x0+slot/2), f1(chTop+acPlotH+18), label)
		}
	}
	w(`<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f1(chLeft), f1(chTop), f1(chPlotW), f1(acPlotH))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}
