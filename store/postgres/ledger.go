package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/tlog"
)

// Ledger is the consent ledger's store in this database. Every Update
// takes a transaction-scoped advisory lock first, so appends from every
// process on the database are serialised (two vaults never both write
// entry n); the primary keys on the entry and hash indexes are the safety
// net. View reads one REPEATABLE READ snapshot.
func (s *Store) Ledger() ledgerstore.Store { return ledgerStore{s} }

type ledgerStore struct{ s *Store }

func (l ledgerStore) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	return l.s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockLedger); err != nil {
			return err
		}
		return fn(&ledgerTx{ctx: ctx, tx: tx})
	})
}

func (l ledgerStore) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, l.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(&ledgerTx{ctx: ctx, tx: tx})
	})
}

// ledgerTx is both the ReadTx and, inside an Update, the WriteTx. Every
// call is a statement in the transaction; returned slices are fresh.
type ledgerTx struct {
	ctx context.Context
	tx  pgx.Tx
}

// entriesPage bounds one statement of EntriesDesc, so a caller that stops
// early does not read the whole log.
const entriesPage = 256

func (t *ledgerTx) bytesRow(q string, args ...any) ([]byte, error) {
	var b []byte
	err := t.tx.QueryRow(t.ctx, q, args...).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

func (t *ledgerTx) exec(q string, args ...any) error {
	_, err := t.tx.Exec(t.ctx, q, args...)
	return err
}

func (t *ledgerTx) Size() (int64, error) {
	var n int64
	err := t.tx.QueryRow(t.ctx, "SELECT size FROM ledger_head WHERE id = 1").Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

func (t *ledgerTx) Meta(key string) ([]byte, error) {
	if key == "size" {
		return nil, errors.New(`ledger metadata "size" is read with Size`)
	}
	return t.bytesRow("SELECT value FROM ledger_meta WHERE key = $1", []byte(key))
}

func (t *ledgerTx) MetaKeys(fn func(key string) error) error {
	rows, err := t.tx.Query(t.ctx, "SELECT key FROM ledger_meta ORDER BY key")
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := fn(string(k)); err != nil {
			return err
		}
	}
	return nil
}

func (t *ledgerTx) Entry(i int64) ([]byte, error) {
	if i < 0 {
		return nil, nil
	}
	return t.bytesRow("SELECT sealed FROM ledger_entries WHERE idx = $1", i)
}

func (t *ledgerTx) EntriesDesc(below int64, fn func(i int64, sealed []byte) bool) error {
	for below > 0 {
		rows, err := t.tx.Query(t.ctx, "SELECT idx, sealed FROM ledger_entries WHERE idx < $1 ORDER BY idx DESC LIMIT $2", below, entriesPage)
		if err != nil {
			return err
		}
		type entry struct {
			i      int64
			sealed []byte
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
			var e entry
			return e, r.Scan(&e.i, &e.sealed)
		})
		if err != nil {
			return err
		}
		for _, e := range page {
			if !fn(e.i, e.sealed) {
				return nil
			}
		}
		if len(page) < entriesPage {
			return nil
		}
		below = page[len(page)-1].i
	}
	return nil
}

func (t *ledgerTx) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := t.tx.Query(t.ctx, "SELECT idx, hash FROM ledger_hashes WHERE idx = ANY($1)", indexes)
	if err != nil {
		return nil, err
	}
	found := make(map[int64][]byte, len(indexes))
	var idx int64
	var h []byte
	if _, err := pgx.ForEachRow(rows, []any{&idx, &h}, func() error {
		found[idx] = h
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		v := found[x]
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d: %w", x, ledgerstore.ErrMissing)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

func (t *ledgerTx) IndexRow(id string) ([]byte, error) {
	return t.bytesRow("SELECT sealed FROM ledger_index WHERE id = $1", []byte(id))
}

func (t *ledgerTx) IndexRowsByID(ids []string) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([][]byte, len(ids))
	at := make(map[string][]int, len(ids))
	for i, id := range ids {
		keys[i] = []byte(id)
		at[id] = append(at[id], i)
	}
	rows, err := t.tx.Query(t.ctx, "SELECT id, sealed FROM ledger_index WHERE id = ANY($1)", keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			return nil, err
		}
		for _, i := range at[string(id)] {
			out[i] = sealed
		}
	}
	return out, rows.Err()
}

func (t *ledgerTx) IndexRows(fn func(id string, sealed []byte) error) error {
	rows, err := t.tx.Query(t.ctx, "SELECT id, sealed FROM ledger_index ORDER BY id")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			return err
		}
		if err := fn(string(id), sealed); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t *ledgerTx) LatestCheckpoint() (int64, []byte, error) {
	var size int64
	var signed []byte
	err := t.tx.QueryRow(t.ctx, "SELECT size, signed FROM ledger_checkpoints ORDER BY size DESC LIMIT 1").Scan(&size, &signed)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil, nil
	}
	return size, signed, err
}

