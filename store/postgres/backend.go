package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/vault"
)

// Meta implements vault.Backend.
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	v, err := s.getBytes(ctx, "SELECT value FROM meta WHERE key = $1", key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

// PutMeta implements vault.Backend.
func (s *Store) PutMeta(ctx context.Context, key string, val []byte) error {
	return s.exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", key, nonNil(val))
}

// CreateUser implements vault.Backend.
func (s *Store) CreateUser(ctx context.Context, id string, blob []byte) error {
	return s.create(ctx, "INSERT INTO users (id, blob) VALUES ($1, $2) ON CONFLICT DO NOTHING", id, nonNil(blob))
}

// PutUser implements vault.Backend.
func (s *Store) PutUser(ctx context.Context, id string, blob []byte) error {
	return s.exec(ctx, "INSERT INTO users (id, blob) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET blob = EXCLUDED.blob", id, nonNil(blob))
}

// User implements vault.Backend.
func (s *Store) User(ctx context.Context, id string) ([]byte, error) {
	return notFound(s.getBytes(ctx, "SELECT blob FROM users WHERE id = $1", id))
}

// Users implements vault.Backend. The prefix is compared as bytes
// (starts_with under COLLATE "C"), never as a LIKE pattern.
func (s *Store) Users(ctx context.Context, prefix string) ([]vault.UserRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT id, blob FROM users WHERE id >= $1 AND starts_with(id, $1) ORDER BY id", prefix)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (vault.UserRow, error) {
		var u vault.UserRow
		return u, r.Scan(&u.ID, &u.Blob)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutToken implements vault.Backend. The row is stored as the same JSON
// bbolt stores, so times keep their nanoseconds and zones.
func (s *Store) PutToken(ctx context.Context, t vault.TokenRow) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.exec(ctx, "INSERT INTO tokens (id, user_id, row_json) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, row_json = EXCLUDED.row_json", t.ID, t.UserID, b)
}

// Token implements vault.Backend.
func (s *Store) Token(ctx context.Context, id string) (vault.TokenRow, error) {
	b, err := notFound(s.getBytes(ctx, "SELECT row_json FROM tokens WHERE id = $1", id))
	if err != nil {
		return vault.TokenRow{}, err
	}
	var t vault.TokenRow
	return t, json.Unmarshal(b, &t)
}

// TouchToken implements vault.Backend: an update of a stored row, which
// never creates one.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var b []byte
		if err := tx.QueryRow(ctx, "SELECT row_json FROM tokens WHERE id = $1 FOR UPDATE", id).Scan(&b); err != nil {
			_, err = notFound(nil, err)
			return err
		}
		var t vault.TokenRow
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		t.LastUsed = at
		nb, err := json.Marshal(t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE tokens SET row_json = $2 WHERE id = $1", id, nb)
		return err
	})
}

// Tokens implements vault.Backend.
func (s *Store) Tokens(ctx context.Context, userID string) ([]vault.TokenRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT row_json FROM tokens WHERE user_id = $1 ORDER BY id", userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (vault.TokenRow, error) {
		var b []byte
		var t vault.TokenRow
		if err := r.Scan(&b); err != nil {
			return t, err
		}
		return t, json.Unmarshal(b, &t)
	})
}

// DeleteToken implements vault.Backend.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM tokens WHERE id = $1", id)
	if err != nil {
		return writeErr(err)
	}
	if tag.RowsAffected() == 0 {
		return vault.ErrNotFound
	}
	return nil
}

// CreatePatientKeys implements vault.Backend.
func (s *Store) CreatePatientKeys(ctx context.Context, patientID string, blob []byte) error {
	return s.create(ctx, "INSERT INTO patient_keys (patient, blob) VALUES ($1, $2) ON CONFLICT DO NOTHING", patientID, nonNil(blob))
}

// PatientKeys implements vault.Backend.
func (s *Store) PatientKeys(ctx context.Context, patientID string) ([]byte, error) {
	return notFound(s.getBytes(ctx, "SELECT blob FROM patient_keys WHERE patient = $1", patientID))
}

