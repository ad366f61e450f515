package web

import (
	"bytes"
	"context"
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
	"github.com/jupyterhealth/vault/web/webstore"
)

// Store is where the web interface keeps its records (webstore.Store:
// invites, passkeys, recovery codes, sessions, ceremonies).
// store/boltstore's (*Store).Web is the one in the vault's file.
//
// Every value web hands it is sealed under the master keyset with
// associated data naming its row, so a value moved to another row, or
// written by someone without the root key, does not open.
type Store = webstore.Store

// sealer is the master keyset's AEAD.
type sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
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

// inviteSweepAfter is how long an expired invite is kept before a later
// put drops it.
const inviteSweepAfter = 24 * time.Hour

type inviteStore struct {
	store  Store
	sealer sealer
}

// put stores an invite, and drops invites that expired more than a day
// ago.
func (is *inviteStore) put(ctx context.Context, inv invite, now time.Time) error {
	sealed, err := is.sealer.Encrypt(mustJSON(inv), inviteAD(inv.Hash))
	if err != nil {
		return err
	}
	row := webstore.Invite{Hash: [32]byte(inv.Hash), UserID: inv.UserID, Expires: inv.Expires, Sealed: sealed}
	return is.store.PutInvite(ctx, row, now.Add(-inviteSweepAfter))
}

// open reads an invite's row: its record must open under the row's hash
// and name the hash (and the user and expiry the row has in plaintext,
// when it has them).
func (is *inviteStore) open(row webstore.Invite) (invite, error) {
	var inv invite
	pt, err := is.sealer.Decrypt(row.Sealed, inviteAD(row.Hash[:]))
	if err != nil {
		return inv, errors.New("invite record does not decrypt")
	}
	if err := json.Unmarshal(pt, &inv); err != nil {
		return inv, err
	}
	if subtle.ConstantTimeCompare(inv.Hash, row.Hash[:]) != 1 {
		return inv, errors.New("invite record does not match its key")
	}
	if row.UserID != "" && (row.UserID != inv.UserID || !row.Expires.Equal(inv.Expires)) {
		return inv, errors.New("invite record does not match its owner row")
	}
	return inv, nil
}

// errInvite is every reason an invite can't be used: unknown, expired, or
// used already. They look the same to the browser.
var errInvite = errors.New("the invite is not valid")

// get returns a usable invite by its token's hash: errInvite when there
// is none; any other error is the store's.
func (is *inviteStore) get(ctx context.Context, hash [32]byte, now time.Time) (invite, error) {
	row, err := is.store.Invite(ctx, hash)
	if errors.Is(err, webstore.ErrNotFound) {
		return invite{}, errInvite
	}
	if err != nil {
		return invite{}, err
	}
	inv, err := is.open(row)
	if err != nil || !now.Before(inv.Expires) {
		return invite{}, errInvite
	}
	return inv, nil
}

// claim takes an invite for one enrolment: the store deletes it in the
// transaction that finds it, so two enrolments racing on one link cannot
// both win (an expired one is gone too; it was of no use). release puts it
// back when the enrolment then fails.
func (is *inviteStore) claim(ctx context.Context, hash [32]byte, now time.Time) (invite, webstore.Invite, error) {
	row, err := is.store.ClaimInvite(ctx, hash)
	if errors.Is(err, webstore.ErrNotFound) {
		return invite{}, row, errInvite
	}
	if err != nil {
		return invite{}, row, err
	}
	inv, err := is.open(row)
	if err != nil || !now.Before(inv.Expires) {
		return invite{}, row, errInvite
	}
	return inv, row, nil
}

func (is *inviteStore) release(ctx context.Context, row webstore.Invite) error {
	return is.store.ReleaseInvite(ctx, row)
}

// adoptOld completes the invites an earlier version stored with their
// user and expiry only sealed: it puts them back with both in the owner
// row (so the store can sweep them and forget them with their user), and
// drops any that does not open.
func (is *inviteStore) adoptOld(ctx context.Context) error {
	rows, err := is.store.Invites(ctx)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if row.UserID != "" {
			continue
		}
		inv, err := is.open(row)
		if err != nil {
			if _, err := is.store.ClaimInvite(ctx, row.Hash); err != nil && !errors.Is(err, webstore.ErrNotFound) {
				return err
			}
			continue
		}
		row.UserID, row.Expires = inv.UserID, inv.Expires
		if err := is.store.ReleaseInvite(ctx, row); err != nil {
			return err
		}
	}
	return nil
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
	store  Store
	sealer sealer
}

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

// The store's refusals, as web names them.
var (
	errNoCredential = webstore.ErrNotFound
	errCredExists   = webstore.ErrExists
	errTooMany      = webstore.ErrTooMany
	errLastPasskey  = webstore.ErrLastPasskey
)

// add stores a new credential; the store refuses a duplicate and one past
// MaxPasskeysPerUser.
func (cs *credStore) add(ctx context.Context, c *credRecord) error {
	sealed, err := cs.seal(c)
	if err != nil {
		return err
	}
	return cs.store.AddCredential(ctx, c.UserID, webstore.Credential{ID: c.ID, Sealed: sealed}, MaxPasskeysPerUser)
}

// get returns a credential by id.
func (cs *credStore) get(ctx context.Context, id []byte) (credRecord, error) {
	row, err := cs.store.Credential(ctx, id)
	if err != nil {
		return credRecord{}, err
	}
	return cs.open(row.ID, row.Sealed)
}

// list returns a user's credentials, oldest first.
func (cs *credStore) list(ctx context.Context, userID string) ([]credRecord, error) {
	rows, err := cs.store.Credentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]credRecord, 0, len(rows))
	for _, row := range rows {
		rec, err := cs.open(row.ID, row.Sealed)
		if err != nil {
			return nil, err
		}
		if rec.UserID != userID {
			return nil, fmt.Errorf("credential index names the wrong user")
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b credRecord) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// modify changes one of a user's credentials in a transaction. A
// credential of another user is errNoCredential, as a missing one.
func (cs *credStore) modify(ctx context.Context, userID string, id []byte, fn func(c *credRecord) error) error {
	return cs.store.ModifyCredential(ctx, userID, id, func(sealed []byte) ([]byte, error) {
		c, err := cs.open(id, sealed)
		if err != nil {
			return nil, err
		}
		if c.UserID != userID {
			return nil, errNoCredential
		}
		if err := fn(&c); err != nil {
			return nil, err
		}
		return cs.seal(&c)
	})
}

// remove deletes one of a user's credentials, but never the last one: a
// user with no passkey could not sign in again.
func (cs *credStore) remove(ctx context.Context, userID string, id []byte) error {
	return cs.store.RemoveCredential(ctx, userID, id)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
