package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jupyterhealth/vault/web/webstore"
	bolt "go.etcd.io/bbolt"
)

// The web UI's buckets (webstore.Store). Values are sealed by package web;
// keys and the few plaintext fields are listed here.
//
//	web_invites                 SHA-256(invite token) -> sealed invite
//	web_invite_owners           SHA-256(invite token) -> expires(8) user id
//	web_credentials             credential id -> sealed passkey record
//	web_credentials_by_user     user id 0x00 credential id -> empty
//	web_recovery                "c/" hex(SHA-256(code)) -> sealed code record
//	                            "u/" user id 0x00 hex(SHA-256(code)) -> empty
//	web_sessions                SHA-256(session id) -> timed row
//	web_sessions_by_user        user id 0x00 SHA-256(session id) -> empty
//	web_sessions_by_expiry      expires(8) SHA-256(session id) -> empty
//	web_ceremonies              ceremony hash -> timed row
//	web_ceremonies_by_user      user id 0x00 ceremony hash -> empty
//	web_ceremonies_by_expiry    expires(8) ceremony hash -> empty
//	web_signin_spent            spent-challenge hash -> timed row (no user, nothing sealed)
//	web_signin_spent_by_expiry  expires(8) spent-challenge hash -> empty
//	web_app_consents            hash(user, client) -> timed row (expires zero)
//	web_app_consents_by_user    user id 0x00 hash(user, client) -> empty
//	web_app_consents_by_expiry  zero time hash -> empty (never swept: a consent lasts until removed)
//
// A timed row is created(8) last-seen(8) expires(8) len(user)(2) user
// sealed; times are Unix nanoseconds, big-endian with the sign bit flipped
// so they sort. The sessions' and ceremonies' bucket sequence is their row
// count (for the limits). The spent sign-in challenges are timed rows too,
// with no user (web_signin_spent_by_user stays empty) and no sealed part.
// web_invites, web_credentials, web_credentials_by_user and web_recovery
// are as earlier versions wrote them; web_invite_owners is new, so an
// invite stored before it has no owner row until web completes it.
var (
	bWebInvites        = []byte("web_invites")
	bWebInviteOwners   = []byte("web_invite_owners")
	bWebCreds          = []byte("web_credentials")
	bWebCredsByUser    = []byte("web_credentials_by_user")
	bWebRecovery       = []byte("web_recovery")
	bWebSessions       = []byte("web_sessions")
	bWebSessionsByUser = []byte("web_sessions_by_user")
	bWebSessionsByExp  = []byte("web_sessions_by_expiry")
	bWebCers           = []byte("web_ceremonies")
	bWebCersByUser     = []byte("web_ceremonies_by_user")
	bWebCersByExp      = []byte("web_ceremonies_by_expiry")
	bWebSpent          = []byte("web_signin_spent")
	bWebSpentByUser    = []byte("web_signin_spent_by_user")
	bWebSpentByExp     = []byte("web_signin_spent_by_expiry")
	bWebApps           = []byte("web_app_consents")
	bWebAppsByUser     = []byte("web_app_consents_by_user")
	bWebAppsByExp      = []byte("web_app_consents_by_expiry")

	webBuckets = [][]byte{
		bWebInvites, bWebInviteOwners, bWebCreds, bWebCredsByUser, bWebRecovery,
		bWebSessions, bWebSessionsByUser, bWebSessionsByExp,
		bWebCers, bWebCersByUser, bWebCersByExp,
		bWebSpent, bWebSpentByUser, bWebSpentByExp,
		bWebApps, bWebAppsByUser, bWebAppsByExp,
	}
)

// sweepBatch bounds the expired sessions or ceremonies one put drops
// when the store is not full.
const sweepBatch = 64

