package api

import (
	"net/http"

	"github.com/jupyterhealth/vault/internal/ratelimit"
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
)

// quota charges one request to the authenticated token's bucket in q
// (requireToken runs first), answering 429 ledger_quota with Retry-After
// when it is empty. Every request counts, whatever its outcome.
func quota(q *ratelimit.Limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := q.Allow(principal(c).ID); !ok {
				c.Response().Header().Set("Retry-After", ratelimit.RetryAfter(wait))
				return newError(http.StatusTooManyRequests, "ledger_quota", "this token has made too many ledger changes or exports for now; retry after the number of seconds in Retry-After")
			}
			return next(c)
		}
	}
}
