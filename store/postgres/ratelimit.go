package postgres

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Limiter is a token bucket per client address that every replica on the
// database shares: the web UI's sign-in and enrolment limit
// (web.Config.AttemptLimiter), so N replicas behind a load balancer
// allow an address what one would, not N times as much.
//
// A bucket is a row of the UNLOGGED table rate_buckets, and an attempt is
// one upsert that refills the bucket by the time passed (the database's
// clock, the same for every replica) and spends one if one is whole: two
// replicas racing for an address's last attempt are serialised by its
// row. UNLOGGED keeps these writes out of the WAL; a crash of the
// database empties the table, which only gives every address its full
// budget again.
//
// Rows of addresses idle for a minute are full buckets: the first attempt
// a minute or more after the last sweep deletes them, so the table holds
// the addresses seen in about the last two minutes (client addresses are
// personal data: docs/architecture.md lists them).
type Limiter struct {
	s         *Store
	scope     string
	perMin    float64
	lastSweep atomic.Int64 // unix seconds
}

const sweepEvery = 60 // seconds

// Limiter returns a shared limiter of perMin attempts a minute per
// address (a burst of perMin, refilled at perMin a minute, as
// internal/ratelimit's), for one scope (such as "web-signin"); scopes
// share nothing.
func (s *Store) Limiter(scope string, perMin int) (*Limiter, error) {
	if perMin < 1 || scope == "" {
		return nil, errors.New("a shared limit needs a scope and at least one attempt a minute")
	}
	return &Limiter{s: s, scope: scope, perMin: float64(perMin)}, nil
}

// Take spends one of addr's attempts: false when none is left (then it
// spends nothing). An error (the database unreachable) is the caller's to
// answer: the web UI refuses the attempt.
func (l *Limiter) Take(ctx context.Context, addr string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := time.Now().Unix()
	if last := l.lastSweep.Load(); now-last >= sweepEvery && l.lastSweep.CompareAndSwap(last, now) {
		if _, err := l.s.pool.Exec(ctx, "DELETE FROM rate_buckets WHERE scope = $1 AND last < extract(epoch FROM clock_timestamp()) - 60", l.scope); err != nil {
			return false, err
		}
	}
	// refill: the bucket's tokens brought up to now, at most perMin.
	var ok bool
	err := l.s.pool.QueryRow(ctx, `
INSERT INTO rate_buckets AS b (scope, addr, tokens, last, ok)
	VALUES ($1, $2, $3 - 1, extract(epoch FROM clock_timestamp()), true)
ON CONFLICT (scope, addr) DO UPDATE SET
	tokens = least($3, b.tokens + greatest(0, EXCLUDED.last - b.last) / 60 * $3)
		- CASE WHEN least($3, b.tokens + greatest(0, EXCLUDED.last - b.last) / 60 * $3) >= 1 THEN 1 ELSE 0 END,
	ok = least($3, b.tokens + greatest(0, EXCLUDED.last - b.last) / 60 * $3) >= 1,
	last = greatest(b.last, EXCLUDED.last)
RETURNING ok`, l.scope, addr, l.perMin).Scan(&ok)
	if err != nil {
		return false, err
	}
	return ok, nil
}
