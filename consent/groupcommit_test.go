package consent

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/tlog"
)

// countingStore counts the transactions a ledger asks of its store, and
// can hold the next View until released.
type countingStore struct {
	Store
	updates, views atomic.Int64
}

func (s *countingStore) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

func (s *countingStore) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// countedLedger opens a second ledger on the test env's store, through a
// countingStore.
func countedLedger(t *testing.T, e *testEnv) (*Ledger, *countingStore) {
	t.Helper()
	cs := &countingStore{Store: e.store.Ledger()}
	l, err := Open(cs, e.master, Options{Origin: "vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	return l, cs
}

// waitQueued waits until n appends are queued behind the commit that runs.
func waitQueued(l *Ledger, n int) {
	for {
		l.qmu.Lock()
		q := len(l.queue)
		l.qmu.Unlock()
		if q >= n {
			return
		}
		runtime.Gosched()
	}
}

var errNoConsent = errors.New("no consent")

// consentCheck is an export's check: the grant still permits the read.
func consentCheck(l *Ledger, clinician string) func(int64) error {
	return func(int64) error {
		if d := l.Decide(Request{Clinician: clinician, Patient: "pt_a", Schema: "omh:blood-glucose:4.0", Now: t0}); !d.Permit {
			return errNoConsent
		}
		return nil
	}
}

// TestCheckedAppendsShareCommits: checked access-starts that queue behind
// a commit share one transaction; a revoke queued before them commits
// first and on its own, so every check behind it sees it and refuses; a
// refused check leaves its batchmates committed.
func TestCheckedAppendsShareCommits(t *testing.T) {
	e := newTestEnv(t)
	l, cs := countedLedger(t, e)
	g := grantFor("gr_1", "pt_a", "cl_b", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry)
	gi, err := l.Append(g)
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	// hold runs a checked append whose check waits until want appends
	// are queued behind it, so they form one batch, deterministically.
	hold := func(want int, queue func()) {
		t.Helper()
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			_, err := l.AppendChecked(func(int64) error { close(started); <-release; return nil }, accessStart("pt_a", "cl_x"))
			done <- err
		}()
		<-started // it leads a commit, and the queue is empty
		queue()
		waitQueued(l, want)
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// 1. n checked access-starts, one of them refused, in one batch.
	type result struct {
		at  int64
		err error
	}
	results := make(chan result, n)
	before := cs.updates.Load()
	hold(n, func() {
		for i := range n {
			check := consentCheck(l, "cl_b")
			if i == n/2 {
				check = func(int64) error { return errNoConsent }
			}
			go func() {
				at, err := l.AppendChecked(check, accessStart("pt_a", "cl_b"))
				results <- result{at, err}
			}()
		}
	})
	refused := 0
	for range n {
		r := <-results
		switch {
		case errors.Is(r.err, errNoConsent):
			refused++
		case r.err != nil:
			t.Fatal(r.err)
		}
	}
	if refused != 1 {
		t.Fatalf("%d refused, want 1", refused)
	}
	if got := cs.updates.Load() - before; got != 2 {
		t.Fatalf("%d transactions for the held append and %d checked ones behind it, want 2", got, n)
	}

	// 2. A revoke queued first, then n checked access-starts: the revoke
	// commits before any check runs, and every check refuses.
	size := e.sizeOf(t, l)
	revoked := make(chan error, 1)
	hold(n+1, func() {
		go func() {
			_, err := l.Append(NewRevoke("pt_a", GrantState{ID: "gr_1", Index: gi, Patient: "pt_a", Clinician: "cl_b"}, t0))
			revoked <- err
		}()
		waitQueued(l, 1)
		for range n {
			go func() {
				at, err := l.AppendChecked(consentCheck(l, "cl_b"), accessStart("pt_a", "cl_b"))
				results <- result{at, err}
			}()
		}
	})
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
	for range n {
		if r := <-results; !errors.Is(r.err, errNoConsent) {
			t.Fatalf("an access-start queued behind a revoke: %d, %v", r.at, r.err)
		}
	}
	if got := e.sizeOf(t, l); got != size+2 {
		t.Fatalf("size %d, want %d (the held append and the revoke)", got, size+2)
	}
	if r, err := l.Verify(nil); err != nil {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

func (e *testEnv) sizeOf(t *testing.T, l *Ledger) int64 {
	t.Helper()
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCheckedAppendsRaceRevoke: many goroutines append checked
// access-starts while a revoke comes in, for many rounds: no access-start
// the check permitted lands after the revoke, and every append after the
// revoke returned is refused.
func TestCheckedAppendsRaceRevoke(t *testing.T) {
	e := newTestEnv(t)
	const rounds, workers = 20, 16
	for round := range rounds {
		clin := fmt.Sprintf("cl_%d", round)
		g := grantFor(fmt.Sprintf("gr_%d", round), "pt_a", clin, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry)
		gi := e.append(t, g)
		var revokeAt atomic.Int64
		revokeAt.Store(-1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var permitted []int64
		for w := range workers {
			wg.Go(func() {
				for i := 0; ; i++ {
					after := revokeAt.Load() >= 0
					at, err := e.l.AppendChecked(consentCheck(e.l, clin), accessStart("pt_a", clin))
					switch {
					case errors.Is(err, errNoConsent):
						if after || i > 1000 {
							return
						}
					case err != nil:
						t.Error(err)
						return
					case after:
						t.Errorf("worker %d: an access-start at %d was permitted after the revoke had returned", w, at)
						return
					default:
						mu.Lock()
						permitted = append(permitted, at)
						mu.Unlock()
					}
				}
			})
		}
		at, err := e.l.Append(NewRevoke("pt_a", GrantState{ID: g.Grant.ID, Index: gi, Patient: "pt_a", Clinician: clin}, t0))
		if err != nil {
			t.Fatal(err)
		}
		revokeAt.Store(at)
		wg.Wait()
		for _, p := range permitted {
			if p > at {
				t.Fatalf("round %d: access-start %d permitted after the revoke at %d", round, p, at)
			}
		}
	}
	if r, err := e.l.Verify(nil); err != nil {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

// TestCheckpointCovering: a checkpoint covering an entry costs no write,
// one signing serves everyone who asks at once, each answer covers the
// asker's entry and proves it, and Run's schedule (SignIfDue) stores the
// newest.
func TestCheckpointCovering(t *testing.T) {
	e := newTestEnv(t)
	now := t0
	var nowMu sync.Mutex
	cs := &countingStore{Store: e.store.Ledger()}
	l, err := Open(cs, e.master, Options{Origin: "vault.example", Now: func() time.Time { nowMu.Lock(); defer nowMu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := l.Append(accessStart("pt_a", fmt.Sprintf("cl_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Many ask at once for the same size: one signing, no write.
	updates, views := cs.updates.Load(), cs.views.Load()
	var wg sync.WaitGroup
	cps := make([][]byte, 32)
	for i := range cps {
		wg.Go(func() {
			cp, size, err := l.CheckpointCovering(5)
			if err != nil || size != 5 {
				t.Errorf("checkpoint: size %d, %v", size, err)
			}
			cps[i] = cp
		})
	}
	wg.Wait()
	if u, v := cs.updates.Load()-updates, cs.views.Load()-views; u != 0 || v != 1 {
		t.Fatalf("32 asked for a checkpoint at once: %d write and %d read transactions, want 0 and 1 (one signing)", u, v)
	}
	for _, cp := range cps[1:] {
		if string(cp) != string(cps[0]) {
			t.Fatal("the askers got different checkpoints of one tree")
		}
	}
	// Appends and checkpoints at once: each covers its asker's entry and
	// proves it.
	for i := range 32 {
		wg.Go(func() {
			at, err := l.Append(accessStart("pt_a", fmt.Sprintf("cl_x%d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			cp, size, err := l.CheckpointCovering(at + 1)
			if err != nil {
				t.Error(err)
				return
			}
			c, err := OpenCheckpoint(cp, l.VerifierKey())
			if err != nil || c.Size != size || size <= at {
				t.Errorf("checkpoint of size %d (%v) for entry %d", c.Size, err, at)
				return
			}
			p, err := l.ProveInclusion(at, size)
			if err == nil {
				var leaf tlog.Hash
				if leaf, err = l.LeafHash(at); err == nil {
					err = tlog.CheckRecord(p, size, c.Hash, at, leaf)
				}
			}
			if err != nil {
				t.Errorf("entry %d in the checkpoint of size %d: %v", at, size, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Nothing stored yet but what was there; the schedule stores the
	// newest, and LatestCheckpoint showed it before.
	latest, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	nowMu.Lock()
	now = now.Add(SignInterval)
	nowMu.Unlock()
	if err := l.SignIfDue(); err != nil {
		t.Fatal(err)
	}
	r, err := l.Verify(nil)
	if err != nil || r.Latest.Size != 37 {
		t.Fatalf("verify after SignIfDue: latest stored %d, want 37 (%v)", r.Latest.Size, err)
	}
	c, err := OpenCheckpoint(latest, l.VerifierKey())
	if err != nil || c.Size > 37 {
		t.Fatalf("latest before storing: %d %v", c.Size, err)
	}
}
