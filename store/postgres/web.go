package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/web/webstore"
)

// The web UI's tables (webstore.Store), made by schema step 2. Values
// are sealed by package web; the plaintext columns are the ones bbolt's
// buckets keep in the clear (store/boltstore/web.go): hashes, credential
// ids, user ids and times.
//
// What has to be atomic is, in each method's one transaction: a claim,
// a take or a use is a DELETE … RETURNING or a row lock (SELECT … FOR
// UPDATE), so of racing calls one gets the row; a per-user limit (passkeys,
// remembered app consents) or the last-passkey rule holds a
// transaction-scoped advisory lock on the user; a table-wide limit
// (sessions, ceremonies, spent challenges) holds one on the table, so
// replicas sharing the database count the same rows.

// sweepBatch bounds the expired rows one put drops when its table is not
// full, as boltstore's does.
const sweepBatch = 64

// nanos encodes a time as signed Unix nanoseconds; the zero time is the
// smallest bigint, so it round-trips and sorts before every other time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// The times a web or OAuth row keeps: what a bigint of nanoseconds holds
// (1677-09-21 to 2262-04-11), less the smallest, which stands for the
// zero time; and the zero time.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkTimes refuses a time nanos cannot encode (it would wrap around),
// as the bbolt store does.
func checkTimes(ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return fmt.Errorf("time %s is outside what the store keeps (%s to %s)", t.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339Nano), maxTime.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// fromNanos decodes nanos.
func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Web hands out the web UI's store, on the same database.
func (s *Store) Web() webstore.Store { return webStore{s} }

type webStore struct{ s *Store }

var _ webstore.Store = webStore{}

// tx runs fn in one transaction of the store.
func (w webStore) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return w.s.inTx(ctx, fn)
}

// lock takes a transaction-scoped advisory lock on (class, key).
func lock(ctx context.Context, tx pgx.Tx, class int32, key string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", class, key)
	return err
}

// query runs a read and collects its rows.
func query[T any](ctx context.Context, s *Store, q string, scan func(pgx.CollectableRow) (T, error), args ...any) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scan)
}

func webNotFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return webstore.ErrNotFound
	}
	return err
}

// ---- invites ----

// inviteOwner returns the owner columns: NULL for an invite stored
// without an owner (its user and expiry only sealed).
func inviteOwner(inv webstore.Invite) (user *string, expires *int64) {
	if inv.UserID == "" {
		return nil, nil
	}
	e := nanos(inv.Expires)
	return &inv.UserID, &e
}

func scanInvite(r pgx.CollectableRow) (webstore.Invite, error) {
	var (
		inv     webstore.Invite
		hash    []byte
		user    *string
		expires *int64
	)
	if err := r.Scan(&hash, &user, &expires, &inv.Sealed); err != nil {
		return inv, err
	}
	if len(hash) != 32 {
		return inv, errors.New("malformed invite row")
	}
	inv.Hash = [32]byte(hash)
	if user != nil && expires != nil {
		inv.UserID, inv.Expires = *user, fromNanos(*expires)
	}
	return inv, nil
}

const inviteCols = "hash, user_id, expires, sealed"

func putInvite(ctx context.Context, tx pgx.Tx, inv webstore.Invite) error {
	user, expires := inviteOwner(inv)
	_, err := tx.Exec(ctx, `INSERT INTO web_invites (hash, user_id, expires, sealed) VALUES ($1, $2, $3, $4)
		ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, expires = EXCLUDED.expires, sealed = EXCLUDED.sealed`,
		inv.Hash[:], user, expires, nonNil(inv.Sealed))
	return err
}

func (w webStore) PutInvite(ctx context.Context, inv webstore.Invite, sweepBefore time.Time) error {
	if err := checkTimes(inv.Expires, sweepBefore); err != nil {
		return err
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		if !sweepBefore.IsZero() {
			if _, err := tx.Exec(ctx, "DELETE FROM web_invites WHERE expires < $1", nanos(sweepBefore)); err != nil {
				return err
			}
		}
		return putInvite(ctx, tx, inv)
	})
}