func (t *ledgerTx) Checkpoints(fn func(size int64, signed []byte) error) error {
	rows, err := t.tx.Query(t.ctx, "SELECT size, signed FROM ledger_checkpoints ORDER BY size")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var size int64
		var signed []byte
		if err := rows.Scan(&size, &signed); err != nil {
			return err
		}
		if err := fn(size, signed); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t *ledgerTx) Extent() (ledgerstore.Extent, error) {
	var e ledgerstore.Extent
	err := t.tx.QueryRow(t.ctx, `SELECT
		(SELECT count(*) FROM ledger_entries), (SELECT coalesce(max(idx), -1) FROM ledger_entries),
		(SELECT count(*) FROM ledger_hashes), (SELECT coalesce(max(idx), -1) FROM ledger_hashes)`).
		Scan(&e.Entries, &e.LastEntry, &e.Hashes, &e.LastHash)
	return e, err
}

// errEmptyValue refuses an empty value, as the bbolt store does: a
// reader takes nil for "not stored".
var errEmptyValue = errors.New("the ledger stores no empty value")

func (t *ledgerTx) PutEntry(i int64, sealed []byte) error {
	if len(sealed) == 0 {
		return errEmptyValue
	}
	if i < 0 {
		return fmt.Errorf("entry index %d", i)
	}
	return t.exec("INSERT INTO ledger_entries (idx, sealed) VALUES ($1, $2) ON CONFLICT (idx) DO UPDATE SET sealed = EXCLUDED.sealed", i, nonNil(sealed))
}

func (t *ledgerTx) PutHashes(first int64, hs []tlog.Hash) error {
	if first < 0 || first > math.MaxInt64-int64(len(hs)) {
		return fmt.Errorf("stored hash indexes from %d", first)
	}
	if len(hs) == 0 {
		return nil
	}
	idx := make([]int64, len(hs))
	vals := make([][]byte, len(hs))
	for j := range hs {
		idx[j] = first + int64(j)
		vals[j] = hs[j][:]
	}
	return t.exec(`INSERT INTO ledger_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])
		ON CONFLICT (idx) DO UPDATE SET hash = EXCLUDED.hash`, idx, vals)
}

func (t *ledgerTx) PutIndexRow(id string, sealed []byte) error {
	if len(sealed) == 0 {
		return errEmptyValue
	}
	if id == "" {
		return errors.New("an index row needs an id") // as bbolt refuses an empty key
	}
	return t.exec("INSERT INTO ledger_index (id, sealed) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET sealed = EXCLUDED.sealed", []byte(id), nonNil(sealed))
}

func (t *ledgerTx) ClearIndex() error { return t.exec("DELETE FROM ledger_index") }

func (t *ledgerTx) PutMeta(key string, val []byte) error {
	if len(val) == 0 {
		return errEmptyValue
	}
	if key == "size" {
		return errors.New(`ledger metadata "size" is written with SetSize`)
	}
	if key == "" {
		return errors.New("ledger metadata needs a name") // as bbolt refuses an empty key
	}
	return t.exec("INSERT INTO ledger_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", []byte(key), nonNil(val))
}

func (t *ledgerTx) SetSize(n int64) error {
	if n < 0 {
		return fmt.Errorf("ledger size %d", n)
	}
	return t.exec("INSERT INTO ledger_head (id, size) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size", n)
}

func (t *ledgerTx) PutCheckpoint(size int64, signed []byte) error {
	if len(signed) == 0 {
		return errEmptyValue
	}
	if size < 0 {
		return fmt.Errorf("checkpoint size %d", size)
	}
	return t.exec("INSERT INTO ledger_checkpoints (size, signed) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING", size, nonNil(signed))
}

// Head is the committed log size, read in one statement on the pool
// (ledgerstore.Shared): a replica's ledger asks it before each decision to
// learn whether another replica has appended since.
func (l ledgerStore) Head(ctx context.Context) (int64, error) {
	var n int64
	err := l.s.pool.QueryRow(ctx, "SELECT size FROM ledger_head WHERE id = 1").Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// AnnounceRebuild appends a ledger-rebuilt event in the rebuild's
// transaction (ledgerstore.RebuildAnnouncer): every replica's watcher
// hands it to its ledger once the rebuilt index has committed.
func (t *ledgerTx) AnnounceRebuild(size int64) (int64, error) {
	return appendEventID(t.ctx, t.tx, EventLedgerRebuilt, strconv.FormatInt(size, 10))
}

var (
	_ ledgerstore.Shared           = ledgerStore{}
	_ ledgerstore.RebuildAnnouncer = (*ledgerTx)(nil)
)
