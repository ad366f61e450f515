package omh

import (
	"math"
	"time"

	"github.com/valyala/fastjson"
)

// TimeFrame is an effective_time_frame (time-frame-1.0, omh and IEEE): a
// point in time (DateTime) or a time interval (TimeInterval), exactly one of
// them. Extra keeps members outside the schema, and also a date_time or
// time_interval member that is present but invalid next to a valid one:
// the schema's oneOf accepts such a frame, so the vault keeps it verbatim.
type TimeFrame struct {
	DateTime     DateTime
	TimeInterval *TimeInterval
	Extra        []Extra
}

// TimeInterval is a time-interval-1.0: start and end, start and duration,
// or end and duration (exactly one of these pairs must be valid). Members
// present but not part of the valid pair are kept verbatim in Extra. The
// omh version also allows a date with a part_of_day; the vault refuses that
// form because it does not place the reading on the time line.
type TimeInterval struct {
	StartDateTime DateTime
	EndDateTime   DateTime
	Duration      *UnitValue
	Extra         []Extra
}

// Start returns the reading's time: the date_time, the interval's start, or
// for an interval given as end and duration, the end minus the duration.
func (tf TimeFrame) Start() time.Time {
	if tf.TimeInterval == nil {
		return tf.DateTime.Time
	}
	ti := tf.TimeInterval
	if !ti.StartDateTime.IsZero() || ti.Duration == nil {
		return ti.StartDateTime.Time
	}
	t, _ := subtractDuration(ti.EndDateTime.Time, *ti.Duration)
	return t
}

// timeFrameRules are the variations between the schemas' time frames.
type timeFrameRules struct {
	omh          bool // omh time-frame-1.x: the interval may be a date and part_of_day
	needInterval bool // step-count, sleep-episode: the frame must have a time_interval member
}

// msgStartOutOfRange refuses an end-and-duration interval whose start
// RFC 3339 cannot write; the schema allows it.
const msgStartOutOfRange = "end_date_time minus duration falls outside the years 0000 to 9999"

const (
	pathTimeFrame = "body.effective_time_frame"
	pathInterval  = pathTimeFrame + ".time_interval"
)

var (
	timeFrameMembers    = []string{"date_time", "time_interval"}
	timeIntervalMembers = []string{"start_date_time", "end_date_time", "duration", "date", "part_of_day"}
)

// timeFrame reads body.effective_time_frame; v is nil when the member is
// absent, which the vault refuses for every schema (it needs the reading's
// time).
//
// On success it sets d.start to the reading's time.
func (d *decoder) timeFrame(v *fastjson.Value, schema string, rules timeFrameRules) (TimeFrame, *Error) {
	var tf TimeFrame
	if v == nil {
		return tf, errf(CodeMissingTimeFrame, pathTimeFrame, "effective_time_frame is required: the vault files every reading by its time; give date_time, or time_interval")
	}
	o, e := object(v, pathTimeFrame, "an object with date_time or time_interval")
	if e != nil {
		return tf, e
	}
	var s [2]*fastjson.Value
	tf.Extra = d.members(o, timeFrameMembers, s[:])

	var dtErr, tiErr *Error
	var dt DateTime
	if s[0] != nil {
		dt, dtErr = d.dateTime(s[0], pathTimeFrame, "date_time")
	}
	var ti *TimeInterval
	var start time.Time
	var durNote string
	if s[1] != nil {
		ti, start, durNote, tiErr = d.timeInterval(s[1], rules.omh)
	}
	dtOK, tiOK := s[0] != nil && dtErr == nil, s[1] != nil && tiErr == nil
	switch {
	case dtOK && tiOK:
		return tf, errf(CodeInvalidValue, pathTimeFrame, "effective_time_frame must have exactly one of date_time and time_interval, not both")
	case dtOK:
		tf.DateTime = dt
		start = dt.Time
		if s[1] != nil {
			tf.Extra = insertExtra(tf.Extra, newExtra([]byte("time_interval"), s[1]))
		}
	case tiOK:
		if ti.Duration != nil && durNote != "" {
			d.note(durNote)
		}
		tf.TimeInterval = ti
		if s[0] != nil {
			tf.Extra = insertExtra(tf.Extra, newExtra([]byte("date_time"), s[0]))
		}
	case dtErr != nil:
		return tf, dtErr
	case tiErr != nil:
		return tf, tiErr
	default:
		return tf, errf(CodeMissingTimeFrame, pathTimeFrame, "effective_time_frame needs date_time or time_interval")
	}
	if rules.needInterval && s[1] == nil {
		return tf, errf(CodeInvalidValue, pathInterval, "time_interval is required: "+schema+" measures a span of time, so effective_time_frame needs a time_interval rather than a date_time alone")
	}
	d.start = start
	return tf, nil
}

// dateTime reads a date-time member.
func (d *decoder) dateTime(v *fastjson.Value, parent, name string) (DateTime, *Error) {
	b, ok := stringBytes(v)
	if !ok {
		return DateTime{}, errType(join(parent, name), "a date-time string")
	}
	t, ok := parseDateTime(string(b))
	if !ok {
		return DateTime{}, errDateTime(join(parent, name))
	}
	// The canonical text has an upper-case "T" and "Z".
	start := d.arena.Len()
	d.arena.Write(b)
	if b[10] == 't' || b[len(b)-1] == 'z' {
		raw := []byte(d.arena.String()[start:])
		raw[10] = 'T'
		if raw[len(raw)-1] == 'z' {
			raw[len(raw)-1] = 'Z'
		}
		return DateTime{Time: t, Text: string(raw)}, nil
	}
	return DateTime{Time: t, Text: d.arena.String()[start:]}, nil
}

