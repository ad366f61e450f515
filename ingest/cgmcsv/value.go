package cgmcsv

import (
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/omh"
)

// Glucose units as the blood-glucose schema spells them.
const (
	mgdL  = "mg/dL"
	mmolL = "mmol/L"
)

// unitIn returns the glucose unit a column name ends with, as "(mg/dL)" or
// " mg/dL" in any case, or "".
func unitIn(name string) string {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ")")
	switch {
	case strings.HasSuffix(n, "mg/dl"):
		return mgdL
	case strings.HasSuffix(n, "mmol/l"):
		return mmolL
	}
	return ""
}

// number parses a glucose value: digits with at most one decimal point or
// decimal comma. It refuses signs, exponents, NaN and Inf (which
// strconv.ParseFloat takes), and a comma followed by three digits, which
// may be a thousands separator.
func number(s string) (float64, bool) {
	if s == "" || len(s) > 24 {
		return 0, false
	}
	sep := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case (c == '.' || c == ',') && sep < 0 && i > 0 && i < len(s)-1:
			sep = i
		default:
			return 0, false
		}
	}
	if sep >= 0 && s[sep] == ',' {
		if len(s)-sep-1 > 2 {
			return 0, false
		}
		s = s[:sep] + "." + s[sep+1:]
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// rangeMarker tells whether a glucose cell holds a word a CGM writes instead
// of a number for a reading outside its range, and which side.
func rangeMarker(s string) (low, ok bool) {
	switch strings.ToLower(s) {
	case "low", "lo", "niedrig":
		return true, true
	case "high", "hi", "hoch":
		return false, true
	}
	return false, false
}

const (
	reasonLow  = "below the sensor's range (Low), no number"
	reasonHigh = "above the sensor's range (High), no number"
)

func rangeReason(low bool) string {
	if low {
		return reasonLow
	}
	return reasonHigh
}

// clock is a wall-clock reading parsed from a timestamp cell.
type clock struct {
	year, month, day   int
	hour, min, sec, ns int
	offset             int  // seconds east of UTC, when hasOffset
	hasOffset          bool // the cell gave its own offset
}

// valid checks the ranges.
func (c clock) valid() bool {
	return c.month >= 1 && c.month <= 12 && c.day >= 1 && c.day <= calendar.DaysIn(c.month, c.year) &&
		c.hour <= 23 && c.min <= 59 && c.sec <= 59
}

// text writes c as an RFC 3339 date-time with an offset: its own, or the
// one loc has at that wall-clock time. An offset with seconds (local mean
// time before 1900 in some zones), which RFC 3339 cannot write, is written
// as UTC instead.
func (c clock) text(loc *time.Location) string {
	if c.hasOffset {
		loc = time.FixedZone("", c.offset)
	}
	t := wallClock(time.Date(c.year, time.Month(c.month), c.day, c.hour, c.min, c.sec, c.ns, time.UTC), loc)
	if _, off := t.Zone(); off%60 != 0 {
		t = t.UTC()
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return ""
	}
	return t.Format("2006-01-02T15:04:05.999999999Z07:00")
}

// wallClock returns the instant at which loc's clocks show w (a wall-clock
// time given in UTC's fields), in loc. time.Date leaves the two edge cases
// of a clock change unspecified, and Go's answer differs from zone to zone,
// so they are settled here: a time that occurs twice (clocks going back) is
// the earlier instant, and a time that never occurs (clocks going forward)
// is read with the offset from before the change, so 02:30 on the morning
// clocks jump from 02:00 to 03:00 is 03:30.
func wallClock(w time.Time, loc *time.Location) time.Time {
	// Offsets run from -12 to +14 hours, so w is read at an instant within
	// 14 hours of w's fields taken as UTC, and the offsets in force then
	// are the only ones to try.
	_, before := w.Add(-14 * time.Hour).In(loc).Zone()
	_, mid := w.In(loc).Zone()
	_, after := w.Add(14 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range [3]int{before, mid, after} {
		t := w.Add(-time.Duration(off) * time.Second).In(loc)
		if _, o := t.Zone(); o == off && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if best.IsZero() {
		best = w.Add(-time.Duration(before) * time.Second).In(loc)
	}
	return best
}

// scanner reads a timestamp cell left to right.
type scanner struct {
	s string
	i int
}

// digits reads between min and max digits.
func (p *scanner) digits(min, max int) (int, bool) {
	n, v := 0, 0
	for p.i < len(p.s) && n < max && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		v = v*10 + int(p.s[p.i]-'0')
		p.i++
		n++
	}
	return v, n >= min
}

// byte reads one of the given bytes and returns it, or 0.
func (p *scanner) byte(set string) byte {
	if p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
		return p.s[p.i-1]
	}
	return 0
}

func (p *scanner) spaces() int {
	n := 0
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
		n++
	}
	return n
}

