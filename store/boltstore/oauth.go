package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	bolt "go.etcd.io/bbolt"
)

// The OAuth provider's buckets (oauthstore.Store). Values are JSON rows
// whose sealed part package oauth seals; the plaintext fields are listed
// in docs/architecture.md.
//
//	oauth_clients   client id -> {created, sealed}
//	oauth_requests  SHA-256(request id) -> {client, expires, sealed}
//	oauth_codes     SHA-256(code) -> {request hash, expires}
//	oauth_tokens    SHA-256(token) -> {kind, family, user, client, expires, rotated, sealed}
//	oauth_jti       SHA-256(client id, jti) -> {expires}
//	oauth_keys      created(8, big-endian) key id -> {id, created, sealed}
//
// Ending the tokens of a user, a client or a family, and sweeps, walk
// oauth_tokens: it holds live tokens only (sweeps drop the expired), a few
// per user and client.
var (
	bOAuthClients  = []byte("oauth_clients")
	bOAuthRequests = []byte("oauth_requests")
	bOAuthCodes    = []byte("oauth_codes")
	bOAuthTokens   = []byte("oauth_tokens")
	bOAuthJTI      = []byte("oauth_jti")
	bOAuthKeys     = []byte("oauth_keys")

	oauthBuckets = [][]byte{bOAuthClients, bOAuthRequests, bOAuthCodes, bOAuthTokens, bOAuthJTI, bOAuthKeys}
)

// createOAuthBuckets is a migration: the OAuth provider's buckets.
func createOAuthBuckets(tx *bolt.Tx) error {
	for _, name := range oauthBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// OAuth hands out the OAuth provider's store.
func (s *Store) OAuth() oauthstore.Store { return oauthStore{s} }

type oauthStore struct{ s *Store }

var _ oauthstore.Store = oauthStore{}

type oauthClientRow struct {
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
}

type oauthRequestRow struct {
	Client  string    `json:"client"`
	Expires time.Time `json:"expires"`
	Sealed  []byte    `json:"sealed"`
}

type oauthCodeRow struct {
	Request []byte    `json:"request"`
	Expires time.Time `json:"expires"`
}

type oauthTokenRow struct {
	Kind    byte      `json:"kind"`
	Family  string    `json:"family"`
	User    string    `json:"user"`
	Client  string    `json:"client"`
	Expires time.Time `json:"expires"`
	Rotated bool      `json:"rotated,omitempty"`
	Sealed  []byte    `json:"sealed"`
}

type oauthKeyRow struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
}

type oauthJTIRow struct {
	Expires time.Time `json:"expires"`
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	val, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, val)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	val := b.Get(key)
	if val == nil {
		return oauthstore.ErrNotFound
	}
	return json.Unmarshal(val, v)
}

func (o oauthStore) PutClient(ctx context.Context, c oauthstore.Client) error {
	if err := checkIDs(c.ID); err != nil {
		return err
	}
	if err := checkTimes(c.Created); err != nil {
		return err
	}
	if c.ID == "" {
		return errors.New("a client needs an id")
	}
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bOAuthClients)
		if b.Get([]byte(c.ID)) != nil {
			return oauthstore.ErrExists
		}
		return putJSON(b, []byte(c.ID), oauthClientRow{Created: c.Created, Sealed: c.Sealed})
	})
}

func (o oauthStore) Client(ctx context.Context, id string) (oauthstore.Client, error) {
	if err := checkIDs(id); err != nil {
		return oauthstore.Client{}, err
	}
	var out oauthstore.Client
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		var row oauthClientRow
		if err := getJSON(tx.Bucket(bOAuthClients), []byte(id), &row); err != nil {
			return err
		}
		out = oauthstore.Client{ID: id, Created: row.Created, Sealed: row.Sealed}
		return nil
	})
	return out, err
}

