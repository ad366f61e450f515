package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
	bolt "go.etcd.io/bbolt"
)

// What 'vault migrate' reads to copy a stopped vault to another backend:
// every row as it is stored, sealed bytes untouched, through the same
// types the store interfaces use. Nothing here opens a sealed value.

// fileMeta are the meta keys that describe this file rather than the
// vault (the format step, a compaction in progress): not copied.
var fileMeta = map[string]bool{"format": true, string(metaCompactPending): true}

// MetaRows returns every meta value of the vault (the wrapped master
// keyset, the root's parameters, …) but the file's own bookkeeping.
func (s *Store) MetaRows(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).ForEach(func(k, v []byte) error {
			if !fileMeta[string(k)] {
				out[string(k)] = bytes.Clone(v)
			}
			return nil
		})
	})
	return out, err
}

// AllTokens returns every API token row, whoever it belongs to.
func (s *Store) AllTokens(ctx context.Context) ([]vault.TokenRow, error) {
	var out []vault.TokenRow
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bTokens).ForEach(func(k, v []byte) error {
			var t vault.TokenRow
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("token row %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// ReadingSet names one patient's records of one schema.
type ReadingSet struct{ Patient, Schema string }

// ReadingSets lists every (patient, schema) that has records, in byte
// order, jumping from schema to schema rather than reading every key.
func (s *Store) ReadingSets(ctx context.Context) ([]ReadingSet, error) {
	var out []ReadingSet
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bReadings).ForEachBucket(func(patient []byte) error {
			c := tx.Bucket(bReadings).Bucket(patient).Cursor()
			for k, _ := c.First(); k != nil; {
				i := bytes.IndexByte(k, 0)
				if i <= 0 {
					return fmt.Errorf("patient %q: a record key without a schema", patient)
				}
				schema := string(k[:i])
				out = append(out, ReadingSet{Patient: string(patient), Schema: schema})
				k, _ = c.Seek(append([]byte(schema), 1))
			}
			return nil
		})
	})
	return out, err
}

// WebRows is every row of the web UI's store, as webstore types.
type WebRows struct {
	Invites     []webstore.Invite
	Credentials []UserCredential
	Recovery    map[string][]webstore.RecoveryCode // by user id
	Sessions    []webstore.Session
	Ceremonies  []webstore.Ceremony
	Spent       []webstore.SpentChallenge
	AppConsents []webstore.AppConsent
}

// UserCredential is a passkey and whose it is.
type UserCredential struct {
	UserID string
	webstore.Credential
}

// AllWeb reads every row of the web UI's store in one transaction.
func (s *Store) AllWeb(ctx context.Context) (WebRows, error) {
	out := WebRows{Recovery: map[string][]webstore.RecoveryCode{}}
	err := webStore{s}.view(ctx, func(wt *webTx) error {
		if err := wt.invites.ForEach(func(k, _ []byte) error {
			if len(k) != 32 {
				return errBadRow
			}
			inv, err := wt.invite([32]byte(k))
			out.Invites = append(out.Invites, inv)
			return err
		}); err != nil {
			return fmt.Errorf("invites: %w", err)
		}
		if err := wt.credsByUser.ForEach(func(k, _ []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return errBadRow
			}
			v := wt.creds.Get(k[i+1:])
			if v == nil {
				return fmt.Errorf("credential of %q indexed but not stored", k[:i])
			}
			out.Credentials = append(out.Credentials, UserCredential{UserID: string(k[:i]),
				Credential: webstore.Credential{ID: bytes.Clone(k[i+1:]), Sealed: bytes.Clone(v)}})
			return nil
		}); err != nil {
			return fmt.Errorf("passkeys: %w", err)
		}
		c := wt.recovery.Cursor()
		for k, _ := c.Seek([]byte("u/")); k != nil && bytes.HasPrefix(k, []byte("u/")); k, _ = c.Next() {
			i := bytes.IndexByte(k, 0)
			h, err := hex.DecodeString(string(k[i+1:]))
			if i < 0 || err != nil || len(h) != 32 {
				return fmt.Errorf("recovery codes: %w", errBadRow)
			}
			v := wt.recovery.Get(recoveryCodeKey([32]byte(h)))
			if v == nil {
				continue // used: only the user index was left
			}
			user := string(k[2:i])
			out.Recovery[user] = append(out.Recovery[user], webstore.RecoveryCode{Hash: [32]byte(h), Sealed: bytes.Clone(v)})
		}
		rows := func(t timed, fn func(timedRow)) error {
			return t.rows.ForEach(func(k, v []byte) error {
				r, err := decodeTimed(k, v)
				if err == nil {
					fn(r)
				}
				return err
			})
		}
		if err := rows(wt.sessions, func(r timedRow) { out.Sessions = append(out.Sessions, r.session()) }); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		if err := rows(wt.cers, func(r timedRow) {
			out.Ceremonies = append(out.Ceremonies, webstore.Ceremony{Hash: r.hash, UserID: r.userID, Created: r.created, Expires: r.expires, Sealed: r.sealed})
		}); err != nil {
			return fmt.Errorf("ceremonies: %w", err)
		}
		if err := rows(wt.spent, func(r timedRow) {
			out.Spent = append(out.Spent, webstore.SpentChallenge{Hash: r.hash, Created: r.created, Expires: r.expires})
		}); err != nil {
			return fmt.Errorf("spent challenges: %w", err)
		}
		if err := rows(wt.apps, func(r timedRow) { out.AppConsents = append(out.AppConsents, r.appConsent()) }); err != nil {
			return fmt.Errorf("app consents: %w", err)
		}
		return nil
	})
	return out, err
}

