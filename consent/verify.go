package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifyResult summarises a successful Verify.
type VerifyResult struct {
	Size        int64 // entries replayed
	Checkpoints int   // stored checkpoints verified
	// SignedGrants is how many grants carried a passkey assertion, each
	// checked against its passkey-registered entry.
	SignedGrants int
	// ConfirmedKeys is how many clinician keys carried a passkey
	// confirmation, each checked against its passkey-registered entry.
	ConfirmedKeys int
	Latest        Checkpoint
	Prior         *Checkpoint // the caller's checkpoint, when given
}

// TamperError names the first place Verify found wrong.
type TamperError struct {
	Index int64  // the entry (or tree size, for a checkpoint) at fault; -1 when none applies
	What  string // what is wrong there
}

func (e *TamperError) Error() string {
	if e.Index < 0 {
		return "ledger verification failed: " + e.What
	}
	return fmt.Sprintf("ledger verification failed at %d: %s", e.Index, e.What)
}

func tamper(i int64, format string, args ...any) error {
	return &TamperError{Index: i, What: fmt.Sprintf(format, args...)}
}

// Verify replays the whole log in one read transaction (one snapshot). It checks that
// every entry decrypts under its own index and is canonical, recomputes
// every stored Merkle hash from the entries, checks every stored
// checkpoint's signature and root against the replay (which also makes
// successive checkpoints consistent), and, given a checkpoint the caller
// kept from earlier, checks that the log still extends it: a rolled-back or
// forked database fails there.
func (l *Ledger) Verify(prior []byte) (VerifyResult, error) {
	var res VerifyResult
	err := l.view(func(tx ledgerstore.ReadTx) error {
		res = VerifyResult{}
		n, err := tx.Size()
		if err != nil {
			return err
		}
		res.Size = n
		computed := make([]tlog.Hash, 0, tlog.StoredHashCount(n))
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				if x < 0 || x >= int64(len(computed)) {
					return nil, fmt.Errorf("hash %d not yet computed", x)
				}
				out[i] = computed[x]
			}
			return out, nil
		})
		replayed := map[string]indexRow{}
		passkeys := map[int64]Entry{} // passkey-registered entries, by index
		removed := map[string]int64{} // credential id -> index of its passkey-removed entry
		for i := int64(0); i < n; i++ {
			raw, e, err := l.replayEntry(tx, i, replayed)
			if err != nil {
				return err
			}
			switch {
			case e.Kind == KindPasskey:
				passkeys[i] = e
			case e.Kind == KindPasskeyRemoved:
				removed[string(e.Passkey.CredentialID)] = i
			case e.Kind == KindGrant && e.Grant.Assertion != nil:
				// A signed grant is checked against its passkey's entry
				// earlier in this log, never against the server's tables.
				pk, ok := passkeys[e.Grant.Assertion.PasskeyIndex]
				if !ok {
					return tamper(i, "signed grant names entry %d, which is not a passkey-registered entry before it", e.Grant.Assertion.PasskeyIndex)
				}
				if r, ok := removed[string(pk.Passkey.CredentialID)]; ok {
					return tamper(i, "signed grant is signed by a passkey removed at entry %d", r)
				}
				if err := VerifyGrantAssertion(e, pk); err != nil {
					return tamper(i, "%v", err)
				}
				res.SignedGrants++
			case e.Kind == KindClinicianKeyAdd && e.Key.Assertion != nil:
				// A confirmed key likewise, against the clinician's
				// passkey entry.
				pk, ok := passkeys[e.Key.Assertion.PasskeyIndex]
				if !ok {
					return tamper(i, "confirmed key names entry %d, which is not a passkey-registered entry before it", e.Key.Assertion.PasskeyIndex)
				}
				if r, ok := removed[string(pk.Passkey.CredentialID)]; ok {
					return tamper(i, "confirmed key is confirmed by a passkey removed at entry %d", r)
				}
				if err := VerifyKeyConfirmation(e, pk); err != nil {
					return tamper(i, "%v", err)
				}
				res.ConfirmedKeys++
			}
			hs, err := tlog.StoredHashes(i, raw, reader)
			if err != nil {
				return tamper(i, "hashing: %v", err)
			}
			if err := checkStoredHashes(tx, i, tlog.StoredHashIndex(0, i), hs); err != nil {
				return err
			}
			computed = append(computed, hs...)
		}
		// Nothing may sit beside the log: every entry and hash is accounted
		// for.
		ext, err := tx.Extent()
		if err != nil {
			return err
		}
		if ext.LastEntry >= n {
			return tamper(ext.LastEntry, "entry beyond the log's recorded size %d", n)
		}
		if ext.LastHash >= int64(len(computed)) {
			return tamper(n, "stored hash beyond the log's recorded size")
		}
		if err := l.checkIndex(tx, replayed); err != nil {
			return err
		}
		if err := l.checkDigest(tx); err != nil {
			return tamper(-1, "%v", err)
		}
		if ext.Entries != n {
			return tamper(n, "the log stores %d entries for a size of %d", ext.Entries, n)
		}
		if ext.Hashes != tlog.StoredHashCount(n) {
			return tamper(n, "the log stores %d hashes for %d entries, which make %d", ext.Hashes, n, tlog.StoredHashCount(n))
		}
		if err := tx.MetaKeys(func(k string) error {
			switch k {
			case metaSigningKey, metaVerifierKey, metaDigestKey, metaDigest:
				return nil
			}
			return tamper(-1, "unknown key %q in the ledger's metadata", k)
		}); err != nil {
			return err
		}
		treeHash := func(size int64) (tlog.Hash, error) { return tlog.TreeHash(size, reader) }
		if err := tx.Checkpoints(func(size int64, v []byte) error {
			cp, err := OpenCheckpoint(v, l.vkey)
			if err != nil {
				return tamper(size, "checkpoint: %v", err)
			}
			if cp.Size != size {
				return tamper(size, "checkpoint is stored under the wrong size %d", cp.Size)
			}
			if size > n {
				return tamper(size, "checkpoint covers %d entries but the log has %d (entries deleted or rolled back)", size, n)
			}
			h, err := treeHash(size)
			if err != nil {
				return tamper(size, "checkpoint: %v", err)
			}
			if h != cp.Hash {
				return tamper(size, "checkpoint root does not match the entries (the log was rewritten)")
			}
			res.Checkpoints++
			res.Latest = cp
			return nil
		}); err != nil {
			return err
		}
		if prior != nil {
			cp, err := OpenCheckpoint(prior, l.vkey)
			if err != nil {
				return tamper(-1, "the given checkpoint: %v", err)
			}
			if cp.Size > n {
				return tamper(cp.Size, "the given checkpoint covers %d entries but the log has only %d: the database was rolled back or truncated", cp.Size, n)
			}
			h, err := treeHash(cp.Size)
			if err != nil {
				return err
			}
			if h != cp.Hash {
				return tamper(cp.Size, "the log does not extend the given checkpoint: it was rewritten or forked")
			}
			res.Prior = &cp
		}
		return nil
	})
	return res, err
}

