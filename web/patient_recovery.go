package web

import (
	"context"
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
	"github.com/jupyterhealth/vault/web/webstore"
)

// Recovery codes let a user who lost every passkey sign in once more, to
// add a new passkey. Each is 128 random bits, shown once; the vault keeps
// only its SHA-256 (sealed), and a code works once.
const (
	RecoveryCodeCount = 10
	recoveryCodeBytes = 16
	recoveryCodeLen   = 26 // base32 characters of 16 bytes, unpadded
)

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
	store  Store
	sealer sealer
}

func (s *Server) recovery() *recoveryStore {
	return &recoveryStore{store: s.store, sealer: s.vault.Master()}
}

// replace makes a new set of codes for a user, in place of any old set,
// and returns them; only their hashes are stored.
func (rs *recoveryStore) replace(ctx context.Context, userID string, now time.Time) ([]string, error) {
	codes := make([]string, RecoveryCodeCount)
	rows := make([]webstore.RecoveryCode, RecoveryCodeCount)
	for i := range codes {
		code, h := newRecoveryCode()
		sealed, err := rs.sealer.Encrypt(mustJSON(recoveryCode{Hash: h[:], UserID: userID, Created: now.UTC()}), recoveryAD(hex.EncodeToString(h[:])))
		if err != nil {
			return nil, err
		}
		codes[i], rows[i] = code, webstore.RecoveryCode{Hash: h, Sealed: sealed}
	}
	if err := rs.store.ReplaceRecoveryCodes(ctx, userID, rows); err != nil {
		return nil, err
	}
	return codes, nil
}

// remaining counts a user's unused codes.
func (rs *recoveryStore) remaining(ctx context.Context, userID string) (int, error) {
	return rs.store.RecoveryCodesLeft(ctx, userID)
}

var errNoRecoveryCode = errors.New("the recovery code is not valid")

// use spends a code: the store finds it by its hash, has it checked here,
// and deletes it in one transaction, so a code signs in at most once even
// when two requests race with it. It returns the code's user.
func (rs *recoveryStore) use(ctx context.Context, code string) (string, error) {
	norm, ok := normalizeRecoveryCode(code)
	if !ok {
		return "", errNoRecoveryCode
	}
	h := sha256.Sum256([]byte(norm))
	user, err := rs.store.UseRecoveryCode(ctx, h, func(sealed []byte) (string, error) {
		pt, err := rs.sealer.Decrypt(sealed, recoveryAD(hex.EncodeToString(h[:])))
		if err != nil {
			return "", errNoRecoveryCode
		}
		var rc recoveryCode
		if json.Unmarshal(pt, &rc) != nil || subtle.ConstantTimeCompare(rc.Hash, h[:]) != 1 || rc.UserID == "" {
			return "", errNoRecoveryCode
		}
		return rc.UserID, nil
	})
	if errors.Is(err, webstore.ErrNotFound) {
		return "", errNoRecoveryCode
	}
	return user, err
}

// ---- pages ----

type recoverySigninBody struct {
	Code string
}

func (s *Server) recoverySigninPage(w http.ResponseWriter, r *http.Request, sess session) error {
	if hasSession(sess) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	return s.render(w, http.StatusOK, "patient_recovery_signin", pageData{Title: "Sign in with a recovery code", Body: recoverySigninBody{}})
}

const recoveryRefused = "That recovery code did not work. Check it, or use another: each code works once."

// recoverySignin signs a user in with a recovery code. There is no
// session yet to bind a CSRF token to, so, like the passkey sign-in, it
// must come from the vault's own page (the origin guard: Origin and Fetch
// Metadata, the Origin header required); it is rate-limited per address
// like sign-in. A refused code is shown on the form.
func (s *Server) recoverySignin(w http.ResponseWriter, r *http.Request, _ session) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return errBadForm.because(err)
	}
	refused := func() error {
		d := pageData{Title: "Sign in with a recovery code", Error: recoveryRefused, Body: recoverySigninBody{}}
		return s.render(w, http.StatusUnauthorized, "patient_recovery_signin", d)
	}
	user, err := s.recovery().use(r.Context(), r.PostForm.Get("code"))
	if errors.Is(err, errNoRecoveryCode) {
		s.signInFailed("recovery_code")
		s.log.Info("web recovery sign-in refused", "addr", s.clientAddr(r))
		return refused()
	}
	if err != nil {
		return unavailable("Not signed in", "The vault could not check the code just now. Try again shortly.", err)
	}
	if _, err := s.vault.User(r.Context(), user); err != nil {
		if !errors.Is(err, vault.ErrNoUser) {
			return err
		}
		return refused()
	}
	if err := s.startSession(w, r, session{UserID: user, Role: vault.RoleOf(user)}); err != nil {
		// The code is spent: the user is told to use another.
		return unavailable("Not signed in", "You could not be signed in just now. Try again shortly with another of your codes: the one you entered no longer works.", err)
	}
	s.log.Info("web sign-in with a recovery code", "user", user)
	http.Redirect(w, r, "/account?recovered=1", http.StatusSeeOther)
	return nil
}

// newRecoveryCodes replaces the patient's recovery codes and redirects to
// the account page, which shows the new ones once (reveal.go).
func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request, sess session) error {
	codes, err := s.recovery().replace(r.Context(), sess.UserID, s.now())
	if err != nil {
		return unavailable("No codes made", "The recovery codes could not be made just now. Try again shortly.", err)
	}
	s.log.Info("recovery codes made", "user", sess.UserID, "count", len(codes))
	if err := s.holdReveal(r.Context(), w, sess, "/account", revealed{Codes: codes}); err != nil {
		// Shown here, then: the old codes are void already.
		s.log.Error("web new recovery codes shown in the POST response", "user", sess.UserID, "cause", err.Error())
		d := s.signedData(r.Context(), sess, "Account", "account")
		d.Notice = newCodesNotice
		return s.renderAccount(r.Context(), w, sess, http.StatusOK, d, codes)
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}
