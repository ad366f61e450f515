// Package webstore declares the storage the web UI needs: enrolment
// invites, passkey records, recovery codes, sessions, the WebAuthn
// ceremonies of signed-in users and invitees in progress, and the hashes
// of sign-in challenges already answered. Package web consumes it (as
// web.Store) and store/boltstore implements it; store/storetest.RunWeb is
// the conformance suite every implementation passes.
//
// The split is the one vault.Backend draws for readings: web keeps every
// secret and every rule, the store keeps rows. A store sees
//
//   - ids: SHA-256 hashes of secrets (invite tokens, recovery codes,
//     session and ceremony ids, answered sign-in challenges), never the
//     secrets; passkey credential ids, which the authenticator chose and
//     browsers see anyway;
//   - the user id a row belongs to, and times (created, last seen,
//     expires), so it can list, forget and sweep without opening anything;
//   - sealed bytes, which only web opens (remembered app consents too:
//     which clients a user let sign her in). Web seals each value under the
//     vault's master keyset with associated data naming the row, so a value
//     moved to another row does not open.
//
// Policy stays in web: how long an invite, a session or a ceremony lives,
// when a session counts as idle, what a sealed row must hold. The store
// does what has to be atomic, inside its own transaction: refusing a
// duplicate passkey or one past the per-user limit, refusing to remove the
// last one, and handing out an invite, a recovery code or a ceremony at most
// once however many requests race for it.
//
// A store keeps times to the nanosecond, from 1677-09-21 to 2262-04-11
// (signed Unix nanoseconds), and the zero time; it refuses a row or a
// sweep with a time outside them. A user id is UTF-8 text without NUL
// bytes; a store refuses a call naming another.
//
// Every method takes a context; a store on a network honours it, an
// embedded one may only check it before it starts.
//
// The package imports nothing of the vault, so that web's own tests can
// build a real store (store/boltstore imports this package, not web), as
// database/sql/driver does for database/sql.
package webstore

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns; callers test them with errors.Is.
var (
	// ErrNotFound: no such row (or, for a passkey, not that user's).
	ErrNotFound = errors.New("not found")
	// ErrExists: a passkey with this credential id is stored already.
	ErrExists = errors.New("already exists")
	// ErrTooMany: the user has the most passkeys (or remembered app
	// consents) allowed.
	ErrTooMany = errors.New("too many for this user")
	// ErrLastPasskey: removing this passkey would leave the user none.
	ErrLastPasskey = errors.New("the last passkey")
	// ErrFull: the most ceremonies (or spent sign-in challenges) allowed
	// are stored.
	ErrFull = errors.New("too many in flight")
)

// Invite is a one-time enrolment link's row.
type Invite struct {
	Hash [32]byte // SHA-256 of the invite token
	// UserID is whom the link enrols, and Expires when it stops working.
	// Both are empty in an invite stored by a version of the vault that kept
	// them only sealed; web reads those once (Invites) and puts them back
	// with both set.
	UserID  string
	Expires time.Time
	Sealed  []byte
}

// Credential is a passkey's row: the credential id and the sealed record
// (its public key, counters, label, user).
type Credential struct {
	ID     []byte
	Sealed []byte
}

// RecoveryCode is one recovery code's row, keyed by the SHA-256 of the
// code.
type RecoveryCode struct {
	Hash   [32]byte
	Sealed []byte
}

// Session is a signed-in browser's row, keyed by the SHA-256 of its cookie
// value. Sealed holds everything else (role, CSRF token, the passkey it
// signed in with, the created time again).
type Session struct {
	Hash     [32]byte
	UserID   string
	Created  time.Time
	LastSeen time.Time
	// Expires is when the session ends if it is not seen again; web sets
	// it at creation and moves it at each touch. Sweeps go by it.
	Expires time.Time
	Sealed  []byte
}

// Ceremony is a WebAuthn ceremony in progress, keyed by a hash of its
// cookie value (and its kind, so a ceremony is found only by the finish
// of its own kind). UserID is empty for a sign-in, which names no one
// until it finishes.
type Ceremony struct {
	Hash    [32]byte
	UserID  string
	Created time.Time
	Expires time.Time
	Sealed  []byte
}

// SpentChallenge marks a sign-in challenge answered. A sign-in's challenge
// is not stored while it is in flight (web hands it to the browser
// sealed); only once a valid assertion has answered it does web store its
// hash, until the challenge expires, so no other answer to it is taken.
type SpentChallenge struct {
	Hash    [32]byte // a hash of the challenge (web's, with its own prefix)
	Created time.Time
	Expires time.Time // when the row may be dropped: after the challenge itself stops being accepted
}

// AppConsent is a user's remembered consent to an OAuth client signing her
// in (the vault as OpenID provider), keyed by a hash of the user and the
// client; Sealed holds the client and when she allowed it.
type AppConsent struct {
	Hash    [32]byte
	UserID  string
	Created time.Time
	Sealed  []byte
}

