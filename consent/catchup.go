package consent

import (
	"context"
	"fmt"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// Replicas. Decisions read the in-memory grant index, which a ledger
// updates from its own appends (finish). On a store that other processes
// append to as well (ledgerstore.Shared: N vault replicas on one
// PostgreSQL database), the index would miss their grants and revokes, so
// it is tagged with the log size it has applied (grantIndex.applied), and
// it catches up:
//
//   - before a decision or a listing (index): one read of the store's
//     committed size; if it is larger, the entries in between are read,
//     opened and applied, in ledger order, to the in-memory index;
//   - inside the append transaction, after the store's cross-process lock
//     and before any check or entry (updateCaughtUp): the same, from the
//     transaction, so a check such as an export's consent decision sees
//     every entry before its own.
//
// So once a revoke's Append has returned on any replica, a decision on any
// other begins by reading a size that includes it, and denies. The
// entries are replayed with the rules Verify and Rebuild use (nextRow),
// from the log itself; an entry that does not apply marks the index
// untrusted, as a digest mismatch does. A catch-up that cannot read the
// store fails the decision closed (index_untrusted) and is tried again on
// the next one.
//
// On a store only this process writes (bbolt, whose file is locked), the
// index always knows the size, and nothing extra is read.

// catchUpChunk bounds the entries read and held at once by a catch-up.
const catchUpChunk = 4096

// index returns the grant index, first brought up to the store's
// committed size when other processes may append to it.
func (l *Ledger) index() (*grantIndex, error) {
	x := l.grants.Load()
	if l.shared == nil || l.locked.Load() {
		// (While this process holds the append lock, caught up, the
		// committed size cannot move past what the index has applied;
		// and a check inside the append, such as an export's decision,
		// must not ask the store's pool for a second connection while
		// its transaction holds one and the lock: with the pool taken
		// by transactions waiting for that lock, it would wait forever.)
		return x, nil
	}
	n, err := l.shared.Head(context.Background())
	if err != nil {
		return nil, fmt.Errorf("reading the ledger's size: %w", err)
	}
	x.mu.RLock()
	behind := x.applied < n
	x.mu.RUnlock()
	if !behind {
		return x, nil
	}
	for {
		x.mu.RLock()
		from := x.applied
		x.mu.RUnlock()
		if from >= n {
			return x, nil
		}
		to := min(n, from+catchUpChunk)
		var es []Entry
		err := l.view(func(tx ledgerstore.ReadTx) error {
			var err error
			es, err = l.readEntries(tx, from, to)
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := l.apply(x, from, es); err != nil {
			return nil, err
		}
	}
}

// updateCaughtUp runs fn in a write transaction after bringing the index
// up to the log's size as the transaction sees it (under the store's lock,
// so nothing can be appended in between).
func (l *Ledger) updateCaughtUp(fn func(tx ledgerstore.WriteTx) error) error {
	if l.shared == nil {
		return l.update(fn)
	}
	return l.update(func(tx ledgerstore.WriteTx) error {
		n, err := tx.Size()
		if err != nil {
			return err
		}
		x := l.grants.Load()
		for {
			x.mu.RLock()
			from := x.applied
			x.mu.RUnlock()
			if from >= n {
				break
			}
			to := min(n, from+catchUpChunk)
			es, err := l.readEntries(tx, from, to)
			if err != nil {
				return err
			}
			if err := l.apply(x, from, es); err != nil {
				return err
			}
		}
		l.locked.Store(true)
		defer l.locked.Store(false)
		return fn(tx)
	})
}

// readEntries opens the committed entries [from, to), in ledger order.
func (l *Ledger) readEntries(tx ledgerstore.ReadTx, from, to int64) ([]Entry, error) {
	es := make([]Entry, to-from)
	next := to - 1
	var ferr error
	err := tx.EntriesDesc(to, func(i int64, sealed []byte) bool {
		if i < from {
			return false
		}
		if i != next {
			ferr = fmt.Errorf("ledger entry %d is missing", next)
			return false
		}
		raw, err := l.sealer.Decrypt(sealed, entryAD(i))
		if err != nil {
			ferr = fmt.Errorf("ledger entry %d does not decrypt", i)
			return false
		}
		if es[i-from], err = Parse(raw); err != nil {
			ferr = fmt.Errorf("ledger entry %d: %v", i, err)
			return false
		}
		next--
		return next >= from
	})
	if err == nil {
		err = ferr
	}
	if err == nil && next >= from {
		err = fmt.Errorf("ledger entry %d is missing", next)
	}
	return es, err
}

// apply applies es, the entries from index from on, to x, unless x has
// moved past from meanwhile (another catch-up or this process's own commit
// applied them first); an entry that does not apply marks the index
// untrusted.
func (l *Ledger) apply(x *grantIndex, from int64, es []Entry) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.applied != from {
		return nil // the caller's loop looks again
	}
	for k := range es {
		i, e := from+int64(k), &es[k]
		id := rowIDAt(e, i)
		switch {
		case id == "":
			continue
		case e.Kind == KindAccessStart:
			x.putAccess(e.Patient, i)
			continue
		case e.Kind == KindAccessEnd:
			continue // changes the stored row only; the index lists starts
		}
		var prev indexRow
		if isKeyRow(id) {
			prev.Key = x.keys[id]
		} else {
			prev.Grant = x.byID[id]
		}
		row, err := nextRow(prev, i, e)
		if err != nil {
			ierr := fmt.Errorf("ledger entry %d, appended elsewhere, does not apply to the grant index: %v; run vault ledger verify", i, err)
			l.indexBad.Store(&ierr)
			return ierr
		}
		x.putRow(row)
	}
	x.applied = from + int64(len(es))
	return nil
}