func (w webStore) Invite(ctx context.Context, hash [32]byte) (webstore.Invite, error) {
	invs, err := query(ctx, w.s, "SELECT "+inviteCols+" FROM web_invites WHERE hash = $1", scanInvite, hash[:])
	if err != nil {
		return webstore.Invite{}, err
	}
	if len(invs) == 0 {
		return webstore.Invite{}, webstore.ErrNotFound
	}
	return invs[0], nil
}

func (w webStore) ClaimInvite(ctx context.Context, hash [32]byte) (webstore.Invite, error) {
	var inv webstore.Invite
	err := w.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "DELETE FROM web_invites WHERE hash = $1 RETURNING "+inviteCols, hash[:])
		if err != nil {
			return err
		}
		inv, err = pgx.CollectExactlyOneRow(rows, scanInvite)
		return webNotFound(err)
	})
	return inv, err
}

func (w webStore) ReleaseInvite(ctx context.Context, inv webstore.Invite) error {
	if err := checkTimes(inv.Expires); err != nil {
		return err
	}
	return w.tx(ctx, func(tx pgx.Tx) error { return putInvite(ctx, tx, inv) })
}

func (w webStore) Invites(ctx context.Context) ([]webstore.Invite, error) {
	return query(ctx, w.s, "SELECT "+inviteCols+" FROM web_invites ORDER BY hash", scanInvite)
}

// ---- passkeys ----

func (w webStore) AddCredential(ctx context.Context, userID string, c webstore.Credential, max int) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockWebUser, userID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM web_credentials WHERE user_id = $1", userID).Scan(&n); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM web_credentials WHERE id = $1)", nonNil(c.ID)).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return webstore.ErrExists
		}
		if n >= max {
			return webstore.ErrTooMany
		}
		// A racing add of the same id by another user waits here for the
		// first to commit, then inserts nothing.
		tag, err := tx.Exec(ctx, "INSERT INTO web_credentials (id, user_id, sealed) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
			nonNil(c.ID), userID, nonNil(c.Sealed))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return webstore.ErrExists
		}
		return nil
	})
}

func scanCredential(r pgx.CollectableRow) (webstore.Credential, error) {
	var c webstore.Credential
	return c, r.Scan(&c.ID, &c.Sealed)
}

func (w webStore) Credential(ctx context.Context, id []byte) (webstore.Credential, error) {
	cs, err := query(ctx, w.s, "SELECT id, sealed FROM web_credentials WHERE id = $1", scanCredential, nonNil(id))
	if err != nil {
		return webstore.Credential{}, err
	}
	if len(cs) == 0 {
		return webstore.Credential{}, webstore.ErrNotFound
	}
	return cs[0], nil
}

func (w webStore) Credentials(ctx context.Context, userID string) ([]webstore.Credential, error) {
	return query(ctx, w.s, "SELECT id, sealed FROM web_credentials WHERE user_id = $1 ORDER BY id", scanCredential, userID)
}

func (w webStore) ModifyCredential(ctx context.Context, userID string, id []byte, fn func(sealed []byte) ([]byte, error)) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		var sealed []byte
		err := tx.QueryRow(ctx, "SELECT sealed FROM web_credentials WHERE id = $1 AND user_id = $2 FOR UPDATE", nonNil(id), userID).Scan(&sealed)
		if err != nil {
			return webNotFound(err)
		}
		nv, err := fn(sealed)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE web_credentials SET sealed = $2 WHERE id = $1", nonNil(id), nonNil(nv))
		return err
	})
}

func (w webStore) RemoveCredential(ctx context.Context, userID string, id []byte) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockWebUser, userID); err != nil {
			return err
		}
		var mine bool
		var n int
		if err := tx.QueryRow(ctx, `SELECT coalesce(bool_or(id = $2), false), count(*) FROM web_credentials WHERE user_id = $1`,
			userID, nonNil(id)).Scan(&mine, &n); err != nil {
			return err
		}
		if !mine {
			return webstore.ErrNotFound
		}
		if n <= 1 {
			return webstore.ErrLastPasskey
		}
		_, err := tx.Exec(ctx, "DELETE FROM web_credentials WHERE id = $1 AND user_id = $2", nonNil(id), userID)
		return err
	})
}

// ---- recovery codes ----

