package omh

import (
	"time"

	"github.com/jupyterhealth/vault/internal/calendar"
)

// DateTime is an RFC 3339 date-time as a point gave it. Text is what the
// canonical JSON carries: the submitted text with "t" and "z" upper-cased,
// so the offset and the precision the point gave are kept exactly. Time is
// the same instant, in a fixed zone with the given offset (UTC for "Z").
type DateTime struct {
	Time time.Time
	Text string
}

// IsZero reports whether the date-time is absent.
func (dt DateTime) IsZero() bool { return dt.Text == "" }

// parseDateTime checks s against the grammar of RFC 3339 section 5.6
// (date-time, with a mandatory offset), as JSON Schema's "date-time" format
// does, and returns the instant. The standard library's time.Parse is both
// laxer (it takes a comma before the fraction) and stricter (it refuses a
// lower-case "t" or "z" and leap seconds) than the format, so the grammar is
// checked here and time.Date builds the instant. A leap second (":60",
// allowed only at 23:59 UTC) becomes the first instant of the next minute.
func parseDateTime(s string) (time.Time, bool) {
	// yyyy-mm-ddThh:mm:ss is 19 bytes; at least "Z" follows.
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	if s[10] != 'T' && s[10] != 't' {
		return time.Time{}, false
	}
	w, ok := calendar.ParseWall(s)
	if !ok {
		return time.Time{}, false
	}
	year, month, day, hour, minute, sec := w.Year, w.Month, w.Day, w.Hour, w.Minute, w.Second
	rest := s[19:]
	nsec := 0
	if rest != "" && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			if n <= 9 {
				nsec = nsec*10 + int(rest[n]-'0')
			}
			n++
		}
		if n == 1 {
			return time.Time{}, false
		}
		for i := n; i <= 9; i++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0 // seconds east of UTC
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := calendar.Digits(rest[1:3])
		om, okm := calendar.Digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	if sec == 60 {
		// A leap second is only valid as the last second of a UTC day.
		utcMin := ((hour*60+minute)*60 - offset) / 60
		utcMin = ((utcMin % 1440) + 1440) % 1440
		if utcMin != 23*60+59 {
			return time.Time{}, false
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, zone(offset)), true
}

// zones holds one fixed zone for every offset that is a whole quarter hour
// between -14:00 and +14:00, so parsing a date-time does not allocate a
// *time.Location. It is filled once and never written again.
var zones = func() [113]*time.Location {
	var z [113]*time.Location
	for i := range z {
		off := (i - 56) * 15 * 60
		z[i] = time.FixedZone("", off)
	}
	return z
}()

// zone returns the location for an offset in seconds. "Z" and "+00:00" are
// UTC; "-00:00" (RFC 3339's "offset unknown") is UTC as well.
func zone(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	if offset%(15*60) == 0 && offset >= -14*3600 && offset <= 14*3600 {
		return zones[offset/(15*60)+56]
	}
	return time.FixedZone("", offset)
}

// formatDateTime renders a computed instant (the start of an interval given
// as end and duration) in RFC 3339 with its zone's offset.
func formatDateTime(t time.Time) string {
	return t.Format(time.RFC3339Nano)
}

// isFullDate checks the omh time-interval "date" pattern
// ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ (a pattern, not a calendar check).
func isFullDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	_, y := calendar.Digits(s[0:4])
	_, m := calendar.Digits(s[5:7])
	_, d := calendar.Digits(s[8:10])
	return y && m && d
}
