// Package report lays out the ambulatory glucose profile (AGP), the
// one-page CGM report of the international consensus (Battelino et al.,
// Diabetes Care 2019; the ADA Standards of Care), as server-side SVG and
// the words and figures around it. Package stats computes every figure
// ([stats.NewAGP]); this package only draws them, with no JavaScript and
// no chart library, so a page shows the report as it loads and prints it
// as it shows it.
//
// [Build] turns a [stats.AGP] into an [AGP]: the summary tiles (mean
// glucose, GMI, CV, sensor activity), the five time-in-ranges rows with
// the consensus goals, and three SVG figures:
//
//   - the modal day: the 5th–95th and 25th–75th percentile bands and the
//     median of each 15-minute bin of the local day (stats.AGPBinWidth),
//     pooled across the period, drawn at the bins' middles and joined by
//     straight lines, without smoothing; a bin without readings breaks
//     the bands. The 70–180 mg/dL target range is shaded, with lines at
//     70 and 180, and each band is named at its right end;
//   - the stacked time-in-ranges bar, very high on top, each segment
//     named with its range and share, so the ranges are told apart by
//     words as well as by colour;
//   - the daily profiles: one small trace per local day (the newest 14),
//     seven to a row, over the target band; readings more than 30 minutes
//     apart are not joined.
//
// Every figure is an <svg role="img"> with a title and a description
// that states its figures in words. Colours are SVG presentation
// attributes, so the figures need no style sheet and print the same.
// Values beyond the axes (0–350 mg/dL on the modal day, 40–400 on the
// daily profiles) are drawn at the edge.
package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/stats"
)

// Tile is one summary figure.
type Tile struct {
	Label, Value, Note string
}

// RangeRow is one row of the time-in-ranges table.
type RangeRow struct {
	Class  string // vhigh, high, inrange, low, vlow
	Label  string // "Very high"
	Limits string // "over 250 mg/dL"
	Pct    string // "3.1%"
	Goal   string // the consensus goal, such as "under 5%"
}

// AGP is the laid-out report.
type AGP struct {
	Days        int    // the period's length in days
	Period      string // the period's first and last local day
	N           int    // readings
	HasData     bool   // there are readings
	Sufficient  bool   // the sensor was active at least 70% of the time covered
	Sufficiency string // the warning when it was not
	Tiles       []Tile
	Ranges      []RangeRow // very high first
	ModalDay    template.HTML
	RangeBar    template.HTML
	Daily       template.HTML
	DailyCount  int // days the daily profiles show
}

