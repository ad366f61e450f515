package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
)

// Prefixes of the secrets the provider hands out. None clashes with the
// vault's own tokens (vd_, vp_, vc_) or invites (vi_).
const (
	prefixAccess  = "vo_" // access token
	prefixRefresh = "vr_" // refresh token
	prefixCode    = "va_" // authorization code
	prefixRequest = "vq_" // authorization request id (travels in the browser)
	prefixSecret  = "vs_" // client secret
	prefixClient  = "oc_" // client id (public)
)

// newSecret returns prefix and 32 random bytes, base64url: 256 bits.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Sealer is the master keyset's AEAD (keys.Master).
type Sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
}

// clientRecord is what a client row seals.
type clientRecord struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	RedirectURIs []string        `json:"redirect_uris"`
	Confidential bool            `json:"confidential"`
	SecretHash   []byte          `json:"secret_hash,omitempty"` // SHA-256 of the secret
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI      string          `json:"jwks_uri,omitempty"`
	LaunchURI    string          `json:"launch_uri,omitempty"`
	Created      time.Time       `json:"created"`
	// Builtin marks the client of an app the vault itself serves
	// (EnsureClient); an admin's registration is never one.
	Builtin bool `json:"builtin,omitempty"`
	// Secret is a built-in client's secret itself, kept (inside this
	// sealed record only) so that every process serving the app, each
	// replica on one database, signs in with the same one. An admin's
	// client never has it: its secret was shown once and only its hash
	// is kept.
	Secret string `json:"secret,omitempty"`
}

