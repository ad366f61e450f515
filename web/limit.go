package web

import (
	"net/netip"
	"sync"
	"time"
)

// limiter is a token bucket per client address: perMin requests, refilled
// at perMin a minute. It is the same idea as the API's failure limiter,
// but counts every request to the endpoints it guards: a WebAuthn
// ceremony costs the server a challenge and a signature check whether or
// not it succeeds, and an invite link is a secret worth guessing.
type limiter struct {
	mu      sync.Mutex
	perMin  float64
	clients map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxTrackedClients = 10000

func newLimiter(perMin int, now func() time.Time) *limiter {
	return &limiter{perMin: float64(perMin), clients: map[string]*bucket{}, now: now}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	b.tokens = min(l.perMin, b.tokens+now.Sub(b.last).Minutes()*l.perMin)
	b.last = now
}

// take spends one request of addr's budget; false means none is left.
func (l *limiter) take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.clients[addr]
	if b == nil {
		if len(l.clients) >= maxTrackedClients {
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

// clientKey is the key a limit applies to: an IPv4 address, or the /64 of
// an IPv6 one.
func clientKey(ip string) string {
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
