package vault

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound is returned by a Backend for a missing user, token or key blob.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by a Backend when a create would overwrite.
var ErrExists = errors.New("already exists")

// ErrClosed is returned by a Backend's Insert after Close (a shutdown).
var ErrClosed = errors.New("the store is closed")

// ErrStorageFull is returned by a Backend (and the ledger's and the web UI's
// stores), wrapping the cause, when a write failed because the disk or the
// user's quota is full (ENOSPC, EDQUOT). Nothing of the failed write was
// stored, reads keep working, and writes succeed again once space frees:
// no restart is needed. The API answers it 507 storage_full.
var ErrStorageFull = errors.New("the vault's storage is full")

// IsStorageFull reports whether err is, or was caused by, a full disk:
// ErrStorageFull, or ENOSPC or EDQUOT anywhere in its chain (a write to the
// import spool, say, which no store wraps).
func IsStorageFull(err error) bool {
	return err != nil && (errors.Is(err, ErrStorageFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT))
}

// StorageFull wraps err in ErrStorageFull if it was caused by a full disk,
// and returns it unchanged otherwise. A store calls it on every write
// transaction's error. Besides the error chain it matches the errno's text,
// because bbolt reports a failed file resize with %s, which drops the errno.
func StorageFull(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) {
		return err
	}
	if IsStorageFull(err) || strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error()) {
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	}
	return err
}

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

