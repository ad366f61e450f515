package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Advisory lock keys (pg_advisory_xact_lock), one per thing serialised
// across every process on the database. Arbitrary but fixed: "JHV" and a
// number.
const (
	lockMigrate int64 = 0x4a4856_0001
	lockLedger  int64 = 0x4a4856_0002
	// lockEvents orders the appends to vault_events: held to the commit,
	// so events commit in id order and a reader that has seen id n has
	// seen every event below it.
	lockEvents int64 = 0x4a4856_0003
	// lockRotation is held (a session lock, TryRotationLock) by the one
	// process running a master key rotation.
	lockRotation int64 = 0x4a4856_0004
	// lockScrub is the session lock a scrub holds (scrub.go), so that of
	// several processes whose schedules fire together one rewrites the
	// tables and the others skip. It once shared lockEvents' key, and a
	// scrub held every event append (a patient's deletion) while it ran.
	lockScrub int64 = 0x4a4856_0005
)

// Transaction-scoped advisory locks on two int4 keys (a space apart from
// the bigint keys above): a class and, for per-user limits, hashtext of
// the user id. A hash collision only serialises two users' writes.
const (
	lockWebUser       int32 = 0x4a48_01 // a user's passkeys, recovery codes, app consents
	lockWebSessions   int32 = 0x4a48_02 // the sessions table's limit
	lockWebCeremonies int32 = 0x4a48_03 // the ceremonies table's limit
	lockWebSpent      int32 = 0x4a48_04 // the spent challenges table's limit
	lockOAuthKeys     int32 = 0x4a48_05 // the signing keys kept
)

