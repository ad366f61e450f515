package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// vaultTables are every table the schema's steps create but vault_schema,
// which holds the steps applied, and rate_buckets, which holds no vault
// data (a replica waiting on an empty database may fill it with sign-in
// attempts).
var vaultTables = []string{
	"meta", "users", "tokens", "patient_keys", "readings", "reading_counts",
	"ledger_head", "ledger_meta", "ledger_entries", "ledger_hashes", "ledger_index", "ledger_checkpoints",
	"web_invites", "web_credentials", "web_recovery", "web_sessions", "web_ceremonies", "web_spent", "web_app_consents",
	"oauth_clients", "oauth_requests", "oauth_codes", "oauth_tokens", "oauth_jti", "oauth_keys",
	"vault_events",
}

// NonEmpty names the tables that hold a row; none for a database no vault
// has used ('vault migrate' copies into such a database only).
func (s *Store) NonEmpty(ctx context.Context) ([]string, error) {
	var full []string
	for _, t := range vaultTables {
		var any bool
		if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&any); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		if any {
			full = append(full, t)
		}
	}
	return full, nil
}

// Empty removes every row of every vault table in one transaction
// (TRUNCATE), leaving the schema: for 'vault migrate --restart' after a
// copy that did not finish. Nothing else should call it.
func (s *Store) Empty(ctx context.Context) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(vaultTables, ", "))
		return err
	})
}

// ReadingBytes is the size of the readings table with its index and
// TOAST, for the ingest bench's bytes per reading.
func (s *Store) ReadingBytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT pg_total_relation_size('readings')").Scan(&n)
	return n, err
}
