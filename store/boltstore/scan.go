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

// arenaSize is the size of the blocks a page's values are copied into.
const arenaSize = 64 << 10

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
			var arena []byte
			err := s.view(ctx, func(tx *bolt.Tx) error {
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
					// One arena per page: a record's value is a full slice of it,
					// capped so that an append cannot run into the next value.
					if cap(arena)-len(arena) < len(v) {
						arena = make([]byte, 0, max(arenaSize, len(v)))
					}
					off := len(arena)
					arena = append(arena, v...)
					r := vault.Record{Schema: schema, Time: t, Value: arena[off:len(arena):len(arena)]}
					copy(r.Tag[:], k[len(prefix)+8:])
					page = append(page, r)
					last = append(last[:0], k...)
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

// Schemas implements vault.Backend: a record's key starts with its schema
// and a NUL, so after each schema found a seek to the schema and 0x01
// lands on the next one.
func (s *Store) Schemas(ctx context.Context, patientID string) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bReadings).Bucket([]byte(patientID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				k, _ = c.Next() // not a record's key (Scan never yields it)
				continue
			}
			out = append(out, string(k[:i]))
			k, _ = c.Seek(append(k[:i:i], 1))
		}
		return nil
	})
	return out, err
}

// Count implements vault.Backend.
func (s *Store) Count(ctx context.Context, patientID string) (int, error) {
	n := 0
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bReadings).Bucket([]byte(patientID))
		if b == nil {
			return nil
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}
