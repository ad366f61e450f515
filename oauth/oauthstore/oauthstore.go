// Package oauthstore declares the storage the OAuth 2 / OpenID Connect
// provider (package oauth) needs: registered clients, authorization
// requests waiting for the user, one-time codes, access and refresh
// tokens, the client-assertion ids and EHR launch ids already spent, and
// the ID-token signing keys. Package oauth consumes it (as oauth.Store) and store/boltstore
// implements it; store/storetest.RunOAuth is the conformance suite every
// implementation passes.
//
// The split is the one web/webstore draws: oauth keeps every secret and
// every rule, the store keeps rows. A store sees
//
//   - lookup keys: SHA-256 hashes of secrets (request ids, codes, tokens,
//     client-assertion ids, EHR launch ids), never the secrets, and client ids, which are
//     public identifiers;
//   - for a token, the user id and client id it belongs to, a random family
//     id, and its expiry, so the store can end every token of a user, a
//     client or a refresh family, and sweep, without opening anything;
//   - sealed bytes, which only oauth opens. oauth seals each value under
//     the vault's master keyset with associated data naming the row.
//
// The store does what has to be atomic inside its own transaction: a code
// is claimed (with its request) at most once however many exchanges race
// for it; a refresh token is rotated at most once, and a second rotation of
// the same token is reported (ErrRotated) so oauth can end its family; a
// client-assertion id or an EHR launch id is spent at most once.
//
// A store keeps times to the nanosecond, from 1677-09-21 to 2262-04-11
// (signed Unix nanoseconds), and the zero time; it refuses a row or a
// sweep with a time outside them. Client, user, family and key ids are
// UTF-8 text without NUL bytes; a store refuses a call naming another.
//
// The package imports nothing of the vault, so that oauth's own tests can
// build a real store, as database/sql/driver does for database/sql.
package oauthstore

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns; callers test them with errors.Is.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrExists: a row with this key is stored already (a client id, a
	// spent client-assertion or launch id).
	ErrExists = errors.New("already exists")
	// ErrRotated: the refresh token was rotated already; presenting it
	// again is a reuse.
	ErrRotated = errors.New("refresh token already rotated")
)

// Client is a registered client's row. Sealed holds its name, redirect
// URIs, the hash of its secret, its keys.
type Client struct {
	ID      string
	Created time.Time
	Sealed  []byte
}

// Request is an authorization request's row, keyed by the SHA-256 of its
// id (the id travels in the user's browser only).
type Request struct {
	Hash     [32]byte
	ClientID string
	Expires  time.Time
	Sealed   []byte
}

// Code is a one-time authorization code's row: the SHA-256 of the code and
// the hash of the request it answers.
type Code struct {
	Hash    [32]byte
	Request [32]byte
	Expires time.Time
}

// Kind tells access from refresh tokens.
type Kind byte

// Token kinds.
const (
	Access  Kind = 'a'
	Refresh Kind = 'r'
)

// Token is an access or refresh token's row, keyed by the SHA-256 of the
// token.
type Token struct {
	Hash [32]byte
	Kind Kind
	// Family is a random id shared by a refresh token, the refresh tokens
	// that replace it and every access token any of them made.
	Family   string
	UserID   string
	ClientID string
	Expires  time.Time
	// Rotated marks a refresh token that was exchanged already; it is kept
	// until it expires so a reuse is recognised.
	Rotated bool
	Sealed  []byte
}

// Filter selects tokens: every non-empty field must match.
type Filter struct {
	UserID, ClientID, Family string
}

// Key is an ID-token signing key's row; Sealed is the private key.
type Key struct {
	ID      string
	Created time.Time
	Sealed  []byte
}

// Store is where the provider keeps its records.
type Store interface {
	// PutClient stores a new client; ErrExists if its id is taken.
	PutClient(ctx context.Context, c Client) error
	// Client returns a client's row, or ErrNotFound.
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists every client, by id.
	Clients(ctx context.Context) ([]Client, error)
	// DeleteClient removes a client with, in the same transaction, its
	// requests and tokens; ErrNotFound if there is none.
	DeleteClient(ctx context.Context, id string) error

	// PutRequest stores or replaces an authorization request.
	PutRequest(ctx context.Context, r Request) error
	// Request returns a request's row, or ErrNotFound.
	Request(ctx context.Context, hash [32]byte) (Request, error)
	// DeleteRequest removes a request (and any code issued for it);
	// removing one that is gone is not an error.
	DeleteRequest(ctx context.Context, hash [32]byte) error

	// PutCode stores a code for a stored request; ErrNotFound if the
	// request is gone.
	PutCode(ctx context.Context, c Code) error
	// ClaimCode removes a code and its request in one transaction and
	// returns the request; ErrNotFound if either is gone (a second claim
	// of the same code always fails).
	ClaimCode(ctx context.Context, hash [32]byte) (Request, error)

	// PutTokens stores new tokens (all or none).
	PutTokens(ctx context.Context, ts ...Token) error
	// Token returns a token's row, or ErrNotFound.
	Token(ctx context.Context, hash [32]byte) (Token, error)
	// RotateRefresh marks the refresh token old as rotated and stores
	// next, in one transaction: ErrNotFound if old is not a stored refresh
	// token, ErrRotated if it was rotated already (next is then not
	// stored).
	RotateRefresh(ctx context.Context, old [32]byte, next ...Token) error
	// DeleteTokens removes the tokens the filter selects (an empty filter
	// is refused) and says how many.
	DeleteTokens(ctx context.Context, f Filter) (int, error)
	// DeleteToken removes one token; removing one that is gone is not an
	// error.
	DeleteToken(ctx context.Context, hash [32]byte) error

	// SpendJTI records a spent-once mark until it expires; ErrExists if it
	// is recorded already. Two kinds share it, each hashing under its own
	// prefix: client-assertion ids (a hash of client and jti) and SMART
	// EHR launch ids (a hash of the launch's random part).
	SpendJTI(ctx context.Context, hash [32]byte, expires time.Time) error
	// JTISpent reports whether SpendJTI recorded hash (and Sweep has not
	// dropped it yet).
	JTISpent(ctx context.Context, hash [32]byte) (bool, error)

	// Keys lists the signing keys, oldest first.
	Keys(ctx context.Context) ([]Key, error)
	// AddKey stores a new signing key and drops the oldest beyond keep
	// (keep ≥ 1), in one transaction.
	AddKey(ctx context.Context, k Key, keep int) error

	// Sweep drops requests, codes, tokens and spent-once marks that
	// expired before the given time, and says how many rows went.
	Sweep(ctx context.Context, before time.Time) (int, error)
}
