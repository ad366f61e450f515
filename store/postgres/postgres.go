// Package postgres is the PostgreSQL backend of the vault, for deployments
// that outgrow one machine: several vault processes on one database that
// their operators already run, back up and fail over. bbolt
// (store/boltstore) stays the default.
//
// It implements, on github.com/jackc/pgx/v5's pool:
//
//   - vault.Backend itself (the record store);
//   - the consent ledger's store ([Store.Ledger]), whose Update
//     transactions are serialised across every process on the database by
//     a transaction-scoped advisory lock;
//   - the web UI's store ([Store.Web], web/webstore): invites, passkeys,
//     recovery codes, sessions, WebAuthn ceremonies, spent sign-in
//     challenges and remembered app consents, in tables, so every process
//     on the database sees the same ones; and
//   - the OAuth provider's store ([Store.OAuth], oauth/oauthstore).
//
// Each passes the same conformance suite as bbolt's (store/storetest).
// What must happen once however many processes race for it (a claim, a
// take, a rotation, a per-user or per-table limit) is decided inside one
// transaction by a row lock, a DELETE … RETURNING, a primary key or a
// transaction-scoped advisory lock (migrate.go lists them).
//
// # Schema
//
// [Open] applies the schema's embedded, ordered steps (migrate.go) in one
// transaction under an advisory lock: an empty database is migrated, a
// current one gets no DDL, and one a newer binary migrated is refused
// ([ErrNewerSchema]). Open refuses a server running with fsync or
// synchronous_commit off, which can lose commits it acknowledged, unless
// Options.AllowUnsafeDurability says otherwise (tests only).
//
// Text keys are COLLATE "C" and binary ones bytea, so every ordering is
// byte order, as bbolt's; reading times are signed nanoseconds (bigint),
// since the identity of a record includes its exact time.
//
// # What the database sees
//
// The same as bbolt's file: user ids, token ids with their user ids and
// hashes, patient ids, schema ids, reading times and tags in the clear,
// and every secret already sealed (docs/architecture.md).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jupyterhealth/vault/vault"
)

// Options tune Open.
type Options struct {
	// AllowUnsafeDurability opens a server running with fsync or
	// synchronous_commit off. For throwaway test clusters only: such a
	// server can lose what the vault acknowledged.
	AllowUnsafeDurability bool
	// MaxConns bounds the pool's connections; zero means pgx's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int32
}

// Store is a PostgreSQL vault.Backend.
type Store struct {
	pool *pgxpool.Pool

	mu     sync.RWMutex // read-held by inserts in flight, write-held by Close
	closed bool
}

var _ vault.Backend = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// libpq key=value string), checks that the server is durable, and brings
// the schema up to date.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message can quote the DSN, password included.
		return nil, errors.New("the database address is not a valid PostgreSQL connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := prepare(ctx, pool, opts); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

func prepare(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Release()
	var fsync, syncCommit string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
		return fmt.Errorf("read the server's settings: %w", err)
	}
	if err := checkDurability(fsync, syncCommit); err != nil && !opts.AllowUnsafeDurability {
		return err
	}
	if _, err := migrate(ctx, conn.Conn()); err != nil {
		return fmt.Errorf("migrate the database: %w", err)
	}
	return nil
}

// Close closes the pool. Inserts in flight finish first; later calls fail
// (Insert with vault.ErrClosed). Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pool.Close()
	return nil
}

// Ping implements vault.Backend.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.pool.Ping(ctx)
}

// writeErr wraps a write's error in vault.ErrStorageFull when the server's
// disk is full (SQLSTATE 53100, disk_full).
func writeErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" {
		return fmt.Errorf("%w: %w", vault.ErrStorageFull, err)
	}
	return vault.StorageFull(err)
}

// inTx runs fn in one read-committed transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, fn)
	return writeErr(err)
}

// getBytes returns one bytea column of one row, nil and ErrNoRows when
// there is none.
func (s *Store) getBytes(ctx context.Context, q string, args ...any) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var b []byte
	err := s.pool.QueryRow(ctx, q, args...).Scan(&b)
	return b, err
}
