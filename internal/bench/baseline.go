package bench

// The raw-bbolt baselines, in one file: the one place outside the bbolt
// backend that imports bbolt (docs/architecture.md), so that the vault's
// figures have the store's own speed on the same machine and the same
// bytes beside them.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	bolt "go.etcd.io/bbolt"
)

// putBaseline is the ingest bench's baseline: it puts the same points in a
// raw bbolt file under time-ordered keys, perTx request batches to an
// fsync'd transaction, and returns the time the puts took, the points'
// bytes and the bytes of the pages their bucket holds.
func putBaseline(path, kind string, uploaders, readings, batch, perTx, pageSize int) (secs float64, pointBytes int, pageBytes int64, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, 0, 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, InitialMmapSize: 256 << 20, PageSize: pageSize})
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	type kv struct{ k, v []byte }
	var txs [][]kv
	for u := range uploaders {
		bs, n := bodies(kind, u, readings, batch)
		pointBytes += n
		i := 0
		for _, body := range bs {
			var tx []kv
			for line := range bytes.Lines(body) {
				k := make([]byte, 24)
				binary.BigEndian.PutUint64(k, uint64(u)<<56|uint64(i))
				rand.Read(k[8:])
				tx = append(tx, kv{k, bytes.TrimSuffix(line, []byte("\n"))})
				i++
			}
			txs = append(txs, tx)
		}
	}
	if perTx > 1 {
		// Interleave uploaders as concurrent requests arrive, perTx batches
		// to a transaction.
		var merged [][]kv
		per := len(txs) / uploaders
		for i := 0; i < per; i++ {
			var m []kv
			for u := range uploaders {
				m = append(m, txs[u*per+i]...)
			}
			merged = append(merged, m)
		}
		txs = merged
	}
	start := time.Now()
	for _, tx := range txs {
		err := db.Update(func(t *bolt.Tx) error {
			b, err := t.CreateBucketIfNotExists([]byte("readings"))
			if err != nil {
				return err
			}
			for _, p := range tx {
				if err := b.Put(p.k, p.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, 0, errors.New(err.Error())
		}
	}
	secs = time.Since(start).Seconds()
	err = db.View(func(t *bolt.Tx) error {
		st := t.Bucket([]byte("readings")).Stats()
		pageBytes = int64(st.BranchAlloc + st.LeafAlloc)
		return nil
	})
	return secs, pointBytes, pageBytes, err
}

// scanBaseline is the export bench's baseline: the same canonical bytes in
// a raw bbolt bucket, scanned and age-encrypted, with no consent check or
// per-record decryption.
type scanBaseline struct{ db *bolt.DB }

func openScanBaseline(path string, canon [][]byte) (*scanBaseline, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("r"))
		for i, c := range canon {
			if err == nil {
				err = b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), c)
			}
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &scanBaseline{db}, nil
}

// scan reads every record, encrypts them to to as NDJSON, and returns the
// time it took.
func (s *scanBaseline) scan(to age.Recipient) (float64, error) {
	t0 := time.Now()
	w, err := age.Encrypt(io.Discard, to)
	if err != nil {
		return 0, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("r")).ForEach(func(_, v []byte) error {
			w.Write(v)
			_, err := w.Write([]byte{'\n'})
			return err
		})
	})
	if err == nil {
		err = w.Close()
	}
	return time.Since(t0).Seconds(), err
}

func (s *scanBaseline) Close() error { return s.db.Close() }
