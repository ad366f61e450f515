package vault

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrNotFound is returned by a Backend for a missing user, token or key blob.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by a Backend when a create would overwrite.
var ErrExists = errors.New("already exists")

// ErrClosed is returned by a Backend's Insert after Close (a shutdown).
var ErrClosed = errors.New("the store is closed")

// Record is one stored reading as the backend sees it: the plaintext parts
// that range scans need (schema, time) and an opaque sealed value. Tag is the
// keyed hash of the reading's uuid; (Schema, Time, Tag) is its identity, and
// inserting a record whose identity is present is a duplicate.
type Record struct {
	Schema string
	Time   int64 // unix nanoseconds
	Tag    [16]byte
	Value  []byte
	// Stored is set by Insert: true for a record it wrote, false for a
	// duplicate. It means nothing when Insert returns an error.
	Stored bool
}

// TokenRow is a stored API token. It holds the SHA-256 of the secret, never
// the secret.
type TokenRow struct {
	ID       string    `json:"id"`
	UserID   string    `json:"user"`
	Kind     string    `json:"kind"`
	Hash     []byte    `json:"hash"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Backend is the storage boundary. bbolt implements it today
// (store/boltstore); a PostgreSQL backend can follow behind the same
// conformance suite (store/storetest). A Backend stores only what it is
// given: everything secret arrives already sealed.
type Backend interface {
	Meta(key string) ([]byte, error) // nil, nil when absent
	PutMeta(key string, val []byte) error

	CreateUser(id string, blob []byte) error // ErrExists if present
	PutUser(id string, blob []byte) error
	User(id string) ([]byte, error)
	// Users yields every user whose id starts with prefix, in id order.
	Users(prefix string) iter.Seq2[string, []byte]

	PutToken(t TokenRow) error
	Token(id string) (TokenRow, error)
	TouchToken(id string, at time.Time) error

	CreatePatientKeys(patientID string, blob []byte) error // ErrExists if present
	PatientKeys(patientID string) ([]byte, error)

	// Insert stores recs for one patient atomically: either every new record
	// is stored or none is. It returns ErrNotFound, storing nothing, when the
	// patient has no key blob (never made, or deleted meanwhile): the check
	// is part of the same transaction. Records whose identity is already stored (or
	// repeats earlier in recs) are duplicates and are not stored again. It
	// returns the number stored and is durable when it returns. It sets each
	// record's Stored.
	Insert(ctx context.Context, patientID string, recs []Record) (inserted int, err error)

	// Scan yields the patient's records of one schema with from <= Time < to,
	// in time order. It must not hold a transaction open for the whole scan.
	// Each record's Value belongs to the caller, who may overwrite it (the
	// vault decrypts in place), so it must not alias storage or another
	// record.
	Scan(ctx context.Context, patientID, schema string, from, to int64) iter.Seq2[Record, error]

	// Count returns how many records the patient has, of every schema.
	Count(patientID string) (int, error)

	// DeletePatient removes the patient's key blob, records, user and tokens,
	// and leaves no copy of them in free space. If it fails after removing
	// them, the cleanup is finished by the next DeletePatient or Open.
	DeletePatient(patientID string) error

	// Ping checks that the store answers.
	Ping() error
	Close() error

	// PatientKeyBlobs returns up to limit patient key blobs in patient id
	// order, starting after the id after ("" for the first page). Each
	// blob belongs to the caller. Master rotation pages through them.
	PatientKeyBlobs(after string, limit int) ([]PatientKeyBlob, error)

	// SwapPatientKeys replaces, in one transaction, each patient's key
	// blob that still equals its Old with its New, and sets Swapped on
	// those it replaced. A blob that changed meanwhile is left alone, and
	// one that is gone (the patient was deleted) stays gone: it never
	// creates a blob. It returns an error, having swapped nothing, only
	// when the transaction fails.
	SwapPatientKeys(swaps []KeySwap) error

	// SwapMeta applies every swap in one transaction if each key's value
	// still equals its Old (a nil Old means the key must be absent);
	// otherwise it changes nothing and returns ErrConflict. A nil New
	// deletes the key. With scrub, the values it replaced must not survive
	// anywhere in the store, free space included (bbolt compacts the file,
	// and finishes the compaction at the next Open if it is cut short), so
	// a master wrapped under a retired root is really gone.
	SwapMeta(swaps []MetaSwap, scrub bool) error

	// Tokens returns the user's token rows (expired ones too), in id
	// order.
	Tokens(userID string) ([]TokenRow, error)
	// DeleteToken removes a token row; ErrNotFound if there is none. A
	// deleted token must not authenticate again, and TouchToken must not
	// bring it back.
	DeleteToken(id string) error
}
