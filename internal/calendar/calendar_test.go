package calendar

import (
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
)

func TestDaysIn(t *testing.T) {
	for _, tc := range []struct{ month, year, want int }{
		{1, 2023, 31}, {2, 2023, 28}, {2, 2024, 29}, {2, 1900, 28}, {2, 2000, 29}, {2, 2100, 28},
		{3, 2024, 31}, {4, 2024, 30}, {6, 2024, 30}, {9, 2024, 30}, {11, 2024, 30}, {12, 2024, 31},
	} {
		if got := DaysIn(tc.month, tc.year); got != tc.want {
			t.Errorf("DaysIn(%d, %d) = %d, want %d", tc.month, tc.year, got, tc.want)
		}
		// Against the standard library: day 0 of the next month.
		if got := time.Date(tc.year, time.Month(tc.month)+1, 0, 0, 0, 0, 0, time.UTC).Day(); got != tc.want {
			t.Errorf("the table is wrong for %d-%d: time says %d", tc.year, tc.month, got)
		}
	}
}

func TestDigits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"2024", 2024, true}, {"07", 7, true}, {"00", 0, true}, {"", 0, true},
		{"+7", 0, false}, {"-1", 0, false}, {" 7", 0, false}, {"7a", 0, false}, {"٣", 0, false},
	} {
		if got, ok := Digits(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Digits(%q) = %d %v, want %d %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMidnight: the first instant of a date, including the days whose
// midnight a clock change skips.
func TestMidnight(t *testing.T) {
	for _, tc := range []struct {
		zone    string
		y, m, d int
		want    string // RFC 3339
	}{
		{"America/New_York", 2024, 3, 10, "2024-03-10T00:00:00-05:00"}, // 23-hour day: the gap is at 02:00
		{"America/New_York", 2024, 3, 11, "2024-03-11T00:00:00-04:00"},
		{"America/New_York", 2024, 11, 3, "2024-11-03T00:00:00-04:00"}, // 25-hour day
		{"America/New_York", 2024, 11, 4, "2024-11-04T00:00:00-05:00"},
		{"Asia/Kolkata", 2024, 3, 10, "2024-03-10T00:00:00+05:30"},
		{"Australia/Lord_Howe", 2024, 10, 6, "2024-10-06T00:00:00+10:30"}, // half-hour summer time, from 02:00
		{"Australia/Lord_Howe", 2024, 10, 7, "2024-10-07T00:00:00+11:00"},
		{"America/Havana", 2024, 3, 10, "2024-03-10T01:00:00-04:00"},    // 00:00 → 01:00: no midnight (time.Date says 23:00 the day before)
		{"America/Santiago", 2024, 9, 8, "2024-09-08T01:00:00-03:00"},   // likewise
		{"Asia/Beirut", 2024, 3, 31, "2024-03-31T01:00:00+03:00"},       // likewise, but time.Date lands after the gap
		{"America/Havana", 2024, 11, 3, "2024-11-03T00:00:00-04:00"},    // 01:00 → 00:00: the first of two midnights
		{"America/Santiago", 2024, 4, 7, "2024-04-07T00:00:00-04:00"},   // 24:00 → 23:00 the day before
		{"America/New_York", 2024, 12, 32, "2025-01-01T00:00:00-05:00"}, // normalised
		{"Pacific/Apia", 2011, 12, 31, "2011-12-31T00:00:00+14:00"},     // the day after the skipped 30 December
	} {
		got := Midnight(tc.y, time.Month(tc.m), tc.d, calendartest.Location(t, tc.zone))
		if s := got.Format(time.RFC3339); s != tc.want {
			t.Errorf("%s %d-%02d-%02d: %s, want %s", tc.zone, tc.y, tc.m, tc.d, s, tc.want)
		}
	}
}

// TestDaysInvariants walks each zone in 10-minute steps over its clock
// changes: every instant lies in [DayStart, Next), the day start is on the
// same local date, and the days tile time without gaps or overlaps.
func TestDaysInvariants(t *testing.T) {
	for _, tc := range []struct {
		zone     string
		from, to string
	}{
		{"America/New_York", "2024-03-08", "2024-03-12"},
		{"America/New_York", "2024-11-01", "2024-11-05"},
		{"Asia/Kolkata", "2024-03-08", "2024-03-12"},
		{"Asia/Kathmandu", "2024-03-08", "2024-03-12"},
		{"Australia/Adelaide", "2024-10-04", "2024-10-08"},
		{"Australia/Lord_Howe", "2024-04-05", "2024-04-09"},
		{"Australia/Lord_Howe", "2024-10-04", "2024-10-08"},
		{"America/Havana", "2024-03-08", "2024-03-12"},
		{"America/Havana", "2024-11-01", "2024-11-05"},
		{"America/Santiago", "2024-04-05", "2024-04-09"},
		{"America/Santiago", "2024-09-06", "2024-09-10"},
		{"Asia/Beirut", "2024-03-29", "2024-04-02"},
		{"Pacific/Apia", "2011-12-28", "2012-01-02"},
		{"UTC", "2024-02-27", "2024-03-02"},
	} {
		loc := calendartest.Location(t, tc.zone)
		from, err := time.ParseInLocation(time.DateOnly, tc.from, loc)
		if err != nil {
			t.Fatal(err)
		}
		to, err := time.ParseInLocation(time.DateOnly, tc.to, loc)
		if err != nil {
			t.Fatal(err)
		}
		for at := from; at.Before(to); at = at.Add(10 * time.Minute) {
			s, n := DayStart(at, loc), Next(at, loc)
			if s.After(at) || !n.After(at) {
				t.Fatalf("%s %v: day [%v, %v) does not hold it", tc.zone, at, s, n)
			}
			if y, m, d := at.In(loc).Date(); s.In(loc).Year() != y || s.In(loc).Month() != m || s.In(loc).Day() != d {
				t.Fatalf("%s %v: day start %v is on another date", tc.zone, at, s)
			}
			if !Next(s.Add(-time.Nanosecond), loc).Equal(s) || !IsDayStart(s, loc) || IsDayStart(s.Add(time.Second), loc) {
				t.Fatalf("%s %v: the day before does not end where %v starts", tc.zone, at, s)
			}
			if h := n.Sub(s); h < 22*time.Hour || h > 26*time.Hour {
				t.Fatalf("%s %v: a day of %v", tc.zone, at, h)
			}
		}
		days := Days(from, to, loc)
		for i := 1; i < len(days); i++ {
			if !Next(days[i-1], loc).Equal(days[i]) {
				t.Fatalf("%s: day %d starts at %v, not where day %d ends", tc.zone, i, days[i], i-1)
			}
		}
	}
}

// TestDays: the local days a window touches, across clock changes.
func TestDays(t *testing.T) {
	ny := calendartest.Location(t, "America/New_York")
	kol := calendartest.Location(t, "Asia/Kolkata")
	hav := calendartest.Location(t, "America/Havana")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		loc      *time.Location
		want     []string // local dates and offsets of the day starts
	}{
		{"empty", utc("2024-03-10T12:00:00Z"), utc("2024-03-10T12:00:00Z"), ny, nil},
		{"reversed", utc("2024-03-11T12:00:00Z"), utc("2024-03-10T12:00:00Z"), ny, nil},
		{"inside one day", utc("2024-03-10T12:00:00Z"), utc("2024-03-10T13:00:00Z"), ny, []string{"2024-03-10T00:00:00-05:00"}},
		{"spring forward, New York", utc("2024-03-09T12:00:00Z"), utc("2024-03-12T04:00:00Z"), ny,
			[]string{"2024-03-09T00:00:00-05:00", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00"}},
		{"ending at a day start excludes the day", utc("2024-11-02T12:00:00Z"), utc("2024-11-04T05:00:00Z"), ny,
			[]string{"2024-11-02T00:00:00-04:00", "2024-11-03T00:00:00-04:00"}},
		{"half-hour offset", utc("2024-03-09T18:29:00Z"), utc("2024-03-10T18:31:00Z"), kol,
			[]string{"2024-03-09T00:00:00+05:30", "2024-03-10T00:00:00+05:30", "2024-03-11T00:00:00+05:30"}},
		{"no midnight, Havana", utc("2024-03-09T12:00:00Z"), utc("2024-03-12T12:00:00Z"), hav,
			[]string{"2024-03-09T00:00:00-05:00", "2024-03-10T01:00:00-04:00", "2024-03-11T00:00:00-04:00", "2024-03-12T00:00:00-04:00"}},
	} {
		var got []string
		for _, d := range Days(tc.from, tc.to, tc.loc) {
			got = append(got, d.In(tc.loc).Format(time.RFC3339))
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

func TestParseWall(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Wall
		ok   bool
	}{
		{"2024-02-29T23:59:60Z", Wall{2024, 2, 29, 23, 59, 60}, true}, // a leap second: the caller decides
		{"2024-01-31 08:00:00 -0500", Wall{2024, 1, 31, 8, 0, 0}, true},
		{"0000-01-01T00:00:00", Wall{0, 1, 1, 0, 0, 0}, true},
		{"2023-02-29T00:00:00Z", Wall{}, false}, // not a leap year
		{"2024-04-31T00:00:00Z", Wall{}, false},
		{"2024-13-01T00:00:00Z", Wall{}, false},
		{"2024-00-01T00:00:00Z", Wall{}, false},
		{"2024-01-00T00:00:00Z", Wall{}, false},
		{"2024-01-01T24:00:00Z", Wall{}, false},
		{"2024-01-01T23:60:00Z", Wall{}, false},
		{"2024-01-01T23:59:61Z", Wall{}, false},
		{"2024-01-01T+1:00:00Z", Wall{}, false},
		{"2024-01-01T01:00:0", Wall{}, false}, // short
	} {
		if got, ok := ParseWall(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("ParseWall(%q) = %+v %v, want %+v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
