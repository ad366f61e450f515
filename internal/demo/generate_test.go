package demo

import (
	"bytes"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

func TestGeneratedPointsAreValidAndDeterministic(t *testing.T) {
	loc := calendartest.Location(t, "America/New_York")
	g := newGenerator(loc)
	start := time.Date(2025, 3, 8, 0, 0, 0, 0, time.UTC) // spans a DST change
	end := start.Add(3 * 24 * time.Hour)
	counts := map[string]int{}
	var first [][]byte
	minG, maxG := 1000, 0
	for raw := range g.points(start, end) {
		p, err := omh.Parse(raw)
		if err != nil {
			t.Fatalf("generated point does not parse: %v\n%s", err, raw)
		}
		counts[p.Schema.String()]++
		if p.Time.Before(start) || !p.Time.Before(end) {
			t.Fatalf("point at %v outside [%v, %v)", p.Time, start, end)
		}
		first = append(first, raw)
	}
	for tm := start; tm.Before(end); tm = tm.Add(5 * time.Minute) {
		v := g.glucose(tm)
		minG, maxG = min(minG, v), max(maxG, v)
	}
	if counts["omh:blood-glucose:4.0"] != 3*288 || counts["omh:heart-rate:2.0"] != 3*288 || counts["omh:step-count:3.0"] != 72 {
		t.Fatalf("counts %v", counts)
	}
	if minG < 45 || maxG > 380 || maxG-minG < 40 {
		t.Fatalf("glucose range %d..%d is not a plausible day", minG, maxG)
	}
	i := 0
	for raw := range g.points(start, end) {
		if !bytes.Equal(raw, first[i]) {
			t.Fatalf("point %d differs on a second run", i)
		}
		i++
	}
}
