// Package ledgerstore declares where the consent ledger keeps its log: the
// storage interface that package consent consumes and a backend (the bbolt
// one in store/boltstore, later PostgreSQL) implements, as database/sql/driver
// does for database/sql. It holds types only and imports nothing of the
// vault, so a backend can implement it without importing consent, and
// consent's own tests can run on a real backend.
//
// The store keeps five things, and knows nothing of what they mean:
//
//   - entries: entry index -> the entry's sealed bytes;
//   - hashes: stored hash index (golang.org/x/mod/sumdb/tlog's layout) -> a
//     32-byte Merkle hash;
//   - the index: row id -> a sealed row (grants, clinician keys, accesses);
//   - checkpoints: tree size -> a signed checkpoint;
//   - metadata: the log's size (the head), and named values (the sealed
//     signing key, the verifier key, the sealed digest key and the sealed
//     index digest).
//
// Every rule (what an entry may say, sealing, the index digest, hashing,
// verification, rebuilding, group commit) stays in consent; the store only
// reads and writes rows inside transactions. consent reaches everything
// through [Store.View] and [Store.Update], so the same body of logic runs on
// every backend, and a backend passes storetest.RunLedger.
//
// # Byte slices
//
// A byte slice that a ReadTx returns is valid only until the transaction
// ends (on bbolt it points into the memory-mapped file); the caller copies
// what it keeps. A slice handed to a WriteTx Put belongs to the store until
// the transaction ends; the caller does not change it. Hashes are arrays,
// returned and taken by value.
package ledgerstore

import (
	"context"
	"errors"

	"golang.org/x/mod/sumdb/tlog"
)

// Store is where the ledger keeps its log.
//
// Update runs fn in one durable transaction: when Update returns nil, fn's
// writes are on disk (bbolt: fsync'd), and when it returns an error none of
// them happened. Updates are serialised with each other across every handle
// and process that can write the store (bbolt: the file's single writer;
// PostgreSQL: a transaction-scoped advisory lock and the head row), so fn
// reads the size, decides and writes without a race. A backend may run fn
// again (PostgreSQL when transactions conflict; bbolt when fn shared a
// group commit with other writes and one of them failed); fn must then do
// the same thing from the start, and must keep nothing outside the
// transaction until Update has returned nil.
//
// View runs fn on one consistent snapshot, read-only.
//
// Both fail with ctx's error if ctx is done before the transaction starts.
type Store interface {
	Update(ctx context.Context, fn func(WriteTx) error) error
	View(ctx context.Context, fn func(ReadTx) error) error
}

// ErrMissing is wrapped by ReadTx.ReadHashes when a hash it was asked for
// is not stored, or is not a hash (not tlog.HashSize bytes).
var ErrMissing = errors.New("not stored")

// ReadTx reads the ledger in one transaction. Returned byte slices are
// valid until the transaction ends (see the package doc).
type ReadTx interface {
	// Size is the log's recorded size (the number of entries); 0 for a new
	// ledger.
	Size() (int64, error)

	// Meta returns a named metadata value, or nil when it is not stored.
	Meta(key string) ([]byte, error)
	// MetaKeys calls fn with the name of every stored metadata value, in
	// byte order. The size is not among them: it is read with Size.
	MetaKeys(fn func(key string) error) error

	// Entry returns the sealed entry at index i, or nil when none is
	// stored there.
	Entry(i int64) ([]byte, error)
	// EntriesDesc calls fn with every stored entry whose index is below
	// below, highest index first, until fn returns false. A missing index
	// is skipped, not reported: the caller checks the indexes it sees.
	EntriesDesc(below int64, fn func(i int64, sealed []byte) bool) error

	// ReadHashes returns the stored hashes at the given stored hash
	// indexes (tlog.HashReader). An absent or malformed hash fails the
	// whole call with an error wrapping ErrMissing.
	ReadHashes(indexes []int64) ([]tlog.Hash, error)

	// IndexRow returns the sealed index row id, or nil when there is none.
	IndexRow(id string) ([]byte, error)
	// IndexRowsByID returns the sealed index rows ids name, in the order
	// of ids, nil for an id that has none: in one round trip where the
	// store is across a network (an access-log page's rows).
	IndexRowsByID(ids []string) ([][]byte, error)
	// IndexRows calls fn with every index row, in byte order of id, and
	// stops at fn's first error, returning it.
	IndexRows(fn func(id string, sealed []byte) error) error

	// LatestCheckpoint returns the stored checkpoint of the largest tree
	// size, or size -1 and nil when none is stored.
	LatestCheckpoint() (size int64, signed []byte, err error)
	// Checkpoints calls fn with every stored checkpoint, smallest tree size
	// first, and stops at fn's first error, returning it.
	Checkpoints(fn func(size int64, signed []byte) error) error

	// Extent counts the stored entries and hashes, and the highest index of
	// each, so that Verify can refuse anything stored beside the log.
	Extent() (Extent, error)
}

// Extent is what ReadTx.Extent reports. A last index is -1 when nothing is
// stored.
type Extent struct {
	Entries, LastEntry int64
	Hashes, LastHash   int64
}

// WriteTx reads and writes the ledger in one transaction; it sees its own
// writes.
type WriteTx interface {
	ReadTx

	// PutEntry stores the sealed entry at index i.
	PutEntry(i int64, sealed []byte) error
	// PutHashes stores hs at consecutive stored hash indexes from first.
	PutHashes(first int64, hs []tlog.Hash) error
	// PutIndexRow stores the sealed index row id, replacing any.
	PutIndexRow(id string, sealed []byte) error
	// ClearIndex removes every index row (Rebuild refills it).
	ClearIndex() error
	// PutMeta stores a named metadata value, replacing any. The name
	// "size" is reserved (SetSize).
	PutMeta(key string, val []byte) error
	// SetSize records the log's size.
	SetSize(n int64) error
	// PutCheckpoint stores a signed checkpoint of tree size size. If one
	// is already stored for that size it is kept and PutCheckpoint returns
	// nil: one log key signs one tree the same way (Ed25519 is
	// deterministic), so two writers racing to sign store the same bytes.
	PutCheckpoint(size int64, signed []byte) error
}

// Shared is implemented by a store that other processes may append to at
// the same time (PostgreSQL, with N vault replicas on one database). A
// ledger on such a store keeps its in-memory grant index tagged with the
// log size it has applied, and before each decision asks Head whether the
// log has grown; if it has, it reads and applies the entries it has not
// seen. A store that only one process can write (bbolt: the file lock)
// does not implement it, and its ledger reads nothing extra.
type Shared interface {
	// Head returns the log's committed size in one cheap read, outside
	// any transaction (PostgreSQL: one statement, one round trip).
	Head(ctx context.Context) (int64, error)
}

// RebuildAnnouncer is implemented by the WriteTx of a Shared store.
// Ledger.Rebuild replaces the stored index that every process on the
// store shares, but each of them keeps its own copy in memory, loaded or
// caught up from the old one. So Rebuild calls AnnounceRebuild in its
// transaction, after the new index is written: the announcement commits
// exactly when the rebuilt index does (PostgreSQL: a ledger-rebuilt row in
// vault_events, with a notification), and each other process, told of it,
// rebuilds its own copy from the log (Ledger.RebuiltElsewhere). size is
// the log's size the rebuild replayed; id names the announcement, so that
// the process that made it can tell its own when it comes back.
type RebuildAnnouncer interface {
	AnnounceRebuild(size int64) (id int64, err error)
}