// createWebBuckets is a migration: the web UI's buckets. Older files have
// some of them already (web created them on first use).
func createWebBuckets(tx *bolt.Tx) error {
	for _, name := range webBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Web is the web UI's store, in the same file.
func (s *Store) Web() webstore.Store { return webStore{s} }

type webStore struct{ s *Store }

var _ webstore.Store = webStore{}

// webTx is one transaction's view of the web buckets.
type webTx struct {
	invites, owners, creds, credsByUser, recovery *bolt.Bucket
	sessions, cers, spent, apps                   timed
}

// timed is a bucket of timed rows with its user and expiry indexes.
type timed struct{ rows, byUser, byExp *bolt.Bucket }

func openWeb(tx *bolt.Tx) (*webTx, error) {
	bs := make([]*bolt.Bucket, len(webBuckets))
	for i, name := range webBuckets {
		if bs[i] = tx.Bucket(name); bs[i] == nil {
			return nil, fmt.Errorf("bucket %s missing", name)
		}
	}
	return &webTx{
		invites: bs[0], owners: bs[1], creds: bs[2], credsByUser: bs[3], recovery: bs[4],
		sessions: timed{bs[5], bs[6], bs[7]},
		cers:     timed{bs[8], bs[9], bs[10]},
		spent:    timed{bs[11], bs[12], bs[13]},
		apps:     timed{bs[14], bs[15], bs[16]},
	}, nil
}

func (w webStore) view(ctx context.Context, fn func(*webTx) error) error {
	return w.s.view(ctx, func(tx *bolt.Tx) error {
		wt, err := openWeb(tx)
		if err != nil {
			return err
		}
		return fn(wt)
	})
}

func (w webStore) update(ctx context.Context, fn func(*webTx) error) error {
	return w.s.update(ctx, func(tx *bolt.Tx) error {
		wt, err := openWeb(tx)
		if err != nil {
			return err
		}
		return fn(wt)
	})
}

// appendTime encodes a time as its Unix nanoseconds, sign bit flipped so
// they sort; the zero time is the smallest (math.MinInt64), as the
// PostgreSQL store keeps it. A time outside what Unix nanoseconds hold is
// refused before it gets here (checkTimes).
func appendTime(dst []byte, t time.Time) []byte {
	n := int64(math.MinInt64)
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(n)^(1<<63))
}

func readTime(b []byte) time.Time {
	n := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// The times a web or OAuth row keeps: what signed Unix nanoseconds hold
// (1677-09-21 to 2262-04-11), less the smallest, which stands for the
// zero time; and the zero time.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkIDs refuses an id (a user's, a client's, a token family's, a
// key's) that is not UTF-8 text without NUL bytes, as the PostgreSQL
// store does (its text columns refuse both). Here a NUL byte would also
// make one user's index rows look like another's: they are keyed by the
// user id and a NUL byte.
func checkIDs(ids ...string) error {
	for _, id := range ids {
		if !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
			return fmt.Errorf("id %q is not UTF-8 text without NUL bytes", id)
		}
	}
	return nil
}

// checkTimes refuses a time a row cannot keep, as the PostgreSQL store
// does (its columns are bigint nanoseconds).
func checkTimes(ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return fmt.Errorf("time %s is outside what the store keeps (%s to %s)", t.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339Nano), maxTime.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

func userKey(userID string, id []byte) []byte {
	return append(append([]byte(userID), 0), id...)
}

func userPrefix(userID string) []byte { return append([]byte(userID), 0) }

// keysWithPrefix returns copies of the keys starting with prefix.
func keysWithPrefix(b *bolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ---- invites ----

func (wt *webTx) invite(hash [32]byte) (webstore.Invite, error) {
	v := wt.invites.Get(hash[:])
	if v == nil {
		return webstore.Invite{}, webstore.ErrNotFound
	}
	inv := webstore.Invite{Hash: hash, Sealed: bytes.Clone(v)}
	if o := wt.owners.Get(hash[:]); len(o) >= 8 {
		inv.Expires, inv.UserID = readTime(o), string(o[8:])
	}
	return inv, nil
}

func (wt *webTx) putInvite(inv webstore.Invite) error {
	if err := wt.invites.Put(inv.Hash[:], inv.Sealed); err != nil {
		return err
	}
	if inv.UserID == "" {
		return wt.owners.Delete(inv.Hash[:])
	}
	return wt.owners.Put(inv.Hash[:], append(appendTime(nil, inv.Expires), inv.UserID...))
}

func (wt *webTx) deleteInvites(hashes [][]byte) error {
	if err := deleteKeys(wt.invites, hashes); err != nil {
		return err
	}
	return deleteKeys(wt.owners, hashes)
}

// invitesWhere returns the hashes of the invites whose owner row matches.
func (wt *webTx) invitesWhere(match func(expires time.Time, userID string) bool) [][]byte {
	var out [][]byte
	c := wt.owners.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) >= 8 && match(readTime(v), string(v[8:])) {
			out = append(out, bytes.Clone(k))
		}
	}
	return out
}

