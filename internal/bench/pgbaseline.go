package bench

// The ingest bench on PostgreSQL ('vault bench --database DSN'): each
// round and point kind runs in its own scratch schema of the given
// database, dropped after, and the baseline is a raw pgx COPY of the same
// point bytes into a table shaped like the vault's readings table, from
// as many connections as there are uploaders, one COPY (one committed
// transaction) per request batch.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// withSearchPath returns dsn with its sessions' search_path set to schema,
// so a vault opened on it makes and finds its tables there.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("the database address is not a valid URL")
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}

// pgScratch makes a new schema for one round and returns the DSN that
// works in it and a function that drops it.
func pgScratch(ctx context.Context, dsn, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %v", err)
	}
	schema := pgx.Identifier{fmt.Sprintf("vault_bench_%d_%s", os.Getpid(), name)}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema.Sanitize()); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create a scratch schema: %v", err)
	}
	drop := func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema.Sanitize()+" CASCADE")
		conn.Close(context.Background())
	}
	scoped, err := withSearchPath(dsn, schema[0])
	if err != nil {
		drop()
		return "", nil, err
	}
	return scoped, drop, nil
}

// copyBaseline COPYs the points of every uploader, concurrently, one COPY
// per batch, into a fresh table like the vault's readings (patient,
// schema, time, tag, value; the same primary key). It returns the time
// the COPYs took, the points' bytes and the table's size with its index.
func copyBaseline(ctx context.Context, dsn, kind string, uploaders, readings, batch int) (secs float64, pointBytes int, tableBytes int64, err error) {
	conns := make([]*pgx.Conn, uploaders)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for u := range conns {
		if conns[u], err = pgx.Connect(ctx, dsn); err != nil {
			return 0, 0, 0, err
		}
	}
	if _, err := conns[0].Exec(ctx, `CREATE TABLE raw_readings (
		patient text COLLATE "C" NOT NULL, schema_id text COLLATE "C" NOT NULL, t bigint NOT NULL,
		tag bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (patient, schema_id, t, tag))`); err != nil {
		return 0, 0, 0, err
	}
	rows := make([][][][]any, uploaders) // uploader, batch, row
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for u := range uploaders {
		bs, n := bodies(kind, u, readings, batch)
		pointBytes += n
		i := 0
		for _, body := range bs {
			var b [][]any
			for line := range bytes.Lines(body) {
				tag := make([]byte, 16)
				rand.Read(tag)
				b = append(b, []any{fmt.Sprintf("pt_bench%d", u), "omh:blood-glucose:4.0", base + int64(i)*int64(time.Minute), tag, bytes.TrimSuffix(line, []byte("\n"))})
				i++
			}
			rows[u] = append(rows[u], b)
		}
	}
	cols := []string{"patient", "schema_id", "t", "tag", "value"}
	var wg sync.WaitGroup
	errs := make([]error, uploaders)
	start := time.Now()
	for u := range uploaders {
		wg.Go(func() {
			for _, b := range rows[u] {
				if _, err := conns[u].CopyFrom(ctx, pgx.Identifier{"raw_readings"}, cols, pgx.CopyFromRows(b)); err != nil {
					errs[u] = err
					return
				}
			}
		})
	}
	wg.Wait()
	secs = time.Since(start).Seconds()
	for _, err := range errs {
		if err != nil {
			return 0, 0, 0, fmt.Errorf("COPY: %v", err)
		}
	}
	err = conns[0].QueryRow(ctx, "SELECT pg_total_relation_size('raw_readings')").Scan(&tableBytes)
	return secs, pointBytes, tableBytes, err
}
