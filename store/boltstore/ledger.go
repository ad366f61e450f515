package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// The consent ledger's buckets, in the same file as everything else. Their
// names and key encodings are the ones the ledger used when it opened bbolt
// itself, so a file written before the ledger store existed opens as it is.
//
//	ledger_entries      index (8, big-endian) -> sealed canonical entry
//	ledger_hashes       stored hash index (8, big-endian) -> 32-byte hash
//	ledger_grants       row id -> sealed index row
//	ledger_checkpoints  tree size (8, big-endian) -> signed checkpoint
//	ledger_meta         "size" -> 8 bytes big-endian; other names -> values
var (
	bLedgerEntries     = []byte("ledger_entries")
	bLedgerHashes      = []byte("ledger_hashes")
	bLedgerIndex       = []byte("ledger_grants")
	bLedgerCheckpoints = []byte("ledger_checkpoints")
	bLedgerMeta        = []byte("ledger_meta")

	ledgerBuckets = [][]byte{bLedgerEntries, bLedgerHashes, bLedgerIndex, bLedgerCheckpoints, bLedgerMeta}

	ledgerSizeKey = []byte("size")
)

// Ledger is the consent ledger's store in this file. Its transactions are
// bbolt's, taken like every other transaction of the Store (a compaction
// waits for them, and they wait for a compaction).
func (s *Store) Ledger() ledgerstore.Store { return ledgerStore{s} }

type ledgerStore struct{ s *Store }

// Update shares the insert queue's group commits: an export's access
// entries and the uploads queued beside them commit together, rather than
// each waiting for the other's commit on bbolt's one writer lock.
func (l ledgerStore) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	return l.s.write(ctx, func(tx *bolt.Tx) error {
		lt, err := openLedgerTx(tx)
		if err != nil {
			return err
		}
		return fn(lt)
	})
}

func (l ledgerStore) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	return l.s.view(ctx, func(tx *bolt.Tx) error {
		lt, err := openLedgerTx(tx)
		if err != nil {
			return err
		}
		return fn(lt)
	})
}

// ledgerTx is both the ReadTx and, inside an Update, the WriteTx.
type ledgerTx struct {
	tx                                *bolt.Tx
	entries, hashes, index, cps, meta *bolt.Bucket
}

func openLedgerTx(tx *bolt.Tx) (*ledgerTx, error) {
	t := &ledgerTx{
		tx:      tx,
		entries: tx.Bucket(bLedgerEntries),
		hashes:  tx.Bucket(bLedgerHashes),
		index:   tx.Bucket(bLedgerIndex),
		cps:     tx.Bucket(bLedgerCheckpoints),
		meta:    tx.Bucket(bLedgerMeta),
	}
	if t.entries == nil || t.hashes == nil || t.index == nil || t.cps == nil || t.meta == nil {
		// Only a file opened read-only before its migration runs lacks them.
		return nil, errors.New("the ledger's buckets are missing (open the database for writing once to upgrade it)")
	}
	return t, nil
}