func (w webStore) PutInvite(ctx context.Context, inv webstore.Invite, sweepBefore time.Time) error {
	if err := checkIDs(inv.UserID); err != nil {
		return err
	}
	if err := checkTimes(inv.Expires, sweepBefore); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		if !sweepBefore.IsZero() {
			stale := wt.invitesWhere(func(exp time.Time, _ string) bool { return exp.Before(sweepBefore) })
			if err := wt.deleteInvites(stale); err != nil {
				return err
			}
		}
		return wt.putInvite(inv)
	})
}

func (w webStore) Invite(ctx context.Context, hash [32]byte) (webstore.Invite, error) {
	var inv webstore.Invite
	err := w.view(ctx, func(wt *webTx) error {
		var err error
		inv, err = wt.invite(hash)
		return err
	})
	return inv, err
}

func (w webStore) ClaimInvite(ctx context.Context, hash [32]byte) (webstore.Invite, error) {
	var inv webstore.Invite
	err := w.update(ctx, func(wt *webTx) error {
		var err error
		if inv, err = wt.invite(hash); err != nil {
			return err
		}
		return wt.deleteInvites([][]byte{hash[:]})
	})
	return inv, err
}

func (w webStore) ReleaseInvite(ctx context.Context, inv webstore.Invite) error {
	if err := checkIDs(inv.UserID); err != nil {
		return err
	}
	if err := checkTimes(inv.Expires); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error { return wt.putInvite(inv) })
}

func (w webStore) Invites(ctx context.Context) ([]webstore.Invite, error) {
	var out []webstore.Invite
	err := w.view(ctx, func(wt *webTx) error {
		c := wt.invites.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 32 {
				continue
			}
			inv, err := wt.invite([32]byte(k))
			if err != nil {
				return err
			}
			out = append(out, inv)
		}
		return nil
	})
	return out, err
}

// ---- passkeys ----

func (w webStore) AddCredential(ctx context.Context, userID string, c webstore.Credential, max int) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		if wt.creds.Get(c.ID) != nil {
			return webstore.ErrExists
		}
		if len(keysWithPrefix(wt.credsByUser, userPrefix(userID))) >= max {
			return webstore.ErrTooMany
		}
		if err := wt.creds.Put(c.ID, c.Sealed); err != nil {
			return err
		}
		return wt.credsByUser.Put(userKey(userID, c.ID), []byte{})
	})
}

func (w webStore) Credential(ctx context.Context, id []byte) (webstore.Credential, error) {
	var c webstore.Credential
	err := w.view(ctx, func(wt *webTx) error {
		v := wt.creds.Get(id)
		if v == nil {
			return webstore.ErrNotFound
		}
		c = webstore.Credential{ID: bytes.Clone(id), Sealed: bytes.Clone(v)}
		return nil
	})
	return c, err
}

func (w webStore) Credentials(ctx context.Context, userID string) ([]webstore.Credential, error) {
	if err := checkIDs(userID); err != nil {
		return nil, err
	}
	var out []webstore.Credential
	err := w.view(ctx, func(wt *webTx) error {
		prefix := userPrefix(userID)
		for _, k := range keysWithPrefix(wt.credsByUser, prefix) {
			id := k[len(prefix):]
			if v := wt.creds.Get(id); v != nil {
				out = append(out, webstore.Credential{ID: id, Sealed: bytes.Clone(v)})
			}
		}
		return nil
	})
	return out, err
}

// usersCredential returns the sealed record of one of a user's passkeys.
func (wt *webTx) usersCredential(userID string, id []byte) ([]byte, error) {
	if wt.credsByUser.Get(userKey(userID, id)) == nil {
		return nil, webstore.ErrNotFound
	}
	v := wt.creds.Get(id)
	if v == nil {
		return nil, webstore.ErrNotFound
	}
	return v, nil
}

