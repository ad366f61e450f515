package stats

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func rfc(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readings parses "RFC3339 VALUE" lines into points.
func readings(t testing.TB, lines ...string) []Point {
	t.Helper()
	pts := make([]Point, len(lines))
	for i, l := range lines {
		at, v, ok := strings.Cut(l, " ")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			t.Fatalf("bad reading %q", l)
		}
		pts[i] = Point{Time: rfc(t, at), Value: f}
	}
	return pts
}

// sameRows compares rows written as text, each a line of the result.
func sameRows(t *testing.T, name string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
