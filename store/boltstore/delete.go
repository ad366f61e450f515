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
	tmp := s.path + ".compact"
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
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact: %v", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
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