// Build lays out an AGP in the patient's zone loc.
func Build(a stats.AGP, loc *time.Location) AGP {
	st := a.CGM
	r := AGP{Days: int(math.Round(a.To.Sub(a.From).Hours() / 24)), Period: PeriodText(a.From, a.To, loc), N: st.N, HasData: st.N > 0, Sufficient: st.Sufficient}
	if !r.HasData {
		return r
	}
	if !st.Sufficient {
		r.Sufficiency = fmt.Sprintf("The sensor was active %.0f%% of the time covered, less than the 70%% the consensus asks for, so these figures may not be representative.", st.ActivePct)
	}
	r.Tiles = []Tile{
		{"Mean glucose", fmt.Sprintf("%.0f mg/dL", st.Mean), ""},
		{"GMI", fmt.Sprintf("%.1f%%", st.GMI), "glucose management indicator"},
		{"Glucose variability (CV)", fmt.Sprintf("%.1f%%", st.CV), "goal: 36% or less"},
		{"Time CGM active", fmt.Sprintf("%.0f%%", st.ActivePct), fmt.Sprintf("%d readings; goal: 70%% or more", st.N)},
	}
	tr := st.Ranges
	r.Ranges = []RangeRow{
		{"vhigh", "Very high", "over 250 mg/dL", pct(tr.VeryHigh), "under 5%"},
		{"high", "High", "181–250 mg/dL", pct(tr.High), "under 25% with very high"},
		{"inrange", "In range", "70–180 mg/dL", pct(tr.Target), "over 70%"},
		{"low", "Low", "54–69 mg/dL", pct(tr.Low), "under 4% with very low"},
		{"vlow", "Very low", "under 54 mg/dL", pct(tr.VeryLow), "under 1%"},
	}
	r.ModalDay = modalDay(a, r.Period)
	r.RangeBar = rangeBar(st, r.Ranges)
	r.Daily, r.DailyCount = dailyProfiles(a.Days, loc)
	return r
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" }

// f1 writes a coordinate with at most one decimal.
func f1(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// PeriodText names a half-open period [from, to) by its first and last
// local day.
func PeriodText(from, to time.Time, loc *time.Location) string {
	last := to
	if calendar.IsDayStart(to, loc) {
		last = to.Add(-time.Nanosecond)
	}
	f, l := from.In(loc), last.In(loc)
	if f.Year() != l.Year() {
		return f.Format("2 Jan 2006") + " – " + l.Format("2 Jan 2006")
	}
	return f.Format("2 Jan") + " – " + l.Format("2 Jan 2006")
}

// svgWriter builds one SVG figure.
type svgWriter struct{ strings.Builder }

func (w *svgWriter) f(format string, args ...any) { fmt.Fprintf(&w.Builder, format, args...) }

func (w *svgWriter) open(class, id string, width, height float64, title, desc string) {
	w.f(`<svg class="agp-fig %s" viewBox="0 0 %s %s" role="img" aria-labelledby="%s-title %s-desc" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">`,
		class, f1(width), f1(height), id, id)
	w.f(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, template.HTMLEscapeString(title), id, template.HTMLEscapeString(desc))
}

// Colours: the target band and the percentile bands (blues of distinct
// lightness, legible in grey), and the ranges' consensus colours.
const (
	colTargetBand = "#d7f0df"
	colTargetLine = "#2e8540"
	colOuterBand  = "#bcd0e8"
	colInnerBand  = "#6f98c9"
	colMedian     = "#0d2f5a"
	colRef        = "#8a8f98"
	colGrid       = "#e3e6ea"
	colText       = "#2b2f36"
)

var rangeColours = map[string]string{"vhigh": "#b06500", "high": "#f0a830", "inrange": "#2e8540", "low": "#e05252", "vlow": "#8e1b1b"}

// Modal day geometry, in SVG user units.
const (
	mdW, mdH       = 720.0, 300.0
	mdLeft, mdRght = 44.0, 52.0
	mdTop, mdBot   = 20.0, 26.0
	mdMax          = 350.0
	mdPlotW        = mdW - mdLeft - mdRght
	mdPlotH        = mdH - mdTop - mdBot
)

func modalDay(a stats.AGP, period string) template.HTML {
	day := (24 * time.Hour).Seconds()
	x := func(d time.Duration) float64 { return mdLeft + mdPlotW*d.Seconds()/day }
	y := func(v float64) float64 { return mdTop + mdPlotH*(1-min(max(v, 0), mdMax)/mdMax) }
	bins := a.ModalDay
	width := stats.AGPBinWidth
	desc := modalDesc(bins, period)
	var w svgWriter
	w.open("agp-modal", "agp-modal", mdW, mdH, "Ambulatory glucose profile, "+period, desc)
	w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`, f1(mdLeft), f1(y(180)), f1(mdPlotW), f1(y(70)-y(180)), colTargetBand)
	for h := 3; h < 24; h += 3 {
		xh := x(time.Duration(h) * time.Hour)
		w.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s"/>`, f1(xh), f1(xh), f1(mdTop), f1(mdTop+mdPlotH), colGrid)
	}
	for h := 0; h <= 24; h += 3 {
		w.f(`<text x="%s" y="%s" font-size="12" fill="%s" text-anchor="middle">%02d:00</text>`, f1(x(time.Duration(h)*time.Hour)), f1(mdH-10), colText, h%24)
	}
	// Each run of bins with readings is one band; a run reaches from its
	// first bin's start to its last bin's end.
	for _, run := range runs(bins) {
		xs := []float64{x(bins[run[0]].Start)}
		idx := []int{run[0]}
		for i := run[0]; i <= run[1]; i++ {
			xs = append(xs, x(bins[i].Start+width/2))
			idx = append(idx, i)
		}
		xs = append(xs, x(bins[run[1]].Start+width))
		idx = append(idx, run[1])
		band := func(lo, hi int, fill string) {
			var pts []string
			for k := range xs {
				pts = append(pts, f1(xs[k])+","+f1(y(bins[idx[k]].Percentiles[hi])))
			}
			for k := len(xs) - 1; k >= 0; k-- {
				pts = append(pts, f1(xs[k])+","+f1(y(bins[idx[k]].Percentiles[lo])))
			}
			w.f(`<polygon points="%s" fill="%s"/>`, strings.Join(pts, " "), fill)
		}
		band(stats.P5, stats.P95, colOuterBand)
		band(stats.P25, stats.P75, colInnerBand)
		var line []string
		for k := range xs {
			line = append(line, f1(xs[k])+","+f1(y(bins[idx[k]].Percentiles[stats.P50])))
		}
		w.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round"/>`, strings.Join(line, " "), colMedian)
	}
	for _, v := range []float64{70, 180} {
		w.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="1.5"/>`, f1(mdLeft), f1(mdLeft+mdPlotW), f1(y(v)), f1(y(v)), colTargetLine)
	}
	for _, v := range []float64{54, 250} {
		w.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-dasharray="4 4"/>`, f1(mdLeft), f1(mdLeft+mdPlotW), f1(y(v)), f1(y(v)), colRef)
	}
	for _, v := range []float64{54, 70, 180, 250, 350} {
		w.f(`<text x="%s" y="%s" font-size="12" fill="%s" text-anchor="end">%s</text>`, f1(mdLeft-6), f1(y(v)+4), colText, f1(v))
	}
	w.f(`<text x="%s" y="%s" font-size="11" fill="%s" text-anchor="end">mg/dL</text>`, f1(mdLeft-6), f1(mdTop-8), colText)
	w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s"/>`, f1(mdLeft), f1(mdTop), f1(mdPlotW), f1(mdPlotH), colRef)
	// The bands' names at the right end, at the last bin with readings,
	// nudged apart so they do not overlap.
	if last := lastWithData(bins); last >= 0 {
		type lab struct {
			y    float64
			text string
		}
		p := bins[last].Percentiles
		labs := []lab{{y(p[stats.P95]), "95%"}, {y(p[stats.P75]), "75%"}, {y(p[stats.P50]), "50%"}, {y(p[stats.P25]), "25%"}, {y(p[stats.P5]), "5%"}}
		for i := 1; i < len(labs); i++ {
			labs[i].y = max(labs[i].y, labs[i-1].y+11)
		}
		for i := len(labs) - 2; i >= 0; i-- { // keep the lowest inside the plot
			labs[i].y = min(labs[i].y, labs[i+1].y-11)
		}
		if over := labs[len(labs)-1].y - (mdTop + mdPlotH); over > 0 {
			for i := range labs {
				labs[i].y -= over
			}
		}
		for _, l := range labs {
			w.f(`<text x="%s" y="%s" font-size="11" fill="%s">%s</text>`, f1(mdLeft+mdPlotW+4), f1(l.y+4), colText, l.text)
		}
	}
	w.f(`</svg>`)
	return template.HTML(w.String())
}