func (w webStore) ModifyCredential(ctx context.Context, userID string, id []byte, fn func(sealed []byte) ([]byte, error)) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		v, err := wt.usersCredential(userID, id)
		if err != nil {
			return err
		}
		nv, err := fn(bytes.Clone(v))
		if err != nil {
			return err
		}
		return wt.creds.Put(id, nv)
	})
}

func (w webStore) RemoveCredential(ctx context.Context, userID string, id []byte) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		if _, err := wt.usersCredential(userID, id); err != nil {
			return err
		}
		if len(keysWithPrefix(wt.credsByUser, userPrefix(userID))) <= 1 {
			return webstore.ErrLastPasskey
		}
		if err := wt.creds.Delete(id); err != nil {
			return err
		}
		return wt.credsByUser.Delete(userKey(userID, id))
	})
}

// deleteCredentials removes every passkey of a user.
func (wt *webTx) deleteCredentials(userID string) error {
	prefix := userPrefix(userID)
	keys := keysWithPrefix(wt.credsByUser, prefix)
	for _, k := range keys {
		if err := wt.creds.Delete(k[len(prefix):]); err != nil {
			return err
		}
	}
	return deleteKeys(wt.credsByUser, keys)
}

// ---- recovery codes ----

func recoveryCodeKey(hash [32]byte) []byte { return []byte("c/" + hex.EncodeToString(hash[:])) }

func recoveryUserPrefix(userID string) []byte { return []byte("u/" + userID + "\x00") }

func recoveryUserKey(userID string, hash [32]byte) []byte {
	return append(recoveryUserPrefix(userID), hex.EncodeToString(hash[:])...)
}

// deleteRecovery removes every code of a user.
func (wt *webTx) deleteRecovery(userID string) error {
	prefix := recoveryUserPrefix(userID)
	keys := keysWithPrefix(wt.recovery, prefix)
	for _, k := range keys {
		if err := wt.recovery.Delete(append([]byte("c/"), k[len(prefix):]...)); err != nil {
			return err
		}
	}
	return deleteKeys(wt.recovery, keys)
}

func (w webStore) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []webstore.RecoveryCode) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		if err := wt.deleteRecovery(userID); err != nil {
			return err
		}
		for _, c := range codes {
			if err := wt.recovery.Put(recoveryCodeKey(c.Hash), c.Sealed); err != nil {
				return err
			}
			if err := wt.recovery.Put(recoveryUserKey(userID, c.Hash), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w webStore) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	if err := checkIDs(userID); err != nil {
		return 0, err
	}
	n := 0
	err := w.view(ctx, func(wt *webTx) error {
		n = len(keysWithPrefix(wt.recovery, recoveryUserPrefix(userID)))
		return nil
	})
	return n, err
}

func (w webStore) UseRecoveryCode(ctx context.Context, hash [32]byte, open func(sealed []byte) (string, error)) (string, error) {
	var user string
	err := w.update(ctx, func(wt *webTx) error {
		v := wt.recovery.Get(recoveryCodeKey(hash))
		if v == nil {
			return webstore.ErrNotFound
		}
		u, err := open(bytes.Clone(v))
		if err != nil {
			return err
		}
		if wt.recovery.Get(recoveryUserKey(u, hash)) == nil {
			return webstore.ErrNotFound
		}
		if err := wt.recovery.Delete(recoveryCodeKey(hash)); err != nil {
			return err
		}
		user = u
		return wt.recovery.Delete(recoveryUserKey(u, hash))
	})
	return user, err
}

// ---- sessions and ceremonies ----

// timedRow is a session's or a ceremony's row (a ceremony's LastSeen is
// its Created).
type timedRow struct {
	hash                       [32]byte
	userID                     string
	created, lastSeen, expires time.Time
	sealed                     []byte
}

func (r timedRow) encode() []byte {
	b := make([]byte, 0, 26+len(r.userID)+len(r.sealed))
	b = appendTime(b, r.created)
	b = appendTime(b, r.lastSeen)
	b = appendTime(b, r.expires)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.userID)))
	b = append(b, r.userID...)
	return append(b, r.sealed...)
}

var errBadRow = errors.New("malformed row")