// timeInterval reads body.effective_time_frame.time_interval. It evaluates
// every member and then the schema's oneOf: exactly one pair must be valid.
// It returns the interval, its start, and the note its duration's unit
// earned (the caller records it only if it keeps the interval).
func (d *decoder) timeInterval(v *fastjson.Value, omh bool) (*TimeInterval, time.Time, string, *Error) {
	o, e := object(v, pathInterval, "an object with start_date_time and end_date_time, start_date_time and duration, or end_date_time and duration")
	if e != nil {
		return nil, time.Time{}, "", e
	}
	var s [5]*fastjson.Value
	names := timeIntervalMembers
	if !omh {
		names = names[:3]
	}
	extra := d.members(o, names, s[:len(names)])

	var errs [5]*Error
	var start, end DateTime
	var dur unitValueResult
	if s[0] != nil {
		start, errs[0] = d.dateTime(s[0], pathInterval, "start_date_time")
	}
	if s[1] != nil {
		end, errs[1] = d.dateTime(s[1], pathInterval, "end_date_time")
	}
	if s[2] != nil {
		dur, errs[2] = d.unitValue(s[2], pathInterval+".duration", durationUnits)
	}
	if s[3] != nil {
		if b, ok := stringBytes(s[3]); !ok || !isFullDate(string(b)) {
			errs[3] = errf(CodeInvalidTime, pathInterval+".date", "date must be a full date such as 2025-01-31")
		}
	}
	if s[4] != nil {
		_, errs[4] = partOfDay.read(s[4], pathInterval, "part_of_day")
	}
	var ok [5]bool
	for i := range s {
		ok[i] = s[i] != nil && errs[i] == nil
	}
	pairs := [4][2]int{{0, 2}, {1, 2}, {0, 1}, {3, 4}}
	chosen, n := -1, 0
	for i, p := range pairs {
		if ok[p[0]] && ok[p[1]] {
			chosen, n = i, n+1
		}
	}
	switch {
	case n > 1:
		return nil, time.Time{}, "", errf(CodeInvalidValue, pathInterval, "time_interval must give exactly one of: start_date_time and end_date_time, start_date_time and duration, end_date_time and duration")
	case n == 0:
		for _, e := range errs {
			if e != nil {
				return nil, time.Time{}, "", e
			}
		}
		return nil, time.Time{}, "", errf(CodeInvalidValue, pathInterval, "time_interval needs start_date_time and end_date_time, start_date_time and duration, or end_date_time and duration")
	case chosen == 3:
		return nil, time.Time{}, "", errf(CodeInvalidTime, pathInterval, "a time_interval given as date and part_of_day has no exact time; give start_date_time with end_date_time or duration instead")
	}
	ti := &TimeInterval{Extra: extra}
	keep := [5]bool{}
	keep[pairs[chosen][0]], keep[pairs[chosen][1]] = true, true
	for i, name := range names {
		if s[i] != nil && !keep[i] {
			ti.Extra = insertExtra(ti.Extra, newExtra([]byte(name), s[i]))
		}
	}
	if keep[0] {
		ti.StartDateTime = start
	}
	if keep[1] {
		ti.EndDateTime = end
	}
	if keep[2] {
		uv := dur.UnitValue
		ti.Duration = &uv
	}
	if keep[0] {
		return ti, start.Time, dur.note, nil
	}
	t, ok2 := subtractDuration(end.Time, *ti.Duration)
	if !ok2 {
		return nil, time.Time{}, "", errf(CodeInvalidTime, pathInterval, msgStartOutOfRange)
	}
	return ti, t, dur.note, nil
}

// Lengths of the duration units. A day is 24 hours (offsets are fixed, so
// there is no daylight-saving change inside an interval). Whole months and
// years are calendar months and years (time.AddDate); fractional ones are
// the Gregorian averages.
var unitNanos = map[string]float64{
	"ps": 1e-3, "ns": 1, "us": 1e3, "ms": 1e6, "sec": 1e9, "min": 60e9, "h": 3600e9,
	"d": 86400e9, "wk": 7 * 86400e9,
	"Mo": 365.2425 * 86400e9 / 12, "yr": 365.2425 * 86400e9,
}

// subtractDuration returns end - d, false when the result is not a
// date-time RFC 3339 can write (years 0000 to 9999).
func subtractDuration(end time.Time, d UnitValue) (time.Time, bool) {
	v := d.Value
	var t time.Time
	switch {
	case (d.Unit == "Mo" || d.Unit == "yr") && v == math.Trunc(v) && math.Abs(v) <= 12*10000:
		n := int(v)
		if d.Unit == "yr" {
			t = end.AddDate(-n, 0, 0)
		} else {
			t = end.AddDate(0, -n, 0)
		}
	default:
		ns := math.Round(v * unitNanos[d.Unit])
		// time.Duration spans about 292 years either way.
		if math.Abs(ns) > float64(math.MaxInt64)/2 {
			return time.Time{}, false
		}
		t = end.Add(-time.Duration(ns))
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func (tf *TimeFrame) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	if tf.TimeInterval == nil {
		o.str("date_time", tf.DateTime.Text)
	} else {
		o.key("time_interval")
		o.b = tf.TimeInterval.appendJSON(o.b)
	}
	o.extras(tf.Extra)
	return o.close()
}

func (ti *TimeInterval) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	if !ti.StartDateTime.IsZero() {
		o.str("start_date_time", ti.StartDateTime.Text)
	}
	if !ti.EndDateTime.IsZero() {
		o.str("end_date_time", ti.EndDateTime.Text)
	}
	if ti.Duration != nil {
		o.key("duration")
		o.b = ti.Duration.appendJSON(o.b)
	}
	o.extras(ti.Extra)
	return o.close()
}
