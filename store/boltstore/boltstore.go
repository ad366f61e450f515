// Package boltstore is the embedded bbolt backend of the vault.
//
// Layout (all in one file, DIR/vault.db):
//
//	meta       key -> value (format version, root parameters, wrapped master)
//	users      user id -> sealed account record
//	tokens     token id -> JSON TokenRow (hash of the secret, never the secret)
//	pkeys      patient id -> wrapped patient key blob
//	readings/  one nested bucket per patient id
//	           schema 0x00 time(8, big-endian, sign-flipped) tag(16) -> sealed reading
//	ledger_*   the consent ledger's store (ledger.go, [Store.Ledger])
//	web_…      the web UI's invites, passkeys, recovery codes, sessions and
//	           ceremonies (web.go; [Store.Web] hands them out)
//	oauth_…    the OAuth provider's clients, requests, codes, tokens and
//	           signing keys (oauth.go; [Store.OAuth] hands them out)
//
// Record keys are time-ordered within a schema, so a batch of readings in
// time order appends to the end of the B+tree, and deduplication is a lookup
// of the key itself. Inserts, the ledger's writes and tokens' last-use
// touches go through one writer goroutine that merges whatever is queued
// into one fsync'd transaction (group commit); each caller's writes still
// commit or fail together.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bMeta     = []byte("meta")
	bUsers    = []byte("users")
	bTokens   = []byte("tokens")
	bPKeys    = []byte("pkeys")
	bReadings = []byte("readings")
)

// migrations are applied in order; meta "format" holds how many have run.
var migrations = []func(tx *bolt.Tx) error{
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bMeta, bUsers, bTokens, bPKeys, bReadings} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// The consent ledger's buckets (ledger.go). Files where the ledger
	// already made them keep them as they are.
	func(tx *bolt.Tx) error {
		for _, name := range ledgerBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// The web UI's buckets (web.go): those earlier versions made on first
	// use, the invites' owner rows, sessions and ceremonies.
	createWebBuckets,
	// The spent sign-in challenges (web.go), which sign-in keeps since it
	// stores nothing while a sign-in is in flight.
	createWebBuckets,
	// The OAuth provider's clients, requests, codes, tokens, assertion ids
	// and signing keys (oauth.go).
	createOAuthBuckets,
	// The remembered app consents (web.go): the OAuth clients a user let
	// sign her in.
	createWebBuckets,
	// Compact records (format 2, vault.FormatCompact) are written from
	// now on. Nothing changes in the file; the step is here so that a
	// binary that cannot open them refuses the file at start ("newer than
	// this binary understands") instead of failing on each new record as
	// if it had been tampered with.
	func(*bolt.Tx) error { return nil },
	// Identity-nonce records (format 3, vault.FormatIdentity) are written
	// from now on: the same kind of step, for the same reason, so a
	// binary that knows formats 1 and 2 only refuses the file at start.
	func(*bolt.Tx) error { return nil },
}

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("the database is in use by another process")

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock. Zero means 1s; Open
	// never waits forever.
	LockTimeout time.Duration
	// ReadOnly opens without the write lock.
	ReadOnly bool
	// MaxGroupRecords bounds the records merged into one transaction.
	MaxGroupRecords int
	// PageSize is the page size of a new file (an existing file keeps its
	// own). Zero means DefaultPageSize.
	PageSize int
}

// DefaultPageSize is bbolt's usual 4 KiB. 16 KiB pages make ingest about 15%
// faster (a commit writes each dirty page with its own pwrite), but cost
// more write amplification when readings arrive out of order; the trade and
// its figures are in docs/benchmarks.md.
const DefaultPageSize = 4 << 10