func (o oauthStore) Clients(ctx context.Context) ([]oauthstore.Client, error) {
	var out []oauthstore.Client
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bOAuthClients).ForEach(func(k, v []byte) error {
			var row oauthClientRow
			if err := json.Unmarshal(v, &row); err != nil {
				return err
			}
			out = append(out, oauthstore.Client{ID: string(k), Created: row.Created, Sealed: row.Sealed})
			return nil
		})
	})
	return out, err
}

func (o oauthStore) DeleteClient(ctx context.Context, id string) error {
	if err := checkIDs(id); err != nil {
		return err
	}
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bOAuthClients)
		if b.Get([]byte(id)) == nil {
			return oauthstore.ErrNotFound
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		// The client's requests go, and the codes issued for them; a code
		// whose request was gone before (another code of it claimed, or it
		// swept) is not this call's to count: Sweep drops it when it
		// expires, as the PostgreSQL store does.
		gone := map[string]bool{}
		if err := deleteWhereKey(tx.Bucket(bOAuthRequests), func(k, v []byte) (bool, error) {
			var row oauthRequestRow
			err := json.Unmarshal(v, &row)
			if row.Client == id {
				gone[string(k)] = true
			}
			return row.Client == id, err
		}); err != nil {
			return err
		}
		if err := deleteWhere(tx.Bucket(bOAuthCodes), func(v []byte) (bool, error) {
			var row oauthCodeRow
			if err := json.Unmarshal(v, &row); err != nil {
				return false, err
			}
			return gone[string(row.Request)], nil
		}); err != nil {
			return err
		}
		_, err := deleteTokens(tx, oauthstore.Filter{ClientID: id})
		return err
	})
}

// deleteWhere deletes the rows of b that match.
func deleteWhere(b *bolt.Bucket, match func(v []byte) (bool, error)) error {
	return deleteWhereKey(b, func(_, v []byte) (bool, error) { return match(v) })
}

// deleteWhereKey deletes the rows of b that match, by key and value.
func deleteWhereKey(b *bolt.Bucket, match func(k, v []byte) (bool, error)) error {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		ok, err := match(k, v)
		if ok {
			keys = append(keys, append([]byte(nil), k...))
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (o oauthStore) PutRequest(ctx context.Context, r oauthstore.Request) error {
	if err := checkIDs(r.ClientID); err != nil {
		return err
	}
	if err := checkTimes(r.Expires); err != nil {
		return err
	}
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bOAuthRequests), r.Hash[:], oauthRequestRow{Client: r.ClientID, Expires: r.Expires, Sealed: r.Sealed})
	})
}

func (o oauthStore) Request(ctx context.Context, hash [32]byte) (oauthstore.Request, error) {
	var out oauthstore.Request
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		var row oauthRequestRow
		if err := getJSON(tx.Bucket(bOAuthRequests), hash[:], &row); err != nil {
			return err
		}
		out = oauthstore.Request{Hash: hash, ClientID: row.Client, Expires: row.Expires, Sealed: row.Sealed}
		return nil
	})
	return out, err
}

func (o oauthStore) DeleteRequest(ctx context.Context, hash [32]byte) error {
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bOAuthRequests).Delete(hash[:]); err != nil {
			return err
		}
		return deleteWhere(tx.Bucket(bOAuthCodes), func(v []byte) (bool, error) {
			var row oauthCodeRow
			err := json.Unmarshal(v, &row)
			return string(row.Request) == string(hash[:]), err
		})
	})
}

func (o oauthStore) PutCode(ctx context.Context, c oauthstore.Code) error {
	if err := checkTimes(c.Expires); err != nil {
		return err
	}
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bOAuthRequests).Get(c.Request[:]) == nil {
			return oauthstore.ErrNotFound
		}
		codes := tx.Bucket(bOAuthCodes)
		if codes.Get(c.Hash[:]) != nil {
			return oauthstore.ErrExists
		}
		return putJSON(codes, c.Hash[:], oauthCodeRow{Request: c.Request[:], Expires: c.Expires})
	})
}

