package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Insert, and by every write that shares the
// insert queue (the ledger's, TouchToken), after Close.
var ErrClosed = vault.ErrClosed

// writeReq is one caller's part of a group transaction: an insert of a
// patient's records, or (fn set) another write that shares the group's
// commit, such as the ledger's appends.
type writeReq struct {
	patient string
	recs    []vault.Record
	fn      func(*bolt.Tx) error

	n        int
	err      error
	panicked any  // what fn panicked with, raised again in its caller
	final    bool // err (or panicked) stands: not retried alone
	done     chan struct{}
}

// Insert implements vault.Backend. Concurrent calls are merged into one
// transaction by the writer goroutine (group commit); a caller's records
// commit or fail together.
func (s *Store) Insert(ctx context.Context, patientID string, recs []vault.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if s.opts.ReadOnly {
		return 0, errors.New("the store is read-only")
	}
	// A malformed call is refused before it is queued, whatever the
	// store holds (a missing patient included), as PostgreSQL's is.
	for i, r := range recs {
		if r.Schema == "" || len(r.Value) == 0 {
			return 0, fmt.Errorf("record %d has no schema or no value", i)
		}
	}
	req := &writeReq{patient: patientID, recs: recs}
	if err := s.queue(ctx, req); err != nil {
		return 0, err
	}
	return req.n, req.err
}

// write runs fn in the writer goroutine's next group transaction, beside
// the inserts queued with it: one commit for all of them, where fn's own
// transaction would take bbolt's single writer lock and a commit of its
// own, and the inserts would wait for both. fn may run more than once
// (again, when the group's transaction fails for another member), so it
// must do the same thing from the start each time and keep nothing
// outside the transaction until write has returned nil, as
// ledgerstore.Store asks of a ledger write. fn must not end its goroutine
// (runtime.Goexit, t.FailNow): the group is then answered with an error.
func (s *Store) write(ctx context.Context, fn func(*bolt.Tx) error) error {
	if s.opts.ReadOnly {
		return s.update(ctx, fn) // bbolt's own refusal
	}
	req := &writeReq{fn: fn}
	if err := s.queue(ctx, req); err != nil {
		return err
	}
	if req.panicked != nil {
		panic(req.panicked)
	}
	return req.err
}

// queue hands req to the writer goroutine and waits until it is carried
// out. It fails only when req was never queued: ctx done first, or the
// store closed.
func (s *Store) queue(ctx context.Context, req *writeReq) error {
	// Checked first: the select below picks at random when both the
	// queue and ctx.Done are ready.
	if err := ctx.Err(); err != nil {
		return err
	}
	req.done = make(chan struct{})
	// Enqueue under the read side of closeMu: Close takes the write side
	// before it stops the writer, so a queued request is always served.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.writes <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the writer decides; wait for it so the caller never
	// reports a failure for writes that were in fact stored.
	<-req.done
	return nil
}

func (s *Store) writer() {
	defer s.wg.Done()
	for {
		select {
		case req := <-s.writes:
			s.commitGuarded(s.gather(req))
		case <-s.stop:
			for {
				select {
				case req := <-s.writes:
					s.commitGuarded(s.gather(req))
				default:
					return
				}
			}
		}
	}
}

// gather takes whatever else is already queued, up to MaxGroupRecords
// (a write other than an insert counts as one record).
func (s *Store) gather(first *writeReq) []*writeReq {
	group := []*writeReq{first}
	n := max(len(first.recs), 1)
	for n < s.opts.MaxGroupRecords {
		select {
		case r := <-s.writes:
			group = append(group, r)
			n += max(len(r.recs), 1)
		default:
			return group
		}
	}
	return group
}

// errWriterExited answers a group whose member's fn ended the writer
// goroutine (runtime.Goexit, which no recover stops).
var errWriterExited = errors.New("a write in the group ended the store's writer")

// commitGuarded is commit in a writer goroutine that survives a member
// ending it: the group is answered, and a new writer takes the queue.
func (s *Store) commitGuarded(group []*writeReq) {
	returned := false
	defer func() {
		if returned {
			return
		}
		for _, r := range group {
			select {
			case <-r.done:
			default:
				r.err = errWriterExited
				r.answer()
			}
		}
		s.wg.Add(1)
		go s.writer()
	}()
	s.commit(group)
	returned = true
}

var (
	// errMemberFailed aborts a group's transaction when one of its
	// members panicked; that member's panic is raised again in its caller.
	errMemberFailed = errors.New("a write in the group panicked")
	// errNothingWritten rolls back a group whose every member was refused
	// before it wrote: there is nothing to commit.
	errNothingWritten = errors.New("nothing to commit")
)

// run carries out r in tx, and reports whether it may have written. An
// insert refused before it writes anything (its patient unknown) is
// answered without failing the group.
func (r *writeReq) run(tx *bolt.Tx) (wrote bool, err error) {
	r.n, r.err, r.final = 0, nil, false
	if r.fn == nil {
		if err := insertCheck(tx, r.patient); err != nil {
			r.err, r.final = err, true
			return false, nil
		}
		r.n, err = insertTx(tx, r.patient, r.recs)
		return true, err
	}
	defer func() {
		if p := recover(); p != nil {
			r.panicked, r.final = p, true
			err = errMemberFailed
		}
	}()
	return true, r.fn(tx)
}

