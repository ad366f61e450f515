// Package calendartest loads the time zones tests read local days and clock
// changes in. The zone database is embedded (time/tzdata), so a test gives
// the same answer on a machine without zoneinfo, as the vault binary does,
// and a zone that does not load fails the test instead of skipping it.
//
//	ny := calendartest.Location(t, "America/New_York")
//
// It is a test helper: only _test.go files import it.
package calendartest

import (
	"testing"
	"time"
	_ "time/tzdata" // Location works on a machine without zoneinfo
)

// Location loads an IANA time zone such as "America/New_York", failing the
// test when it does not load.
func Location(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
