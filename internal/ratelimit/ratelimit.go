// Package ratelimit bounds what one client may do: a token bucket per key
// (a client address, or an API token's id), refilled at a steady rate.
//
// A Limiter of perMin holds a burst of perMin and refills at perMin a
// minute: New(60, nil) allows 60 at once and then one a second. Take spends
// one; Allow does the same and, when it refuses, says how long until one is
// back (the Retry-After a caller sends). ClientIP and ClientKey decide what
// "one client address" means, the same way for the API and the web UI.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Limiter is a token bucket per key: perMin requests, refilled at perMin a
// minute. It forgets keys whose budget is whole again once it tracks
// maxTracked of them.
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

// Take spends one of key's budget; false means none is left.
func (l *Limiter) Take(key string) bool {
	ok, _ := l.Allow(key)
	return ok
}

// Allow spends one of key's budget. When none is left it spends nothing
// and returns false and how long until one is back (RetryAfter formats it
// for the header).
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.clients[key]
	if b == nil {
		if len(l.clients) >= maxTracked {
			for k, v := range l.clients {
				if l.refill(v, now); v.tokens >= l.perMin {
					delete(l.clients, k)
				}
			}
		}
		b = &bucket{tokens: l.perMin, last: now}
		l.clients[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.perMin * float64(time.Minute))
	}
	b.tokens--
	return true, 0
}

// GiveBack returns one taken for a request that turned out not to count.
func (l *Limiter) GiveBack(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.clients[key]; b != nil {
		b.tokens = min(l.perMin, b.tokens+1)
	}
}

// RetryAfter formats a wait as the whole seconds of a Retry-After
// header, rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
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

// ClientIP returns how a request's client address is found. With no
// trusted proxies it is the TCP peer, and X-Forwarded-For is ignored, so
// nobody can dodge a limit by sending one. When the peer is in one of
// trusted (a reverse proxy's addresses), the address is the nearest one in
// X-Forwarded-For, read from the right, that is not itself trusted: what
// the last trusted proxy saw. Loopback, link-local and private addresses
// are trusted only when a range in trusted holds them.
func ClientIP(trusted []netip.Prefix) func(*http.Request) string {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// ParsePrefixes parses a comma-separated list of CIDR ranges (a bare
// address is its own /32 or /128), such as the value of --trusted-proxies.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, err
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