// requestRecord is what an authorization request's row seals.
type requestRecord struct {
	ID           string    `json:"id"`
	ClientID     string    `json:"client"`
	RedirectURI  string    `json:"redirect_uri"`
	State        string    `json:"state,omitempty"`
	Nonce        string    `json:"nonce,omitempty"`
	ResponseMode string    `json:"response_mode,omitempty"`
	Scopes       []string  `json:"scopes"`
	Challenge    string    `json:"challenge"`
	Patient      bool      `json:"patient,omitempty"`
	User         bool      `json:"user,omitempty"`
	Schemas      []string  `json:"schemas,omitempty"`
	Offline      bool      `json:"offline,omitempty"`
	Launch       []byte    `json:"launch,omitempty"` // an EHR launch: its id's hash (launch.go)
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`

	// Set by Approve.
	Done    bool     `json:"done,omitempty"`
	UserID  string   `json:"user_id,omitempty"`
	GrantID string   `json:"grant_id,omitempty"`
	Granted []string `json:"granted,omitempty"`
	Kept    []string `json:"kept,omitempty"`
	// LaunchPatient is the patient in context of an EHR launch.
	LaunchPatient string    `json:"launch_patient,omitempty"`
	AuthTime      time.Time `json:"auth_time,omitzero"`
}

// tokenRecord is what a token's row seals.
type tokenRecord struct {
	Hash     []byte   `json:"hash"` // the key again, compared in constant time
	Kind     string   `json:"kind"`
	Family   string   `json:"family"`
	UserID   string   `json:"user"`
	ClientID string   `json:"client"`
	Scopes   []string `json:"scopes"`
	Schemas  []string `json:"schemas,omitempty"`
	GrantID  string   `json:"grant,omitempty"`
	// Patient is the patient in context of an EHR launch (a clinician's
	// token); a patient app's patient is its user.
	Patient  string    `json:"patient,omitempty"`
	AuthTime time.Time `json:"auth_time"`
	Issued   time.Time `json:"issued"`
	Expires  time.Time `json:"expires"`
}

func clientAD(id string) []byte { return []byte("jhvault/oauth-client/v1|" + id) }
func requestAD(h [32]byte) []byte {
	return []byte("jhvault/oauth-request/v1|" + hex.EncodeToString(h[:]))
}
func tokenAD(h [32]byte) []byte { return []byte("jhvault/oauth-token/v1|" + hex.EncodeToString(h[:])) }
func keyAD(id string) []byte    { return []byte("jhvault/oidc-key/v1|" + id) }

// errNotActive is any token that is unknown, expired, revoked or whose
// grant or user is gone. Callers never learn which.
var errNotActive = errors.New("token is not active")

func (p *Provider) seal(v any, ad []byte) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return p.sealer.Encrypt(b, ad)
}

func (p *Provider) open(sealed, ad []byte, v any) error {
	b, err := p.sealer.Decrypt(sealed, ad)
	if err != nil {
		return errors.New("oauth record does not decrypt")
	}
	return json.Unmarshal(b, v)
}

func (p *Provider) loadClient(ctx context.Context, id string) (clientRecord, error) {
	var c clientRecord
	row, err := p.store.Client(ctx, id)
	if err != nil {
		return c, err
	}
	if err := p.open(row.Sealed, clientAD(row.ID), &c); err != nil {
		return c, err
	}
	if c.ID != row.ID {
		return c, errors.New("oauth client record names another client")
	}
	return c, nil
}

func (p *Provider) loadRequest(ctx context.Context, id string) (requestRecord, error) {
	var r requestRecord
	if !strings.HasPrefix(id, prefixRequest) {
		return r, oauthstore.ErrNotFound
	}
	h := hashOf(id)
	row, err := p.store.Request(ctx, h)
	if err != nil {
		return r, err
	}
	return r, p.openRequest(row, &r)
}

func (p *Provider) openRequest(row oauthstore.Request, r *requestRecord) error {
	if err := p.open(row.Sealed, requestAD(row.Hash), r); err != nil {
		return err
	}
	if hashOf(r.ID) != row.Hash || r.ClientID != row.ClientID {
		return errors.New("oauth request record names another request")
	}
	return nil
}

func (p *Provider) saveRequest(ctx context.Context, r requestRecord) error {
	h := hashOf(r.ID)
	sealed, err := p.seal(r, requestAD(h))
	if err != nil {
		return err
	}
	return p.store.PutRequest(ctx, oauthstore.Request{Hash: h, ClientID: r.ClientID, Expires: r.Expires, Sealed: sealed})
}

// tokenRow seals a token record for storage.
func (p *Provider) tokenRow(secret string, t tokenRecord) (oauthstore.Token, error) {
	h := hashOf(secret)
	t.Hash = h[:]
	sealed, err := p.seal(t, tokenAD(h))
	if err != nil {
		return oauthstore.Token{}, err
	}
	kind := oauthstore.Access
	if t.Kind == "refresh" {
		kind = oauthstore.Refresh
	}
	return oauthstore.Token{Hash: h, Kind: kind, Family: t.Family, UserID: t.UserID, ClientID: t.ClientID, Expires: t.Expires, Sealed: sealed}, nil
}

// lookupToken opens a token's row. It says nothing about whether the
// token is active; see active.
func (p *Provider) lookupToken(ctx context.Context, secret string) (tokenRecord, oauthstore.Token, error) {
	var t tokenRecord
	if !strings.HasPrefix(secret, prefixAccess) && !strings.HasPrefix(secret, prefixRefresh) {
		return t, oauthstore.Token{}, errNotActive
	}
	h := hashOf(secret)
	row, err := p.store.Token(ctx, h)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return t, row, errNotActive
	}
	if err != nil {
		return t, row, err
	}
	if err := p.open(row.Sealed, tokenAD(h), &t); err != nil {
		return t, row, err
	}
	if subtle.ConstantTimeCompare(t.Hash, h[:]) != 1 || t.UserID != row.UserID || t.ClientID != row.ClientID || t.Family != row.Family {
		return t, row, fmt.Errorf("oauth token record does not match its row")
	}
	return t, row, nil
}

// active says whether a token may be used now: not expired, its user
// still there, its client still registered, and its grant (a patient
// app's) still active in the ledger.
func (p *Provider) active(ctx context.Context, t tokenRecord, now time.Time) bool {
	_, ok := p.activeUser(ctx, t, now)
	return ok
}

// activeUser is active, returning the token's user too.
func (p *Provider) activeUser(ctx context.Context, t tokenRecord, now time.Time) (vault.User, bool) {
	if !now.Before(t.Expires) {
		return vault.User{}, false
	}
	u, err := p.users.User(ctx, t.UserID)
	if err != nil {
		return vault.User{}, false
	}
	if _, err := p.store.Client(ctx, t.ClientID); err != nil {
		return vault.User{}, false
	}
	if t.GrantID != "" && (p.grantActive == nil || !p.grantActive(t.GrantID, t.UserID, t.ClientID, now)) {
		return vault.User{}, false
	}
	return u, true
}