func decodeTimed(hash []byte, v []byte) (timedRow, error) {
	if len(hash) != 32 || len(v) < 26 {
		return timedRow{}, errBadRow
	}
	n := int(binary.BigEndian.Uint16(v[24:]))
	if len(v) < 26+n {
		return timedRow{}, errBadRow
	}
	return timedRow{
		hash: [32]byte(hash), created: readTime(v), lastSeen: readTime(v[8:]), expires: readTime(v[16:]),
		userID: string(v[26 : 26+n]), sealed: bytes.Clone(v[26+n:]),
	}, nil
}

func expiryKey(t time.Time, hash [32]byte) []byte { return append(appendTime(nil, t), hash[:]...) }

func (t timed) count() uint64 { return t.rows.Sequence() }

func (t timed) get(hash [32]byte) (timedRow, error) {
	v := t.rows.Get(hash[:])
	if v == nil {
		return timedRow{}, webstore.ErrNotFound
	}
	return decodeTimed(hash[:], v)
}

// put stores a new row with its index entries.
func (t timed) put(r timedRow) error {
	if len(r.userID) > 0xffff {
		return errors.New("user id too long")
	}
	if old, err := t.get(r.hash); err == nil {
		if err := t.delete(old); err != nil {
			return err
		}
	}
	if err := t.rows.Put(r.hash[:], r.encode()); err != nil {
		return err
	}
	if err := t.byExp.Put(expiryKey(r.expires, r.hash), []byte{}); err != nil {
		return err
	}
	if r.userID != "" {
		if err := t.byUser.Put(userKey(r.userID, r.hash[:]), []byte{}); err != nil {
			return err
		}
	}
	return t.rows.SetSequence(t.count() + 1)
}

// delete removes a row and its index entries.
func (t timed) delete(r timedRow) error {
	if err := t.rows.Delete(r.hash[:]); err != nil {
		return err
	}
	if err := t.byExp.Delete(expiryKey(r.expires, r.hash)); err != nil {
		return err
	}
	if r.userID != "" {
		if err := t.byUser.Delete(userKey(r.userID, r.hash[:])); err != nil {
			return err
		}
	}
	n := t.count()
	if n > 0 {
		n--
	}
	return t.rows.SetSequence(n)
}

// deleteHashes deletes the rows with these hashes (missing ones are
// skipped).
func (t timed) deleteHashes(hashes [][32]byte) error {
	for _, h := range hashes {
		r, err := t.get(h)
		if errors.Is(err, webstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := t.delete(r); err != nil {
			return err
		}
	}
	return nil
}

// sweep deletes up to limit rows (all when limit < 0) that expired by now,
// soonest first.
func (t timed) sweep(now time.Time, limit int) error {
	var hashes [][32]byte
	c := t.byExp.Cursor()
	for k, _ := c.First(); k != nil && limit != 0; k, _ = c.Next() {
		if len(k) != 40 || readTime(k).After(now) {
			break
		}
		hashes = append(hashes, [32]byte(k[8:]))
		limit--
	}
	return t.deleteHashes(hashes)
}

// soonest returns the hash of the row that expires first.
// makeRoom drops up to sweepBatch rows expired by now and, when the table
// still holds max rows or more, every expired row. full: even so, it holds
// max rows or more.
func (t timed) makeRoom(now time.Time, max int) (full bool, err error) {
	if err := t.sweep(now, sweepBatch); err != nil {
		return false, err
	}
	if t.count() < uint64(max) {
		return false, nil
	}
	if err := t.sweep(now, -1); err != nil {
		return false, err
	}
	return t.count() >= uint64(max), nil
}

func (t timed) soonest() ([32]byte, bool) {
	k, _ := t.byExp.Cursor().First()
	if len(k) != 40 {
		return [32]byte{}, false
	}
	return [32]byte(k[8:]), true
}

// userHashes returns the hashes of a user's rows.
func (t timed) userHashes(userID string) [][32]byte {
	prefix := userPrefix(userID)
	var out [][32]byte
	for _, k := range keysWithPrefix(t.byUser, prefix) {
		if h := k[len(prefix):]; len(h) == 32 {
			out = append(out, [32]byte(h))
		}
	}
	return out
}

func sessionRow(s webstore.Session) timedRow {
	return timedRow{hash: s.Hash, userID: s.UserID, created: s.Created, lastSeen: s.LastSeen, expires: s.Expires, sealed: s.Sealed}
}

func (r timedRow) session() webstore.Session {
	return webstore.Session{Hash: r.hash, UserID: r.userID, Created: r.created, LastSeen: r.lastSeen, Expires: r.expires, Sealed: r.sealed}
}

func (w webStore) CreateSession(ctx context.Context, s webstore.Session, max int) error {
	if err := checkIDs(s.UserID); err != nil {
		return err
	}
	if err := checkTimes(s.Created, s.LastSeen, s.Expires); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		t := wt.sessions
		if _, err := t.makeRoom(s.Created, max); err != nil {
			return err
		}
		for t.count() >= uint64(max) {
			h, ok := t.soonest()
			if !ok {
				break
			}
			if err := t.deleteHashes([][32]byte{h}); err != nil {
				return err
			}
		}
		return t.put(sessionRow(s))
	})
}

