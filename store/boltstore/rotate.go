package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// PatientKeyBlobs implements vault.Backend.
func (s *Store) PatientKeyBlobs(ctx context.Context, after string, limit int) ([]vault.PatientKeyBlob, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []vault.PatientKeyBlob
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bPKeys).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, vault.PatientKeyBlob{PatientID: string(k), Blob: bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// SwapPatientKeys implements vault.Backend.
func (s *Store) SwapPatientKeys(ctx context.Context, swaps []vault.KeySwap) error {
	if len(swaps) == 0 {
		return nil
	}
	if s.opts.ReadOnly {
		return errors.New("the store is read-only")
	}
	done := make([]bool, len(swaps))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bPKeys)
		for i, sw := range swaps {
			done[i] = false
			if sw.PatientID == "" || sw.New == nil {
				return errors.New("a key swap needs a patient id and a new blob")
			}
			// Absent (deleted) or changed: leave it. Never create.
			if cur := b.Get([]byte(sw.PatientID)); cur == nil || !bytes.Equal(cur, sw.Old) {
				continue
			}
			if err := b.Put([]byte(sw.PatientID), sw.New); err != nil {
				return err
			}
			done[i] = true
		}
		return nil
	})
	for i := range swaps {
		swaps[i].Swapped = err == nil && done[i]
	}
	return err
}

// SwapMeta implements vault.Backend. With scrub it marks a compaction in the
// same transaction, as DeletePatient does, and runs it before returning, so
// the replaced values leave no copy in free pages; a compaction cut short is
// finished by the next DeletePatient or Open.
func (s *Store) SwapMeta(ctx context.Context, swaps []vault.MetaSwap, scrub bool) error {
	if s.opts.ReadOnly {
		return errors.New("the store is read-only")
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		for _, sw := range swaps {
			if sw.Key == "" || bytes.Equal([]byte(sw.Key), metaCompactPending) || sw.Key == "format" {
				return fmt.Errorf("meta key %q cannot be swapped", sw.Key)
			}
			cur := m.Get([]byte(sw.Key))
			if (cur == nil) != (sw.Old == nil) || !bytes.Equal(cur, sw.Old) {
				return vault.ErrConflict
			}
		}
		for _, sw := range swaps {
			var err error
			if sw.New == nil {
				err = m.Delete([]byte(sw.Key))
			} else {
				err = m.Put([]byte(sw.Key), sw.New)
			}
			if err != nil {
				return err
			}
		}
		if scrub {
			return m.Put(metaCompactPending, []byte{1})
		}
		return nil
	})
	if err != nil || !scrub {
		return err
	}
	if err := s.finishPendingCompaction(); err != nil {
		return fmt.Errorf("%w (%v)", vault.ErrScrubPending, err)
	}
	return nil
}
