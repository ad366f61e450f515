package api

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

const principalKey = "jhvault.principal"

// principal returns the authenticated token of the request.
func principal(c echo.Context) vault.Token {
	t, _ := c.Get(principalKey).(vault.Token)
	return t
}

// failureLimiter bounds failed authentications per client address.
type failureLimiter struct {
	mu      sync.Mutex
	perMin  int
	clients map[string]*rate.Limiter
}

const maxTrackedClients = 10000

func newFailureLimiter(perMin int) *failureLimiter {
	return &failureLimiter{perMin: perMin, clients: map[string]*rate.Limiter{}}
}

func (f *failureLimiter) limiter(addr string) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.clients[addr]
	if l == nil {
		if len(f.clients) >= maxTrackedClients {
			// Forget full buckets first; they carry no state worth keeping.
			for k, v := range f.clients {
				if v.Tokens() >= float64(f.perMin) {
					delete(f.clients, k)
				}
			}
			if len(f.clients) >= maxTrackedClients {
				f.clients = map[string]*rate.Limiter{}
			}
		}
		l = rate.NewLimiter(rate.Every(time.Minute/time.Duration(f.perMin)), f.perMin)
		f.clients[addr] = l
	}
	return l
}

// blocked reports whether addr has used up its failures.
func (f *failureLimiter) blocked(addr string) bool { return f.limiter(addr).Tokens() < 1 }

func (f *failureLimiter) fail(addr string) { f.limiter(addr).Allow() }

// requireToken authenticates a bearer token and checks its kind.
func (s *Server) requireToken(kinds ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			addr := c.RealIP()
			if s.failures.blocked(addr) {
				s.metrics.authFailures.WithLabelValues("rate_limited").Inc()
				return newError(http.StatusTooManyRequests, "too_many_auth_failures", "too many failed sign-in attempts from this address; wait a minute and try again")
			}
			h := c.Request().Header.Get("Authorization")
			secret, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || secret == "" {
				return newError(http.StatusUnauthorized, "missing_token", "send an API token as 'Authorization: Bearer TOKEN'")
			}
			tok, err := s.vault.Authenticate(strings.TrimSpace(secret))
			switch {
			case errors.Is(err, vault.ErrTokenExpired):
				s.failures.fail(addr)
				s.metrics.authFailures.WithLabelValues("expired").Inc()
				return newError(http.StatusUnauthorized, "token_expired", "this token has expired; ask the vault's admin for a new one")
			case errors.Is(err, vault.ErrTokenInvalid):
				s.failures.fail(addr)
				s.metrics.authFailures.WithLabelValues("invalid").Inc()
				return newError(http.StatusUnauthorized, "invalid_token", "this token is not valid")
			case err != nil:
				return internal(err)
			}
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
