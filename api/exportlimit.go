package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/internal/ratelimit"
	"golang.org/x/time/rate"
)

// Export limits per grant: a burst of DefaultExportBurstPerGrant exports,
// then one every DefaultExportIntervalPerGrant. Each export writes the
// ledger (access-start, checkpoint, access-end) and shows in the patient's
// access log, so one grantee exporting in a tight loop could otherwise bury
// a real export under thousands of empty ones. They are documented in
// docs/api.md.
const (
	DefaultExportBurstPerGrant    = 30
	DefaultExportIntervalPerGrant = 10 * time.Second
)

// exportLimiter is a token bucket per grant id.
type exportLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	burst    int
	grants   map[string]*rate.Limiter
}

// maxTrackedGrants bounds the buckets kept; past it, buckets that are full
// again (their grant has not exported for a while) are forgotten.
const maxTrackedGrants = 10000

func newExportLimiter(burst int, interval time.Duration) *exportLimiter {
	if burst <= 0 {
		burst = DefaultExportBurstPerGrant
	}
	if interval <= 0 {
		interval = DefaultExportIntervalPerGrant
	}
	return &exportLimiter{interval: interval, burst: burst, grants: map[string]*rate.Limiter{}}
}

// take spends one export from every grant that covers it, or from none:
// if any of them has none left, it returns how long until all have one.
func (l *exportLimiter) take(grants []string, now time.Time) (retry time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.grants) >= maxTrackedGrants {
		for id, b := range l.grants {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.grants, id)
			}
		}
	}
	rs := make([]*rate.Reservation, 0, len(grants))
	for _, id := range grants {
		b := l.grants[id]
		if b == nil {
			b = rate.NewLimiter(rate.Every(l.interval), l.burst)
			l.grants[id] = b
		}
		r := b.ReserveN(now, 1)
		rs = append(rs, r)
		retry = max(retry, r.DelayFrom(now))
	}
	if retry == 0 {
		return 0, true
	}
	for _, r := range rs {
		r.CancelAt(now)
	}
	return retry, false
}

// limitExport is called before an export's access-start is appended: it
// refuses (429 export_rate_limited, with Retry-After) an export whose
// grants have exported too often.
func (s *Server) limitExport(h http.Header, grants []string, now time.Time) *Error {
	retry, ok := s.exportLimit.take(grants, now)
	if ok {
		return nil
	}
	secs := ratelimit.RetryAfter(retry)
	h.Set("Retry-After", secs)
	return newError(http.StatusTooManyRequests, "export_rate_limited",
		"this grant has been exported too often: at most %d exports at once, then one every %s; retry after %s seconds",
		s.exportLimit.burst, s.exportLimit.interval, secs)
}
