package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// LedgerTamperer alters the consent ledger's rows behind the ledger's
// back, as someone holding the database could. It exists for tamper tests
// (storetest.RunLedger): nothing in the product uses it.
//
// Tables and keys are the ledger store's: "entries" (key: the entry
// index, decimal), "hashes" (the stored hash index), "checkpoints" (the
// tree size), "index" (the row id) and "meta" (the name; the size is in
// its own head row, which this hook does not reach).
type LedgerTamperer struct{ s *Store }

// LedgerTamperer returns the tamper hook for this database's ledger.
func (s *Store) LedgerTamperer() *LedgerTamperer { return &LedgerTamperer{s} }

type ledgerTable struct {
	name, key, val string
	numeric        bool
}

var ledgerTables = map[string]ledgerTable{
	"entries":     {"ledger_entries", "idx", "sealed", true},
	"hashes":      {"ledger_hashes", "idx", "hash", true},
	"checkpoints": {"ledger_checkpoints", "size", "signed", true},
	"index":       {"ledger_index", "id", "sealed", false},
	"meta":        {"ledger_meta", "key", "value", false},
}

func ledgerRow(table, key string) (ledgerTable, any, error) {
	tb, ok := ledgerTables[table]
	if !ok {
		return tb, nil, fmt.Errorf("no ledger table %q", table)
	}
	if !tb.numeric {
		return tb, []byte(key), nil
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < 0 {
		return tb, nil, fmt.Errorf("table %s is keyed by a non-negative number, not %q", table, key)
	}
	return tb, n, nil
}

// Raw returns a copy of a row's stored bytes, or nil when it is absent.
func (t *LedgerTamperer) Raw(table, key string) ([]byte, error) {
	tb, k, err := ledgerRow(table, key)
	if err != nil {
		return nil, err
	}
	var v []byte
	err = t.s.pool.QueryRow(context.Background(), "SELECT "+tb.val+" FROM "+tb.name+" WHERE "+tb.key+" = $1", k).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

// SetRaw stores val as a row's bytes, or deletes the row when val is nil.
func (t *LedgerTamperer) SetRaw(table, key string, val []byte) error {
	tb, k, err := ledgerRow(table, key)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if val == nil {
		_, err = t.s.pool.Exec(ctx, "DELETE FROM "+tb.name+" WHERE "+tb.key+" = $1", k)
		return err
	}
	_, err = t.s.pool.Exec(ctx, "INSERT INTO "+tb.name+" VALUES ($1, $2) ON CONFLICT ("+tb.key+") DO UPDATE SET "+tb.val+" = EXCLUDED."+tb.val, k, val)
	return err
}

// ledgerSnapshotTables are every table of the ledger, head included.
var ledgerSnapshotTables = []string{"ledger_head", "ledger_meta", "ledger_entries", "ledger_hashes", "ledger_index", "ledger_checkpoints"}

// Snapshot copies every ledger table into a snapshot table beside it;
// restore puts the copy back in place of whatever the tables then hold,
// as restoring an older backup would (the rest of the database is left
// alone).
func (t *LedgerTamperer) Snapshot() (restore func() error, err error) {
	ctx := context.Background()
	if _, err := t.s.pool.Exec(ctx, "CREATE SEQUENCE IF NOT EXISTS ledger_snapshots"); err != nil {
		return nil, err
	}
	var n int64
	if err := t.s.pool.QueryRow(ctx, "SELECT nextval('ledger_snapshots')").Scan(&n); err != nil {
		return nil, err
	}
	snap := func(table string) string { return fmt.Sprintf("snap%d_%s", n, table) }
	err = pgx.BeginFunc(ctx, t.s.pool, func(tx pgx.Tx) error {
		for _, table := range ledgerSnapshotTables {
			if _, err := tx.Exec(ctx, "CREATE TABLE "+snap(table)+" AS TABLE "+table); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		return pgx.BeginFunc(ctx, t.s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockLedger); err != nil {
				return err
			}
			for _, table := range ledgerSnapshotTables {
				if _, err := tx.Exec(ctx, "DELETE FROM "+table); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "INSERT INTO "+table+" TABLE "+snap(table)); err != nil {
					return err
				}
			}
			return nil
		})
	}, nil
}
