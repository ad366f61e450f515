package api

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

const principalKey = "jhvault.principal"

// principal returns the authenticated token of the request.
func principal(c echo.Context) vault.Token {
	t, _ := c.Get(principalKey).(vault.Token)
	return t
}

// failureLimiter bounds failed authentications per client address: a token
// bucket of perMin attempts, refilled at perMin a minute. An attempt is taken
// before the token is checked, so concurrent guesses cannot overrun the
// budget, and given back when the token is valid, so only failures count.
type failureLimiter struct {
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

func newFailureLimiter(perMin int) *failureLimiter {
	return &failureLimiter{perMin: float64(perMin), clients: map[string]*bucket{}, now: time.Now}
}

// refill brings b up to date; the caller holds f.mu.
func (f *failureLimiter) refill(b *bucket, now time.Time) {
	b.tokens = min(f.perMin, b.tokens+now.Sub(b.last).Minutes()*f.perMin)
	b.last = now
}

// take spends one attempt of addr's budget; it reports false when none is
// left.
func (f *failureLimiter) take(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	b := f.clients[addr]
	if b == nil {
		if len(f.clients) >= maxTrackedClients {
			// Forget the addresses whose budget is whole again.
			for k, v := range f.clients {
				if f.refill(v, now); v.tokens >= f.perMin {
					delete(f.clients, k)
				}
			}
		}
		b = &bucket{tokens: f.perMin, last: now}
		f.clients[addr] = b
	}
	f.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// giveBack returns an attempt taken for a request whose token was valid.
func (f *failureLimiter) giveBack(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.clients[addr]; b != nil {
		b.tokens = min(f.perMin, b.tokens+1)
	}
}

// clientKey is the address the limit applies to: an IPv4 address, or the
// /64 of an IPv6 one (a single host often holds a whole /64).
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

// bearer returns the token of an "Authorization: Bearer TOKEN" header; the
// scheme is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// requireToken authenticates a bearer token and checks its kind.
func (s *Server) requireToken(kinds ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			secret, ok := bearer(c.Request().Header.Get("Authorization"))
			if !ok {
				return newError(http.StatusUnauthorized, "missing_token", "send an API token as 'Authorization: Bearer TOKEN'")
			}
			addr := clientKey(c.RealIP())
			if !s.failures.take(addr) {
				s.metrics.authFailures.WithLabelValues("rate_limited").Inc()
				return newError(http.StatusTooManyRequests, "too_many_auth_failures", "too many failed sign-in attempts from this address; wait a minute and try again")
			}
			tok, err := s.vault.Authenticate(secret)
			switch {
			case errors.Is(err, vault.ErrTokenExpired):
				s.metrics.authFailures.WithLabelValues("expired").Inc()
				return newError(http.StatusUnauthorized, "token_expired", "this token has expired; ask the vault's admin for a new one")
			case errors.Is(err, vault.ErrTokenInvalid):
				s.metrics.authFailures.WithLabelValues("invalid").Inc()
				return newError(http.StatusUnauthorized, "invalid_token", "this token is not valid")
			case err != nil:
				s.failures.giveBack(addr)
				return internal(err)
			}
			s.failures.giveBack(addr) // a valid token costs nothing
			allowed := false
			for _, k := range kinds {
				allowed = allowed || k == tok.Kind
			}
			if !allowed {
				return newError(http.StatusForbidden, "wrong_token_type", "a %s token cannot do this; it needs a %s token", tok.Kind, strings.Join(kinds, " or "))
			}
			c.Set(principalKey, tok)
			return next(c)
		}
	}
}