// Insert implements vault.Backend: one transaction per call, which first
// takes a key-share lock on the patient's key row (a DeletePatient waits
// for it, and an insert after the delete finds no row), then inserts the
// records not yet stored with one statement.
func (s *Store) Insert(ctx context.Context, patientID string, recs []vault.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if patientID == "" {
		return 0, errors.New("empty patient id")
	}
	// Refused before anything is sent: the whole call fails.
	for i := range recs {
		recs[i].Stored = false
		if recs[i].Schema == "" || len(recs[i].Value) == 0 {
			return 0, fmt.Errorf("record %d has no schema or no value", i)
		}
	}
	// Duplicates within the call: the first wins.
	first := make(map[string]int, len(recs))
	order := make([]int, 0, len(recs))
	schemas := make([]string, 0, len(recs))
	times := make([]int64, 0, len(recs))
	tags := make([][]byte, 0, len(recs))
	values := make([][]byte, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		k := identity(r.Schema, r.Time, r.Tag[:])
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		order = append(order, i)
		schemas = append(schemas, r.Schema)
		times = append(times, r.Time)
		tags = append(tags, r.Tag[:])
		values = append(values, r.Value)
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, vault.ErrClosed
	}
	var stored []int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		stored = stored[:0]
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM patient_keys WHERE patient = $1 FOR KEY SHARE", patientID).Scan(&one); err != nil {
			_, err = notFound(nil, err)
			return err
		}
		if ok, err := copyNew(ctx, tx, patientID, schemas, times, tags, values); err != nil || ok {
			if ok {
				stored = append(stored, order...)
			}
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO readings (patient, schema_id, t, tag, value)
			SELECT $1, s, t, tag, v FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::bytea[]) AS u(s, t, tag, v)
			ON CONFLICT DO NOTHING RETURNING schema_id, t, tag`, patientID, schemas, times, tags, values)
		if err != nil {
			return err
		}
		var schema string
		var t int64
		var tag []byte
		_, err = pgx.ForEachRow(rows, []any{&schema, &t, &tag}, func() error {
			i, ok := first[identity(schema, t, tag)]
			if !ok {
				return fmt.Errorf("the database returned a record that was not inserted")
			}
			stored = append(stored, i)
			return nil
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, i := range stored {
		recs[i].Stored = true
	}
	return len(stored), nil
}

func identity(schema string, t int64, tag []byte) string {
	return fmt.Sprintf("%s\x00%d\x00%x", schema, t, tag)
}

// scanPage is how many records one statement of a Scan reads.
const scanPage = 512

// Schemas implements vault.Backend with a loose index scan: each step
// takes the next schema after the last from the primary key's index
// (patient, schema_id, …), so the cost is a probe per schema the patient
// has, whatever her number of readings.
func (s *Store) Schemas(ctx context.Context, patientID string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE found(schema_id) AS (
			(SELECT schema_id FROM readings WHERE patient = $1 ORDER BY schema_id LIMIT 1)
			UNION ALL
			SELECT (SELECT r.schema_id FROM readings r WHERE r.patient = $1 AND r.schema_id > found.schema_id ORDER BY r.schema_id LIMIT 1)
			FROM found WHERE found.schema_id IS NOT NULL)
		SELECT schema_id FROM found WHERE schema_id IS NOT NULL`, patientID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Scan implements vault.Backend: keyset pages of scanPage records, each
// one statement, so no transaction or connection is held while the caller
// consumes them.
func (s *Store) Scan(ctx context.Context, patientID, schema string, from, to int64) iter.Seq2[vault.Record, error] {
	return func(yield func(vault.Record, error) bool) {
		afterT, afterTag, first := from, []byte(nil), true
		for {
			if err := ctx.Err(); err != nil {
				yield(vault.Record{}, err)
				return
			}
			var rows pgx.Rows
			var err error
			if first {
				rows, err = s.pool.Query(ctx, `SELECT t, tag, value FROM readings
					WHERE patient = $1 AND schema_id = $2 AND t >= $3 AND t < $4
					ORDER BY t, tag LIMIT $5`, patientID, schema, from, to, scanPage)
			} else {
				rows, err = s.pool.Query(ctx, `SELECT t, tag, value FROM readings
					WHERE patient = $1 AND schema_id = $2 AND (t, tag) > ($3, $4) AND t < $5
					ORDER BY t, tag LIMIT $6`, patientID, schema, afterT, afterTag, to, scanPage)
			}
			if err != nil {
				yield(vault.Record{}, err)
				return
			}
			page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (vault.Record, error) {
				rec := vault.Record{Schema: schema}
				var tag []byte
				if err := r.Scan(&rec.Time, &tag, &rec.Value); err != nil {
					return rec, err
				}
				if len(tag) != len(rec.Tag) {
					return rec, fmt.Errorf("a stored record's tag is %d bytes, not %d", len(tag), len(rec.Tag))
				}
				copy(rec.Tag[:], tag)
				return rec, nil
			})
			if err != nil {
				yield(vault.Record{}, err)
				return
			}
			for _, r := range page {
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < scanPage {
				return
			}
			last := page[len(page)-1]
			afterT, afterTag, first = last.Time, bytes.Clone(last.Tag[:]), false
		}
	}
}

// Count implements vault.Backend from the counter row the readings'
// triggers keep: O(1).
func (s *Store) Count(ctx context.Context, patientID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT n FROM reading_counts WHERE patient = $1", patientID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return int(n), err
}