func (w webStore) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []webstore.RecoveryCode) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockWebUser, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM web_recovery WHERE user_id = $1", userID); err != nil {
			return err
		}
		for _, c := range codes {
			if _, err := tx.Exec(ctx, `INSERT INTO web_recovery (hash, user_id, sealed) VALUES ($1, $2, $3)
				ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, sealed = EXCLUDED.sealed`,
				c.Hash[:], userID, nonNil(c.Sealed)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w webStore) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	ns, err := query(ctx, w.s, "SELECT count(*) FROM web_recovery WHERE user_id = $1", pgx.RowTo[int], userID)
	if err != nil {
		return 0, err
	}
	return ns[0], nil
}

func (w webStore) UseRecoveryCode(ctx context.Context, hash [32]byte, open func(sealed []byte) (string, error)) (string, error) {
	var user string
	err := w.tx(ctx, func(tx pgx.Tx) error {
		var owner string
		var sealed []byte
		// Racing uses wait here for the first; once it commits the row is
		// gone and they find nothing.
		err := tx.QueryRow(ctx, "SELECT user_id, sealed FROM web_recovery WHERE hash = $1 FOR UPDATE", hash[:]).Scan(&owner, &sealed)
		if err != nil {
			return webNotFound(err)
		}
		u, err := open(sealed)
		if err != nil {
			return err
		}
		if u != owner {
			return webstore.ErrNotFound
		}
		if _, err := tx.Exec(ctx, "DELETE FROM web_recovery WHERE hash = $1", hash[:]); err != nil {
			return err
		}
		user = u
		return nil
	})
	return user, err
}

// ---- sessions, ceremonies, spent challenges ----

// sweep deletes up to limit rows (all when limit < 0) of table that
// expired by now, soonest first.
func sweep(ctx context.Context, tx pgx.Tx, table string, now time.Time, limit int) error {
	q := "DELETE FROM " + table + " WHERE expires <= $1"
	args := []any{nanos(now)}
	if limit >= 0 {
		q = "DELETE FROM " + table + " WHERE hash IN (SELECT hash FROM " + table + " WHERE expires <= $1 ORDER BY expires, hash LIMIT $2)"
		args = append(args, limit)
	}
	_, err := tx.Exec(ctx, q, args...)
	return err
}

func count(ctx context.Context, tx pgx.Tx, table string) (int, error) {
	var n int
	err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// makeRoom drops up to sweepBatch rows of table expired by now and, when
// the table still holds max rows or more, every expired row. full: even
// so, it holds max rows or more. The caller holds the table's lock.
func makeRoom(ctx context.Context, tx pgx.Tx, table string, now time.Time, max int) (full bool, n int, err error) {
	if err := sweep(ctx, tx, table, now, sweepBatch); err != nil {
		return false, 0, err
	}
	if n, err = count(ctx, tx, table); err != nil || n < max {
		return false, n, err
	}
	if err := sweep(ctx, tx, table, now, -1); err != nil {
		return false, 0, err
	}
	if n, err = count(ctx, tx, table); err != nil {
		return false, 0, err
	}
	return n >= max, n, nil
}

const sessionCols = "hash, user_id, created, last_seen, expires, sealed"

func scanSession(r pgx.CollectableRow) (webstore.Session, error) {
	var (
		s                          webstore.Session
		hash                       []byte
		created, lastSeen, expires int64
	)
	if err := r.Scan(&hash, &s.UserID, &created, &lastSeen, &expires, &s.Sealed); err != nil {
		return s, err
	}
	if len(hash) != 32 {
		return s, errors.New("malformed session row")
	}
	s.Hash, s.Created, s.LastSeen, s.Expires = [32]byte(hash), fromNanos(created), fromNanos(lastSeen), fromNanos(expires)
	return s, nil
}

func (w webStore) CreateSession(ctx context.Context, s webstore.Session, max int) error {
	if err := checkTimes(s.Created, s.LastSeen, s.Expires); err != nil {
		return err
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockWebSessions); err != nil {
			return err
		}
		_, n, err := makeRoom(ctx, tx, "web_sessions", s.Created, max)
		if err != nil {
			return err
		}
		if over := n - max + 1; over > 0 {
			// Still full of live sessions: the ones that expire soonest go.
			if _, err := tx.Exec(ctx, `DELETE FROM web_sessions WHERE hash IN
				(SELECT hash FROM web_sessions WHERE hash <> $1 ORDER BY expires, hash LIMIT $2)`, s.Hash[:], over); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO web_sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, created = EXCLUDED.created,
				last_seen = EXCLUDED.last_seen, expires = EXCLUDED.expires, sealed = EXCLUDED.sealed`,
			s.Hash[:], s.UserID, nanos(s.Created), nanos(s.LastSeen), nanos(s.Expires), nonNil(s.Sealed))
		return err
	})
}

func (w webStore) Session(ctx context.Context, hash [32]byte) (webstore.Session, error) {
	ss, err := query(ctx, w.s, "SELECT "+sessionCols+" FROM web_sessions WHERE hash = $1", scanSession, hash[:])
	if err != nil {
		return webstore.Session{}, err
	}
	if len(ss) == 0 {
		return webstore.Session{}, webstore.ErrNotFound
	}
	return ss[0], nil
}

func (w webStore) TouchSession(ctx context.Context, hash [32]byte, lastSeen, expires time.Time) error {
	if err := checkTimes(lastSeen, expires); err != nil {
		return err
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE web_sessions SET last_seen = greatest(last_seen, $2), expires = greatest(expires, $3) WHERE hash = $1`,
			hash[:], nanos(lastSeen), nanos(expires))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return webstore.ErrNotFound
		}
		return nil
	})
}

