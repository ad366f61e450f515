package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Insert after Close.
var ErrClosed = vault.ErrClosed

type insertReq struct {
	patient string
	recs    []vault.Record
	n       int
	err     error
	done    chan struct{}
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
	// Checked first: the select below picks at random when both the
	// queue and ctx.Done are ready.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// A malformed call is refused before it is queued, whatever the
	// store holds (a missing patient included), as PostgreSQL's is.
	for i, r := range recs {
		if r.Schema == "" || len(r.Value) == 0 {
			return 0, fmt.Errorf("record %d has no schema or no value", i)
		}
	}
	req := &insertReq{patient: patientID, recs: recs, done: make(chan struct{})}
	// Enqueue under the read side of closeMu: Close takes the write side
	// before it stops the writer, so a queued request is always served.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case s.writes <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return 0, ctx.Err()
	}
	// Once queued, the writer decides; wait for it so the caller never
	// reports a failure for records that were in fact stored.
	<-req.done
	return req.n, req.err
}

func (s *Store) writer() {
	defer s.wg.Done()
	for {
		select {
		case req := <-s.writes:
			s.commit(s.gather(req))
		case <-s.stop:
			for {
				select {
				case req := <-s.writes:
					s.commit(s.gather(req))
				default:
					return
				}
			}
		}
	}
}

// gather takes whatever else is already queued, up to MaxGroupRecords.
func (s *Store) gather(first *insertReq) []*insertReq {
	group := []*insertReq{first}
	n := len(first.recs)
	for n < s.opts.MaxGroupRecords {
		select {
		case r := <-s.writes:
			group = append(group, r)
			n += len(r.recs)
		default:
			return group
		}
	}
	return group
}

// commit runs in the writer goroutine. Its transactions take no caller's
// context: a queued request is always carried out, so its caller never
// hears of a failure for records that were stored.
func (s *Store) commit(group []*insertReq) {
	ctx := context.Background()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		for _, r := range group {
			r.n = 0
			n, err := insertTx(tx, r.patient, r.recs)
			if err != nil {
				return err
			}
			r.n = n
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		// One caller's failure must not fail the others: retry alone.
		for _, r := range group {
			r.n = 0
			r.err = s.update(ctx, func(tx *bolt.Tx) error {
				n, err := insertTx(tx, r.patient, r.recs)
				r.n = n
				return err
			})
			if r.err != nil {
				r.n = 0
			}
			close(r.done)
		}
		return
	}
	for _, r := range group {
		if err != nil {
			r.n, r.err = 0, err
		}
		close(r.done)
	}
}

func insertTx(tx *bolt.Tx, patient string, recs []vault.Record) (int, error) {
	if patient == "" {
		return 0, errors.New("empty patient id")
	}
	// Checked in the same transaction as the puts, so an insert racing a
	// DeletePatient can never bring the patient's records back.
	if tx.Bucket(bPKeys).Get([]byte(patient)) == nil {
		return 0, vault.ErrNotFound
	}
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
