package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
)

// The OAuth provider's tables (oauthstore.Store), made by schema step 2.
// Values are sealed by package oauth; the plaintext columns are the ones
// bbolt's JSON rows keep in the clear (store/boltstore/oauth.go): hashes,
// client ids, user ids, token families and kinds, times.
//
// A code is claimed, and a refresh token rotated, at most once: the claim
// is a DELETE … RETURNING, the rotation reads its row FOR UPDATE, so of
// racing calls one wins and the others see the row gone or marked. A
// client-assertion id or a token stored twice is a primary-key conflict.

// OAuth hands out the OAuth provider's store, on the same database.
func (s *Store) OAuth() oauthstore.Store { return oauthStore{s} }

type oauthStore struct{ s *Store }

var _ oauthstore.Store = oauthStore{}

func oauthNotFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return oauthstore.ErrNotFound
	}
	return err
}

// one returns the only row of rs, or ErrNotFound.
func one[T any](rs []T, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if len(rs) == 0 {
		return zero, oauthstore.ErrNotFound
	}
	return rs[0], nil
}

func (o oauthStore) PutClient(ctx context.Context, c oauthstore.Client) error {
	if err := checkTimes(c.Created); err != nil {
		return err
	}
	if c.ID == "" {
		return errors.New("a client needs an id")
	}
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO oauth_clients (id, created, sealed) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			c.ID, nanos(c.Created), nonNil(c.Sealed))
		if err == nil && tag.RowsAffected() == 0 {
			return oauthstore.ErrExists
		}
		return err
	})
}

func scanClient(r pgx.CollectableRow) (oauthstore.Client, error) {
	var c oauthstore.Client
	var created int64
	err := r.Scan(&c.ID, &created, &c.Sealed)
	c.Created = fromNanos(created)
	return c, err
}

func (o oauthStore) Client(ctx context.Context, id string) (oauthstore.Client, error) {
	return one(query(ctx, o.s, "SELECT id, created, sealed FROM oauth_clients WHERE id = $1", scanClient, id))
}

func (o oauthStore) Clients(ctx context.Context) ([]oauthstore.Client, error) {
	return query(ctx, o.s, "SELECT id, created, sealed FROM oauth_clients ORDER BY id", scanClient)
}

func (o oauthStore) DeleteClient(ctx context.Context, id string) error {
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM oauth_clients WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return oauthstore.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM oauth_requests WHERE client_id = $1 RETURNING hash)
			DELETE FROM oauth_codes WHERE request IN (SELECT hash FROM gone)`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM oauth_tokens WHERE client_id = $1", id)
		return err
	})
}

func (o oauthStore) PutRequest(ctx context.Context, r oauthstore.Request) error {
	if err := checkTimes(r.Expires); err != nil {
		return err
	}
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO oauth_requests (hash, client_id, expires, sealed) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash) DO UPDATE SET client_id = EXCLUDED.client_id, expires = EXCLUDED.expires, sealed = EXCLUDED.sealed`,
			r.Hash[:], r.ClientID, nanos(r.Expires), nonNil(r.Sealed))
		return err
	})
}

func scanRequest(r pgx.CollectableRow) (oauthstore.Request, error) {
	var (
		req     oauthstore.Request
		hash    []byte
		expires int64
	)
	if err := r.Scan(&hash, &req.ClientID, &expires, &req.Sealed); err != nil {
		return req, err
	}
	if len(hash) != 32 {
		return req, errors.New("malformed request row")
	}
	req.Hash, req.Expires = [32]byte(hash), fromNanos(expires)
	return req, nil
}

func (o oauthStore) Request(ctx context.Context, hash [32]byte) (oauthstore.Request, error) {
	return one(query(ctx, o.s, "SELECT hash, client_id, expires, sealed FROM oauth_requests WHERE hash = $1", scanRequest, hash[:]))
}

func (o oauthStore) DeleteRequest(ctx context.Context, hash [32]byte) error {
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM oauth_requests WHERE hash = $1", hash[:]); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM oauth_codes WHERE request = $1", hash[:])
		return err
	})
}

func (o oauthStore) PutCode(ctx context.Context, c oauthstore.Code) error {
	if err := checkTimes(c.Expires); err != nil {
		return err
	}
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		// FOR SHARE: a racing DeleteRequest waits until this code is in,
		// and then takes it with the request.
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM oauth_requests WHERE hash = $1 FOR SHARE", c.Request[:]).Scan(&one); err != nil {
			return oauthNotFound(err)
		}
		tag, err := tx.Exec(ctx, "INSERT INTO oauth_codes (hash, request, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			c.Hash[:], c.Request[:], nanos(c.Expires))
		if err == nil && tag.RowsAffected() == 0 {
			return oauthstore.ErrExists
		}
		return err
	})
}

func (o oauthStore) ClaimCode(ctx context.Context, hash [32]byte) (oauthstore.Request, error) {
	var out oauthstore.Request
	err := o.s.inTx(ctx, func(tx pgx.Tx) error {
		var req []byte
		if err := tx.QueryRow(ctx, "DELETE FROM oauth_codes WHERE hash = $1 RETURNING request", hash[:]).Scan(&req); err != nil {
			return oauthNotFound(err)
		}
		rows, err := tx.Query(ctx, "DELETE FROM oauth_requests WHERE hash = $1 RETURNING hash, client_id, expires, sealed", req)
		if err != nil {
			return err
		}
		// A code whose request is gone is ErrNotFound and, the
		// transaction rolled back, stays until Sweep drops it.
		out, err = pgx.CollectExactlyOneRow(rows, scanRequest)
		return oauthNotFound(err)
	})
	return out, err
}

