package web

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	bolt "go.etcd.io/bbolt"
)

// Buckets of the web interface, in the vault's database. Every value is
// sealed under the master keyset with associated data naming its record,
// so a value moved to another key, or written by someone without the
// root key, does not open.
var (
	bInvites     = []byte("web_invites")             // SHA-256(token) -> sealed invite
	bCredentials = []byte("web_credentials")         // credential id -> sealed credRecord
	bCredsByUser = []byte("web_credentials_by_user") // user id 0x00 credential id -> empty (index)
)

// sealer is the master keyset's AEAD.
type sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
}

// dbHandle is the bbolt store's handle (boltstore.Store.DB).
type dbHandle interface {
	DB(fn func(*bolt.DB) error) error
}

func update(db dbHandle, fn func(tx *bolt.Tx) error) error {
	return db.DB(func(b *bolt.DB) error { return b.Update(fn) })
}

func view(db dbHandle, fn func(tx *bolt.Tx) error) error {
	return db.DB(func(b *bolt.DB) error { return b.View(fn) })
}

// ---- invites ----

// invite is a one-time enrolment link's record. The token itself is never
// stored: the key is its SHA-256.
type invite struct {
	Hash    []byte    `json:"hash"` // the key again, compared in constant time
	UserID  string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func inviteAD(hash []byte) []byte { return []byte("jhvault/web-invite/v1|" + hex.EncodeToString(hash)) }

type inviteStore struct {
	db     dbHandle
	sealer sealer
}

func (is *inviteStore) init() error {
	return update(is.db, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bInvites, bCredentials, bCredsByUser} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// put stores an invite, and drops invites that expired more than a day
// ago.
func (is *inviteStore) put(inv invite, now time.Time) error {
	sealed, err := is.sealer.Encrypt(mustJSON(inv), inviteAD(inv.Hash))
	if err != nil {
		return err
	}
	return update(is.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bInvites)
		var stale [][]byte
		b.ForEach(func(k, v []byte) error {
			if old, err := is.open(k, v); err != nil || now.Sub(old.Expires) > 24*time.Hour {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put(inv.Hash, sealed)
	})
}

func (is *inviteStore) open(k, v []byte) (invite, error) {
	var inv invite
	pt, err := is.sealer.Decrypt(v, inviteAD(k))
	if err != nil {
		return inv, errors.New("invite record does not decrypt")
	}
	if err := json.Unmarshal(pt, &inv); err != nil {
		return inv, err
	}
	if subtle.ConstantTimeCompare(inv.Hash, k) != 1 {
		return inv, errors.New("invite record does not match its key")
	}
	return inv, nil
}

// errInvite is every reason an invite can't be used: unknown, expired, or
// used already. They look the same to the browser.
var errInvite = errors.New("the invite is not valid")

// get returns a usable invite by its token's hash.
func (is *inviteStore) get(hash [32]byte, now time.Time) (invite, error) {
	var inv invite
	err := view(is.db, func(tx *bolt.Tx) error {
		v := tx.Bucket(bInvites).Get(hash[:])
		if v == nil {
			return errInvite
		}
		var err error
		inv, err = is.open(hash[:], v)
		return err
	})
	if err != nil {
		return invite{}, errInvite
	}
	if subtle.ConstantTimeCompare(inv.Hash, hash[:]) != 1 || !now.Before(inv.Expires) {
		return invite{}, errInvite
	}
	return inv, nil
}

// claim takes an invite for one enrolment: it is deleted in the same
// transaction that finds it usable, so two enrolments racing on one link
// cannot both win. release puts it back when the enrolment then fails.
func (is *inviteStore) claim(hash [32]byte, now time.Time) (invite, []byte, error) {
	var inv invite
	var sealed []byte
	err := update(is.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bInvites)
		v := b.Get(hash[:])
		if v == nil {
			return errInvite
		}
		var err error
		if inv, err = is.open(hash[:], v); err != nil {
			return errInvite
		}
		if !now.Before(inv.Expires) {
			return errInvite
		}
		sealed = bytes.Clone(v)
		return b.Delete(hash[:])
	})
	return inv, sealed, err
}

func (is *inviteStore) release(hash [32]byte, sealed []byte) error {
	return update(is.db, func(tx *bolt.Tx) error { return tx.Bucket(bInvites).Put(hash[:], sealed) })
}

// ---- credentials ----

// credRecord is the server's record of one passkey, for sign-in. Its
// public key is also in the ledger's passkey-registered entry (at
// LedgerIndex), which is what later verifications trust.
type credRecord struct {
	ID           []byte    `json:"id"`
	UserID       string    `json:"user"`
	Handle       []byte    `json:"handle"` // the WebAuthn user handle: random, per user
	PublicKey    []byte    `json:"public_key"`
	SignCount    uint32    `json:"sign_count"`
	Flags        byte      `json:"flags"` // authenticator data flags (UP, UV, BE, BS)
	AAGUID       []byte    `json:"aaguid,omitempty"`
	Transports   []string  `json:"transports,omitempty"`
	Format       string    `json:"attestation_format,omitempty"`
	Label        string    `json:"label"`
	Created      time.Time `json:"created"`
	LastUsed     time.Time `json:"last_used,omitzero"`
	CloneWarning bool      `json:"clone_warning,omitempty"`
	LedgerIndex  int64     `json:"ledger_index"`
}

func credAD(id []byte) []byte {
	return []byte("jhvault/web-credential/v1|" + base64.RawURLEncoding.EncodeToString(id))
}

func userKey(userID string, credID []byte) []byte {
	return append(append([]byte(userID), 0), credID...)
}

// webauthnCredential is the library's view of the record.
func (c *credRecord) webauthnCredential() webauthn.Credential {
	ts := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: c.ID, PublicKey: c.PublicKey, AttestationFormat: c.Format, Transport: ts,
		Flags:         webauthn.CredentialFlagsFromMsgpByte(c.Flags),
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount, CloneWarning: c.CloneWarning},
	}
}