func key64(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// int64Key decodes an 8-byte key; anything else is -1, which no caller
// takes for a valid index.
func int64Key(k []byte) int64 {
	if len(k) != 8 {
		return -1
	}
	return int64(binary.BigEndian.Uint64(k))
}

func (t *ledgerTx) Size() (int64, error) {
	v := t.meta.Get(ledgerSizeKey)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("the ledger's stored size is %d bytes, not 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func (t *ledgerTx) Meta(key string) ([]byte, error) {
	if key == string(ledgerSizeKey) {
		return nil, errors.New(`ledger metadata "size" is read with Size`)
	}
	return t.meta.Get([]byte(key)), nil
}

func (t *ledgerTx) MetaKeys(fn func(key string) error) error {
	return t.meta.ForEach(func(k, _ []byte) error {
		if bytes.Equal(k, ledgerSizeKey) {
			return nil
		}
		return fn(string(k))
	})
}

func (t *ledgerTx) Entry(i int64) ([]byte, error) {
	if i < 0 {
		return nil, nil
	}
	return t.entries.Get(key64(i)), nil
}

func (t *ledgerTx) EntriesDesc(below int64, fn func(i int64, sealed []byte) bool) error {
	if below <= 0 {
		return nil
	}
	c := t.entries.Cursor()
	var k, v []byte
	if k, _ = c.Seek(key64(below)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil; k, v = c.Prev() {
		i := int64Key(k)
		if i < 0 || i >= below {
			continue // a malformed key: not an entry
		}
		if !fn(i, v) {
			return nil
		}
	}
	return nil
}

func (t *ledgerTx) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		v := t.hashes.Get(key64(x))
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d: %w", x, ledgerstore.ErrMissing)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

func (t *ledgerTx) IndexRow(id string) ([]byte, error) {
	return t.index.Get([]byte(id)), nil
}

func (t *ledgerTx) IndexRowsByID(ids []string) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = t.index.Get([]byte(id))
	}
	return out, nil
}

func (t *ledgerTx) IndexRows(fn func(id string, sealed []byte) error) error {
	return t.index.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func (t *ledgerTx) LatestCheckpoint() (int64, []byte, error) {
	k, v := t.cps.Cursor().Last()
	if k == nil {
		return -1, nil, nil
	}
	return int64Key(k), v, nil
}

func (t *ledgerTx) Checkpoints(fn func(size int64, signed []byte) error) error {
	return t.cps.ForEach(func(k, v []byte) error { return fn(int64Key(k), v) })
}

func (t *ledgerTx) Extent() (ledgerstore.Extent, error) {
	e := ledgerstore.Extent{LastEntry: -1, LastHash: -1}
	if k, _ := t.entries.Cursor().Last(); k != nil {
		e.LastEntry = keyOrMax(k)
	}
	if k, _ := t.hashes.Cursor().Last(); k != nil {
		e.LastHash = keyOrMax(k)
	}
	e.Entries, e.Hashes = keyCount(t.tx, t.entries), keyCount(t.tx, t.hashes)
	return e, nil
}

// keyCount counts a bucket's keys. A read transaction asks the pages
// (Stats); a write transaction walks the keys, as Stats counts from the
// pages and misses what the transaction wrote and has not committed.
func keyCount(tx *bolt.Tx, b *bolt.Bucket) int64 {
	if !tx.Writable() {
		return int64(b.Stats().KeyN)
	}
	n := int64(0)
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// keyOrMax decodes the last key of a bucket for Extent: a malformed key
// there (longer than 8 bytes sorts after every valid one) counts as beyond
// any log.
func keyOrMax(k []byte) int64 {
	if i := int64Key(k); i >= 0 {
		return i
	}
	return 1<<63 - 1
}

// errEmptyValue refuses an empty value: everything the ledger stores is
// sealed or signed, and a reader takes nil for "not stored" (inside a
// write transaction bbolt reads an empty value back as nil).
var errEmptyValue = errors.New("the ledger stores no empty value")

func (t *ledgerTx) PutEntry(i int64, sealed []byte) error {
	if len(sealed) == 0 {
		return errEmptyValue
	}
	if i < 0 {
		return fmt.Errorf("entry index %d", i)
	}
	return t.entries.Put(key64(i), sealed)
}

func (t *ledgerTx) PutHashes(first int64, hs []tlog.Hash) error {
	if first < 0 || first > math.MaxInt64-int64(len(hs)) {
		return fmt.Errorf("stored hash indexes from %d", first)
	}
	for j := range hs {
		// bbolt keeps the value until commit: each hash gets its own copy.
		if err := t.hashes.Put(key64(first+int64(j)), bytes.Clone(hs[j][:])); err != nil {
			return err
		}
	}
	return nil
}

func (t *ledgerTx) PutIndexRow(id string, sealed []byte) error {
	if len(sealed) == 0 {
		return errEmptyValue
	}
	return t.index.Put([]byte(id), sealed)
}

func (t *ledgerTx) ClearIndex() error {
	if err := t.tx.DeleteBucket(bLedgerIndex); err != nil {
		return err
	}
	b, err := t.tx.CreateBucket(bLedgerIndex)
	if err != nil {
		return err
	}
	t.index = b
	return nil
}

func (t *ledgerTx) PutMeta(key string, val []byte) error {
	if len(val) == 0 {
		return errEmptyValue
	}
	if key == string(ledgerSizeKey) {
		return errors.New(`ledger metadata "size" is written with SetSize`)
	}
	return t.meta.Put([]byte(key), val)
}

func (t *ledgerTx) SetSize(n int64) error {
	if n < 0 {
		return fmt.Errorf("ledger size %d", n)
	}
	return t.meta.Put(ledgerSizeKey, key64(n))
}

func (t *ledgerTx) PutCheckpoint(size int64, signed []byte) error {
	if len(signed) == 0 {
		return errEmptyValue
	}
	if size < 0 {
		return fmt.Errorf("checkpoint size %d", size)
	}
	k := key64(size)
	if t.cps.Get(k) != nil {
		return nil
	}
	return t.cps.Put(k, signed)
}
