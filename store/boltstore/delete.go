package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DeletePatient implements vault.Backend: it deletes the patient's key blob
// (crypto-shredding every record), records, account and tokens in one
// transaction, then compacts the file so no free page still holds them.
func (s *Store) DeletePatient(ctx context.Context, patientID string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bPKeys).Get([]byte(patientID)) == nil && tx.Bucket(bUsers).Get([]byte(patientID)) == nil {
			return vault.ErrNotFound
		}
		// Until the compaction below has swapped the file, the deleted
		// bytes sit in free pages; this mark makes the next Open (or the
		// next delete) finish the job.
		if err := tx.Bucket(bMeta).Put(metaCompactPending, []byte{1}); err != nil {
			return err
		}
		if err := tx.Bucket(bPKeys).Delete([]byte(patientID)); err != nil {
			return err
		}
		if err := tx.Bucket(bReadings).DeleteBucket([]byte(patientID)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if err := tx.Bucket(bUsers).Delete([]byte(patientID)); err != nil {
			return err
		}
		tb := tx.Bucket(bTokens)
		var drop [][]byte
		if err := tb.ForEach(func(k, v []byte) error {
			var t vault.TokenRow
			if json.Unmarshal(v, &t) == nil && t.UserID == patientID {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, vault.ErrNotFound) {
		// Nothing to delete, but an earlier delete may not have compacted.
		if cerr := s.finishPendingCompaction(); cerr != nil {
			return cerr
		}
		return err
	}
	if err != nil {
		return err
	}
	return s.finishPendingCompaction()
}

var metaCompactPending = []byte("compact_pending")

// finishPendingCompaction compacts if a deletion asked for it, then clears
// the mark in the fresh file.
func (s *Store) finishPendingCompaction() error {
	pending := false
	s.view(context.Background(), func(tx *bolt.Tx) error {
		pending = tx.Bucket(bMeta).Get(metaCompactPending) != nil
		return nil
	})
	if !pending {
		return nil
	}
	if err := s.Compact(); err != nil {
		return err
	}
	return s.update(context.Background(), func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Delete(metaCompactPending) })
}

// Compact rewrites the database into a fresh file and swaps it in, so that
// deleted data does not linger in free pages. It blocks other operations
// while it runs.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := s.CompactPath()
	if err := s.compactTo(tmp); err != nil {
		return err
	}
	return s.swapIn(tmp)
}

// CompactPath is where a compaction writes its copy, beside the database:
// DIR/vault.db.compact. A copy left there by a compaction that was cut
// short is never opened; the next compaction removes it.
func (s *Store) CompactPath() string { return s.path + ".compact" }

// CompactChecked is Compact with a check between the copy and the swap:
// the fresh file (at CompactPath, written, fsynced and closed) takes the
// database's place only when check(path) returns nil, and is removed
// otherwise. check runs with the store unlocked, so it may read this
// Store too. Nothing may write to the store meanwhile (the offline 'vault
// admin compact' writes nothing): a write the copy does not hold would be
// lost, so CompactChecked refuses to swap if the database changed since
// the copy. At every instant the database path names a whole file, the
// old one until the rename and the new one after it.
func (s *Store) CompactChecked(check func(path string) error) error {
	if s.opts.ReadOnly {
		return errors.New("compact: the store is open read-only")
	}
	tmp := s.CompactPath()
	s.mu.Lock()
	id, err := s.txID()
	if err == nil {
		err = s.compactTo(tmp)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := check(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now, err := s.txID()
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if now != id {
		os.Remove(tmp)
		return errors.New("compact: the database changed while its copy was checked; nothing was swapped")
	}
	return s.swapIn(tmp)
}

// txID is the id of the database's last committed transaction. The caller
// holds s.mu.
func (s *Store) txID() (int, error) {
	var id int
	err := s.db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id, err
}

// LiveBytes is the bytes the database's data takes in its pages (keys,
// values, element and page headers of every bucket), without free pages
// and the unused part of the pages in use: what a compacted copy packs
// into pages (bbolt's Compact fills them), and so about its size.
func (s *Store) LiveBytes() (int64, error) {
	var n int64
	err := s.view(context.Background(), func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			n += int64(st.BranchInuse + st.LeafInuse + st.InlineBucketInuse)
			return nil
		})
	})
	return n, err
}

// compactTo copies the database's live pages into a new file at tmp
// (bbolt's Compact), fsyncs it and closes it; on failure it removes tmp.
// The caller holds s.mu.
func (s *Store) compactTo(tmp string) error {
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, boltOptions(s.opts))
	if err != nil {
		return fmt.Errorf("compact: %v", err)
	}
	if err := bolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact: %v", err)
	}
	// bbolt grows a file in 16 MiB steps past its last page; the copy
	// keeps only its pages (the next write grows it again as needed).
	var size int64
	if err := dst.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact: %v", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact: %v", err)
	}
	if err := os.Truncate(tmp, size); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact: %v", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// swapIn closes the database, renames tmp over it, fsyncs the directory
// and reopens whichever file is then in place. The caller holds s.mu.
func (s *Store) swapIn(tmp string) error {
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact: close: %v", err)
	}
	renameErr := os.Rename(tmp, s.path)
	if renameErr != nil {
		os.Remove(tmp)
	} else if err := syncFile(filepath.Dir(s.path)); err != nil {
		renameErr = err
	}
	// Reopen whichever file is now in place, so the store keeps working
	// even when the swap failed.
	db, err := bolt.Open(s.path, 0o600, boltOptions(s.opts))
	if err != nil {
		return fmt.Errorf("compact: reopen: %v", err)
	}
	db.MaxBatchDelay = batchDelay
	s.db = db
	if renameErr != nil {
		return fmt.Errorf("compact: %v", renameErr)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