// timeOfDay reads H:MM[:SS[.frac]], and with ampm an optional AM or PM
// after it (a 12-hour clock, whose hour must then be 1 to 12).
func (p *scanner) timeOfDay(c *clock, ampm bool) bool {
	var ok bool
	if c.hour, ok = p.digits(1, 2); !ok || p.byte(":") == 0 {
		return false
	}
	if c.min, ok = p.digits(2, 2); !ok {
		return false
	}
	if p.byte(":") != 0 {
		if c.sec, ok = p.digits(2, 2); !ok {
			return false
		}
		if p.byte(".") != 0 {
			start := p.i
			frac, ok := p.digits(1, 9)
			if !ok {
				return false
			}
			for k := p.i - start; k < 9; k++ {
				frac *= 10
			}
			c.ns = frac
		}
	}
	if !ampm {
		return true
	}
	start := p.i
	p.spaces()
	rest := strings.ToUpper(p.s[p.i:])
	if len(rest) < 2 || (rest[:2] != "AM" && rest[:2] != "PM") {
		p.i = start
		return true
	}
	if c.hour < 1 || c.hour > 12 {
		return false
	}
	p.i += 2
	if c.hour == 12 {
		c.hour = 0
	}
	if rest[0] == 'P' {
		c.hour += 12
	}
	return true
}

// offset reads an optional Z, +hh:mm or +hhmm.
func (p *scanner) offset(c *clock) bool {
	switch p.byte("Zz+-") {
	case 0:
		return true
	case 'Z', 'z':
		c.hasOffset = true
		return true
	case '+':
		return p.zone(c, 1)
	default:
		return p.zone(c, -1)
	}
}

func (p *scanner) zone(c *clock, sign int) bool {
	h, ok := p.digits(2, 2)
	if !ok || h > 23 {
		return false
	}
	p.byte(":")
	m, ok := p.digits(2, 2)
	if !ok || m > 59 {
		return false
	}
	c.offset, c.hasOffset = sign*(h*3600+m*60), true
	return true
}

// parseYearFirst reads YYYY-MM-DD, then T or a space, then H:MM[:SS[.frac]]
// and an optional offset. The date may use / or . instead of -.
func parseYearFirst(s string) (clock, bool) {
	var c clock
	p := scanner{s: s}
	var ok bool
	if c.year, ok = p.digits(4, 4); !ok {
		return c, false
	}
	sep := p.byte("-/.")
	if sep == 0 {
		return c, false
	}
	if c.month, ok = p.digits(1, 2); !ok || p.byte(string(sep)) == 0 {
		return c, false
	}
	if c.day, ok = p.digits(1, 2); !ok {
		return c, false
	}
	if p.byte("Tt") == 0 && p.spaces() == 0 {
		return c, false
	}
	if !p.timeOfDay(&c, false) || !p.offset(&c) || p.i != len(s) || !c.valid() {
		return c, false
	}
	return c, true
}

