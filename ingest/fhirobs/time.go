package fhirobs

import (
	"time"
)

// fhirTime is a FHIR dateTime or instant as read.
//
// A full date-time (to the second or finer) is an instant: text is its
// RFC 3339 form, the source's own text when it has an offset, else the
// local time read in the patient's zone with that zone's offset added.
//
// A partial one (a year, a month or a day; R4 allows them in dateTime)
// stands for its whole calendar span in the patient's zone: start is its
// first instant, end the first instant of the next span.
type fhirTime struct {
	text    string    // RFC 3339: the instant, or the start of the span
	t       time.Time // the instant, or the start of the span
	partial bool
	end     time.Time // partial only
	endText string    // partial only: end in RFC 3339
}

// rfc3339 writes a time as the points do: seconds and any fraction, and
// the offset (Z for UTC).
const rfc3339 = "2006-01-02T15:04:05.999999999Z07:00"

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// parseFHIRTime reads s, which FHIR R4 writes as
// YYYY(-MM(-DD(Thh:mm:ss(.s+)?(Z|(+|-)hh:mm))?)?)?. A time of day without
// an offset, which R4 forbids but files hold, is read in loc. ok is false
// for anything else.
func parseFHIRTime(s string, loc *time.Location) (ft fhirTime, ok bool) {
	switch len(s) {
	case 4, 7, 10:
		layout := "2006-01-02"[:len(s)]
		if !isDigits(s[:4]) || (len(s) >= 7 && (s[4] != '-' || !isDigits(s[5:7]))) || (len(s) == 10 && (s[7] != '-' || !isDigits(s[8:10]))) {
			return ft, false
		}
		d, err := time.Parse(layout, s)
		if err != nil {
			return ft, false
		}
		y, m, day := d.Date()
		ft.partial = true
		ft.t = time.Date(y, m, day, 0, 0, 0, 0, loc)
		switch len(s) {
		case 4:
			ft.end = time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
		case 7:
			ft.end = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
		default:
			ft.end = time.Date(y, m, day+1, 0, 0, 0, 0, loc)
		}
		ft.text = ft.t.Format(rfc3339)
		ft.endText = ft.end.Format(rfc3339)
		return ft, true
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
		!isDigits(s[:4]) || !isDigits(s[5:7]) || !isDigits(s[8:10]) || !isDigits(s[11:13]) || !isDigits(s[14:16]) || !isDigits(s[17:19]) {
		return ft, false
	}
	rest := s[19:]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return ft, false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "":
		t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc)
		if err != nil {
			return ft, false
		}
		ft.t, ft.text = t, t.Format(rfc3339)
		return ft, true
	case rest == "Z" || len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' && isDigits(rest[1:3]) && isDigits(rest[4:6]):
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return ft, false
		}
		ft.t, ft.text = t, s
		return ft, true
	}
	return ft, false
}