func (w webStore) Session(ctx context.Context, hash [32]byte) (webstore.Session, error) {
	var s webstore.Session
	err := w.view(ctx, func(wt *webTx) error {
		r, err := wt.sessions.get(hash)
		s = r.session()
		return err
	})
	return s, err
}

func (w webStore) TouchSession(ctx context.Context, hash [32]byte, lastSeen, expires time.Time) error {
	if err := checkTimes(lastSeen, expires); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		t := wt.sessions
		r, err := t.get(hash)
		if err != nil {
			return err
		}
		if !lastSeen.After(r.lastSeen) && !expires.After(r.expires) {
			return nil
		}
		if lastSeen.After(r.lastSeen) {
			r.lastSeen = lastSeen
		}
		if expires.After(r.expires) {
			if err := t.byExp.Delete(expiryKey(r.expires, hash)); err != nil {
				return err
			}
			r.expires = expires
			if err := t.byExp.Put(expiryKey(r.expires, hash), []byte{}); err != nil {
				return err
			}
		}
		return t.rows.Put(hash[:], r.encode())
	})
}

func (w webStore) DeleteSession(ctx context.Context, hash [32]byte) error {
	return w.update(ctx, func(wt *webTx) error { return wt.sessions.deleteHashes([][32]byte{hash}) })
}

func (w webStore) DeleteSessions(ctx context.Context, userID string, match func(webstore.Session) bool) (int, error) {
	if err := checkIDs(userID); err != nil {
		return 0, err
	}
	n := 0
	err := w.update(ctx, func(wt *webTx) error {
		n = 0
		var gone [][32]byte
		for _, h := range wt.sessions.userHashes(userID) {
			r, err := wt.sessions.get(h)
			if errors.Is(err, webstore.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if match == nil || match(r.session()) {
				gone = append(gone, h)
			}
		}
		n = len(gone)
		return wt.sessions.deleteHashes(gone)
	})
	return n, err
}

func (w webStore) PutCeremony(ctx context.Context, c webstore.Ceremony, max int) error {
	if err := checkIDs(c.UserID); err != nil {
		return err
	}
	if err := checkTimes(c.Created, c.Expires); err != nil {
		return err
	}
	// A full store of live ceremonies refuses from a read transaction: a
	// flood of unauthenticated begins then costs no write (and no fsync).
	full := false
	err := w.view(ctx, func(wt *webTx) error {
		if wt.cers.count() >= uint64(max) {
			k, _ := wt.cers.byExp.Cursor().First()
			full = len(k) == 40 && readTime(k).After(c.Created)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if full {
		return webstore.ErrFull
	}
	return w.update(ctx, func(wt *webTx) error {
		t := wt.cers
		full, err := t.makeRoom(c.Created, max)
		if err != nil {
			return err
		}
		if full {
			return webstore.ErrFull
		}
		return t.put(timedRow{hash: c.Hash, userID: c.UserID, created: c.Created, lastSeen: c.Created, expires: c.Expires, sealed: c.Sealed})
	})
}

func (w webStore) TakeCeremony(ctx context.Context, hash [32]byte) (webstore.Ceremony, error) {
	var c webstore.Ceremony
	err := w.update(ctx, func(wt *webTx) error {
		r, err := wt.cers.get(hash)
		if err != nil {
			return err
		}
		c = webstore.Ceremony{Hash: r.hash, UserID: r.userID, Created: r.created, Expires: r.expires, Sealed: r.sealed}
		return wt.cers.delete(r)
	})
	return c, err
}

func (w webStore) SpendChallenge(ctx context.Context, sp webstore.SpentChallenge, max int) error {
	if err := checkTimes(sp.Created, sp.Expires); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		t := wt.spent
		if !sp.Created.Before(sp.Expires) {
			return webstore.ErrExists
		}
		if _, err := t.get(sp.Hash); err == nil {
			return webstore.ErrExists
		} else if !errors.Is(err, webstore.ErrNotFound) {
			return err
		}
		full, err := t.makeRoom(sp.Created, max)
		if err != nil {
			return err
		}
		if full {
			return webstore.ErrFull
		}
		return t.put(timedRow{hash: sp.Hash, created: sp.Created, lastSeen: sp.Created, expires: sp.Expires})
	})
}

// ---- forgetting ----

func (w webStore) ForgetUser(ctx context.Context, userID string) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		if err := wt.deleteCredentials(userID); err != nil {
			return err
		}
		if err := wt.deleteInvites(wt.invitesWhere(func(_ time.Time, u string) bool { return u == userID })); err != nil {
			return err
		}
		if err := wt.deleteRecovery(userID); err != nil {
			return err
		}
		if err := wt.sessions.deleteHashes(wt.sessions.userHashes(userID)); err != nil {
			return err
		}
		if err := wt.apps.deleteHashes(wt.apps.userHashes(userID)); err != nil {
			return err
		}
		return wt.cers.deleteHashes(wt.cers.userHashes(userID))
	})
}