// Store is where the web UI keeps its records.
type Store interface {
	// PutInvite stores an invite (replacing one with the same hash). When
	// sweepBefore is not zero it first drops every invite that expired
	// before then.
	PutInvite(ctx context.Context, inv Invite, sweepBefore time.Time) error
	// Invite returns an invite by hash, or ErrNotFound.
	Invite(ctx context.Context, hash [32]byte) (Invite, error)
	// ClaimInvite deletes an invite and returns it, in one transaction: of
	// any number of racing claims, one gets the row and the others
	// ErrNotFound.
	ClaimInvite(ctx context.Context, hash [32]byte) (Invite, error)
	// ReleaseInvite puts back an invite ClaimInvite took, when the
	// enrolment then failed.
	ReleaseInvite(ctx context.Context, inv Invite) error
	// Invites returns every invite, for maintenance (web completes the rows
	// whose UserID is empty).
	Invites(ctx context.Context) ([]Invite, error)

	// AddCredential stores a user's new passkey. It refuses, in its
	// transaction, a credential id stored already (ErrExists) and a user
	// who has max passkeys already (ErrTooMany).
	AddCredential(ctx context.Context, userID string, c Credential, max int) error
	// Credential returns a passkey by credential id, or ErrNotFound.
	Credential(ctx context.Context, id []byte) (Credential, error)
	// Credentials returns a user's passkeys, in no particular order.
	Credentials(ctx context.Context, userID string) ([]Credential, error)
	// ModifyCredential replaces one of a user's passkey records by what fn
	// makes of it, in one transaction (fn runs inside it, and must not call
	// the store). A passkey of another user is ErrNotFound; an error from
	// fn changes nothing and is returned as it is.
	ModifyCredential(ctx context.Context, userID string, id []byte, fn func(sealed []byte) ([]byte, error)) error
	// RemoveCredential deletes one of a user's passkeys, but never the
	// last one (ErrLastPasskey), checked in its transaction. A passkey of
	// another user is ErrNotFound.
	RemoveCredential(ctx context.Context, userID string, id []byte) error

	// ReplaceRecoveryCodes makes codes the user's only recovery codes.
	ReplaceRecoveryCodes(ctx context.Context, userID string, codes []RecoveryCode) error
	// RecoveryCodesLeft counts a user's unused codes.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	// UseRecoveryCode spends a code: in one transaction it finds the code
	// by hash (else ErrNotFound), lets open read the sealed record and name
	// the code's user, checks the code is that user's, and deletes it. Of
	// racing uses one wins. If open fails, nothing changes and its error is
	// returned. open runs inside the transaction and must not call the
	// store.
	UseRecoveryCode(ctx context.Context, hash [32]byte, open func(sealed []byte) (userID string, err error)) (string, error)

	// CreateSession stores a new session. It first drops up to a few
	// dozen sessions that expired by s.Created, and when max sessions are
	// stored, every expired one and then, if still full, the one that
	// expires soonest.
	CreateSession(ctx context.Context, s Session, max int) error
	// Session returns a session by hash, or ErrNotFound. It does not
	// check expiry: that is web's rule.
	Session(ctx context.Context, hash [32]byte) (Session, error)
	// TouchSession records that a session was seen: its LastSeen and
	// Expires move forward (never back). A session deleted meanwhile is
	// ErrNotFound and stays deleted.
	TouchSession(ctx context.Context, hash [32]byte, lastSeen, expires time.Time) error
	// DeleteSession deletes a session; a missing one is not an error.
	DeleteSession(ctx context.Context, hash [32]byte) error
	// DeleteSessions deletes those of a user's sessions that match says
	// to (all of them when match is nil), in one transaction, and returns
	// how many went. match runs inside the transaction and must not call
	// the store.
	DeleteSessions(ctx context.Context, userID string, match func(Session) bool) (int, error)

	// PutCeremony stores a ceremony. It first drops up to a few dozen
	// ceremonies that expired by c.Created, and when max are stored, every
	// expired one; if max are still stored, it refuses with ErrFull.
	PutCeremony(ctx context.Context, c Ceremony, max int) error
	// TakeCeremony deletes a ceremony and returns it, in one transaction:
	// a ceremony is taken at most once. A missing one is ErrNotFound.
	TakeCeremony(ctx context.Context, hash [32]byte) (Ceremony, error)

	// SpendChallenge stores a spent sign-in challenge, in one transaction:
	// a hash stored already is ErrExists, so of racing spends of one
	// challenge exactly one succeeds. It first drops up to a few dozen
	// rows that expired by sp.Created, and when max are stored, every
	// expired one; if max are still stored, it refuses with ErrFull (it
	// never drops a live row: that would let its challenge be answered
	// again). A spend whose Created is not before its Expires is refused
	// as ErrExists: its row could be swept as soon as it was stored.
	SpendChallenge(ctx context.Context, sp SpentChallenge, max int) error

	// PutAppConsent stores a remembered consent, replacing one with the
	// same hash. It refuses, in its transaction, a new one for a user who
	// has max already (ErrTooMany).
	PutAppConsent(ctx context.Context, c AppConsent, max int) error
	// AppConsent returns a remembered consent by hash, or ErrNotFound.
	AppConsent(ctx context.Context, hash [32]byte) (AppConsent, error)
	// AppConsents returns a user's remembered consents, in no particular
	// order.
	AppConsents(ctx context.Context, userID string) ([]AppConsent, error)
	// DeleteAppConsent deletes one of a user's remembered consents; one
	// that is missing or another user's is ErrNotFound.
	DeleteAppConsent(ctx context.Context, userID string, hash [32]byte) error

	// ForgetUser deletes everything stored about a user, in one
	// transaction: passkeys, invites, recovery codes, sessions,
	// ceremonies and remembered app consents.
	ForgetUser(ctx context.Context, userID string) error
}
