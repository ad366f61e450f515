package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

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
		t := &ledgerTx{ctx: ctx, tx: tx, w: new(ledgerWrites)}
		if err := fn(t); err != nil {
			return err
		}
		return t.flush()
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

// ledgerTx is both the ReadTx and, inside an Update, the WriteTx. A read
// is a statement in the transaction; returned slices are fresh. Inside an
// Update the writes are kept in w and sent together when fn returns (or
// before a read that w cannot answer alone), in one round trip: an append
// of a few entries writes each entry, its hashes, the index rows it
// changes, the digest and the size, and while its transaction runs it
// holds the lock every replica's appends wait for, so its round trips are
// everyone's.
type ledgerTx struct {
	ctx context.Context
	tx  pgx.Tx
	w   *ledgerWrites // nil in a View
}

// ledgerWrites are a write transaction's writes not yet sent, the last
// value for each row (every write replaces its row, so only the last one
// counts). Reads of a single row are answered from here first, so the
// transaction sees its own writes.
type ledgerWrites struct {
	entries     map[int64][]byte
	hashes      map[int64][]byte
	index       map[string][]byte
	meta        map[string][]byte
	size        int64
	sizeSet     bool
	checkpoints []ledgerCheckpoint
	// indexRead holds the index rows this transaction has read, nil for
	// one that is not stored: while it holds the lock no other process
	// writes them, and an append reads a row twice (its old value for the
	// digest, then to change it).
	indexRead map[string][]byte
}

type ledgerCheckpoint struct {
	size   int64
	signed []byte
}

func (w *ledgerWrites) empty() bool {
	return w == nil || len(w.entries)+len(w.hashes)+len(w.index)+len(w.meta)+len(w.checkpoints) == 0 && !w.sizeSet
}

// flush sends the writes kept in t.w, as one batch of at most six
// statements (one per table), and empties it.
func (t *ledgerTx) flush() error {
	w := t.w
	if w.empty() {
		return nil
	}
	b := new(pgx.Batch)
	upsert(b, "ledger_entries", "idx bigint", "sealed", w.entries, sameKey)
	upsert(b, "ledger_hashes", "idx bigint", "hash", w.hashes, sameKey)
	upsert(b, "ledger_index", "id bytea", "sealed", w.index, textKey)
	upsert(b, "ledger_meta", "key bytea", "value", w.meta, textKey)
	if w.sizeSet {
		b.Queue("INSERT INTO ledger_head (id, size) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size", w.size)
	}
	for _, c := range w.checkpoints {
		b.Queue("INSERT INTO ledger_checkpoints (size, signed) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING", c.size, c.signed)
	}
	read := w.indexRead
	if read == nil {
		read = make(map[string][]byte, len(w.index))
	}
	for id, v := range w.index {
		read[id] = v // stored now: still this transaction's own
	}
	*w = ledgerWrites{indexRead: read}
	return t.tx.SendBatch(t.ctx, b).Close()
}

// upsert queues, when m holds rows, one insert of them all into table
// (its key column and type, its value column) that replaces a row with
// the same key: the keys as arg makes them, unnested beside the values.
// Every name is one of flush's constants.
func upsert[K comparable, A any](b *pgx.Batch, table, key, val string, m map[K][]byte, arg func(K) A) {
	if len(m) == 0 {
		return
	}
	keys := make([]A, 0, len(m))
	vals := make([][]byte, 0, len(m))
	for k, v := range m {
		keys = append(keys, arg(k))
		vals = append(vals, v)
	}
	col, typ, _ := strings.Cut(key, " ")
	b.Queue(fmt.Sprintf(`INSERT INTO %s (%s, %s) SELECT * FROM unnest($1::%s[], $2::bytea[])
		ON CONFLICT (%s) DO UPDATE SET %s = EXCLUDED.%s`, table, col, val, typ, col, val, val), keys, vals)
}

func sameKey(i int64) int64    { return i }
func textKey(id string) []byte { return []byte(id) }

// flushed is flush for a read that needs the table as the transaction
// left it (a range, a count): in a View, or with nothing kept, it costs
// nothing.
func (t *ledgerTx) flushed() error {
	if t.w == nil {
		return nil
	}
	return t.flush()
}

// kept returns a copy of a kept row: a caller may change what a read
// returns, and the kept row is still to be sent.
func kept[K comparable](m map[K][]byte, k K) ([]byte, bool) {
	v, ok := m[k]
	if !ok {
		return nil, false
	}
	return bytes.Clone(v), true
}

// keep stores a row in m, made on first use, copying v: the caller may
// use its slice again once the call returns.
func keep[K comparable](m *map[K][]byte, k K, v []byte) {
	if *m == nil {
		*m = make(map[K][]byte)
	}
	(*m)[k] = bytes.Clone(v)
}

// EntriesDesc reads pages of entries, the first of entriesFirstPage rows
// and each next one twice as large, up to entriesPage: a caller that stops
// early does not read the whole log, and the commonest caller, a replica
// catching up on the few entries another appended since its last
// decision, reads a few rows in one statement rather than a full page.
const (
	entriesFirstPage = 8
	entriesPage      = 256
)

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
	if t.w != nil && t.w.sizeSet {
		return t.w.size, nil
	}
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
	if t.w != nil {
		if v, ok := kept(t.w.meta, key); ok {
			return v, nil
		}
	}
	return t.bytesRow("SELECT value FROM ledger_meta WHERE key = $1", []byte(key))
}