func (w webStore) DeleteSession(ctx context.Context, hash [32]byte) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM web_sessions WHERE hash = $1", hash[:])
		return err
	})
}

func (w webStore) DeleteSessions(ctx context.Context, userID string, match func(webstore.Session) bool) (int, error) {
	n := 0
	err := w.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, "SELECT "+sessionCols+" FROM web_sessions WHERE user_id = $1 FOR UPDATE", userID)
		if err != nil {
			return err
		}
		ss, err := pgx.CollectRows(rows, scanSession)
		if err != nil {
			return err
		}
		var gone [][]byte
		for _, s := range ss {
			if match == nil || match(s) {
				gone = append(gone, s.Hash[:])
			}
		}
		if len(gone) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, "DELETE FROM web_sessions WHERE hash = ANY($1)", gone)
		n = int(tag.RowsAffected())
		return err
	})
	return n, err
}

func (w webStore) PutCeremony(ctx context.Context, c webstore.Ceremony, max int) error {
	if err := checkTimes(c.Created, c.Expires); err != nil {
		return err
	}
	// The user id's column would refuse it only at the insert, after a
	// full table's refusal below: an id it cannot hold is refused first,
	// as the bbolt store does.
	if !utf8.ValidString(c.UserID) || strings.IndexByte(c.UserID, 0) >= 0 {
		return fmt.Errorf("user id %q is not UTF-8 text without NUL bytes", c.UserID)
	}
	// A table full of live ceremonies refuses from a read, with no lock
	// and no write: a flood of unauthenticated begins costs no commit.
	if err := ctx.Err(); err != nil {
		return err
	}
	var n int
	var soonest *int64
	if err := w.s.pool.QueryRow(ctx, "SELECT count(*), min(expires) FROM web_ceremonies").Scan(&n, &soonest); err != nil {
		return err
	}
	if n >= max && soonest != nil && *soonest > nanos(c.Created) {
		return webstore.ErrFull
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockWebCeremonies); err != nil {
			return err
		}
		full, _, err := makeRoom(ctx, tx, "web_ceremonies", c.Created, max)
		if err != nil {
			return err
		}
		if full {
			return webstore.ErrFull
		}
		var user *string
		if c.UserID != "" {
			user = &c.UserID
		}
		_, err = tx.Exec(ctx, `INSERT INTO web_ceremonies (hash, user_id, created, expires, sealed) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, created = EXCLUDED.created,
				expires = EXCLUDED.expires, sealed = EXCLUDED.sealed`,
			c.Hash[:], user, nanos(c.Created), nanos(c.Expires), nonNil(c.Sealed))
		return err
	})
}

func (w webStore) TakeCeremony(ctx context.Context, hash [32]byte) (webstore.Ceremony, error) {
	var c webstore.Ceremony
	err := w.tx(ctx, func(tx pgx.Tx) error {
		var user *string
		var created, expires int64
		err := tx.QueryRow(ctx, "DELETE FROM web_ceremonies WHERE hash = $1 RETURNING user_id, created, expires, sealed", hash[:]).
			Scan(&user, &created, &expires, &c.Sealed)
		if err != nil {
			return webNotFound(err)
		}
		c.Hash, c.Created, c.Expires = hash, fromNanos(created), fromNanos(expires)
		if user != nil {
			c.UserID = *user
		}
		return nil
	})
	return c, err
}