func (o oauthStore) ClaimCode(ctx context.Context, hash [32]byte) (oauthstore.Request, error) {
	var out oauthstore.Request
	err := o.s.batch(ctx, func(tx *bolt.Tx) error {
		codes := tx.Bucket(bOAuthCodes)
		var code oauthCodeRow
		if err := getJSON(codes, hash[:], &code); err != nil {
			return err
		}
		if err := codes.Delete(hash[:]); err != nil {
			return err
		}
		reqs := tx.Bucket(bOAuthRequests)
		var row oauthRequestRow
		if err := getJSON(reqs, code.Request, &row); err != nil {
			return err
		}
		if err := reqs.Delete(code.Request); err != nil {
			return err
		}
		out = oauthstore.Request{Hash: [32]byte(code.Request), ClientID: row.Client, Expires: row.Expires, Sealed: row.Sealed}
		// Another code of the same request (a reloaded callback) is not
		// looked for: with its request gone it can never be claimed, and
		// Sweep drops it when it expires. Walking the codes bucket here
		// made every exchange cost a pass over all pending codes.
		return nil
	})
	if errors.Is(err, oauthstore.ErrNotFound) {
		return oauthstore.Request{}, oauthstore.ErrNotFound
	}
	return out, err
}

func tokenRow(t oauthstore.Token) oauthTokenRow {
	return oauthTokenRow{Kind: byte(t.Kind), Family: t.Family, User: t.UserID, Client: t.ClientID, Expires: t.Expires, Rotated: t.Rotated, Sealed: t.Sealed}
}

func putTokens(tx *bolt.Tx, ts []oauthstore.Token) error {
	b := tx.Bucket(bOAuthTokens)
	for _, t := range ts {
		if err := checkTimes(t.Expires); err != nil {
			return err
		}
		if err := checkIDs(t.Family, t.UserID, t.ClientID); err != nil {
			return err
		}
		if t.Kind != oauthstore.Access && t.Kind != oauthstore.Refresh {
			return errors.New("unknown token kind")
		}
		if b.Get(t.Hash[:]) != nil {
			return oauthstore.ErrExists
		}
		if err := putJSON(b, t.Hash[:], tokenRow(t)); err != nil {
			return err
		}
	}
	return nil
}

func (o oauthStore) PutTokens(ctx context.Context, ts ...oauthstore.Token) error {
	return o.s.batch(ctx, func(tx *bolt.Tx) error { return putTokens(tx, ts) })
}

func (o oauthStore) Token(ctx context.Context, hash [32]byte) (oauthstore.Token, error) {
	var out oauthstore.Token
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		var row oauthTokenRow
		if err := getJSON(tx.Bucket(bOAuthTokens), hash[:], &row); err != nil {
			return err
		}
		out = oauthstore.Token{Hash: hash, Kind: oauthstore.Kind(row.Kind), Family: row.Family, UserID: row.User, ClientID: row.Client, Expires: row.Expires, Rotated: row.Rotated, Sealed: row.Sealed}
		return nil
	})
	return out, err
}

func (o oauthStore) RotateRefresh(ctx context.Context, old [32]byte, next ...oauthstore.Token) error {
	return o.s.batch(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bOAuthTokens)
		var row oauthTokenRow
		if err := getJSON(b, old[:], &row); err != nil {
			return err
		}
		if row.Kind != byte(oauthstore.Refresh) {
			return oauthstore.ErrNotFound
		}
		if row.Rotated {
			return oauthstore.ErrRotated
		}
		row.Rotated = true
		if err := putJSON(b, old[:], row); err != nil {
			return err
		}
		return putTokens(tx, next)
	})
}

