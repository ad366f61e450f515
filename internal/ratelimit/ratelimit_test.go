package ratelimit

import (
	"net/http/httptest"
	"net/netip"
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

func TestAllowRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(30, func() time.Time { return now }) // one every 2 s
	for i := range 30 {
		if ok, _ := l.Allow("tok"); !ok {
			t.Fatalf("allow %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow("tok")
	if ok || wait != 2*time.Second {
		t.Fatalf("past the burst: %v, wait %v; want refused, 2s", ok, wait)
	}
	now = now.Add(1500 * time.Millisecond)
	if ok, wait = l.Allow("tok"); ok || wait != 500*time.Millisecond || RetryAfter(wait) != "1" {
		t.Fatalf("1.5 s later: %v, wait %v (%s); want refused, 0.5s, Retry-After 1", ok, wait, RetryAfter(wait))
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ = l.Allow("tok"); !ok {
		t.Fatal("refused once the wait it gave had passed")
	}
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes(" 10.0.0.0/8, 2001:db8::/32,192.0.2.9 ")
	if err != nil {
		t.Fatal(err)
	}
	if len(trusted) != 3 || trusted[2].String() != "192.0.2.9/32" {
		t.Fatalf("parsed %v", trusted)
	}
	if _, err := ParsePrefixes("10.0.0.0/8,not-a-range"); err == nil {
		t.Fatal("a bad range parsed")
	}
	if p, err := ParsePrefixes(""); err != nil || len(p) != 0 {
		t.Fatalf("empty: %v %v", p, err)
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: the peer, XFF ignored", nil, "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"no proxies: a loopback peer is not trusted either", nil, "127.0.0.1:1234", []string{"198.51.100.1"}, "127.0.0.1"},
		{"untrusted peer: XFF ignored", trusted, "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"private peer outside the ranges: XFF ignored", trusted, "192.168.1.1:1234", []string{"198.51.100.1"}, "192.168.1.1"},
		{"trusted peer: the client it saw", trusted, "10.1.2.3:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted peer, spoofed entry before the real one", trusted, "10.1.2.3:1234", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", trusted, "10.1.2.3:1234", []string{"198.51.100.1, 192.0.2.9", "10.9.9.9"}, "198.51.100.1"},
		{"trusted peer, no XFF", trusted, "10.1.2.3:1234", nil, "10.1.2.3"},
		{"trusted IPv6 peer", trusted, "[2001:db8::1]:443", []string{"2001:db9::7"}, "2001:db9::7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientIP(tc.trusted)(r); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