// migrations are the schema's steps, applied in order; vault_schema holds
// how many have run. A shipped step is never edited: a change is a new
// step at the end. Every step is transactional DDL, so the steps pending
// at an Open are applied together or not at all.
var migrations = []string{
	// 1: the record store (vault.Backend) and the consent ledger's store.
	`
CREATE TABLE vault_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);
INSERT INTO vault_schema VALUES (1, 0);

CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE users (id text COLLATE "C" PRIMARY KEY, blob bytea NOT NULL);
CREATE TABLE tokens (id text COLLATE "C" PRIMARY KEY, user_id text COLLATE "C" NOT NULL, row_json bytea NOT NULL);
CREATE INDEX tokens_user ON tokens (user_id, id);
-- The wrapped patient keys: a row nothing but a rotation's swap updates,
-- so no other write leaves old copies of a key in dead tuples.
CREATE TABLE patient_keys (patient text COLLATE "C" PRIMARY KEY, blob bytea NOT NULL);
-- Readings in bbolt's order: by schema, then time (signed nanoseconds),
-- then tag (bytea compares as memcmp). One B-tree serves Scan, the
-- duplicate check and DeletePatient.
CREATE TABLE readings (
	patient text COLLATE "C" NOT NULL,
	schema_id text COLLATE "C" NOT NULL,
	t bigint NOT NULL,
	tag bytea NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (patient, schema_id, t, tag)
);
-- Count's O(1) answer, kept exact by statement triggers whatever writes
-- the readings (stray rows included).
CREATE TABLE reading_counts (patient text COLLATE "C" PRIMARY KEY, n bigint NOT NULL);
CREATE FUNCTION readings_counted_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO reading_counts AS c (patient, n)
		SELECT patient, count(*) FROM new_rows GROUP BY patient
	ON CONFLICT (patient) DO UPDATE SET n = c.n + EXCLUDED.n;
	RETURN NULL;
END $$;
CREATE FUNCTION readings_counted_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE reading_counts c SET n = c.n - d.n
		FROM (SELECT patient, count(*) AS n FROM old_rows GROUP BY patient) d
		WHERE c.patient = d.patient;
	RETURN NULL;
END $$;
CREATE TRIGGER readings_in AFTER INSERT ON readings REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION readings_counted_in();
CREATE TRIGGER readings_out AFTER DELETE ON readings REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION readings_counted_out();

-- The consent ledger (consent/ledgerstore). Ids and names are bytea so
-- they order as bytes, as bbolt's keys do.
CREATE TABLE ledger_head (id int PRIMARY KEY CHECK (id = 1), size bigint NOT NULL);
CREATE TABLE ledger_meta (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE ledger_entries (idx bigint PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE ledger_hashes (idx bigint PRIMARY KEY, hash bytea NOT NULL);
CREATE TABLE ledger_index (id bytea PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE ledger_checkpoints (size bigint PRIMARY KEY, signed bytea NOT NULL);
`,

	// 2: the web UI's store (web/webstore) and the OAuth provider's store
	// (oauth/oauthstore). Hashes and credential ids are bytea; times are
	// signed nanoseconds, the zero time stored as the smallest bigint
	// (web.go's nanos), so that it sorts first, as bbolt's rows do.
	`
CREATE TABLE web_invites (
	hash bytea PRIMARY KEY,
	user_id text COLLATE "C",   -- NULL: a row stored before owners were kept
	expires bigint,             -- NULL with user_id
	sealed bytea NOT NULL
);
CREATE INDEX web_invites_user ON web_invites (user_id);
CREATE INDEX web_invites_expires ON web_invites (expires);
CREATE TABLE web_credentials (id bytea PRIMARY KEY, user_id text COLLATE "C" NOT NULL, sealed bytea NOT NULL);
CREATE INDEX web_credentials_user ON web_credentials (user_id);
CREATE TABLE web_recovery (hash bytea PRIMARY KEY, user_id text COLLATE "C" NOT NULL, sealed bytea NOT NULL);
CREATE INDEX web_recovery_user ON web_recovery (user_id);
CREATE TABLE web_sessions (
	hash bytea PRIMARY KEY,
	user_id text COLLATE "C" NOT NULL,
	created bigint NOT NULL,
	last_seen bigint NOT NULL,
	expires bigint NOT NULL,
	sealed bytea NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires, hash);
-- A sign-in ceremony names no one: user_id NULL.
CREATE TABLE web_ceremonies (
	hash bytea PRIMARY KEY,
	user_id text COLLATE "C",
	created bigint NOT NULL,
	expires bigint NOT NULL,
	sealed bytea NOT NULL
);
CREATE INDEX web_ceremonies_user ON web_ceremonies (user_id);
CREATE INDEX web_ceremonies_expires ON web_ceremonies (expires, hash);
CREATE TABLE web_spent (hash bytea PRIMARY KEY, created bigint NOT NULL, expires bigint NOT NULL);
CREATE INDEX web_spent_expires ON web_spent (expires, hash);
CREATE TABLE web_app_consents (
	hash bytea PRIMARY KEY,
	user_id text COLLATE "C" NOT NULL,
	created bigint NOT NULL,
	sealed bytea NOT NULL
);
CREATE INDEX web_app_consents_user ON web_app_consents (user_id);

CREATE TABLE oauth_clients (id text COLLATE "C" PRIMARY KEY, created bigint NOT NULL, sealed bytea NOT NULL);
CREATE TABLE oauth_requests (
	hash bytea PRIMARY KEY,
	client_id text COLLATE "C" NOT NULL,
	expires bigint NOT NULL,
	sealed bytea NOT NULL
);
CREATE INDEX oauth_requests_client ON oauth_requests (client_id);
CREATE INDEX oauth_requests_expires ON oauth_requests (expires);
CREATE TABLE oauth_codes (hash bytea PRIMARY KEY, request bytea NOT NULL, expires bigint NOT NULL);
CREATE INDEX oauth_codes_request ON oauth_codes (request);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires);
CREATE TABLE oauth_tokens (
	hash bytea PRIMARY KEY,
	kind "char" NOT NULL,
	family text COLLATE "C" NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	client_id text COLLATE "C" NOT NULL,
	expires bigint NOT NULL,
	rotated boolean NOT NULL DEFAULT false,
	sealed bytea NOT NULL
);
CREATE INDEX oauth_tokens_user ON oauth_tokens (user_id);
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires);
CREATE TABLE oauth_jti (hash bytea PRIMARY KEY, expires bigint NOT NULL);
CREATE INDEX oauth_jti_expires ON oauth_jti (expires);
CREATE TABLE oauth_keys (
	created bigint NOT NULL,
	id text COLLATE "C" NOT NULL,
	sealed bytea NOT NULL,
	PRIMARY KEY (created, id)
);
`,
	// 3: several replicas on one database. vault_events tells every
	// replica what another did that changes what it keeps in memory (a
	// deleted patient's unwrapped key and cached figures); rate_buckets
	// is the sign-in and enrolment limit all replicas share, UNLOGGED
	// (not in the WAL, emptied by a crash: a limit, not a record).
	`
CREATE TABLE vault_events (
	id bigserial PRIMARY KEY,
	kind text COLLATE "C" NOT NULL,
	subject text COLLATE "C" NOT NULL,
	at bigint NOT NULL
);
CREATE UNLOGGED TABLE rate_buckets (
	scope text COLLATE "C" NOT NULL,
	addr text COLLATE "C" NOT NULL,
	tokens double precision NOT NULL,
	last double precision NOT NULL,
	ok boolean NOT NULL,
	PRIMARY KEY (scope, addr)
);
`,
	// 4: the replicas' heartbeats (keyset.go): which master keys each
	// live replica runs with, so a rotation promotes its new key only
	// once every one holds it. seen is the database's clock, so the
	// replicas' clocks do not matter.
	`
CREATE TABLE vault_replicas (
	id text COLLATE "C" PRIMARY KEY,
	master_keys bigint[] NOT NULL,
	master_primary bigint NOT NULL,
	seen timestamptz NOT NULL
);
`,
}

// ErrNewerSchema is returned by Open for a database that a newer vault has
// migrated.
var ErrNewerSchema = errors.New("the database's schema is newer than this binary understands: upgrade the binary")

// migrate brings the schema up to date in one transaction under an
// advisory lock, so that of several processes starting at once one
// migrates and the others find it done. A current database gets no DDL.
func migrate(ctx context.Context, conn *pgx.Conn) (applied int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
		return 0, err
	}
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	if v > len(migrations) {
		return 0, fmt.Errorf("%w (the database is at schema %d, this binary knows %d)", ErrNewerSchema, v, len(migrations))
	}
	if v == len(migrations) {
		return 0, nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return 0, fmt.Errorf("schema step %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE vault_schema SET version = $1", len(migrations)); err != nil {
		return 0, err
	}
	return len(migrations) - v, tx.Commit(ctx)
}

// schemaVersion is how many steps have run; 0 for an empty database.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('vault_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT version FROM vault_schema").Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// checkDurability refuses a server that can lose a commit it
// acknowledged: the ledger hands out checkpoints that must never be lost.
func checkDurability(fsync, syncCommit string) error {
	if fsync != "on" {
		return fmt.Errorf("the PostgreSQL server runs with fsync=%s, which can lose acknowledged writes: turn it on", fsync)
	}
	// on, local, remote_write and remote_apply all flush the primary's WAL
	// before a commit returns; off does not.
	if syncCommit == "off" {
		return fmt.Errorf("the PostgreSQL server runs with synchronous_commit=off, which can lose acknowledged writes: set it to on")
	}
	return nil
}