func deleteTokens(tx *bolt.Tx, f oauthstore.Filter) (int, error) {
	if f == (oauthstore.Filter{}) {
		return 0, errors.New("an empty filter would end every token")
	}
	n := 0
	err := deleteWhere(tx.Bucket(bOAuthTokens), func(v []byte) (bool, error) {
		var row oauthTokenRow
		if err := json.Unmarshal(v, &row); err != nil {
			return false, err
		}
		ok := (f.UserID == "" || row.User == f.UserID) && (f.ClientID == "" || row.Client == f.ClientID) && (f.Family == "" || row.Family == f.Family)
		if ok {
			n++
		}
		return ok, nil
	})
	return n, err
}

func (o oauthStore) DeleteTokens(ctx context.Context, f oauthstore.Filter) (int, error) {
	if err := checkIDs(f.UserID, f.ClientID, f.Family); err != nil {
		return 0, err
	}
	var n int
	err := o.s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = deleteTokens(tx, f)
		return err
	})
	return n, err
}

func (o oauthStore) DeleteToken(ctx context.Context, hash [32]byte) error {
	return o.s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bOAuthTokens).Delete(hash[:]) })
}

func (o oauthStore) SpendJTI(ctx context.Context, hash [32]byte, expires time.Time) error {
	if err := checkTimes(expires); err != nil {
		return err
	}
	return o.s.batch(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bOAuthJTI)
		if b.Get(hash[:]) != nil {
			return oauthstore.ErrExists
		}
		return putJSON(b, hash[:], oauthJTIRow{Expires: expires})
	})
}

func (o oauthStore) JTISpent(ctx context.Context, hash [32]byte) (bool, error) {
	var spent bool
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		spent = tx.Bucket(bOAuthJTI).Get(hash[:]) != nil
		return nil
	})
	return spent, err
}

// keyKey sorts keys by creation time (appendTime), then id.
func keyKey(k oauthstore.Key) []byte {
	return append(appendTime(nil, k.Created), k.ID...)
}

func (o oauthStore) Keys(ctx context.Context) ([]oauthstore.Key, error) {
	var out []oauthstore.Key
	err := o.s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bOAuthKeys).ForEach(func(_, v []byte) error {
			var row oauthKeyRow
			if err := json.Unmarshal(v, &row); err != nil {
				return err
			}
			out = append(out, oauthstore.Key{ID: row.ID, Created: row.Created, Sealed: row.Sealed})
			return nil
		})
	})
	return out, err
}

func (o oauthStore) AddKey(ctx context.Context, k oauthstore.Key, keep int) error {
	if keep < 1 || k.ID == "" {
		return errors.New("a key needs an id, and at least one key is kept")
	}
	if err := checkTimes(k.Created); err != nil {
		return err
	}
	if err := checkIDs(k.ID); err != nil {
		return err
	}
	return o.s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bOAuthKeys)
		if err := putJSON(b, keyKey(k), oauthKeyRow{ID: k.ID, Created: k.Created, Sealed: k.Sealed}); err != nil {
			return err
		}
		var all [][]byte
		b.ForEach(func(k, _ []byte) error {
			all = append(all, append([]byte(nil), k...))
			return nil
		})
		for len(all) > keep {
			if err := b.Delete(all[0]); err != nil {
				return err
			}
			all = all[1:]
		}
		return nil
	})
}

func (o oauthStore) Sweep(ctx context.Context, before time.Time) (int, error) {
	if err := checkTimes(before); err != nil {
		return 0, err
	}
	n := 0
	err := o.s.update(ctx, func(tx *bolt.Tx) error {
		expired := func(v []byte) (bool, error) {
			var row struct {
				Expires time.Time `json:"expires"`
			}
			err := json.Unmarshal(v, &row)
			ok := err == nil && row.Expires.Before(before)
			if ok {
				n++
			}
			return ok, err
		}
		for _, name := range [][]byte{bOAuthRequests, bOAuthCodes, bOAuthTokens, bOAuthJTI} {
			if err := deleteWhere(tx.Bucket(name), expired); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