// Store is a bbolt Backend.
type Store struct {
	path string
	opts Options

	mu sync.RWMutex // write-held only while the file is swapped by compaction
	db *bolt.DB

	closeMu  sync.RWMutex
	closed   bool
	writes   chan *writeReq
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ vault.Backend = (*Store)(nil)

func boltOptions(o Options) *bolt.Options {
	return &bolt.Options{
		Timeout:         o.LockTimeout,
		ReadOnly:        o.ReadOnly,
		NoFreelistSync:  false,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 256 << 20,
		PageSize:        o.PageSize,
	}
}

// Open opens or creates the database file at path.
func Open(path string, o Options) (*Store, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.MaxGroupRecords <= 0 {
		o.MaxGroupRecords = 50000
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	db, err := bolt.Open(path, 0o600, boltOptions(o))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %v", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Store{path: path, opts: o, db: db, writes: make(chan *writeReq, 64), stop: make(chan struct{})}
	if !o.ReadOnly {
		if err := s.migrate(); err != nil {
			db.Close()
			return nil, err
		}
		// A deletion whose compaction did not finish (a crash, a full disk)
		// is finished now, before anything else runs.
		if err := s.finishPendingCompaction(); err != nil {
			db.Close()
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

func (s *Store) migrate() error {
	// Read first, so opening a current database writes nothing (a start
	// that then fails on a wrong root key leaves the file untouched).
	current := false
	s.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bMeta); m != nil {
			v := m.Get([]byte("format"))
			current = len(v) == 8 && binary.BigEndian.Uint64(v) == uint64(len(migrations))
		}
		return nil
	})
	if current {
		return nil
	}
	return vault.StorageFull(s.db.Update(func(tx *bolt.Tx) error {
		done := 0
		if m := tx.Bucket(bMeta); m != nil {
			if v := m.Get([]byte("format")); len(v) == 8 {
				done = int(binary.BigEndian.Uint64(v))
			}
		}
		if done > len(migrations) {
			return fmt.Errorf("database format %d is newer than this binary understands (%d); upgrade the binary", done, len(migrations))
		}
		for i := done; i < len(migrations); i++ {
			if err := migrations[i](tx); err != nil {
				return fmt.Errorf("migration %d: %v", i+1, err)
			}
		}
		return tx.Bucket(bMeta).Put([]byte("format"), binary.BigEndian.AppendUint64(nil, uint64(len(migrations))))
	}))
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// view and update run fn in a read or write transaction, refusing a
// cancelled ctx before they begin (bbolt itself takes no context).
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// A full disk fails the commit; bbolt rolls it back (the old meta page
	// still points at the last good tree) and the next transaction works
	// once space frees. Callers see vault.ErrStorageFull.
	return vault.StorageFull(s.db.Update(fn))
}

// batch is update for the small writes many requests make at once (the
// OAuth provider's code claims, tokens, rotations and spent assertion
// ids): bbolt's Batch commits the concurrent ones in one transaction, one
// fsync for all, waiting at most batchDelay for company. fn may run more
// than once (alone, when a batch-mate fails), so it must depend on its
// transaction only.
func (s *Store) batch(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return vault.StorageFull(s.db.Batch(fn))
}

// batchDelay is how long a batched write waits for others to share its
// commit (bbolt's default is 10ms; only batch uses it).
const batchDelay = time.Millisecond

func (s *Store) get(ctx context.Context, bucket []byte, key string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return vault.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	v, err := s.get(ctx, bMeta, key)
	if errors.Is(err, vault.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (s *Store) PutMeta(ctx context.Context, key string, val []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte(key), val) })
}

func (s *Store) create(ctx context.Context, bucket []byte, key string, val []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(key)) != nil {
			return vault.ErrExists
		}
		return b.Put([]byte(key), val)
	})
}

func (s *Store) CreateUser(ctx context.Context, id string, blob []byte) error {
	return s.create(ctx, bUsers, id, blob)
}

func (s *Store) PutUser(ctx context.Context, id string, blob []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bUsers).Put([]byte(id), blob) })
}

func (s *Store) User(ctx context.Context, id string) ([]byte, error) { return s.get(ctx, bUsers, id) }

// Users implements vault.Backend: one read transaction copies the rows out.
func (s *Store) Users(ctx context.Context, prefix string) ([]vault.UserRow, error) {
	var rows []vault.UserRow
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bUsers).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			rows = append(rows, vault.UserRow{ID: string(k), Blob: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (s *Store) PutToken(ctx context.Context, t vault.TokenRow) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bTokens).Put([]byte(t.ID), b) })
}

func (s *Store) Token(ctx context.Context, id string) (vault.TokenRow, error) {
	var t vault.TokenRow
	b, err := s.get(ctx, bTokens, id)
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(b, &t)
}

// TouchToken shares the insert queue's group commits: after a restart,
// or every few minutes, each client's first request touches its token,
// and a commit each would hold the writer lock hundreds of times over.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bTokens)
		v := b.Get([]byte(id))
		if v == nil {
			return vault.ErrNotFound
		}
		var t vault.TokenRow
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		t.LastUsed = at.UTC()
		nb, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nb)
	})
}

func (s *Store) CreatePatientKeys(ctx context.Context, patientID string, blob []byte) error {
	return s.create(ctx, bPKeys, patientID, blob)
}

func (s *Store) PatientKeys(ctx context.Context, patientID string) ([]byte, error) {
	return s.get(ctx, bPKeys, patientID)
}

// recordKey is schema 0x00 time tag.
func recordKey(dst []byte, schema string, t int64, tag [16]byte) []byte {
	dst = append(dst, schema...)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
	return append(dst, tag[:]...)
}

func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
}

// Close stops the writer and closes the file. Writes already queued
// finish; later ones get ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// Check opens the database file at path read-only and runs bbolt's
// consistency check over every page. The file must not be open elsewhere in
// this process.
func Check(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %v", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
