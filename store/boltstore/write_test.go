package boltstore

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
	"github.com/jupyterhealth/vault/vault"
)

// groupHarness holds the writer goroutine inside a ledger write, so that
// what is queued meanwhile is carried out as one group once it is let go.
type groupHarness struct {
	t       *testing.T
	s       *Store
	release chan struct{}
	once    sync.Once
	held    chan error
	wg      sync.WaitGroup
}

func holdWriter(t *testing.T, s *Store) *groupHarness {
	t.Helper()
	h := &groupHarness{t: t, s: s, release: make(chan struct{}), held: make(chan error, 1)}
	entered := make(chan struct{})
	go func() {
		h.held <- s.Ledger().Update(context.Background(), func(tx ledgerstore.WriteTx) error {
			close(entered)
			<-h.release
			return tx.PutMeta("held", []byte("1"))
		})
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the holding write never ran")
	}
	return h
}

// queued waits until n requests wait in the writer's queue: they were
// handed to the writer rather than taking bbolt's lock on their own.
func (h *groupHarness) queued(n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.s.writes) < n {
		if time.Now().After(deadline) {
			h.once.Do(func() { close(h.release) }) // so the test's cleanup can close the store
			h.t.Fatalf("%d writes queued behind the holding write, want %d", len(h.s.writes), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *groupHarness) go_(fn func()) {
	h.wg.Add(1)
	go func() { defer h.wg.Done(); fn() }()
}

// letGo releases the holding write and waits for every write started
// with go_.
func (h *groupHarness) letGo() {
	h.t.Helper()
	h.once.Do(func() { close(h.release) })
	if err := <-h.held; err != nil {
		h.t.Fatalf("holding write: %v", err)
	}
	h.wg.Wait()
}

// TestLedgerWritesShareInsertCommits: a ledger write and the inserts queued
// with it commit in one transaction, and a token's last use too. Before,
// each ledger write and each touch took bbolt's writer lock and a commit
// of its own, and the inserts waited for them.
func TestLedgerWritesShareInsertCommits(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	must(t, s.PutToken(ctx, vault.TokenRow{ID: "tok", UserID: "pt_a"}))
	before, err := s.txID()
	must(t, err)

	h := holdWriter(t, s)
	var insertErr, ledgerErr, touchErr error
	var stored int
	h.go_(func() {
		stored, insertErr = s.Insert(ctx, "pt_a", []vault.Record{{Schema: "s", Time: 1, Value: []byte("v")}})
	})
	h.go_(func() {
		ledgerErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error {
			return tx.PutMeta("grouped", []byte("2"))
		})
	})
	h.go_(func() { touchErr = s.TouchToken(ctx, "tok", time.Unix(1700000000, 0)) })
	h.queued(3)
	h.letGo()
	must(t, insertErr)
	must(t, ledgerErr)
	must(t, touchErr)
	if stored != 1 {
		t.Fatalf("insert stored %d, want 1", stored)
	}
	after, err := s.txID()
	must(t, err)
	if commits := after - before; commits != 2 {
		t.Fatalf("%d commits, want 2: the holding write's, then one for the insert, the ledger write and the touch", commits)
	}
	if c, err := s.Count(ctx, "pt_a"); err != nil || c != 1 {
		t.Fatalf("Count = %d, %v", c, err)
	}
	must(t, s.Ledger().View(ctx, func(tx ledgerstore.ReadTx) error {
		for _, k := range []string{"held", "grouped"} {
			if v, err := tx.Meta(k); err != nil || v == nil {
				return fmt.Errorf("ledger meta %q = %q, %v", k, v, err)
			}
		}
		return nil
	}))
	if row, err := s.Token(ctx, "tok"); err != nil || !row.LastUsed.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("token after touch: %+v, %v", row, err)
	}
}

