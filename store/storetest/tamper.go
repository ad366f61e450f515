package storetest

import (
	"context"

	"github.com/jupyterhealth/vault/vault"
)

// RecordTamperer reaches a record store's rows below vault.Backend's
// rules, as someone holding the database could. It exists for tests: the
// vault's barrier tests damage, move and forge sealed records and check
// that every one is refused, and rotation tests store hundreds of key
// blobs at once. Nothing in the product uses it. A backend provides one
// beside its Backend (bbolt: (*boltstore.Store).RecordTamperer).
type RecordTamperer interface {
	// Records returns the patient's stored records of every schema, in
	// the store's order, values exactly as stored. Each Value belongs to
	// the caller.
	Records(ctx context.Context, patientID string) ([]vault.Record, error)
	// PutRecord stores r as the patient's record with r's identity
	// (Schema, Time, Tag), replacing one that is there. It checks nothing:
	// no key blob, no duplicate.
	PutRecord(ctx context.Context, patientID string, r vault.Record) error
	// DeleteRecord removes the patient's record with r's identity, if
	// there is one.
	DeleteRecord(ctx context.Context, patientID string, r vault.Record) error
	// PutPatientKeys stores key blobs in one transaction, replacing any
	// stored for the same patients.
	PutPatientKeys(ctx context.Context, blobs []vault.PatientKeyBlob) error
}
