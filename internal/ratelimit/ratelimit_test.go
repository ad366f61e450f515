package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(3, func() time.Time { return now })
	for i := range 3 {
		if !l.Take("a") {
			t.Fatalf("take %d refused", i)
		}
	}
	if l.Take("a") {
		t.Fatal("a fourth take within the minute")
	}
	if !l.Take("b") {
		t.Fatal("another address shares the budget")
	}
	l.GiveBack("a")
	if !l.Take("a") || l.Take("a") {
		t.Fatal("give back returns exactly one")
	}
	now = now.Add(20 * time.Second) // a third of a minute: one token
	if !l.Take("a") || l.Take("a") {
		t.Fatal("refill is not perMin a minute")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "::ffff:192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