func (w webStore) SpendChallenge(ctx context.Context, sp webstore.SpentChallenge, max int) error {
	if err := checkTimes(sp.Created, sp.Expires); err != nil {
		return err
	}
	if !sp.Created.Before(sp.Expires) {
		return webstore.ErrExists
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockWebSpent); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM web_spent WHERE hash = $1)", sp.Hash[:]).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return webstore.ErrExists
		}
		full, _, err := makeRoom(ctx, tx, "web_spent", sp.Created, max)
		if err != nil {
			return err
		}
		if full {
			return webstore.ErrFull
		}
		_, err = tx.Exec(ctx, "INSERT INTO web_spent (hash, created, expires) VALUES ($1, $2, $3)", sp.Hash[:], nanos(sp.Created), nanos(sp.Expires))
		return err
	})
}

// ---- forgetting ----

func (w webStore) ForgetUser(ctx context.Context, userID string) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockWebUser, userID); err != nil {
			return err
		}
		for _, table := range []string{"web_credentials", "web_invites", "web_recovery", "web_sessions", "web_ceremonies", "web_app_consents"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE user_id = $1", userID); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- remembered app consents ----

func scanAppConsent(r pgx.CollectableRow) (webstore.AppConsent, error) {
	var (
		c       webstore.AppConsent
		hash    []byte
		created int64
	)
	if err := r.Scan(&hash, &c.UserID, &created, &c.Sealed); err != nil {
		return c, err
	}
	if len(hash) != 32 {
		return c, errors.New("malformed app consent row")
	}
	c.Hash, c.Created = [32]byte(hash), fromNanos(created)
	return c, nil
}

func (w webStore) PutAppConsent(ctx context.Context, c webstore.AppConsent, max int) error {
	if err := checkTimes(c.Created); err != nil {
		return err
	}
	if c.UserID == "" {
		return errors.New("a remembered consent names its user")
	}
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockWebUser, c.UserID); err != nil {
			return err
		}
		var owner string
		err := tx.QueryRow(ctx, "SELECT user_id FROM web_app_consents WHERE hash = $1", c.Hash[:]).Scan(&owner)
		switch {
		case err == nil && owner != c.UserID:
			return errors.New("a remembered consent's hash is another user's")
		case errors.Is(err, pgx.ErrNoRows):
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM web_app_consents WHERE user_id = $1", c.UserID).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return webstore.ErrTooMany
			}
		case err != nil:
			return err
		}
		// The WHERE keeps a row another user's put raced in.
		tag, err := tx.Exec(ctx, `INSERT INTO web_app_consents (hash, user_id, created, sealed) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash) DO UPDATE SET created = EXCLUDED.created, sealed = EXCLUDED.sealed
			WHERE web_app_consents.user_id = EXCLUDED.user_id`,
			c.Hash[:], c.UserID, nanos(c.Created), nonNil(c.Sealed))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errors.New("a remembered consent's hash is another user's")
		}
		return nil
	})
}

func (w webStore) AppConsent(ctx context.Context, hash [32]byte) (webstore.AppConsent, error) {
	cs, err := query(ctx, w.s, "SELECT hash, user_id, created, sealed FROM web_app_consents WHERE hash = $1", scanAppConsent, hash[:])
	if err != nil {
		return webstore.AppConsent{}, err
	}
	if len(cs) == 0 {
		return webstore.AppConsent{}, webstore.ErrNotFound
	}
	return cs[0], nil
}

func (w webStore) AppConsents(ctx context.Context, userID string) ([]webstore.AppConsent, error) {
	return query(ctx, w.s, "SELECT hash, user_id, created, sealed FROM web_app_consents WHERE user_id = $1 ORDER BY hash", scanAppConsent, userID)
}

func (w webStore) DeleteAppConsent(ctx context.Context, userID string, hash [32]byte) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM web_app_consents WHERE hash = $1 AND user_id = $2", hash[:], userID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return webstore.ErrNotFound
		}
		return nil
	})
}