// commit runs in the writer goroutine. Its transactions take no caller's
// context: a queued request is always carried out, so its caller never
// hears of a failure for writes that were stored.
//
// As bbolt's Batch does, a member that fails is taken out of the group
// and the rest run again together: the first member's failure is its own
// (it ran on the committed state, as alone), and a later member's is
// tried again alone, since it may have come from the writes before it
// in the rolled-back transaction. A member that panicked is not run again.
func (s *Store) commit(group []*writeReq) {
	ctx := context.Background()
	for len(group) > 0 {
		failed := -1
		err := s.update(ctx, func(tx *bolt.Tx) error {
			wrote := false
			for i, r := range group {
				w, err := r.run(tx)
				if err != nil {
					failed = i
					return err
				}
				wrote = wrote || w
			}
			if !wrote {
				return errNothingWritten
			}
			return nil
		})
		if errors.Is(err, errNothingWritten) {
			err = nil
		}
		if failed < 0 {
			if err != nil && len(group) > 1 {
				// The commit failed (a full disk): each member alone
				// gets its own answer.
				for _, r := range group {
					s.alone(r)
				}
				return
			}
			for _, r := range group {
				if err != nil && !r.final {
					r.err = err
				}
				r.answer()
			}
			return
		}
		r := group[failed]
		switch {
		case r.final: // it panicked
		case failed == 0:
			r.err = err
		default:
			s.alone(r)
			group = slices.Delete(group, failed, failed+1)
			continue
		}
		r.answer()
		group = slices.Delete(group, failed, failed+1)
	}
}

// alone runs r in a transaction of its own and answers it.
func (s *Store) alone(r *writeReq) {
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		wrote, err := r.run(tx)
		if err == nil && !wrote {
			return errNothingWritten
		}
		return err
	})
	if err != nil && !errors.Is(err, errNothingWritten) && !r.final {
		r.err = err
	}
	r.answer()
}

// answer wakes r's caller. A failed insert stored nothing, whatever an
// attempt rolled back had marked.
func (r *writeReq) answer() {
	if r.err != nil || r.panicked != nil {
		r.n = 0
		for i := range r.recs {
			r.recs[i].Stored = false
		}
	}
	close(r.done)
}

// insertCheck refuses an insert before it writes anything. Checked in the
// same transaction as the puts, so an insert racing a DeletePatient can
// never bring the patient's records back.
func insertCheck(tx *bolt.Tx, patient string) error {
	if patient == "" {
		return errors.New("empty patient id")
	}
	if tx.Bucket(bPKeys).Get([]byte(patient)) == nil {
		return vault.ErrNotFound
	}
	return nil
}

// insertTx stores recs, once insertCheck has passed in tx.
func insertTx(tx *bolt.Tx, patient string, recs []vault.Record) (int, error) {
	b, err := tx.Bucket(bReadings).CreateBucketIfNotExists([]byte(patient))
	if err != nil {
		return 0, fmt.Errorf("patient bucket: %v", err)
	}
	// Readings mostly arrive in time order, so pages split nearly full.
	b.FillPercent = 0.95
	size := 0
	for i := range recs {
		size += len(recs[i].Schema) + 25
	}
	// bbolt keeps a reference to each key until commit: one slab per call.
	slab := make([]byte, 0, size)
	n := 0
	for i := range recs {
		recs[i].Stored = false
	}
	for i := range recs {
		r := &recs[i]
		if r.Schema == "" || len(r.Value) == 0 {
			return 0, fmt.Errorf("record %d has no schema or no value", i)
		}
		start := len(slab)
		slab = recordKey(slab, r.Schema, r.Time, r.Tag)
		key := slab[start:len(slab):len(slab)]
		if b.Get(key) != nil {
			continue
		}
		if err := b.Put(key, r.Value); err != nil {
			return 0, err
		}
		r.Stored = true
		n++
	}
	return n, nil
}

// SwapRecords implements vault.Backend. It writes outside the insert
// queue, in its own transaction: bbolt runs one writer at a time, so it
// waits its turn between group commits.
func (s *Store) SwapRecords(ctx context.Context, patientID string, swaps []vault.RecordSwap) error {
	if len(swaps) == 0 {
		return nil
	}
	if s.opts.ReadOnly {
		return errors.New("the store is read-only")
	}
	for i := range swaps {
		swaps[i].Swapped = false
		if swaps[i].Schema == "" || len(swaps[i].New) == 0 {
			return fmt.Errorf("swap %d has no schema or no new value", i)
		}
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bPKeys).Get([]byte(patientID)) == nil {
			return vault.ErrNotFound
		}
		b := tx.Bucket(bReadings).Bucket([]byte(patientID))
		if b == nil {
			return nil
		}
		b.FillPercent = 0.95
		for i := range swaps {
			sw := &swaps[i]
			key := recordKey(nil, sw.Schema, sw.Time, sw.Tag)
			if v := b.Get(key); v == nil || !bytes.Equal(v, sw.Old) {
				continue
			}
			if err := b.Put(key, sw.New); err != nil {
				return err
			}
			sw.Swapped = true
		}
		return nil
	})
	if err != nil {
		for i := range swaps {
			swaps[i].Swapped = false
		}
	}
	return err
}
