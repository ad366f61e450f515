// Package ratelimit bounds what one client address may do: a token bucket
// per address, refilled at a steady rate.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per client address: perMin requests, refilled
// at perMin a minute. It forgets addresses whose budget is whole again
// once it tracks maxTracked of them.
type Limiter struct {
	mu      sync.Mutex
	perMin  float64
	clients map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxTracked = 10000

// New makes a limiter of perMin a minute; now is time.Now when nil.
func New(perMin int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{perMin: float64(perMin), clients: map[string]*bucket{}, now: now}
}

// refill brings b up to date; the caller holds l.mu.
func (l *Limiter) refill(b *bucket, now time.Time) {
	b.tokens = min(l.perMin, b.tokens+now.Sub(b.last).Minutes()*l.perMin)
	b.last = now
}

// Take spends one of addr's budget; false means none is left.
func (l *Limiter) Take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.clients[addr]
	if b == nil {
		if len(l.clients) >= maxTracked {
			for k, v := range l.clients {
				if l.refill(v, now); v.tokens >= l.perMin {
					delete(l.clients, k)
				}
			}
		}
		b = &bucket{tokens: l.perMin, last: now}
		l.clients[addr] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// GiveBack returns one taken for a request that turned out not to count
// (a valid token, where only failures are limited).
func (l *Limiter) GiveBack(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.clients[addr]; b != nil {
		b.tokens = min(l.perMin, b.tokens+1)
	}
}

// ClientKey is the address a limit applies to: an IPv4 address, or the /64
// of an IPv6 one (a single host often holds a whole /64).
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