// RecordSwap is one compare-and-swap of a record's value (SwapRecords).
type RecordSwap struct {
	Schema   string
	Time     int64
	Tag      [16]byte
	Old, New []byte
	Swapped  bool // set by SwapRecords
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

// UserRow is one stored account: its id and its sealed record.
type UserRow struct {
	ID   string
	Blob []byte
}

// Backend is the storage boundary of the record store. bbolt implements it
// today (store/boltstore); a PostgreSQL backend can follow behind the same
// conformance suite (store/storetest). A Backend stores only what it is
// given: everything secret arrives already sealed.
//
// Every method but Close takes a context first. A backend that talks to a
// server passes it on (deadline, cancellation); an embedded one checks it
// before it starts, so a cancelled context is refused with ctx.Err() and
// nothing is done. Once a write has begun it is finished or undone, never
// left half-way, whatever the context does meanwhile.
//
// Erasure. DeletePatient and SwapMeta with scrub make a promise in two
// parts. What every backend must do: when the call returns nil, what it
// removed or replaced is gone from the live store, in one transaction, and
// no method ever returns it again (no read, scan, count or list, on any
// connection or replica). What is backend-specific is how long the bytes
// survive physically (free pages, dead rows, write-ahead logs, replicas,
// backups): each backend documents its window. bbolt's is none for the file
// itself: it compacts the file before returning, so no free page keeps the
// bytes (a compaction cut short is finished at the next Open); copies made
// earlier (backups) keep them for their own lifetime.
type Backend interface {
	// Meta returns a metadata value, nil and no error when absent. Values
	// are arbitrary bytes (NUL included).
	Meta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, val []byte) error

	CreateUser(ctx context.Context, id string, blob []byte) error // ErrExists if present
	PutUser(ctx context.Context, id string, blob []byte) error
	User(ctx context.Context, id string) ([]byte, error) // ErrNotFound if absent
	// Users returns every user whose id starts with prefix (compared as
	// bytes: "pt_" is no pattern, and "ptx…" does not match it), in id
	// order. Each Blob belongs to the caller.
	Users(ctx context.Context, prefix string) ([]UserRow, error)

	PutToken(ctx context.Context, t TokenRow) error
	Token(ctx context.Context, id string) (TokenRow, error) // ErrNotFound if absent
	// TouchToken records a token's last use; ErrNotFound for a token that
	// is not (or no longer) stored, which it never creates.
	TouchToken(ctx context.Context, id string, at time.Time) error

	CreatePatientKeys(ctx context.Context, patientID string, blob []byte) error // ErrExists if present
	PatientKeys(ctx context.Context, patientID string) ([]byte, error)          // ErrNotFound if absent

	// Insert stores recs for one patient atomically: either every new record
	// is stored or none is. It returns ErrNotFound, storing nothing, when the
	// patient has no key blob (never made, or deleted meanwhile): the check
	// is part of the same transaction. Records whose identity is already stored (or
	// repeats earlier in recs) are duplicates and are not stored again. It
	// returns the number stored and is durable when it returns. It sets each
	// record's Stored. A record with an empty Schema or Value is refused:
	// Insert returns an error and stores nothing of the call. A cancelled
	// ctx before the records are handed to the store stores nothing and
	// returns ctx.Err(); after Close Insert returns ErrClosed.
	Insert(ctx context.Context, patientID string, recs []Record) (inserted int, err error)

	// Scan yields the patient's records of one schema with from <= Time < to,
	// in time order. It must not hold a transaction open for the whole scan.
	// Each record's Value belongs to the caller, who may overwrite it (the
	// vault decrypts in place), so it must not alias storage or another
	// record. A cancelled ctx ends the scan with ctx.Err() as its last
	// element.
	Scan(ctx context.Context, patientID, schema string, from, to int64) iter.Seq2[Record, error]

	// Schemas returns the schemas the patient has records of, each once, in
	// byte order; none for a patient without records. It reads no record:
	// a backend answers from its keys or index, in a seek per schema, so
	// that a read of "every schema" costs what the patient has, not what
	// the vault accepts (about a hundred schemas).
	Schemas(ctx context.Context, patientID string) ([]string, error)

	// Count returns how many records the patient has, of every schema,
	// exactly (stray records included: VerifyRecords compares it with what
	// decrypts). It must be cheap: the web UI's page cache calls it on page
	// views, once every 2 s per patient on screen. A backend answers it
	// without reading the records' values, from a counter or an index, in
	// O(1) or O(log n) where it can. bbolt cannot: it walks the page
	// headers of the patient's bucket (no value is read), linear in the
	// patient's pages; measured on a shared 2-core machine with 450-byte
	// values, 0.03-0.05 ms at 10,000 records, 0.3-0.4 ms at 100,000, 2.7 ms
	// at 500,000 and 12 ms at 1,000,000 (a year of one-minute heart rate is
	// about 525,000).
	Count(ctx context.Context, patientID string) (int, error)

	// DeletePatient removes the patient's key blob, records, user and
	// tokens in one transaction (ErrNotFound if it has neither key blob nor
	// user); see Erasure above for what must hold when it returns. If it
	// fails after removing them, the backend-specific cleanup is finished by
	// the next DeletePatient or Open.
	DeletePatient(ctx context.Context, patientID string) error

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store. Inserts already handed to the store finish;
	// later calls fail (Insert with ErrClosed). It takes no context: it
	// waits for those inserts, which are durable once begun.
	Close() error

	// PatientKeyBlobs returns up to limit patient key blobs in patient id
	// order, starting after the id after ("" for the first page). Each
	// blob belongs to the caller. Master rotation pages through them.
	PatientKeyBlobs(ctx context.Context, after string, limit int) ([]PatientKeyBlob, error)

	// SwapPatientKeys replaces, in one transaction, each patient's key
	// blob that still equals its Old with its New, and sets Swapped on
	// those it replaced. A blob that changed meanwhile is left alone, and
	// one that is gone (the patient was deleted) stays gone: it never
	// creates a blob. It returns an error, having swapped nothing, only
	// when the transaction fails.
	SwapPatientKeys(ctx context.Context, swaps []KeySwap) error

	// SwapMeta applies every swap in one transaction if each key's value
	// still equals its Old (a nil Old means the key must be absent);
	// otherwise it changes nothing and returns ErrConflict. Every Old is
	// compared with the value stored before the call, and the swaps are
	// then applied in order, so a key named twice ends with its last New.
	// Of several callers racing to create a key (Old nil), exactly one succeeds: vault
	// Open relies on it to make one master keyset. A nil New deletes the
	// key. With scrub, the replaced values are erased as DeletePatient's
	// are (see Erasure above), so a master wrapped under a retired root is
	// gone from the live store at once, and physically within the
	// backend's window; if that physical part is cut short the swap stays
	// stored and the error wraps ErrScrubPending.
	SwapMeta(ctx context.Context, swaps []MetaSwap, scrub bool) error

	// SwapRecords replaces, in one transaction, each of the patient's
	// records whose identity (Schema, Time, Tag) is stored with exactly the
	// value Old by New, and sets Swapped on those it replaced. A record
	// that is gone or holds another value is left alone; it never creates
	// a record. It returns ErrNotFound, swapping nothing, when the patient
	// has no key blob (never made, or deleted meanwhile), and an error,
	// having swapped nothing, when the transaction fails. The record
	// rewrite (Vault.RewriteRecords) uses it to move old records to the
	// current format.
	SwapRecords(ctx context.Context, patientID string, swaps []RecordSwap) error

	// Tokens returns the user's token rows (expired ones too), in id
	// order.
	Tokens(ctx context.Context, userID string) ([]TokenRow, error)
	// DeleteToken removes a token row; ErrNotFound if there is none. A
	// deleted token must not authenticate again, and TouchToken must not
	// bring it back.
	DeleteToken(ctx context.Context, id string) error
}
