package cgmcsv

import (
	"testing"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

// Clock changes are read the same way in every zone: a repeated time is
// the earlier instant, a skipped one takes the offset from before.
func TestWallClockChanges(t *testing.T) {
	for _, tc := range []struct {
		zone string
		c    clock
		want string
	}{
		{"America/New_York", clock{year: 2024, month: 11, day: 3, hour: 1, min: 30}, "2024-11-03T01:30:00-04:00"},
		{"Europe/Berlin", clock{year: 2024, month: 10, day: 27, hour: 2, min: 30}, "2024-10-27T02:30:00+02:00"},
		{"America/New_York", clock{year: 2024, month: 3, day: 10, hour: 2, min: 30}, "2024-03-10T03:30:00-04:00"},
		{"Europe/Berlin", clock{year: 2024, month: 3, day: 31, hour: 2, min: 30}, "2024-03-31T03:30:00+02:00"},
		{"Australia/Lord_Howe", clock{year: 2024, month: 4, day: 7, hour: 1, min: 45}, "2024-04-07T01:45:00+11:00"},
		{"Europe/Berlin", clock{year: 2024, month: 7, day: 1, hour: 12}, "2024-07-01T12:00:00+02:00"},
		// Local mean time has an offset with seconds: written in UTC.
		{"America/New_York", clock{year: 1800, month: 1, day: 1}, "1800-01-01T04:56:02Z"},
		{"UTC", clock{year: 2024, month: 1, day: 1, ns: 5e8}, "2024-01-01T00:00:00.5Z"},
		{"UTC", clock{year: 2024, month: 1, day: 1, hasOffset: true, offset: -3600}, "2024-01-01T00:00:00-01:00"},
	} {
		loc := calendartest.Location(t, tc.zone)
		if got := tc.c.text(loc); got != tc.want {
			t.Errorf("%s %+v: got %s, want %s", tc.zone, tc.c, got, tc.want)
		}
	}
}
