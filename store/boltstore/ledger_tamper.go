package boltstore

import (
	"bytes"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// LedgerTamperer alters the consent ledger's rows in the file behind the
// ledger's back, as someone holding the database file could. It exists for
// tamper tests (storetest.RunLedger, consent's own tests, the command's
// end-to-end tests): nothing in the product uses it.
//
// Tables and keys are the ledger store's, not bbolt's: "entries" (key: the
// entry index, decimal), "hashes" (the stored hash index), "checkpoints"
// (the tree size), "index" (the row id) and "meta" (the name; bbolt keeps
// the size there too, as "size", 8 bytes big-endian).
type LedgerTamperer struct{ s *Store }

// LedgerTamperer returns the tamper hook for this file's ledger.
func (s *Store) LedgerTamperer() *LedgerTamperer { return &LedgerTamperer{s} }

func ledgerBucket(table string) ([]byte, bool, error) {
	switch table {
	case "entries":
		return bLedgerEntries, true, nil
	case "hashes":
		return bLedgerHashes, true, nil
	case "checkpoints":
		return bLedgerCheckpoints, true, nil
	case "index":
		return bLedgerIndex, false, nil
	case "meta":
		return bLedgerMeta, false, nil
	}
	return nil, false, fmt.Errorf("no ledger table %q", table)
}

func ledgerKey(table, key string) ([]byte, []byte, error) {
	b, numeric, err := ledgerBucket(table)
	if err != nil {
		return nil, nil, err
	}
	if !numeric {
		return b, []byte(key), nil
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < 0 {
		return nil, nil, fmt.Errorf("table %s is keyed by a non-negative number, not %q", table, key)
	}
	return b, key64(n), nil
}

// Raw returns a copy of the stored bytes of a row, or nil when it is absent.
func (t *LedgerTamperer) Raw(table, key string) ([]byte, error) {
	b, k, err := ledgerKey(table, key)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = t.s.view(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(b).Get(k))
		return nil
	})
	return out, err
}

// SetRaw stores val as a row's bytes, or deletes the row when val is nil.
func (t *LedgerTamperer) SetRaw(table, key string, val []byte) error {
	b, k, err := ledgerKey(table, key)
	if err != nil {
		return err
	}
	return t.s.update(func(tx *bolt.Tx) error {
		if val == nil {
			return tx.Bucket(b).Delete(k)
		}
		return tx.Bucket(b).Put(k, bytes.Clone(val))
	})
}

// Snapshot copies every ledger bucket; restore puts the copy back in place
// of whatever the buckets then hold, as restoring an older copy of the file
// would (the rest of the file is left alone).
func (t *LedgerTamperer) Snapshot() (restore func() error, err error) {
	type kv struct{ k, v []byte }
	saved := make([][]kv, len(ledgerBuckets))
	err = t.s.view(func(tx *bolt.Tx) error {
		for i, name := range ledgerBuckets {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				saved[i] = append(saved[i], kv{bytes.Clone(k), bytes.Clone(v)})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		return t.s.update(func(tx *bolt.Tx) error {
			for i, name := range ledgerBuckets {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				b, err := tx.CreateBucket(name)
				if err != nil {
					return err
				}
				for _, r := range saved[i] {
					if err := b.Put(r.k, r.v); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}, nil
}