// ---- remembered app consents ----

// A remembered consent is a timed row that never expires: its expiry is
// the zero time and no put sweeps the table.

func appRow(c webstore.AppConsent) timedRow {
	return timedRow{hash: c.Hash, userID: c.UserID, created: c.Created, lastSeen: c.Created, sealed: c.Sealed}
}

func (r timedRow) appConsent() webstore.AppConsent {
	return webstore.AppConsent{Hash: r.hash, UserID: r.userID, Created: r.created, Sealed: r.sealed}
}

func (w webStore) PutAppConsent(ctx context.Context, c webstore.AppConsent, max int) error {
	if err := checkIDs(c.UserID); err != nil {
		return err
	}
	if err := checkTimes(c.Created); err != nil {
		return err
	}
	if c.UserID == "" {
		return errors.New("a remembered consent names its user")
	}
	return w.update(ctx, func(wt *webTx) error {
		old, err := wt.apps.get(c.Hash)
		switch {
		case err == nil && old.userID != c.UserID:
			return errors.New("a remembered consent's hash is another user's")
		case errors.Is(err, webstore.ErrNotFound):
			if len(wt.apps.userHashes(c.UserID)) >= max {
				return webstore.ErrTooMany
			}
		case err != nil:
			return err
		}
		return wt.apps.put(appRow(c))
	})
}

func (w webStore) AppConsent(ctx context.Context, hash [32]byte) (webstore.AppConsent, error) {
	var out webstore.AppConsent
	err := w.view(ctx, func(wt *webTx) error {
		r, err := wt.apps.get(hash)
		out = r.appConsent()
		return err
	})
	return out, err
}

func (w webStore) AppConsents(ctx context.Context, userID string) ([]webstore.AppConsent, error) {
	if err := checkIDs(userID); err != nil {
		return nil, err
	}
	var out []webstore.AppConsent
	err := w.view(ctx, func(wt *webTx) error {
		for _, h := range wt.apps.userHashes(userID) {
			r, err := wt.apps.get(h)
			if err != nil {
				return err
			}
			out = append(out, r.appConsent())
		}
		return nil
	})
	return out, err
}

func (w webStore) DeleteAppConsent(ctx context.Context, userID string, hash [32]byte) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	return w.update(ctx, func(wt *webTx) error {
		r, err := wt.apps.get(hash)
		if err != nil {
			return err
		}
		if r.userID != userID {
			return webstore.ErrNotFound
		}
		return wt.apps.delete(r)
	})
}
