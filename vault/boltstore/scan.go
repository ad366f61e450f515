package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"iter"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// scanPage is how many records one short read transaction copies out.
const scanPage = 512

// Scan implements vault.Backend. It copies records out a page at a time, so
// no read transaction stays open while the caller streams.
func (s *Store) Scan(ctx context.Context, patientID, schema string, from, to int64) iter.Seq2[vault.Record, error] {
	return func(yield func(vault.Record, error) bool) {
		prefix := append([]byte(schema), 0)
		seek := recordKey(nil, schema, from, [16]byte{})
		var last []byte
		for {
			if err := ctx.Err(); err != nil {
				yield(vault.Record{}, err)
				return
			}
			page := make([]vault.Record, 0, scanPage)
			err := s.view(func(tx *bolt.Tx) error {
				b := tx.Bucket(bReadings).Bucket([]byte(patientID))
				if b == nil {
					return nil
				}
				c := b.Cursor()
				k, v := c.Seek(seek)
				if last != nil && bytes.Equal(k, last) {
					k, v = c.Next()
				}
				for ; k != nil && len(page) < scanPage; k, v = c.Next() {
					if !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+24 {
						break
					}
					t := int64(binary.BigEndian.Uint64(k[len(prefix):]) ^ (1 << 63))
					if t >= to {
						break
					}
					r := vault.Record{Schema: schema, Time: t, Value: bytes.Clone(v)}
					copy(r.Tag[:], k[len(prefix)+8:])
					page = append(page, r)
					last = bytes.Clone(k)
				}
				return nil
			})
			if err != nil {
				yield(vault.Record{}, err)
				return
			}
			for _, r := range page {
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < scanPage {
				return
			}
			seek = last
		}
	}
}