type credStore struct {
	db     dbHandle
	sealer sealer
}

func (cs *credStore) init() error { return nil } // buckets come with the invites' init

func (cs *credStore) seal(c *credRecord) ([]byte, error) {
	return cs.sealer.Encrypt(mustJSON(c), credAD(c.ID))
}

func (cs *credStore) open(id, v []byte) (credRecord, error) {
	var c credRecord
	pt, err := cs.sealer.Decrypt(v, credAD(id))
	if err != nil {
		return c, errors.New("credential record does not decrypt")
	}
	if err := json.Unmarshal(pt, &c); err != nil {
		return c, err
	}
	if !bytes.Equal(c.ID, id) {
		return c, errors.New("credential record does not match its key")
	}
	return c, nil
}

var (
	errNoCredential = errors.New("no such credential")
	errCredExists   = errors.New("credential already registered")
	errTooMany      = errors.New("too many passkeys")
	errLastPasskey  = errors.New("the last passkey cannot be removed")
)

// add stores a new credential.
func (cs *credStore) add(c *credRecord) error {
	sealed, err := cs.seal(c)
	if err != nil {
		return err
	}
	return update(cs.db, func(tx *bolt.Tx) error {
		b, ub := tx.Bucket(bCredentials), tx.Bucket(bCredsByUser)
		if b.Get(c.ID) != nil {
			return errCredExists
		}
		if n := countPrefix(ub, []byte(c.UserID+"\x00")); n >= MaxPasskeysPerUser {
			return errTooMany
		}
		if err := b.Put(c.ID, sealed); err != nil {
			return err
		}
		return ub.Put(userKey(c.UserID, c.ID), []byte{})
	})
}

func countPrefix(b *bolt.Bucket, prefix []byte) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// get returns a credential by id.
func (cs *credStore) get(id []byte) (credRecord, error) {
	var c credRecord
	err := view(cs.db, func(tx *bolt.Tx) error {
		v := tx.Bucket(bCredentials).Get(id)
		if v == nil {
			return errNoCredential
		}
		var err error
		c, err = cs.open(id, v)
		return err
	})
	return c, err
}

// list returns a user's credentials, oldest first.
func (cs *credStore) list(userID string) ([]credRecord, error) {
	var out []credRecord
	err := view(cs.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCredentials)
		prefix := []byte(userID + "\x00")
		c := tx.Bucket(bCredsByUser).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := k[len(prefix):]
			v := b.Get(id)
			if v == nil {
				continue
			}
			rec, err := cs.open(id, v)
			if err != nil {
				return err
			}
			if rec.UserID != userID {
				return fmt.Errorf("credential index names the wrong user")
			}
			out = append(out, rec)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b credRecord) int { return a.Created.Compare(b.Created) })
	return out, err
}

// modify changes one of a user's credentials in a transaction. A
// credential of another user is errNoCredential, as a missing one.
func (cs *credStore) modify(userID string, id []byte, fn func(c *credRecord) error) error {
	return update(cs.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCredentials)
		v := b.Get(id)
		if v == nil {
			return errNoCredential
		}
		c, err := cs.open(id, v)
		if err != nil {
			return err
		}
		if c.UserID != userID {
			return errNoCredential
		}
		if err := fn(&c); err != nil {
			return err
		}
		sealed, err := cs.seal(&c)
		if err != nil {
			return err
		}
		return b.Put(id, sealed)
	})
}

// remove deletes one of a user's credentials, but never the last one: a
// user with no passkey could not sign in again.
func (cs *credStore) remove(userID string, id []byte) error {
	return update(cs.db, func(tx *bolt.Tx) error {
		b, ub := tx.Bucket(bCredentials), tx.Bucket(bCredsByUser)
		v := b.Get(id)
		if v == nil {
			return errNoCredential
		}
		c, err := cs.open(id, v)
		if err != nil {
			return err
		}
		if c.UserID != userID {
			return errNoCredential
		}
		if countPrefix(ub, []byte(userID+"\x00")) <= 1 {
			return errLastPasskey
		}
		if err := b.Delete(id); err != nil {
			return err
		}
		return ub.Delete(userKey(userID, id))
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