// runs returns the [first, last] indexes of each run of bins with
// readings.
func runs(bins []stats.TimeOfDay) [][2]int {
	var out [][2]int
	for i := 0; i < len(bins); i++ {
		if bins[i].N == 0 {
			continue
		}
		j := i
		for j+1 < len(bins) && bins[j+1].N > 0 {
			j++
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func lastWithData(bins []stats.TimeOfDay) int {
	for i := len(bins) - 1; i >= 0; i-- {
		if bins[i].N > 0 {
			return i
		}
	}
	return -1
}

// modalDesc states the modal day in words: the median's lowest and
// highest bins and the widest 5th–95th spread.
func modalDesc(bins []stats.TimeOfDay, period string) string {
	lo, hi, wide := -1, -1, -1
	for i, b := range bins {
		if b.N == 0 {
			continue
		}
		if lo < 0 || b.Percentiles[stats.P50] < bins[lo].Percentiles[stats.P50] {
			lo = i
		}
		if hi < 0 || b.Percentiles[stats.P50] > bins[hi].Percentiles[stats.P50] {
			hi = i
		}
		if wide < 0 || b.Percentiles[stats.P95]-b.Percentiles[stats.P5] > bins[wide].Percentiles[stats.P95]-bins[wide].Percentiles[stats.P5] {
			wide = i
		}
	}
	if lo < 0 {
		return "No readings from " + period + "."
	}
	clock := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return fmt.Sprintf("Glucose by time of day from %s, pooled over the days in 15-minute bins: the median is lowest at %s (%.0f mg/dL) and highest at %s (%.0f mg/dL); the 5th to 95th percentile spread is widest at %s (%.0f to %.0f mg/dL). The shaded band is the 70 to 180 mg/dL target range.",
		period, clock(bins[lo].Start), bins[lo].Percentiles[stats.P50], clock(bins[hi].Start), bins[hi].Percentiles[stats.P50],
		clock(bins[wide].Start), bins[wide].Percentiles[stats.P5], bins[wide].Percentiles[stats.P95])
}

// Time-in-ranges bar geometry.
const (
	trW, trH        = 340.0, 260.0
	trBarX, trBarW  = 8.0, 44.0
	trTop, trBarH   = 10.0, 240.0
	trLabelX        = 96.0
	trLabelRowSpace = 48.0
)

func rangeBar(st stats.CGM, rows []RangeRow) template.HTML {
	shares := map[string]float64{"vhigh": st.Ranges.VeryHigh, "high": st.Ranges.High, "inrange": st.Ranges.Target, "low": st.Ranges.Low, "vlow": st.Ranges.VeryLow}
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s (%s) %s", strings.ToLower(r.Label), r.Limits, r.Pct))
	}
	var w svgWriter
	w.open("agp-ranges", "agp-ranges", trW, trH, "Time in ranges", "Share of readings in each range: "+strings.Join(parts, ", ")+".")
	// Segments from the top: very high first.
	yTop := trTop
	for i, r := range rows {
		h := trBarH * shares[r.Class] / 100
		if h > 0 {
			w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" stroke="#fff" stroke-width="0.5"/>`, f1(trBarX), f1(yTop), f1(trBarW), f1(h), rangeColours[r.Class])
		}
		mid := yTop + h/2
		rowY := trTop + 16 + float64(i)*trLabelRowSpace
		w.f(`<polyline points="%s,%s %s,%s %s,%s" fill="none" stroke="%s"/>`,
			f1(trBarX+trBarW+2), f1(mid), f1(trLabelX-20), f1(mid), f1(trLabelX-6), f1(rowY-4), colRef)
		w.f(`<text x="%s" y="%s" font-size="13" fill="%s"><tspan font-weight="700">%s %s</tspan> <tspan>%s</tspan></text>`,
			f1(trLabelX), f1(rowY), colText, template.HTMLEscapeString(r.Label), template.HTMLEscapeString(r.Pct), template.HTMLEscapeString(r.Limits))
		w.f(`<text x="%s" y="%s" font-size="11" fill="%s">goal: %s</text>`, f1(trLabelX), f1(rowY+15), colText, template.HTMLEscapeString(r.Goal))
		yTop += h
	}
	w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s"/>`, f1(trBarX), f1(trTop), f1(trBarW), f1(trBarH), colRef)
	w.f(`</svg>`)
	return template.HTML(w.String())
}

// Daily profiles geometry.
const (
	dpW        = 720.0
	dpCols     = 7
	dpCellW    = dpW / dpCols
	dpLabelH   = 16.0
	dpPlotH    = 64.0
	dpRowH     = dpLabelH + dpPlotH + 8
	dpMin      = 40.0
	dpMax      = 400.0
	dpGapBreak = 30 * time.Minute
)

func dailyProfiles(days []stats.DaySeries, loc *time.Location) (template.HTML, int) {
	if len(days) == 0 {
		return "", 0
	}
	rows := (len(days) + dpCols - 1) / dpCols
	h := float64(rows) * dpRowH
	first, last := days[0].Start.In(loc), days[len(days)-1].Start.In(loc)
	empty := 0
	for _, d := range days {
		if len(d.Points) == 0 {
			empty++
		}
	}
	desc := fmt.Sprintf("One small glucose trace for each day from %s to %s, seven to a row, over the 70 to 180 mg/dL target band; %d of the %d days have no readings.",
		first.Format("Mon 2 Jan"), last.Format("Mon 2 Jan 2006"), empty, len(days))
	var w svgWriter
	w.open("agp-daily", "agp-daily", dpW, h, "Daily glucose profiles", desc)
	for i, d := range days {
		cx := float64(i%dpCols) * dpCellW
		cy := float64(i/dpCols) * dpRowH
		px, pw := cx+2, dpCellW-4
		top := cy + dpLabelH
		y := func(v float64) float64 { return top + dpPlotH*(1-(min(max(v, dpMin), dpMax)-dpMin)/(dpMax-dpMin)) }
		end := calendar.Next(d.Start, loc)
		span := end.Sub(d.Start).Seconds()
		x := func(t time.Time) float64 { return px + pw*t.Sub(d.Start).Seconds()/span }
		w.f(`<text x="%s" y="%s" font-size="11" fill="%s">%s</text>`, f1(px), f1(cy+12), colText, d.Start.In(loc).Format("Mon 2 Jan"))
		w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`, f1(px), f1(y(180)), f1(pw), f1(y(70)-y(180)), colTargetBand)
		if len(d.Points) > 0 {
			var sb strings.Builder
			for k, p := range d.Points {
				cmd := "L"
				if k == 0 || p.Time.Sub(d.Points[k-1].Time) > dpGapBreak {
					cmd = "M"
				}
				sb.WriteString(cmd + f1(x(p.Time)) + " " + f1(y(p.Value)))
			}
			w.f(`<path d="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-linejoin="round"/>`, sb.String(), colMedian)
		} else {
			w.f(`<text x="%s" y="%s" font-size="10" fill="%s" text-anchor="middle">no readings</text>`, f1(px+pw/2), f1(top+dpPlotH/2+4), colText)
		}
		w.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s"/>`, f1(px), f1(top), f1(pw), f1(dpPlotH), colRef)
	}
	w.f(`</svg>`)
	return template.HTML(w.String()), len(days)
}