func (t *ledgerTx) MetaKeys(fn func(key string) error) error {
	if err := t.flushed(); err != nil {
		return err
	}
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
	if t.w != nil {
		if v, ok := kept(t.w.entries, i); ok {
			return v, nil
		}
	}
	return t.bytesRow("SELECT sealed FROM ledger_entries WHERE idx = $1", i)
}

func (t *ledgerTx) EntriesDesc(below int64, fn func(i int64, sealed []byte) bool) error {
	if err := t.flushed(); err != nil {
		return err
	}
	for page := entriesFirstPage; below > 0; page = min(2*page, entriesPage) {
		rows, err := t.tx.Query(t.ctx, "SELECT idx, sealed FROM ledger_entries WHERE idx < $1 ORDER BY idx DESC LIMIT $2", below, page)
		if err != nil {
			return err
		}
		type entry struct {
			i      int64
			sealed []byte
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
			var e entry
			return e, r.Scan(&e.i, &e.sealed)
		})
		if err != nil {
			return err
		}
		for _, e := range got {
			if !fn(e.i, e.sealed) {
				return nil
			}
		}
		if len(got) < page {
			return nil
		}
		below = got[len(got)-1].i
	}
	return nil
}

func (t *ledgerTx) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	found := make(map[int64][]byte, len(indexes))
	ask := indexes
	if t.w != nil && len(t.w.hashes) > 0 {
		// The hashes this transaction wrote (an append reads those of
		// the entries before it) are not asked of the database.
		ask = nil
		for _, x := range indexes {
			if v, ok := t.w.hashes[x]; ok {
				found[x] = v
			} else {
				ask = append(ask, x)
			}
		}
	}
	if len(ask) == 0 {
		return hashesFound(indexes, found)
	}
	rows, err := t.tx.Query(t.ctx, "SELECT idx, hash FROM ledger_hashes WHERE idx = ANY($1)", ask)
	if err != nil {
		return nil, err
	}
	var idx int64
	var h []byte
	if _, err := pgx.ForEachRow(rows, []any{&idx, &h}, func() error {
		found[idx] = h
		return nil
	}); err != nil {
		return nil, err
	}
	return hashesFound(indexes, found)
}

// hashesFound is ReadHashes's answer from the hashes found by index.
func hashesFound(indexes []int64, found map[int64][]byte) ([]tlog.Hash, error) {
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
	if t.w == nil {
		return t.bytesRow("SELECT sealed FROM ledger_index WHERE id = $1", []byte(id))
	}
	if v, ok := kept(t.w.index, id); ok {
		return v, nil
	}
	if v, ok := kept(t.w.indexRead, id); ok {
		return v, nil
	}
	v, err := t.bytesRow("SELECT sealed FROM ledger_index WHERE id = $1", []byte(id))
	if err != nil {
		return nil, err
	}
	keep(&t.w.indexRead, id, v)
	return v, nil
}

func (t *ledgerTx) IndexRowsByID(ids []string) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if err := t.flushed(); err != nil {
		return nil, err
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
	if err := t.flushed(); err != nil {
		return err
	}
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
	if err := t.flushed(); err != nil {
		return -1, nil, err
	}
	var size int64
	var signed []byte
	err := t.tx.QueryRow(t.ctx, "SELECT size, signed FROM ledger_checkpoints ORDER BY size DESC LIMIT 1").Scan(&size, &signed)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil, nil
	}
	return size, signed, err
}

func (t *ledgerTx) Checkpoints(fn func(size int64, signed []byte) error) error {
	if err := t.flushed(); err != nil {
		return err
	}
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
	if err := t.flushed(); err != nil {
		return e, err
	}
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
	keep(&t.w.entries, i, sealed)
	return nil
}

func (t *ledgerTx) PutHashes(first int64, hs []tlog.Hash) error {
	if first < 0 || first > math.MaxInt64-int64(len(hs)) {
		return fmt.Errorf("stored hash indexes from %d", first)
	}
	if len(hs) == 0 {
		return nil
	}
	for j := range hs {
		keep(&t.w.hashes, first+int64(j), hs[j][:])
	}
	return nil
}

func (t *ledgerTx) PutIndexRow(id string, sealed []byte) error {
	if len(sealed) == 0 {
		return errEmptyValue
	}
	if id == "" {
		return errors.New("an index row needs an id") // as bbolt refuses an empty key
	}
	keep(&t.w.index, id, sealed)
	return nil
}

func (t *ledgerTx) ClearIndex() error {
	// Rows kept before the clear are cleared too, and not sent.
	t.w.index, t.w.indexRead = nil, nil
	return t.exec("DELETE FROM ledger_index")
}

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
	keep(&t.w.meta, key, val)
	return nil
}

func (t *ledgerTx) SetSize(n int64) error {
	if n < 0 {
		return fmt.Errorf("ledger size %d", n)
	}
	t.w.size, t.w.sizeSet = n, true
	return nil
}

func (t *ledgerTx) PutCheckpoint(size int64, signed []byte) error {
	if len(signed) == 0 {
		return errEmptyValue
	}
	if size < 0 {
		return fmt.Errorf("checkpoint size %d", size)
	}
	t.w.checkpoints = append(t.w.checkpoints, ledgerCheckpoint{size, bytes.Clone(signed)})
	return nil
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
	if err := t.flush(); err != nil {
		return 0, err
	}
	return appendEventID(t.ctx, t.tx, EventLedgerRebuilt, strconv.FormatInt(size, 10))
}

var (
	_ ledgerstore.Shared           = ledgerStore{}
	_ ledgerstore.RebuildAnnouncer = (*ledgerTx)(nil)
)