// checkStoredHashes compares the stored hashes from first with hs, the
// hashes that entry i adds, recomputed.
func checkStoredHashes(tx ledgerstore.ReadTx, i, first int64, hs []tlog.Hash) error {
	idx := make([]int64, len(hs))
	for j := range idx {
		idx[j] = first + int64(j)
	}
	stored, err := tx.ReadHashes(idx)
	if errors.Is(err, ledgerstore.ErrMissing) {
		// Name the first one missing.
		for _, x := range idx {
			if _, err := tx.ReadHashes([]int64{x}); err != nil {
				return tamper(i, "stored Merkle hash %d does not match the entries: %v", x, err)
			}
		}
	}
	if err != nil {
		return err
	}
	for j := range hs {
		if stored[j] != hs[j] {
			return tamper(i, "stored Merkle hash %d does not match the entries", idx[j])
		}
	}
	return nil
}

// checkIndex compares the stored index (grants and keys) with the replay.
func (l *Ledger) checkIndex(tx ledgerstore.ReadTx, replayed map[string]indexRow) error {
	stored := 0
	err := tx.IndexRows(func(id string, sealed []byte) error {
		stored++
		row, err := l.openRow(id, sealed)
		if err != nil {
			return tamper(-1, "grant index: %v", err)
		}
		want, ok := replayed[id]
		if !ok {
			return tamper(-1, "grant index holds %s, which the log never made", id)
		}
		a, _ := json.Marshal(row.value())
		b, _ := json.Marshal(want.value())
		if !bytes.Equal(a, b) {
			at := int64(-1)
			switch {
			case want.Grant != nil:
				at = want.Grant.Index
			case want.Key != nil:
				at = want.Key.Index
			case want.Access != nil:
				at = want.Access.Start
			}
			return tamper(at, "grant index entry for %s differs from the log (run vault ledger rebuild)", id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if stored != len(replayed) {
		return tamper(-1, "grant index holds %d rows but the log makes %d (run vault ledger rebuild)", stored, len(replayed))
	}
	return nil
}

// Rebuild replaces the stored grant index with one replayed from the log.
// On a store other processes share (PostgreSQL replicas) it announces the
// rebuild in the same transaction (ledgerstore.RebuildAnnouncer), and each
// of them rebuilds its own in-memory index on the announcement
// (RebuiltElsewhere).
func (l *Ledger) Rebuild() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := 0
	var fresh *grantIndex
	announced := int64(-1)
	err := l.update(func(tx ledgerstore.WriteTx) error {
		announced = -1
		if err := tx.ClearIndex(); err != nil {
			return err
		}
		n, err := tx.Size()
		if err != nil {
			return err
		}
		states := map[string]indexRow{}
		for i := int64(0); i < n; i++ {
			if _, _, err := l.replayEntry(tx, i, states); err != nil {
				return err
			}
		}
		for id, row := range states {
			if _, err := l.putRow(tx, id, row); err != nil {
				return err
			}
		}
		d, err := l.computeDigest(tx)
		if err != nil {
			return err
		}
		if err := l.writeDigest(tx, n, d); err != nil {
			return err
		}
		count = len(states)
		if fresh, err = l.readIndex(tx); err != nil {
			return err
		}
		fresh.applied = n
		if a, ok := tx.(ledgerstore.RebuildAnnouncer); ok {
			if announced, err = a.AnnounceRebuild(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		l.grants.Store(fresh) // only once the rebuilt index has committed
		l.indexBad.Store(nil)
		if announced >= 0 {
			if l.ownRebuilds == nil {
				l.ownRebuilds = map[int64]bool{}
			}
			l.ownRebuilds[announced] = true
		}
	}
	return count, err
}

// errRebuilding is why decisions deny while RebuiltElsewhere runs.
var errRebuilding = errors.New("the grant index is being rebuilt from the log, after a rebuild on another replica")

// RebuiltElsewhere answers a rebuild that another process announced
// (ledgerstore.RebuildAnnouncer) as id: the stored index was replaced, and
// this ledger's copy in memory, loaded or caught up from the old one, is
// not to be trusted any longer. It rebuilds that copy from the log: every
// entry replayed in one snapshot, the stored index compared with the
// replay row by row and with its sealed digest (as Verify does), and only
// then the copy replaced and decisions trusted again. Meanwhile every
// decision denies (index_untrusted) and appends wait; if the replay or a
// comparison fails, the index stays untrusted, with that error, until the
// next rebuild. It reports whether it rebuilt: a ledger's own
// announcement, coming back, is skipped (its Rebuild has done the work),
// so each announcement costs each process one rebuild.
func (l *Ledger) RebuiltElsewhere(id int64) (bool, error) {
	l.mu.Lock() // Rebuild records its announcement before it lets go
	defer l.mu.Unlock()
	if l.ownRebuilds[id] {
		delete(l.ownRebuilds, id)
		return false, nil
	}
	busy := errRebuilding
	l.indexBad.Store(&busy)
	var fresh *grantIndex
	err := l.view(func(tx ledgerstore.ReadTx) error {
		n, err := tx.Size()
		if err != nil {
			return err
		}
		replayed := map[string]indexRow{}
		for i := int64(0); i < n; i++ {
			if _, _, err := l.replayEntry(tx, i, replayed); err != nil {
				return err
			}
		}
		if err := l.checkIndex(tx, replayed); err != nil {
			return err
		}
		if err := l.checkDigest(tx); err != nil {
			return err
		}
		if fresh, err = l.readIndex(tx); err != nil {
			return err
		}
		fresh.applied = n
		return nil
	})
	if err != nil {
		ierr := fmt.Errorf("rebuilding the grant index after a rebuild on another replica: %w", err)
		l.indexBad.Store(&ierr)
		return true, ierr
	}
	l.grants.Store(fresh)
	l.indexBad.Store(nil)
	return true, nil
}

// replayEntry reads entry i (it must decrypt under its own index and be
// canonical), applies it to rows, and returns its bytes and the entry.
// Verify and Rebuild both replay the log through it.
func (l *Ledger) replayEntry(tx ledgerstore.ReadTx, i int64, rows map[string]indexRow) ([]byte, Entry, error) {
	sealed, err := tx.Entry(i)
	if err != nil {
		return nil, Entry{}, err
	}
	if sealed == nil {
		return nil, Entry{}, tamper(i, "entry is missing")
	}
	raw, err := l.sealer.Decrypt(sealed, entryAD(i))
	if err != nil {
		return nil, Entry{}, tamper(i, "entry does not decrypt under its index (altered or moved)")
	}
	e, err := Parse(raw)
	if err != nil {
		return nil, Entry{}, tamper(i, "entry is not canonical: %v", err)
	}
	if id := rowIDAt(&e, i); id != "" {
		row, err := nextRow(rows[id], i, &e)
		if err != nil {
			return nil, Entry{}, tamper(i, "entry does not apply to its grant or key: %v", err)
		}
		rows[id] = row
	}
	return raw, e, nil
}
