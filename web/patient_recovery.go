package web

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// Recovery codes let a user who lost every passkey sign in once more, to
// add a new passkey. Each is 128 random bits, shown once; the vault keeps
// only its SHA-256 (sealed), and a code works once.
const (
	RecoveryCodeCount = 10
	recoveryCodeBytes = 16
	recoveryCodeLen   = 26 // base32 characters of 16 bytes, unpadded
)

// bRecovery holds the codes' records:
//
//	"c/" hex(SHA-256(code))        -> sealed recoveryCode
//	"u/" user id 0x00 hex(hash)    -> empty (the index that lists a user's codes)
var bRecovery = []byte("web_recovery")

type recoveryCode struct {
	Hash    []byte    `json:"hash"` // the key again, compared in constant time
	UserID  string    `json:"user"`
	Created time.Time `json:"created"`
}

func recoveryAD(hexHash string) []byte { return []byte("jhvault/web-recovery/v1|" + hexHash) }

var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRecoveryCode returns a code for people (lower case, in five groups)
// and the hash stored for it.
func newRecoveryCode() (string, [32]byte) {
	b := make([]byte, recoveryCodeBytes)
	rand.Read(b)
	raw := strings.ToLower(recoveryEncoding.EncodeToString(b))
	// 26 characters as 5-5-5-5-6.
	code := raw[0:5] + "-" + raw[5:10] + "-" + raw[10:15] + "-" + raw[15:20] + "-" + raw[20:]
	return code, sha256.Sum256([]byte(raw))
}

// normalizeRecoveryCode undoes what people do to a code (case, spaces,
// dashes) and reports whether what is left can be a code at all.
func normalizeRecoveryCode(s string) (string, bool) {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
	if len(s) != recoveryCodeLen {
		return "", false
	}
	_, err := recoveryEncoding.DecodeString(strings.ToUpper(s))
	return s, err == nil
}

type recoveryStore struct {
	db     dbHandle
	sealer sealer
}

func (s *Server) recovery() *recoveryStore {
	return &recoveryStore{db: s.store, sealer: s.vault.Master()}
}

func recoveryUserPrefix(userID string) []byte { return []byte("u/" + userID + "\x00") }

// deleteUserTx removes every code of a user; the caller holds an update.
func deleteRecoveryTx(b *bolt.Bucket, userID string) error {
	prefix := recoveryUserPrefix(userID)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(append([]byte("c/"), k[len(prefix):]...)); err != nil {
			return err
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// replace makes a new set of codes for a user, in place of any old set,
// and returns them; only their hashes are stored.
func (rs *recoveryStore) replace(userID string, now time.Time) ([]string, error) {
	codes := make([]string, RecoveryCodeCount)
	type row struct {
		hexHash string
		sealed  []byte
	}
	rows := make([]row, RecoveryCodeCount)
	for i := range codes {
		code, h := newRecoveryCode()
		hx := hex.EncodeToString(h[:])
		sealed, err := rs.sealer.Encrypt(mustJSON(recoveryCode{Hash: h[:], UserID: userID, Created: now.UTC()}), recoveryAD(hx))
		if err != nil {
			return nil, err
		}
		codes[i], rows[i] = code, row{hx, sealed}
	}
	err := update(rs.db, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bRecovery)
		if err != nil {
			return err
		}
		if err := deleteRecoveryTx(b, userID); err != nil {
			return err
		}
		for _, r := range rows {
			if err := b.Put([]byte("c/"+r.hexHash), r.sealed); err != nil {
				return err
			}
			if err := b.Put(append(recoveryUserPrefix(userID), r.hexHash...), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// remaining counts a user's unused codes.
func (rs *recoveryStore) remaining(userID string) (int, error) {
	n := 0
	err := view(rs.db, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bRecovery); b != nil {
			n = countPrefix(b, recoveryUserPrefix(userID))
		}
		return nil
	})
	return n, err
}

var errNoRecoveryCode = errors.New("the recovery code is not valid")

// use spends a code: it is found by its hash, checked, and deleted in one
// transaction, so a code signs in at most once even when two requests race
// with it. It returns the code's user.
func (rs *recoveryStore) use(code string) (string, error) {
	norm, ok := normalizeRecoveryCode(code)
	if !ok {
		return "", errNoRecoveryCode
	}
	h := sha256.Sum256([]byte(norm))
	hx := hex.EncodeToString(h[:])
	var user string
	err := update(rs.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bRecovery)
		if b == nil {
			return errNoRecoveryCode
		}
		v := b.Get([]byte("c/" + hx))
		if v == nil {
			return errNoRecoveryCode
		}
		pt, err := rs.sealer.Decrypt(v, recoveryAD(hx))
		if err != nil {
			return errNoRecoveryCode
		}
		var rc recoveryCode
		if json.Unmarshal(pt, &rc) != nil || subtle.ConstantTimeCompare(rc.Hash, h[:]) != 1 || rc.UserID == "" {
			return errNoRecoveryCode
		}
		user = rc.UserID
		if err := b.Delete([]byte("c/" + hx)); err != nil {
			return err
		}
		return b.Delete(append(recoveryUserPrefix(user), hx...))
	})
	return user, err
}

// ---- pages ----

type recoverySigninBody struct {
	Code string
}

func (s *Server) recoverySigninPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.currentSession(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "patient_recovery_signin", pageData{Title: "Sign in with a recovery code", Body: recoverySigninBody{}})
}

const recoveryRefused = "That recovery code did not work. Check it, or use another: each code works once."

// recoverySignin signs a user in with a recovery code. There is no
// session yet to bind a CSRF token to, so, like the passkey sign-in, it
// must come from the vault's own page (Origin and Fetch Metadata, the
// Origin header required); it is rate-limited per address like sign-in.
func (s *Server) recoverySignin(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r, true) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "This request did not come from the vault's own pages.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Request refused", "The form could not be read. Reload the page and try again.")
		return
	}
	refuse := func() {
		d := pageData{Title: "Sign in with a recovery code", Error: recoveryRefused, Body: recoverySigninBody{}}
		s.render(w, http.StatusUnauthorized, "patient_recovery_signin", d)
	}
	user, err := s.recovery().use(r.PostForm.Get("code"))
	if errors.Is(err, errNoRecoveryCode) {
		s.signInFailed("recovery_code")
		s.log.Info("web recovery sign-in refused", "addr", clientAddr(r))
		refuse()
		return
	}
	if err != nil {
		s.log.Error("web recovery sign-in", "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "Not signed in", "The vault could not check the code just now. Try again shortly.")
		return
	}
	if _, err := s.vault.User(r.Context(), user); err != nil {
		refuse()
		return
	}
	s.startSession(w, r, session{UserID: user, Role: vault.RoleOf(user)})
	s.log.Info("web sign-in with a recovery code", "user", user)
	http.Redirect(w, r, "/account?recovered=1", http.StatusSeeOther)
}

// newRecoveryCodes replaces the patient's recovery codes and shows the new
// ones, once.
func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request, sess session) {
	codes, err := s.recovery().replace(sess.UserID, s.now())
	if err != nil {
		s.log.Error("web recovery codes", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "No codes made", "The recovery codes could not be made just now. Try again shortly.")
		return
	}
	s.log.Info("recovery codes made", "user", sess.UserID, "count", len(codes))
	d := s.signedData(r.Context(), sess, "Account", "account")
	d.Notice = "Your new recovery codes are below. Save them now: they are shown only this once, and your old codes no longer work."
	s.renderAccount(w, sess, http.StatusOK, d, codes)
}
