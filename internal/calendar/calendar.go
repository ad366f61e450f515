// Package calendar is the project's one set of date helpers.
//
// Two kinds of code need them:
//
//   - The parsers of timestamps (omh, and the Apple Health and CGM CSV
//     importers) check a date's fields by hand, for speed and to refuse
//     what time.Parse would accept: [ParseWall] reads and checks the
//     "YYYY-MM-DD hh:mm:ss" they share, [Digits] reads one fixed-width
//     field and [DaysIn] says how many days a month has.
//   - The pages and the statistics count in a patient's local days, in her
//     IANA time zone: [DayStart] finds the first instant of the local day
//     that holds a moment, [Midnight] the first instant of a given date,
//     [Next] the start of the following day, and [Days] the days a window
//     touches.
//
// A local day usually starts at midnight and lasts 24 hours, but not
// always: on a daylight-saving change it lasts 23 or 25 hours (so "the
// next day" is never "24 hours later"), and in a few zones (America/Havana,
// America/Santiago, America/Asuncion, Asia/Beirut) the clocks jump from
// 00:00 to 01:00, so that day has no midnight and starts at 01:00.
// time.Date, asked for such a midnight, may answer with 23:00 on the day
// before; [Midnight] corrects that, and everything here builds on it, so
// days never drift by the hour a plain AddDate loop would carry along.
// Zones whose offset is not a whole number of hours (Asia/Kolkata +05:30,
// Asia/Kathmandu +05:45, Australia/Lord_Howe, whose summer time is half an
// hour) need nothing special.
package calendar

import "time"

// DaysIn returns the number of days in a month (1–12) of a year of the
// proleptic Gregorian calendar.
func DaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// Digits reads a field of ASCII digits, such as the "2024" or the "07" of
// a timestamp: no sign, no space, nothing else. An empty field reads as 0;
// the callers slice fields of a fixed width.
func Digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Wall is a date and a time of day as a timestamp's text gives them,
// before any offset or zone.
type Wall struct {
	Year, Month, Day, Hour, Minute, Second int
}

// ParseWall reads the fields of "YYYY-MM-DD?hh:mm:ss" at the start of s
// (the separators, and what follows, are the caller's to check) and checks
// their ranges: a real date of the proleptic Gregorian calendar, hour
// 0–23, minute 0–59 and second 0–60. A second of 60 is a leap second;
// a caller that refuses them checks Second.
func ParseWall(s string) (Wall, bool) {
	if len(s) < 19 {
		return Wall{}, false
	}
	year, ok1 := Digits(s[0:4])
	month, ok2 := Digits(s[5:7])
	day, ok3 := Digits(s[8:10])
	hour, ok4 := Digits(s[11:13])
	minute, ok5 := Digits(s[14:16])
	sec, ok6 := Digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > DaysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 60 {
		return Wall{}, false
	}
	return Wall{year, month, day, hour, minute, sec}, true
}

// Midnight returns the first instant of the local day year-month-day in
// loc: its midnight, or, when a clock change skips midnight, the instant
// the clocks jump (shown as 01:00). The date is normalised as time.Date
// does: day 0 is the last day of the month before, day 32 of January is
// the 1st of February.
func Midnight(year int, month time.Month, day int, loc *time.Location) time.Time {
	t := time.Date(year, month, day, 0, 0, 0, 0, loc)
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
		return t
	}
	// Midnight does not exist. time.Date answered either with an instant
	// after the gap, on the right day (the day's first instant), or with
	// one before it, late on the day before; then the day starts where
	// that zone period ends.
	if _, _, d := t.Date(); d != time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Day() {
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	}
	return t
}

// DayStart returns the first instant of the local day in loc that holds t.
func DayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return Midnight(y, m, d, loc)
}

// Next returns the first instant of the local day in loc after the one
// that holds t.
func Next(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	n := Midnight(y, m, d+1, loc)
	for !n.After(t) { // a day the zone skipped altogether (Pacific/Apia, 30 Dec 2011)
		d++
		n = Midnight(y, m, d+1, loc)
	}
	return n
}

// Days returns the first instants of the local days in loc that the
// half-open window [from, to) touches, in order: the day holding from,
// then every day that starts before to. It is empty when to is not after
// from.
func Days(from, to time.Time, loc *time.Location) []time.Time {
	if !to.After(from) {
		return nil
	}
	var days []time.Time
	for d := DayStart(from, loc); d.Before(to); d = Next(d, loc) {
		days = append(days, d)
	}
	return days
}

// IsDayStart reports whether t is the first instant of its local day in
// loc (a grant window or an expiry that the consent form set to a day's
// start).
func IsDayStart(t time.Time, loc *time.Location) bool {
	return DayStart(t, loc).Equal(t)
}
