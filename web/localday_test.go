package web

import (
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// TestGrantDays: the consent form's days are the patient's local days,
// also when a clock change skips midnight (Havana jumps from 00:00 to
// 01:00 on 10 March 2024), and a window or expiry that ends at a day's
// start reads as the day before.
func TestGrantDays(t *testing.T) {
	for _, tc := range []struct {
		zone  string
		date  string
		plus  int
		start string // RFC 3339
		ends  string // expiryText of the start
	}{
		{"America/New_York", "2024-11-03", 0, "2024-11-03T00:00:00-04:00", "end of 2 Nov 2024"},
		{"America/New_York", "2024-11-03", 1, "2024-11-04T00:00:00-05:00", "end of 3 Nov 2024"},
		{"America/New_York", "2024-03-09", 1, "2024-03-10T00:00:00-05:00", "end of 9 Mar 2024"},
		{"Asia/Kolkata", "2024-03-09", 1, "2024-03-10T00:00:00+05:30", "end of 9 Mar 2024"},
		{"America/Havana", "2024-03-10", 0, "2024-03-10T01:00:00-04:00", "end of 9 Mar 2024"},
		{"America/Havana", "2024-03-09", 1, "2024-03-10T01:00:00-04:00", "end of 9 Mar 2024"},
		{"America/Havana", "2024-03-10", 1, "2024-03-11T00:00:00-04:00", "end of 10 Mar 2024"},
	} {
		loc := calendartest.Location(t, tc.zone)
		got, ok := day(tc.date, loc, tc.plus)
		if !ok || got.In(loc).Format(time.RFC3339) != tc.start {
			t.Errorf("%s day(%s, +%d) = %v %v, want %s", tc.zone, tc.date, tc.plus, got.In(loc), ok, tc.start)
		}
		if e := expiryText(got, loc); e != tc.ends {
			t.Errorf("%s: expiry %q, want %q", tc.zone, e, tc.ends)
		}
	}
	hav := calendartest.Location(t, "America/Havana")
	from, ok1 := day("2024-03-01", hav, 0)
	to, ok2 := day("2024-03-09", hav, 1)
	if !ok1 || !ok2 {
		t.Fatal("day refused a date")
	}
	if w := windowText(from, to, hav); w != "1 Mar 2024 to 9 Mar 2024" {
		t.Errorf("window %q", w)
	}
	if _, ok := day("2024-02-30", hav, 0); ok {
		t.Error("30 February accepted")
	}
}
