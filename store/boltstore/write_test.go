package boltstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// answer, and every other member commits.
func TestGroupMemberFailures(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	refused := errors.New("refused by its own check")

	h := holdWriter(t, s)
	var (
		goodN                               int
		goodErr, unknownErr, failErr, okErr error
		panicked                            any
	)
	// Queued one at a time, so the group's order is known: the failing
	// and panicking writes come after members that wrote, and the good
	// members after them must be retried alone.
	h.go_(func() {
		_, unknownErr = s.Insert(ctx, "pt_unknown", []vault.Record{{Schema: "s", Time: 1, Value: []byte("v")}})
	})
	h.queued(1)
	h.go_(func() {
		okErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { return tx.PutMeta("ok", []byte("1")) })
	})
	h.queued(2)
	h.go_(func() {
		failErr = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error {
			if err := tx.PutMeta("failed", []byte("1")); err != nil {
				return err
			}
			return refused
		})
	})
	h.queued(3)
	h.go_(func() {
		defer func() { panicked = recover() }()
		_ = s.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error { panic("boom") })
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
	if panicked != "boom" {
		t.Errorf("panicking ledger write: recovered %v in its caller, want boom", panicked)
	}
	if goodErr != nil || goodN != 1 {
		t.Errorf("good insert: %d, %v", goodN, goodErr)
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
