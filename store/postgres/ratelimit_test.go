package postgres

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSharedLimiter: two processes' limiters on one database share each
// address's budget: perMin attempts in all, whichever process takes them;
// other addresses and other scopes are apart; time refills a bucket (its
// last use moved back in the table); racing attempts never exceed the
// budget.
func TestSharedLimiter(t *testing.T) {
	a, dsn := openDSN(t)
	b, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const perMin = 5
	la, err := a.Limiter("web-auth", perMin)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Limiter("web-auth", perMin)
	if err != nil {
		t.Fatal(err)
	}
	take := func(l *Limiter, addr string) bool {
		t.Helper()
		ok, err := l.Take(t.Context(), addr)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range perMin {
		l := la
		if i%2 == 1 {
			l = lb
		}
		if !take(l, "192.0.2.1") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if take(la, "192.0.2.1") || take(lb, "192.0.2.1") {
		t.Fatalf("attempt %d allowed on a replica", perMin+1)
	}
	if !take(lb, "192.0.2.2") {
		t.Fatal("another address was refused")
	}
	other, err := a.Limiter("api", perMin)
	if err != nil {
		t.Fatal(err)
	}
	if !take(other, "192.0.2.1") {
		t.Fatal("another scope was refused")
	}
	// A refused attempt spent nothing: 12 s at 5 a minute is one attempt.
	if _, err := a.pool.Exec(t.Context(), "UPDATE rate_buckets SET last = last - 12.5 WHERE scope = 'web-auth' AND addr = '192.0.2.1'"); err != nil {
		t.Fatal(err)
	}
	if !take(lb, "192.0.2.1") {
		t.Fatal("a refilled attempt was refused")
	}
	if take(la, "192.0.2.1") {
		t.Fatal("two attempts came back after one's worth of time")
	}

	// Racing attempts from both processes: exactly perMin allowed.
	var allowed atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		wg.Go(func() {
			ok, err := l.Take(t.Context(), "198.51.100.7")
			if err != nil {
				errs <- err
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if allowed.Load() != perMin {
		t.Fatalf("%d racing attempts allowed, want %d", allowed.Load(), perMin)
	}

	// A sweep deletes the buckets idle for a minute (full anyway), and
	// only those.
	if _, err := a.pool.Exec(t.Context(), "UPDATE rate_buckets SET last = last - 120 WHERE addr = '192.0.2.2'"); err != nil {
		t.Fatal(err)
	}
	la.lastSweep.Store(0)
	take(la, "203.0.113.9")
	var addrs []string
	rows, err := a.pool.Query(t.Context(), "SELECT addr FROM rate_buckets WHERE scope = 'web-auth' ORDER BY addr")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(addrs, ",") != "192.0.2.1,198.51.100.7,203.0.113.9" {
		t.Fatalf("after a sweep the buckets are %v", addrs)
	}

	if _, err := a.Limiter("", 5); err == nil {
		t.Fatal("a limiter without a scope was made")
	}
	if _, err := a.Limiter("x", 0); err == nil {
		t.Fatal("a limiter of 0 a minute was made")
	}
}