// dayMonth is a timestamp whose date is written A-B-YYYY, day and month in
// an order the cell does not tell.
type dayMonth struct {
	a, b int
	c    clock // year and time of day
}

// parseDayMonth reads A-B-YYYY (or with / or .), a space, and a time of day
// in 24-hour form or 12-hour with AM/PM.
func parseDayMonth(s string) (dayMonth, bool) {
	var d dayMonth
	p := scanner{s: s}
	var ok bool
	if d.a, ok = p.digits(1, 2); !ok {
		return d, false
	}
	sep := p.byte("-/.")
	if sep == 0 {
		return d, false
	}
	if d.b, ok = p.digits(1, 2); !ok || p.byte(string(sep)) == 0 {
		return d, false
	}
	if d.c.year, ok = p.digits(4, 4); !ok || p.spaces() == 0 {
		return d, false
	}
	if !p.timeOfDay(&d.c, true) || p.i != len(s) {
		return d, false
	}
	return d, true
}

// as returns the clock with a as the day (dayFirst) or the month.
func (d dayMonth) as(dayFirst bool) (clock, bool) {
	c := d.c
	c.day, c.month = d.b, d.a
	if dayFirst {
		c.day, c.month = d.a, d.b
	}
	return c, c.valid()
}

// reading is one blood-glucose point to build.
type reading struct {
	value        float64
	unit         string
	specimen     string // specimen-source
	modality     string // sensed or self-reported
	at           string // RFC 3339 date-time
	manufacturer string // datasheet "manufacturer", or ""
	sourceName   string // datasheet "source_name", or ""
}

// appendJSON writes the point as IEEE 1752 header JSON. Nothing in it
// depends on when or how often the file is imported.
func (r *reading) appendJSON(b []byte) []byte {
	b = append(b, `{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":`...)
	b = ingest.AppendString(b, r.at)
	b = append(b, `,"modality":`...)
	b = ingest.AppendString(b, r.modality)
	if r.manufacturer != "" || r.sourceName != "" {
		b = append(b, `,"external_datasheets":[`...)
		if r.manufacturer != "" {
			b = append(b, `{"datasheet_type":"manufacturer","datasheet_reference":`...)
			b = ingest.AppendString(b, r.manufacturer)
			b = append(b, '}')
		}
		if r.sourceName != "" {
			if r.manufacturer != "" {
				b = append(b, ',')
			}
			b = append(b, `{"datasheet_type":"source_name","datasheet_reference":`...)
			b = ingest.AppendString(b, r.sourceName)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `},"body":{"blood_glucose":{"value":`...)
	b = strconv.AppendFloat(b, r.value, 'f', -1, 64)
	b = append(b, `,"unit":`...)
	b = ingest.AppendString(b, r.unit)
	b = append(b, `},"specimen_source":`...)
	b = ingest.AppendString(b, r.specimen)
	b = append(b, `,"effective_time_frame":{"date_time":`...)
	b = ingest.AppendString(b, r.at)
	return append(b, `}}}`...)
}

// emitter builds points and hands them to the sink.
type emitter struct {
	sink ingest.Sink
	buf  []byte
}

func (e *emitter) reading(pos ingest.Pos, r *reading) error {
	e.buf = r.appendJSON(e.buf[:0])
	p, err := omh.Parse(e.buf)
	if err != nil {
		return ingest.PointError(pos, err)
	}
	return e.sink.Reading(ingest.Item{Point: p, Pos: pos})
}

func (e *emitter) skip(pos ingest.Pos, typ, reason string) error {
	return e.sink.Skipped(ingest.Skip{Pos: pos, Type: typ, Reason: reason})
}

// maxName bounds a device name copied into a point.
const maxName = 200

// name cleans a device cell for a datasheet: valid UTF-8, trimmed, bounded.
func name(s string) string {
	s = strings.TrimSpace(fixText(s))
	if len(s) > maxName {
		s = strings.TrimSpace(strings.ToValidUTF8(s[:maxName], ""))
	}
	return s
}
