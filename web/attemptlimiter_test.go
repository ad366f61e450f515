package web

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

// countingLimiter is an AttemptLimiter that allows the first n attempts
// of each address, or fails when err is set.
type countingLimiter struct {
	mu    sync.Mutex
	n     int
	seen  map[string]int
	err   error
	calls int
}

func (l *countingLimiter) Take(_ context.Context, addr string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.err != nil {
		return false, l.err
	}
	l.seen[addr]++
	return l.seen[addr] <= l.n, nil
}

// TestAttemptLimiterConfig: a Config.AttemptLimiter replaces the web UI's
// in-memory sign-in limit (the shared one replicas use on PostgreSQL):
// it is asked for every sign-in and enrolment request, its refusal is 429
// rate_limited, and its failure (its database unreachable) is 503
// unavailable, never a sign-in let through.
func TestAttemptLimiterConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		l      *countingLimiter
		status []int
		code   string
	}{
		{"allows then refuses", &countingLimiter{n: 2, seen: map[string]int{}}, []int{200, 200, 429}, "rate_limited"},
		{"fails closed", &countingLimiter{n: 100, seen: map[string]int{}, err: errors.New("database unreachable")}, []int{503}, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{cfgTweak: func(c *Config) { c.AttemptLimiter = tc.l; c.AuthPerMinute = 1 }})
			var last string
			for i, want := range tc.status {
				r := f.jsonPost("/webauthn/signin/begin", "", "", "", []byte(`{}`))
				b, err := io.ReadAll(r.Body)
				if err != nil {
					t.Fatal(err)
				}
				if r.StatusCode != want {
					t.Fatalf("begin %d: %d %s, want %d", i+1, r.StatusCode, b, want)
				}
				last = string(b)
			}
			if !strings.Contains(last, `"`+tc.code+`"`) {
				t.Fatalf("the last answer %s has no code %q", last, tc.code)
			}
			if tc.l.calls != len(tc.status) {
				t.Fatalf("the limiter was asked %d times for %d requests", tc.l.calls, len(tc.status))
			}
			if strings.Contains(last, "database unreachable") {
				t.Fatal("the limiter's error reached the client")
			}
		})
	}
}
