package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// scrubKeyTables are the tables whose deleted rows carry what a patient's
// deletion must destroy: the wrapped key (patient_keys, the one that
// matters: without it no record opens), the sealed account (users) and the
// token rows (tokens). Small: one row per patient or token.
var scrubKeyTables = []string{"patient_keys", "users", "tokens"}

// scrubRecordTables are the tables of the sealed records and their
// counters. Large: rewriting them takes as long as copying the table.
var scrubRecordTables = []string{"readings", "reading_counts"}

// ScrubOptions choose what a [Store.Scrub] rewrites.
type ScrubOptions struct {
	// Records rewrites the records' tables too (readings, reading_counts),
	// not only the key, account and token tables. A deleted patient's
	// records cannot be opened once the key is scrubbed; this removes their
	// ciphertexts as well, at the cost of rewriting the largest table.
	Records bool
}

// ScrubResult says what a Scrub did.
type ScrubResult struct {
	// Skipped is true when another process held the scrub lock (its scrub
	// was running), so this one rewrote nothing.
	Skipped bool
	Tables  []string      // the tables rewritten, in order
	Took    time.Duration // the whole scrub
}

// Scrub removes deleted rows' bytes from the tables' files: a VACUUM FULL
// of each table (ScrubOptions says which) writes a new file with the live
// rows only and unlinks the old one. A patient's deletion removes her key
// row at once (DeletePatient), but PostgreSQL leaves the deleted row in
// the table's file as a dead tuple until its space is reused; a plain
// VACUUM (and autovacuum) only marks that space free, without overwriting
// it. After Scrub the bytes are gone from the table's files; the
// write-ahead log, standbys and backups keep them for their own retention
// (docs/scaling.md, "Crypto-shredding on PostgreSQL").
//
// Cost: VACUUM FULL takes an ACCESS EXCLUSIVE lock on each table while it
// rewrites it, so every read and write of that table (on every vault
// process) waits for it, and it needs free disk for a copy of the table.
// The key, account and token tables are small (one row per patient or
// token); the records' table is the vault's bulk.
//
// Of several processes calling Scrub at once one does the work and the
// others return Skipped (a session-level advisory lock, held for the
// scrub).
func (s *Store) Scrub(ctx context.Context, o ScrubOptions) (ScrubResult, error) {
	began := time.Now()
	if err := ctx.Err(); err != nil {
		return ScrubResult{}, err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ScrubResult{}, errors.New("the store is closed")
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return ScrubResult{}, err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockScrub).Scan(&got); err != nil {
		return ScrubResult{}, err
	}
	if !got {
		return ScrubResult{Skipped: true, Took: time.Since(began)}, nil
	}
	// Unlocked on the same connection, even when ctx is done.
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockScrub) //nolint:errcheck // the lock also ends with the session
	tables := scrubKeyTables
	if o.Records {
		tables = append(append([]string(nil), scrubKeyTables...), scrubRecordTables...)
	}
	var res ScrubResult
	for _, tbl := range tables {
		if _, err := conn.Exec(ctx, "VACUUM (FULL) "+tbl); err != nil {
			res.Took = time.Since(began)
			return res, fmt.Errorf("scrub %s: %w", tbl, err)
		}
		res.Tables = append(res.Tables, tbl)
	}
	res.Took = time.Since(began)
	return res, nil
}
