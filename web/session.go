package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent"
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

// session is a signed-in browser. It lives only in memory, keyed by the
// SHA-256 of its cookie's value.
type session struct {
	UserID  string
	Role    string
	Created time.Time
	Last    time.Time
	CSRF    string // the synchroniser token of this session's forms
	// CloneWarning is set when the passkey this session signed in with
	// reported a sign count that did not go up (a possible clone).
	CloneWarning bool
	// Credential is the id of the passkey the session signed in with.
	Credential []byte
}

type sessionStore struct {
	mu        sync.Mutex
	m         map[[32]byte]*session
	idle, abs time.Duration
	now       func() time.Time
}

func newSessionStore(idle, abs time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{m: map[[32]byte]*session{}, idle: idle, abs: abs, now: now}
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.Last) >= st.idle || now.Sub(s.Created) >= st.abs
}

// sweep drops expired sessions; the caller holds mu.
func (st *sessionStore) sweep(now time.Time) {
	for k, s := range st.m {
		if st.expired(s, now) {
			delete(st.m, k)
		}
	}
}

// create starts a session and returns its cookie value. A full store is
// swept first; if still full, the oldest session goes.
func (st *sessionStore) create(s session) string {
	id, h := newSecret()
	csrf, _ := newSecret()
	now := st.now()
	s.Created, s.Last, s.CSRF = now, now, csrf
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= MaxSessions {
		st.sweep(now)
	}
	if len(st.m) >= MaxSessions {
		var oldest [32]byte
		var t time.Time
		for k, v := range st.m {
			if t.IsZero() || v.Created.Before(t) {
				oldest, t = k, v.Created
			}
		}
		delete(st.m, oldest)
	}
	st.m[h] = &s
	return id
}

// get returns a copy of a live session and marks it used; an expired one
// is deleted.
func (st *sessionStore) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	h := hashOf(id)
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.m[h]
	if !ok {
		return session{}, false
	}
	if st.expired(s, now) {
		delete(st.m, h)
		return session{}, false
	}
	s.Last = now
	return *s, true
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	delete(st.m, hashOf(id))
	st.mu.Unlock()
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
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, sess session) {
	if old := cookieValue(r, SessionCookie); old != "" {
		s.sessions.delete(old)
	}
	s.setCookie(w, SessionCookie, s.sessions.create(sess), 0)
}

// currentSession returns the request's live session.
func (s *Server) currentSession(r *http.Request) (session, bool) {
	sess, ok := s.sessions.get(cookieValue(r, SessionCookie))
	if !ok {
		return sess, false
	}
	// A user deleted meanwhile (by the admin, say) is signed out here,
	// whatever path the deletion took.
	if _, err := s.vault.User(r.Context(), sess.UserID); err != nil {
		s.sessions.deleteUser(sess.UserID)
		return session{}, false
	}
	return sess, true
}

// requireSession lets only signed-in browsers through. A page request
// without a session is sent to the sign-in page; any state-changing
// request must also come from the vault's own pages and carry the
// session's CSRF token (form field "csrf" or header X-CSRF-Token).
func (s *Server) requireSession(next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return s.withSession(next, s.validCSRF)
}

// requireUploadSession is requireSession for the upload form, a
// multipart body too big to parse whole before the token is checked: the
// token is the form's first part (multipartCSRF).
func (s *Server) requireUploadSession(next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return s.withSession(next, s.multipartCSRF)
}

// csrfCheck checks a state-changing request's CSRF token, and may return
// the request with something it read along the way.
type csrfCheck func(w http.ResponseWriter, r *http.Request, sess session) (*http.Request, bool)

func (s *Server) withSession(next func(http.ResponseWriter, *http.Request, session), csrfOK csrfCheck) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.currentSession(r)
		isJSON := strings.HasPrefix(r.URL.Path, "/webauthn/")
		if !ok {
			if cookieValue(r, SessionCookie) != "" {
				s.clearCookie(w, SessionCookie)
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			if isJSON {
				writeJSONError(w, http.StatusUnauthorized, "signed_out", "Your session has ended. Sign in again.")
				return
			}
			s.errorPage(w, r, http.StatusUnauthorized, "Signed out", "Your session has ended. Sign in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			ok := s.sameOrigin(r, false)
			if ok {
				r, ok = csrfOK(w, r, sess)
			}
			if !ok {
				s.log.Warn("web csrf refused", "path", r.URL.Path, "user", sess.UserID)
				if isJSON {
					writeJSONError(w, http.StatusForbidden, "csrf", "This request could not be verified. Reload the page and try again.")
					return
				}
				s.errorPage(w, r, http.StatusForbidden, "Request refused", "This request could not be verified. Reload the page and try again.")
				return
			}
		}
		next(w, r, sess)
	}
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
// limit; the reader, past the token, goes to the handler in the request's
// context.
func (s *Server) multipartCSRF(w http.ResponseWriter, r *http.Request, sess session) (*http.Request, bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return r, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxUpload+maxFormBody)
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

// A ceremony is one WebAuthn registration or sign-in in progress: the
// challenge and what it is for. It is held in memory under the hash of a
// one-time cookie, and taken (deleted) by the finish request before the
// response is checked, so a challenge answers at most one response.
type ceremony struct {
	Kind    string // "enrol", "signin", "add" or "grant"
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
}

type ceremonyStore struct {
	mu  sync.Mutex
	m   map[[32]byte]*ceremony
	now func() time.Time
}

func newCeremonyStore(now func() time.Time) *ceremonyStore {
	return &ceremonyStore{m: map[[32]byte]*ceremony{}, now: now}
}

// put stores a ceremony and returns its cookie value, or "" when too many
// are in flight.
func (cs *ceremonyStore) put(c ceremony) string {
	now := cs.now()
	c.Expires = now.Add(CeremonyTimeout)
	id, h := newSecret()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.m) >= MaxCeremonies {
		for k, v := range cs.m {
			if !now.Before(v.Expires) {
				delete(cs.m, k)
			}
		}
		if len(cs.m) >= MaxCeremonies {
			return ""
		}
	}
	cs.m[h] = &c
	return id
}

// take removes and returns a live ceremony of a kind. A ceremony of
// another kind is left alone.
func (cs *ceremonyStore) take(id, kind string) (ceremony, bool) {
	if id == "" {
		return ceremony{}, false
	}
	h := hashOf(id)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.m[h]
	if !ok || c.Kind != kind {
		return ceremony{}, false
	}
	delete(cs.m, h)
	if !cs.now().Before(c.Expires) {
		return ceremony{}, false
	}
	return *c, true
}

// RecentSignIn is how long after signing in (with a passkey or a recovery
// code) a session may add a passkey, remove one, make an API or device
// token, or make new recovery codes. Later, the user signs in again first:
// a session taken over later (a browser left open) can't give someone a
// lasting way in.
const RecentSignIn = 15 * time.Minute

// recent lets a sensitive action through only soon after sign-in.
func (s *Server) recent(next func(http.ResponseWriter, *http.Request, session)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, sess session) {
		if s.now().Sub(sess.Created) > RecentSignIn {
			const msg = "For your safety, this needs a recent sign-in. Sign out, sign in again with your passkey, and try once more."
			if strings.HasPrefix(r.URL.Path, "/webauthn/") {
				writeJSONError(w, http.StatusForbidden, "sign_in_again", msg)
				return
			}
			s.errorPage(w, r, http.StatusForbidden, "Sign in again", msg)
			return
		}
		next(w, r, sess)
	}
}