// DeletePatient implements vault.Backend: key row, records, counter, user
// and tokens in one transaction, with a patient-deleted event
// (events.go) that the other replicas on the database act on. The
// deleted rows stay in the table files as dead tuples until a VACUUM
// reuses the space and in the write-ahead log, standbys and backups for
// their retention (docs/scaling.md).
func (s *Store) DeletePatient(ctx context.Context, patientID string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		keys, err := tx.Exec(ctx, "DELETE FROM patient_keys WHERE patient = $1", patientID)
		if err != nil {
			return err
		}
		users, err := tx.Exec(ctx, "DELETE FROM users WHERE id = $1", patientID)
		if err != nil {
			return err
		}
		if keys.RowsAffected() == 0 && users.RowsAffected() == 0 {
			return vault.ErrNotFound
		}
		for _, q := range []string{
			"DELETE FROM readings WHERE patient = $1",
			"DELETE FROM reading_counts WHERE patient = $1",
			"DELETE FROM tokens WHERE user_id = $1",
		} {
			if _, err := tx.Exec(ctx, q, patientID); err != nil {
				return err
			}
		}
		return appendEvent(ctx, tx, EventPatientDeleted, patientID)
	})
}

// PatientKeyBlobs implements vault.Backend.
func (s *Store) PatientKeyBlobs(ctx context.Context, after string, limit int) ([]vault.PatientKeyBlob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT patient, blob FROM patient_keys WHERE patient > $1 ORDER BY patient LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (vault.PatientKeyBlob, error) {
		var p vault.PatientKeyBlob
		return p, r.Scan(&p.PatientID, &p.Blob)
	})
}

// SwapPatientKeys implements vault.Backend: one compare-and-swap UPDATE
// per blob, in one transaction.
func (s *Store) SwapPatientKeys(ctx context.Context, swaps []vault.KeySwap) error {
	for i := range swaps {
		swaps[i].Swapped = false
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(swaps) == 0 {
		return nil
	}
	done := make([]bool, len(swaps))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for i, sw := range swaps {
			tag, err := tx.Exec(ctx, "UPDATE patient_keys SET blob = $3 WHERE patient = $1 AND blob = $2", sw.PatientID, nonNil(sw.Old), nonNil(sw.New))
			if err != nil {
				return err
			}
			done[i] = tag.RowsAffected() == 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range swaps {
		swaps[i].Swapped = done[i]
	}
	return nil
}

// SwapMeta implements vault.Backend. As bbolt's: every swap's Old is
// compared with the value stored before the call (the rows locked FOR
// UPDATE), and only if all match are the swaps applied, in order, so a key
// named twice ends with its last New. Of several callers creating one key
// (Old nil) at once, the INSERTs' primary key lets one win; the others get
// ErrConflict. With scrub, the meta table is rewritten (VACUUM FULL) after
// the swap commits, so the replaced values leave its live file; the
// write-ahead log and backups keep them for their retention
// (docs/scaling.md).
func (s *Store) SwapMeta(ctx context.Context, swaps []vault.MetaSwap, scrub bool) error {
	for _, sw := range swaps {
		if sw.Key == "" {
			return errors.New("an empty meta key cannot be swapped")
		}
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, sw := range swaps {
			var cur []byte
			err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1 FOR UPDATE", sw.Key).Scan(&cur)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if sw.Old != nil {
					return vault.ErrConflict
				}
			case err != nil:
				return err
			case sw.Old == nil || !bytes.Equal(cur, sw.Old):
				return vault.ErrConflict
			}
		}
		written := map[string]bool{}
		for _, sw := range swaps {
			if sw.Key == vault.MetaMaster && !written[sw.Key] {
				// Every replica reloads the keyset (keyset.go).
				if err := appendEvent(ctx, tx, EventMasterChanged, ""); err != nil {
					return err
				}
			}
			first := !written[sw.Key]
			written[sw.Key] = true
			switch {
			case sw.New == nil:
				if _, err := tx.Exec(ctx, "DELETE FROM meta WHERE key = $1", sw.Key); err != nil {
					return err
				}
			case sw.Old == nil && first:
				// Absent when checked, and nothing to lock: another
				// creator may have inserted it since.
				tag, err := tx.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", sw.Key, sw.New)
				if err != nil {
					return err
				}
				if tag.RowsAffected() != 1 {
					return vault.ErrConflict
				}
			default:
				if _, err := tx.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", sw.Key, sw.New); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil || !scrub {
		return err
	}
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), "VACUUM (FULL) meta"); err != nil {
		return fmt.Errorf("%w: %v", vault.ErrScrubPending, err)
	}
	return nil
}

// exec runs one write statement.
func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, q, args...)
	return writeErr(err)
}

// create runs an INSERT … ON CONFLICT DO NOTHING: ErrExists when it
// inserted nothing.
func (s *Store) create(ctx context.Context, q string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return writeErr(err)
	}
	if tag.RowsAffected() == 0 {
		return vault.ErrExists
	}
	return nil
}

func notFound(b []byte, err error) ([]byte, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, vault.ErrNotFound
	}
	return b, err
}

// nonNil turns a nil slice into an empty one: a NOT NULL bytea column
// stores an empty value, not a NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
