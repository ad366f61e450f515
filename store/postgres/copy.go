package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// copyMin is the smallest batch Insert first tries to COPY: below it, the
// one INSERT … ON CONFLICT statement costs no more.
const copyMin = 64

// copyNew is Insert's fast path for a batch of new records, the usual
// case (a device uploads what it has not uploaded before): one COPY into
// readings inside a savepoint of the insert's transaction. COPY has no
// ON CONFLICT, so when any record is stored already the COPY fails on the
// primary key (23505), the savepoint is rolled back, and copyNew returns
// false for Insert's INSERT … ON CONFLICT DO NOTHING, which skips the
// duplicates: a re-upload costs two statements, a new batch one cheap
// one. The statement triggers keep the counts for COPY as for INSERT.
func copyNew(ctx context.Context, tx pgx.Tx, patientID string, schemas []string, times []int64, tags, values [][]byte) (bool, error) {
	if len(schemas) < copyMin {
		return false, nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	n, err := sp.CopyFrom(ctx, pgx.Identifier{"readings"}, []string{"patient", "schema_id", "t", "tag", "value"},
		pgx.CopyFromSlice(len(schemas), func(i int) ([]any, error) {
			return []any{patientID, schemas[i], times[i], tags[i], values[i]}, nil
		}))
	var pe *pgconn.PgError
	switch {
	case err == nil && n == int64(len(schemas)):
		return true, sp.Commit(ctx)
	case err == nil:
		sp.Rollback(ctx)
		return false, errors.New("COPY stored fewer records than it was given")
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation: some are stored already
		return false, sp.Rollback(ctx)
	default:
		sp.Rollback(ctx)
		return false, err
	}
}
