package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// RecordTamperer reads and writes the file's record rows and key blobs
// behind the vault's back, as someone holding the database file could. It
// is a test hook (storetest.RecordTamperer): the vault's barrier tests
// damage, move and forge sealed records through it, and rotation tests
// store hundreds of key blobs in one transaction. Nothing in the product
// uses it.
type RecordTamperer struct{ s *Store }

// RecordTamperer returns the tamper hook for this file's records.
func (s *Store) RecordTamperer() *RecordTamperer { return &RecordTamperer{s} }

// Records returns the patient's stored records, by key order (schema, then
// time), values as stored.
func (t *RecordTamperer) Records(ctx context.Context, patientID string) ([]vault.Record, error) {
	var out []vault.Record
	err := t.s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bReadings).Bucket([]byte(patientID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, err := parseRecordKey(k)
			if err != nil {
				return err
			}
			r.Value = bytes.Clone(v)
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// PutRecord stores r under its key, replacing what is there, with no
// checks.
func (t *RecordTamperer) PutRecord(ctx context.Context, patientID string, r vault.Record) error {
	return t.s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bReadings).CreateBucketIfNotExists([]byte(patientID))
		if err != nil {
			return err
		}
		return b.Put(recordKey(nil, r.Schema, r.Time, r.Tag), r.Value)
	})
}

// DeleteRecord removes the record with r's key, if there is one.
func (t *RecordTamperer) DeleteRecord(ctx context.Context, patientID string, r vault.Record) error {
	return t.s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bReadings).Bucket([]byte(patientID))
		if b == nil {
			return nil
		}
		return b.Delete(recordKey(nil, r.Schema, r.Time, r.Tag))
	})
}

// PutPatientKeys stores key blobs in one transaction.
func (t *RecordTamperer) PutPatientKeys(ctx context.Context, blobs []vault.PatientKeyBlob) error {
	return t.s.update(ctx, func(tx *bolt.Tx) error {
		for _, p := range blobs {
			if err := tx.Bucket(bPKeys).Put([]byte(p.PatientID), p.Blob); err != nil {
				return err
			}
		}
		return nil
	})
}

// parseRecordKey reads a recordKey back: schema 0x00 time(8) tag(16).
func parseRecordKey(k []byte) (vault.Record, error) {
	var r vault.Record
	n := len(k) - 25
	if n < 0 || k[n] != 0 {
		return r, fmt.Errorf("record key %x is malformed", k)
	}
	r.Schema = string(k[:n])
	r.Time = int64(binary.BigEndian.Uint64(k[n+1:]) ^ (1 << 63))
	copy(r.Tag[:], k[n+9:])
	return r, nil
}