// TestGroupMemberFailures: in one group, an insert for an unknown patient,
// a ledger write that fails and one that panics each get their own
// answer, and the others commit together, in one commit: as with bbolt's
// Batch, a failing member is taken out and the rest run again as a group.
func TestGroupMemberFailures(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	refused := errors.New("refused by its own check")
	before, err := s.txID()
	must(t, err)

	h := holdWriter(t, s)
	var (
		goodN                               int
		goodErr, unknownErr, failErr, okErr error
		panicked                            any
		failRuns, panicRuns                 atomic.Int32
	)
	// Queued one at a time, so the group's order is known: the panicking
	// and the failing write each come after a member that wrote.
	h.go_(func() {
		okErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { return tx.PutMeta("ok", []byte("1")) })
	})
	h.queued(1)
	h.go_(func() {
		defer func() { panicked = recover() }()
		_ = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { panicRuns.Add(1); panic("boom") })
	})
	h.queued(2)
	h.go_(func() {
		_, unknownErr = s.Insert(ctx, "pt_unknown", []vault.Record{{Schema: "s", Time: 1, Value: []byte("v")}})
	})
	h.queued(3)
	h.go_(func() {
		failErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error {
			failRuns.Add(1)
			if err := tx.PutMeta("failed", []byte("1")); err != nil {
				return err
			}
			return refused
		})
	})
	h.queued(4)
	h.go_(func() {
		goodN, goodErr = s.Insert(ctx, "pt_a", []vault.Record{{Schema: "s", Time: 2, Value: []byte("v")}})
	})
	h.queued(5)
	h.letGo()

	if !errors.Is(unknownErr, vault.ErrNotFound) {
		t.Errorf("insert for an unknown patient: %v, want ErrNotFound", unknownErr)
	}
	if okErr != nil {
		t.Errorf("good ledger write: %v", okErr)
	}
	if !errors.Is(failErr, refused) {
		t.Errorf("failing ledger write: %v, want its own error", failErr)
	}
	if n := failRuns.Load(); n != 2 {
		t.Errorf("the failing write ran %d times, want 2: in the group, then alone", n)
	}
	if panicked != "boom" {
		t.Errorf("panicking ledger write: recovered %v in its caller, want boom", panicked)
	}
	if n := panicRuns.Load(); n != 1 {
		t.Errorf("the panicking write ran %d times, want 1", n)
	}
	if goodErr != nil || goodN != 1 {
		t.Errorf("good insert: %d, %v", goodN, goodErr)
	}
	after, err := s.txID()
	must(t, err)
	if commits := after - before; commits != 2 {
		t.Errorf("%d commits, want 2: the holding write's, then one for every member that succeeded", commits)
	}
	if c, err := s.Count(ctx, "pt_a"); err != nil || c != 1 {
		t.Errorf("Count(pt_a) = %d, %v", c, err)
	}
	must(t, s.Ledger().View(ctx, func(tx ledgerstore.ReadTx) error {
		for k, want := range map[string]bool{"held": true, "ok": true, "failed": false} {
			v, err := tx.Meta(k)
			if err != nil {
				return err
			}
			if (v != nil) != want {
				t.Errorf("ledger meta %q stored: %v, want %v", k, v != nil, want)
			}
		}
		return nil
	}))
}

// TestGroupFirstMemberFailure: the first member of a group ran on the
// committed state, as it would alone, so its failure is its answer and it
// is not run again; a group of inserts refused before they wrote
// commits nothing; a write that ends the writer goroutine is answered
// with an error and a new writer serves the queue.
func TestGroupFirstMemberFailure(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	refused := errors.New("refused")
	before, err := s.txID()
	must(t, err)

	h := holdWriter(t, s)
	var runs atomic.Int32
	var failErr, insErr error
	h.go_(func() {
		failErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { runs.Add(1); return refused })
	})
	h.queued(1)
	h.go_(func() { _, insErr = s.Insert(ctx, "pt_a", []vault.Record{{Schema: "s", Time: 1, Value: []byte("v")}}) })
	h.queued(2)
	h.letGo()
	if !errors.Is(failErr, refused) || runs.Load() != 1 {
		t.Errorf("first member: %v after %d runs, want its own error after 1", failErr, runs.Load())
	}
	must(t, insErr)
	after, err := s.txID()
	must(t, err)
	if after-before != 2 {
		t.Errorf("%d commits, want 2", after-before)
	}

	if _, err := s.Insert(ctx, "pt_unknown", []vault.Record{{Schema: "s", Time: 1, Value: []byte("v")}}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("insert for an unknown patient: %v", err)
	}
	if now, err := s.txID(); err != nil || now != after {
		t.Errorf("an insert refused before it wrote committed: txid %d -> %d (%v)", after, now, err)
	}

	err = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { runtime.Goexit(); return nil })
	if !errors.Is(err, errWriterExited) {
		t.Errorf("a write that ended the writer: %v", err)
	}
	if n, err := s.Insert(ctx, "pt_a", []vault.Record{{Schema: "s", Time: 2, Value: []byte("v")}}); err != nil || n != 1 {
		t.Errorf("insert after the writer was ended: %d, %v", n, err)
	}
}