const tokenCols = "hash, kind, family, user_id, client_id, expires, rotated, sealed"

func putTokens(ctx context.Context, tx pgx.Tx, ts []oauthstore.Token) error {
	for _, t := range ts {
		if err := checkTimes(t.Expires); err != nil {
			return err
		}
		if t.Kind != oauthstore.Access && t.Kind != oauthstore.Refresh {
			return errors.New("unknown token kind")
		}
		tag, err := tx.Exec(ctx, "INSERT INTO oauth_tokens ("+tokenCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
			t.Hash[:], byte(t.Kind), t.Family, t.UserID, t.ClientID, nanos(t.Expires), t.Rotated, nonNil(t.Sealed))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return oauthstore.ErrExists
		}
	}
	return nil
}

func (o oauthStore) PutTokens(ctx context.Context, ts ...oauthstore.Token) error {
	return o.s.inTx(ctx, func(tx pgx.Tx) error { return putTokens(ctx, tx, ts) })
}

func scanToken(r pgx.CollectableRow) (oauthstore.Token, error) {
	var (
		t       oauthstore.Token
		hash    []byte
		kind    byte
		expires int64
	)
	if err := r.Scan(&hash, &kind, &t.Family, &t.UserID, &t.ClientID, &expires, &t.Rotated, &t.Sealed); err != nil {
		return t, err
	}
	if len(hash) != 32 {
		return t, errors.New("malformed token row")
	}
	t.Hash, t.Kind, t.Expires = [32]byte(hash), oauthstore.Kind(kind), fromNanos(expires)
	return t, nil
}

func (o oauthStore) Token(ctx context.Context, hash [32]byte) (oauthstore.Token, error) {
	return one(query(ctx, o.s, "SELECT "+tokenCols+" FROM oauth_tokens WHERE hash = $1", scanToken, hash[:]))
}

func (o oauthStore) RotateRefresh(ctx context.Context, old [32]byte, next ...oauthstore.Token) error {
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		var kind byte
		var rotated bool
		// Racing rotations wait here for the first; they then read its
		// row as it committed it, rotated.
		if err := tx.QueryRow(ctx, "SELECT kind, rotated FROM oauth_tokens WHERE hash = $1 FOR UPDATE", old[:]).Scan(&kind, &rotated); err != nil {
			return oauthNotFound(err)
		}
		if kind != byte(oauthstore.Refresh) {
			return oauthstore.ErrNotFound
		}
		if rotated {
			return oauthstore.ErrRotated
		}
		if _, err := tx.Exec(ctx, "UPDATE oauth_tokens SET rotated = true WHERE hash = $1", old[:]); err != nil {
			return err
		}
		return putTokens(ctx, tx, next)
	})
}

func (o oauthStore) DeleteTokens(ctx context.Context, f oauthstore.Filter) (int, error) {
	if f == (oauthstore.Filter{}) {
		return 0, errors.New("an empty filter would end every token")
	}
	n := 0
	err := o.s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM oauth_tokens
			WHERE ($1 = '' OR user_id = $1) AND ($2 = '' OR client_id = $2) AND ($3 = '' OR family = $3)`,
			f.UserID, f.ClientID, f.Family)
		n = int(tag.RowsAffected())
		return err
	})
	return n, err
}

func (o oauthStore) DeleteToken(ctx context.Context, hash [32]byte) error {
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM oauth_tokens WHERE hash = $1", hash[:])
		return err
	})
}

func (o oauthStore) SpendJTI(ctx context.Context, hash [32]byte, expires time.Time) error {
	if err := checkTimes(expires); err != nil {
		return err
	}
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO oauth_jti (hash, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING", hash[:], nanos(expires))
		if err == nil && tag.RowsAffected() == 0 {
			return oauthstore.ErrExists
		}
		return err
	})
}

func (o oauthStore) JTISpent(ctx context.Context, hash [32]byte) (bool, error) {
	return one(query(ctx, o.s, "SELECT EXISTS (SELECT 1 FROM oauth_jti WHERE hash = $1)", func(r pgx.CollectableRow) (bool, error) {
		var spent bool
		return spent, r.Scan(&spent)
	}, hash[:]))
}

func (o oauthStore) Keys(ctx context.Context) ([]oauthstore.Key, error) {
	return query(ctx, o.s, "SELECT id, created, sealed FROM oauth_keys ORDER BY created, id", func(r pgx.CollectableRow) (oauthstore.Key, error) {
		var k oauthstore.Key
		var created int64
		err := r.Scan(&k.ID, &created, &k.Sealed)
		k.Created = fromNanos(created)
		return k, err
	})
}

func (o oauthStore) AddKey(ctx context.Context, k oauthstore.Key, keep int) error {
	if keep < 1 || k.ID == "" {
		return errors.New("a key needs an id, and at least one key is kept")
	}
	if err := checkTimes(k.Created); err != nil {
		return err
	}
	return o.s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockOAuthKeys); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO oauth_keys (created, id, sealed) VALUES ($1, $2, $3)
			ON CONFLICT (created, id) DO UPDATE SET sealed = EXCLUDED.sealed`, nanos(k.Created), k.ID, nonNil(k.Sealed)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM oauth_keys WHERE (created, id) NOT IN
			(SELECT created, id FROM oauth_keys ORDER BY created DESC, id DESC LIMIT $1)`, keep)
		return err
	})
}

func (o oauthStore) Sweep(ctx context.Context, before time.Time) (int, error) {
	if err := checkTimes(before); err != nil {
		return 0, err
	}
	n := 0
	err := o.s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		for _, table := range []string{"oauth_requests", "oauth_codes", "oauth_tokens", "oauth_jti"} {
			tag, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE expires < $1", nanos(before))
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	return n, err
}