// OAuthRows is every row of the OAuth provider's store, as oauthstore
// types.
type OAuthRows struct {
	Clients  []oauthstore.Client
	Requests []oauthstore.Request
	Codes    []oauthstore.Code
	Tokens   []oauthstore.Token
	JTIs     []SpentJTI
	Keys     []oauthstore.Key // oldest first
}

// SpentJTI is a client-assertion id already seen.
type SpentJTI struct {
	Hash    [32]byte
	Expires time.Time
}

// AllOAuth reads every row of the OAuth provider's store in one
// transaction.
func (s *Store) AllOAuth(ctx context.Context) (OAuthRows, error) {
	var out OAuthRows
	err := s.view(ctx, func(tx *bolt.Tx) error {
		each := func(name []byte, hashKey bool, fn func(k, v []byte) error) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				if hashKey && len(k) != 32 {
					return fmt.Errorf("%s: %w", name, errBadRow)
				}
				if err := fn(k, v); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				return nil
			})
		}
		if err := each(bOAuthClients, false, func(k, v []byte) error {
			var r oauthClientRow
			err := json.Unmarshal(v, &r)
			out.Clients = append(out.Clients, oauthstore.Client{ID: string(k), Created: r.Created, Sealed: r.Sealed})
			return err
		}); err != nil {
			return err
		}
		if err := each(bOAuthRequests, true, func(k, v []byte) error {
			var r oauthRequestRow
			err := json.Unmarshal(v, &r)
			out.Requests = append(out.Requests, oauthstore.Request{Hash: [32]byte(k), ClientID: r.Client, Expires: r.Expires, Sealed: r.Sealed})
			return err
		}); err != nil {
			return err
		}
		if err := each(bOAuthCodes, true, func(k, v []byte) error {
			var r oauthCodeRow
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if len(r.Request) != 32 {
				return errBadRow
			}
			out.Codes = append(out.Codes, oauthstore.Code{Hash: [32]byte(k), Request: [32]byte(r.Request), Expires: r.Expires})
			return nil
		}); err != nil {
			return err
		}
		if err := each(bOAuthTokens, true, func(k, v []byte) error {
			var r oauthTokenRow
			err := json.Unmarshal(v, &r)
			out.Tokens = append(out.Tokens, oauthstore.Token{Hash: [32]byte(k), Kind: oauthstore.Kind(r.Kind), Family: r.Family,
				UserID: r.User, ClientID: r.Client, Expires: r.Expires, Rotated: r.Rotated, Sealed: r.Sealed})
			return err
		}); err != nil {
			return err
		}
		if err := each(bOAuthJTI, true, func(k, v []byte) error {
			var r oauthJTIRow
			err := json.Unmarshal(v, &r)
			out.JTIs = append(out.JTIs, SpentJTI{Hash: [32]byte(k), Expires: r.Expires})
			return err
		}); err != nil {
			return err
		}
		return each(bOAuthKeys, false, func(_, v []byte) error {
			var r oauthKeyRow
			err := json.Unmarshal(v, &r)
			out.Keys = append(out.Keys, oauthstore.Key{ID: r.ID, Created: r.Created, Sealed: r.Sealed})
			return err
		})
	})
	return out, err
}
