package api

import (
	"net/http"
	"time"

	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Per-token quotas on the calls that append to the consent ledger, so no
// token can flood it. Each is a token bucket per API token: a burst of N,
// then N a minute. An honest notebook never meets them. A revoke (of a
// grant or a token) is never limited. They are documented in docs/api.md.
const (
	// DefaultExportsPerMinute bounds exports per clinician token (each
	// appends its access entries): a burst of 60, then one a second.
	DefaultExportsPerMinute = 60
	// DefaultLedgerWritesPerMinute bounds grant creations and clinician
	// key additions and removals per token, together: a burst of 30, then
	// one every 2 seconds.
	DefaultLedgerWritesPerMinute = 30
	// UserQuotaFactor bounds all of one user's tokens together at this
	// many times the per-token quota, so minting fresh tokens buys at most
	// a few tokens' worth: without it each new token would bring a whole
	// bucket of its own.
	UserQuotaFactor = 4
)

// ledgerQuota is one quota (exports, or ledger writes) kept per token and,
// at UserQuotaFactor times, per user.
type ledgerQuota struct {
	token, user *ratelimit.Limiter
}

func newLedgerQuota(perMin int) ledgerQuota {
	return ledgerQuota{token: ratelimit.New(perMin, nil), user: ratelimit.New(perMin*UserQuotaFactor, nil)}
}

// allow charges one request to tok's bucket and its user's; a request
// refused by either is charged to neither.
func (q ledgerQuota) allow(tok vault.Token) (bool, time.Duration) {
	ok, wait := q.token.Allow(tok.ID)
	if !ok {
		return false, wait
	}
	if ok, wait = q.user.Allow(tok.UserID); !ok {
		q.token.GiveBack(tok.ID)
	}
	return ok, wait
}

// quota charges one request to the authenticated token's bucket in q and
// to its user's (requireToken runs first), answering 429 ledger_quota with
// Retry-After when either is empty. Every request counts, whatever its
// outcome.
func quota(q ledgerQuota) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := q.allow(principal(c)); !ok {
				c.Response().Header().Set("Retry-After", ratelimit.RetryAfter(wait))
				return newError(http.StatusTooManyRequests, "ledger_quota", "this token (or its user's tokens together) has made too many ledger changes or exports for now; retry after the number of seconds in Retry-After")
			}
			return next(c)
		}
	}
}
