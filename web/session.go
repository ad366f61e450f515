package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
)

// Cookie names. The __Host- prefix makes the browser insist on Secure,
// Path=/ and no Domain, so no sibling host can set or shadow them.
const (
	SessionCookie  = "__Host-vault_session"
	CeremonyCookie = "__Host-vault_ceremony"
)

// newSecret returns 256 random bits, base64url, and their SHA-256: the
// secret goes to the browser, only the hash is kept.
func newSecret() (string, [32]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	return s, sha256.Sum256([]byte(s))
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// session is a signed-in browser. The store keeps it under the SHA-256 of
// its cookie's value: the user id and the times in plaintext, the rest
// (and the user id and created time again) sealed, with the hash as
// associated data.
type session struct {
	UserID  string    `json:"user"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	Last    time.Time `json:"-"`    // the store's last-seen time
	CSRF    string    `json:"csrf"` // the synchroniser token of this session's forms
	// CloneWarning is set when the passkey this session signed in with
	// reported a sign count that did not go up (a possible clone).
	CloneWarning bool `json:"clone_warning,omitempty"`
	// Credential is the id of the passkey the session signed in with.
	Credential []byte `json:"credential,omitempty"`
}

// SessionTouchInterval is how old a session's stored last-seen time gets
// before a request writes it again: a busy session costs one write a
// minute, not one a request. The idle timeout so ends a session between
// IdleTimeout minus this and IdleTimeout after its last request.
const SessionTouchInterval = time.Minute

type sessionStore struct {
	store     Store
	sealer    sealer
	idle, abs time.Duration
	now       func() time.Time
}

// errNoSession: the cookie names no live session (none, expired, signed
// out, or unreadable).
var errNoSession = errors.New("no live session")

func sessionAD(h [32]byte) []byte {
	return []byte("jhvault/web-session/v1|" + hex.EncodeToString(h[:]))
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.Last) >= st.idle || now.Sub(s.Created) >= st.abs
}

// expires is when a session created and last seen at these times ends if
// it is not seen again.
func (st *sessionStore) expires(created, last time.Time) time.Time {
	idle, abs := last.Add(st.idle), created.Add(st.abs)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// create starts a session and returns its cookie value and the session as
// stored. The store sweeps expired sessions as it goes; a full store
// drops the session closest to expiring.
func (st *sessionStore) create(ctx context.Context, s session) (string, session, error) {
	id, h := newSecret()
	csrf, _ := newSecret()
	now := st.now()
	s.Created, s.Last, s.CSRF = now, now, csrf
	sealed, err := st.sealer.Encrypt(mustJSON(s), sessionAD(h))
	if err != nil {
		return "", session{}, err
	}
	row := webstore.Session{Hash: h, UserID: s.UserID, Created: now, LastSeen: now, Expires: st.expires(now, now), Sealed: sealed}
	if err := st.store.CreateSession(ctx, row, MaxSessions); err != nil {
		return "", session{}, err
	}
	return id, s, nil
}

// open reads a session's row.
func (st *sessionStore) open(row webstore.Session) (session, error) {
	var s session
	pt, err := st.sealer.Decrypt(row.Sealed, sessionAD(row.Hash))
	if err != nil {
		return s, errors.New("session record does not decrypt")
	}
	if err := json.Unmarshal(pt, &s); err != nil {
		return s, err
	}
	if s.UserID != row.UserID || !s.Created.Equal(row.Created) {
		return s, errors.New("session record does not match its row")
	}
	s.Last = row.LastSeen
	return s, nil
}

// lookup returns the live session a cookie value names, and marks it seen
// (in the store at most every SessionTouchInterval). A session that has
// expired, or does not open, is deleted; it and a missing one are
// errNoSession. Any other error is the store's.
func (st *sessionStore) lookup(ctx context.Context, id string) (session, error) {
	if id == "" {
		return session{}, errNoSession
	}
	h := hashOf(id)
	row, err := st.store.Session(ctx, h)
	if errors.Is(err, webstore.ErrNotFound) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, err
	}
	now := st.now()
	s, err := st.open(row)
	if err != nil || st.expired(&s, now) {
		if err := st.store.DeleteSession(ctx, h); err != nil {
			return session{}, err
		}
		return session{}, errNoSession
	}
	if now.Sub(s.Last) >= SessionTouchInterval {
		err := st.store.TouchSession(ctx, h, now, st.expires(s.Created, now))
		if errors.Is(err, webstore.ErrNotFound) {
			return session{}, errNoSession // signed out meanwhile
		}
		if err != nil {
			return session{}, err
		}
		s.Last = now
	}
	return s, nil
}

// get is lookup for tests: a live session or none.
func (st *sessionStore) get(ctx context.Context, id string) (session, bool) {
	s, err := st.lookup(ctx, id)
	return s, err == nil
}

func (st *sessionStore) delete(ctx context.Context, id string) error {
	return st.store.DeleteSession(ctx, hashOf(id))
}

// deleteUser ends every session of a user.
func (st *sessionStore) deleteUser(ctx context.Context, userID string) error {
	_, err := st.store.DeleteSessions(ctx, userID, nil)
	return err
}

// deleteCredential ends the sessions a user signed in with one passkey
// (and any of theirs that does not open).
func (st *sessionStore) deleteCredential(ctx context.Context, userID string, cred []byte) error {
	_, err := st.store.DeleteSessions(ctx, userID, func(row webstore.Session) bool {
		s, err := st.open(row)
		return err != nil || bytes.Equal(s.Credential, cred)
	})
	return err
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) { s.setCookie(w, name, "", -1) }

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// startSession signs a user in: any session the browser had ends, and a
// new one, with a new id, begins.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, sess session) error {
	if old := cookieValue(r, SessionCookie); old != "" {
		if err := s.sessions.delete(r.Context(), old); err != nil {
			return err
		}
	}
	id, _, err := s.sessions.create(r.Context(), sess)
	if err != nil {
		return err
	}
	s.setCookie(w, SessionCookie, id, 0)
	return nil
}

// session returns the request's live session, or errNoSession. A user
// deleted meanwhile (by the admin, say) is signed out here, whatever path
// the deletion took. Any other error is the store's.
func (s *Server) session(r *http.Request) (session, error) {
	sess, err := s.sessions.lookup(r.Context(), cookieValue(r, SessionCookie))
	if err != nil {
		return session{}, err
	}
	if _, err := s.vault.User(r.Context(), sess.UserID); err != nil {
		if !errors.Is(err, vault.ErrNoUser) {
			return session{}, err
		}
		if err := s.sessions.deleteUser(r.Context(), sess.UserID); err != nil {
			s.log.Error("web sessions of a deleted user remain", "user", sess.UserID, "cause", err.Error())
		}
		return session{}, errNoSession
	}
	return sess, nil
}

// currentSession returns the request's live session, if any; a store
// failure is logged and counts as none.
func (s *Server) currentSession(r *http.Request) (session, bool) {
	sess, err := s.session(r)
	if err != nil && !errors.Is(err, errNoSession) {
		s.log.Error("web session lookup", "cause", err.Error())
	}
	return sess, err == nil
}

// validCSRF checks the synchroniser token in constant time. The form is
// parsed with a small body limit; JSON requests send the header.
func (s *Server) validCSRF(w http.ResponseWriter, r *http.Request, sess session) (*http.Request, bool) {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err == nil {
				tok = r.PostForm.Get("csrf")
			}
		}
	}
	return r, csrfEqual(tok, sess)
}

func csrfEqual(tok string, sess session) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) == 1
}

// multipartKey carries the upload's multipart reader, past its csrf part,
// from multipartCSRF to the handler.
type multipartKey struct{}

// multipartCSRF checks the token of a multipart form: it must be the
// form's first part, named csrf (the upload form puts its hidden field
// first, and browsers send parts in the form's order). Nothing of the file
// is read before the token is checked. The body is limited to the upload
// limit and must arrive at the minimum upload rate; the reader, past the token, goes to the handler in the request's
// context.
func (s *Server) multipartCSRF(w http.ResponseWriter, r *http.Request, sess session) (*http.Request, bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return r, false
	}
	// The body must keep up the minimum upload rate from its first byte
	// (upload.Rate): its read deadline replaces the server's.
	r.Body = http.MaxBytesReader(w, io.NopCloser(s.uploadRate.Reader(w, r.Body)), s.maxUpload+maxFormBody)
	mr := multipart.NewReader(r.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "csrf" {
		return r, false
	}
	tok, err := io.ReadAll(io.LimitReader(p, 256))
	if err != nil || !csrfEqual(string(tok), sess) {
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), multipartKey{}, mr)), true
}

// multipartOf returns the reader multipartCSRF left in the request.
func multipartOf(r *http.Request) *multipart.Reader {
	mr, _ := r.Context().Value(multipartKey{}).(*multipart.Reader)
	return mr
}

// A ceremony is one WebAuthn registration or step-up in progress for a
// signed-in user or an invitee: the challenge and what it is for. The store
// keeps it, sealed, under a hash of its kind and of a one-time cookie's
// value, and the finish request takes it (deletes it) before the response
// is checked, so a challenge answers at most one response. A finish of
// another kind finds nothing and leaves it alone. Only a request with a
// session, or with a usable invite, can begin one: the unauthenticated
// sign-in stores nothing while it is in flight (signinChallenge), so it
// cannot crowd these out.
type ceremony struct {
	Kind    string // "enrol", "add", "grant", ceremonyKey or "delete-account"
	Data    webauthn.SessionData
	Expires time.Time
	// enrol and add:
	UserID  string
	Handle  []byte
	Label   string
	Invite  [32]byte // enrol: the invite's token hash
	Session [32]byte // add and grant: the hash of the session's CSRF token, binding it to that session
	// grant: the unsigned grant entry the passkey is asked to sign, and the
	// server's nonce mixed into its challenge.
	Grant *consent.Entry
	Nonce []byte
	// oauth-grant: the OAuth provider's pending authorization request the
	// grant answers.
	OAuth string `json:",omitempty"`
	// reveal:…: a secret made by a form, held for its one view (reveal.go).
	Reveal *revealed `json:",omitempty"`
}

type ceremonyStore struct {
	store  Store
	sealer sealer
	now    func() time.Time
	max    int // ceremonies in flight at most
	// full is told when a ceremony or a spent sign-in challenge is refused
	// because its table is full (to log and count it).
	full func(what string)
}

var (
	// errNoCeremony: the cookie names no live ceremony of the kind (none,
	// expired, taken already, or unreadable).
	errNoCeremony = errors.New("no such ceremony")
)

// ceremonyHash is a ceremony's key: a hash of its kind and its cookie's
// value, so the kind is not in plaintext and a finish of another kind
// cannot take it.
func ceremonyHash(kind, id string) [32]byte {
	return sha256.Sum256([]byte("jhvault/web-ceremony/v1|" + kind + "|" + id))
}

func ceremonyAD(h [32]byte) []byte {
	return []byte("jhvault/web-ceremony/v1|" + hex.EncodeToString(h[:]))
}

// put stores a ceremony and returns its cookie value, or errBusy (503)
// when too many are in flight.
func (cs *ceremonyStore) put(ctx context.Context, c ceremony) (string, error) {
	now := cs.now()
	c.Expires = now.Add(CeremonyTimeout)
	id, _ := newSecret()
	h := ceremonyHash(c.Kind, id)
	sealed, err := cs.sealer.Encrypt(mustJSON(c), ceremonyAD(h))
	if err != nil {
		return "", err
	}
	err = cs.store.PutCeremony(ctx, webstore.Ceremony{Hash: h, UserID: c.UserID, Created: now, Expires: c.Expires, Sealed: sealed}, cs.max)
	if errors.Is(err, webstore.ErrFull) {
		cs.full(c.Kind)
		return "", errBusy
	}
	if err != nil {
		return "", fmt.Errorf("store ceremony: %w", err)
	}
	return id, nil
}

// take removes and returns a live ceremony of a kind: errNoCeremony when
// there is none.
func (cs *ceremonyStore) take(ctx context.Context, id, kind string) (ceremony, error) {
	if id == "" {
		return ceremony{}, errNoCeremony
	}
	row, err := cs.store.TakeCeremony(ctx, ceremonyHash(kind, id))
	if errors.Is(err, webstore.ErrNotFound) {
		return ceremony{}, errNoCeremony
	}
	if err != nil {
		return ceremony{}, err
	}
	var c ceremony
	pt, err := cs.sealer.Decrypt(row.Sealed, ceremonyAD(row.Hash))
	if err != nil || json.Unmarshal(pt, &c) != nil || c.Kind != kind || c.UserID != row.UserID || !c.Expires.Equal(row.Expires) {
		return ceremony{}, errNoCeremony
	}
	if !cs.now().Before(c.Expires) {
		return ceremony{}, errNoCeremony
	}
	return c, nil
}

// A signinChallenge is a passkey sign-in in flight. Anyone may begin a
// sign-in, so the vault stores nothing for it: the library's session data
// (the challenge, the RP ID, user verification required) and the
// challenge's expiry are sealed under the master keyset, with associated
// data naming their use, and the sealed bytes are the ceremony cookie's
// value. Only the vault can make one that opens, and nothing in it can be
// changed. Begins from any number of addresses so cost the vault a
// signature's worth of CPU and no storage.
//
// Single use: a sealed challenge can be presented again, so signinFinish,
// once a valid assertion has answered one, spends it (Store.SpendChallenge
// keeps a hash of the challenge until the challenge expires; a second
// spend is refused in the store's transaction). After expiry the row may
// go, and the sealed challenge is refused as expired. Only a valid
// assertion by a registered passkey, with user verification, writes a row,
// so an unauthenticated flood writes nothing at all.
type signinChallenge struct {
	Data    webauthn.SessionData `json:"data"`
	Expires time.Time            `json:"expires"`
	// Next is where the browser goes once signed in: a safe relative
	// path (safeNext), kept sealed so the finish cannot be pointed
	// elsewhere. Empty is the home page.
	Next string `json:"next,omitempty"`
}

const signinChallengeAD = "jhvault/web-signin-challenge/v1"

var (
	// errBadChallenge: the cookie holds no sign-in challenge this vault
	// sealed (none, truncated, another vault's, another kind of cookie).
	errBadChallenge = errors.New("no sealed sign-in challenge")
	// errChallengeExpired: the challenge is older than SignInTimeout.
	errChallengeExpired = errors.New("sign-in challenge expired")
	// errChallengeSpent: a valid assertion answered this challenge already.
	errChallengeSpent = errors.New("sign-in challenge answered already")
)

// sealSignin seals a sign-in's session data for the ceremony cookie.
func (cs *ceremonyStore) sealSignin(sd webauthn.SessionData, next string) (string, error) {
	sealed, err := cs.sealer.Encrypt(mustJSON(signinChallenge{Data: sd, Expires: cs.now().Add(SignInTimeout), Next: next}), []byte(signinChallengeAD))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openSignin opens a ceremony cookie's sealed sign-in challenge and checks
// it has not expired.
func (cs *ceremonyStore) openSignin(v string) (signinChallenge, error) {
	var c signinChallenge
	sealed, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || v == "" {
		return c, errBadChallenge
	}
	pt, err := cs.sealer.Decrypt(sealed, []byte(signinChallengeAD))
	if err != nil || json.Unmarshal(pt, &c) != nil || c.Data.Challenge == "" || c.Expires.IsZero() {
		return signinChallenge{}, errBadChallenge
	}
	if !cs.now().Before(c.Expires) {
		return signinChallenge{}, errChallengeExpired
	}
	return c, nil
}

// spendSignin marks a sign-in challenge answered: errChallengeSpent when
// it was already, errBusy when MaxSpentChallenges live ones are stored.
//
// The row outlives the challenge by spentChallengeGrace: a replay that
// passed openSignin just before the expiry must still find it when it
// reaches the spend, even if a sweep ran at the expiry meanwhile.
func (cs *ceremonyStore) spendSignin(ctx context.Context, c signinChallenge) error {
	now := cs.now()
	if !now.Before(c.Expires) {
		return errChallengeExpired
	}
	h := sha256.Sum256([]byte("jhvault/web-signin-spent/v1|" + c.Data.Challenge))
	err := cs.store.SpendChallenge(ctx, webstore.SpentChallenge{Hash: h, Created: now, Expires: c.Expires.Add(spentChallengeGrace)}, MaxSpentChallenges)
	switch {
	case errors.Is(err, webstore.ErrExists):
		return errChallengeSpent
	case errors.Is(err, webstore.ErrFull):
		cs.full("signin_spent")
		return errBusy
	case err != nil:
		return fmt.Errorf("spend sign-in challenge: %w", err)
	}
	return nil
}

// RecentSignIn is how long after signing in (with a passkey or a recovery
// code) a session may add a passkey, remove one, make an API or device
// token, or make new recovery codes. Later, the user signs in again first:
// a session taken over later (a browser left open) can't give someone a
// lasting way in.
const RecentSignIn = 15 * time.Minute
