package web

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
)

// maxClinicianKeys bounds a clinician's registered (not removed) keys, as
// the API does (api.MaxClinicianKeys; a test keeps the two equal).
const maxClinicianKeys = 10

// ceremonyKey is the kind of the key-confirmation ceremony. Its unsigned
// clinician-key-added entry rides in the ceremony's Grant field (an
// entry, whatever its kind), with the nonce in Nonce.
const ceremonyKey = "clinician-key"

var fingerprintRE = regexp.MustCompile(`^fp_[0-9a-f]{32}$`)

type clinicianKeyView struct {
	Label       string
	Fingerprint string
	Recipient   string
	PostQuantum bool
	Status      string // pending, active or removed
	ActiveFrom  string
	Added       string
	Removed     string
	Confirmed   bool
	Index       int64
}

type clinicianKeysBody struct {
	Live     []clinicianKeyView
	Removed  []clinicianKeyView
	CanAdd   bool
	Max      int
	MaxLabel int
	BaseURL  string
}

func keyStatus(k consent.KeyState, now time.Time) string {
	switch {
	case k.RemoveIndex != nil:
		return "removed"
	case now.Before(k.ActiveFrom):
		return "pending"
	}
	return "active"
}

func (s *Server) clinicianKeysPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Hub keys", "keys")
	switch {
	case r.URL.Query().Get("added") == "1":
		d.Notice = "The key is registered, confirmed with your passkey, and active now: exports can be encrypted to it."
	case r.URL.Query().Get("removed") == "1":
		d.Notice = "The key is removed. No export will be encrypted to it again."
	}
	return s.renderClinicianKeys(r.Context(), w, sess, http.StatusOK, d)
}

func (s *Server) renderClinicianKeys(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData) error {
	u, _ := s.vault.User(ctx, sess.UserID)
	loc := u.Location()
	now := s.now()
	b := clinicianKeysBody{Max: maxClinicianKeys, MaxLabel: MaxLabelLength, BaseURL: s.origin}
	for _, k := range s.ledger.ClinicianKeys(sess.UserID) {
		v := clinicianKeyView{Label: k.Label, Fingerprint: k.Fingerprint, Recipient: k.Recipient, PostQuantum: strings.HasPrefix(k.Recipient, "age1pq1"),
			Status: keyStatus(k, now), ActiveFrom: fmtTime(k.ActiveFrom, loc), Added: fmtTime(k.Added, loc), Confirmed: k.Confirmed, Index: k.Index}
		if len(v.Recipient) > 40 {
			v.Recipient = v.Recipient[:20] + "…" + v.Recipient[len(v.Recipient)-12:]
		}
		if k.RemovedAt != nil {
			v.Removed = fmtTime(*k.RemovedAt, loc)
			b.Removed = append(b.Removed, v)
			continue
		}
		b.Live = append(b.Live, v)
	}
	b.CanAdd = len(b.Live) < maxClinicianKeys
	d.Body, d.Script = b, true
	d.Scripts = append(d.Scripts, "clinician.js")
	return s.render(w, status, "clinician_keys", d)
}

// keyForm is the key form as the page's script sends it.
type keyForm struct {
	Label     string `json:"label"`
	Recipient string `json:"recipient"`
}

var errKeyExists = refuse(http.StatusConflict, "key_exists", "Request refused", "This key is already registered.")

// keyEntry checks the form and makes the clinician-key-added entry,
// unconfirmed, active from its own time: the passkey's assertion is what
// lets it skip the activation delay. A refusal says what to change.
func (s *Server) keyEntry(clinician string, f keyForm) (consent.Entry, error) {
	label, ok := cleanLabel(f.Label)
	if !ok || label == "" {
		return consent.Entry{}, refuse(http.StatusBadRequest, "bad_label", "Request refused", "Name the key (1 to 60 characters), such as the hub's name.")
	}
	rs := strings.TrimSpace(f.Recipient)
	if strings.HasPrefix(strings.ToUpper(rs), "AGE-SECRET-KEY-") {
		// Never echo or log it: it is the hub's private key.
		return consent.Entry{}, refuse(http.StatusBadRequest, "secret_key", "Request refused", "That is the hub's secret key (AGE-SECRET-KEY-…), which must never leave the hub. Paste the public key, the age1… line, instead; and since the secret key has now been outside the hub, make a new one.")
	}
	_, recipient, err := export.ParseRecipient(rs)
	if err != nil {
		return consent.Entry{}, refuse(http.StatusBadRequest, "bad_recipient", "Request refused", "That is not an age public key. Paste the age1… (X25519) or age1pq1… (post-quantum) line that age-keygen prints as the public key.")
	}
	live := 0
	fp := consent.Fingerprint(recipient)
	for _, k := range s.ledger.ClinicianKeys(clinician) {
		if k.RemoveIndex == nil {
			live++
			if k.Fingerprint == fp {
				return consent.Entry{}, errKeyExists
			}
		}
	}
	if live >= maxClinicianKeys {
		return consent.Entry{}, refuse(http.StatusConflict, "too_many_keys", "Request refused", "You have the most keys the vault keeps. Remove one before adding another.")
	}
	e := consent.New(consent.KindClinicianKeyAdd, clinician, s.now())
	e.Clinician = clinician
	e.Key = &consent.ClinicianKey{Fingerprint: fp, Recipient: recipient, Label: label, ActiveFrom: e.Time}
	return e, nil
}

// keyBegin checks the key form, makes the key's entry (unconfirmed) and
// starts a WebAuthn assertion over it: the challenge is
// consent.KeyChallenge(entry, nonce), and only the clinician's own
// passkeys may answer, with user verification.
func (s *Server) keyBegin(w http.ResponseWriter, r *http.Request, sess session) error {
	var f keyForm
	if err := readJSON(r, &f); err != nil {
		return err
	}
	e, err := s.keyEntry(sess.UserID, f)
	if err != nil {
		return err
	}
	nonce := make([]byte, consent.NonceSize)
	rand.Read(nonce)
	challenge, err := consent.KeyChallenge(e, nonce)
	if err != nil {
		return fmt.Errorf("key challenge: %w", err)
	}
	return s.beginStepUp(r.Context(), w, sess, ceremony{Kind: ceremonyKey, Grant: &e, Nonce: nonce}, challenge, "key",
		"A key is confirmed with a passkey, and this account has none. Add one on the Passkeys page first.")
}

const keyRefused = "Your passkey's confirmation of the key could not be verified, so the key was not registered. Try again, and unlock the passkey with your fingerprint, face or PIN."

// keyFinish verifies the assertion over the key's entry and appends it
// with the assertion in it. The ledger checks the assertion again against
// the passkey's ledger entry before it stores the key, so a key it stores
// as confirmed always passes vault ledger verify.
func (s *Server) keyFinish(w http.ResponseWriter, r *http.Request, sess session) error {
	su, err := s.finishStepUp(w, r, sess, ceremonyKey, func(c ceremony) bool { return c.Grant != nil && c.Grant.Key != nil }, stepUpRefusal{what: "key confirmation", code: "key_refused", refused: keyRefused, stale: "This key request has expired or was already used. Start again."})
	if err != nil {
		return err
	}
	c, parsed, cred, rec := su.c, su.parsed, su.cred, su.rec
	e := *c.Grant
	k := *e.Key
	k.Assertion = su.assertion()
	e.Key = &k
	idx, err := s.ledger.Append(e)
	switch {
	case errors.Is(err, consent.ErrBadKeyConfirmation):
		s.log.Warn("web key confirmation refused by the ledger", "user", sess.UserID, "ledger_index", rec.LedgerIndex, "cause", err.Error())
		return refuse(http.StatusUnauthorized, "key_refused", "Request refused", keyRefused)
	case errors.Is(err, consent.ErrKeyExists):
		return errKeyExists
	case err != nil:
		return unavailable("Not registered", "The key could not be recorded. Nothing was registered; try again shortly.", err)
	}
	if _, err := s.noteUse(r.Context(), rec, cred, parsed); err != nil {
		s.log.Error("web credential update", "user", sess.UserID, "cause", err.Error())
	}
	s.log.Info("clinician key confirmed", "user", sess.UserID, "fingerprint", k.Fingerprint, "ledger_index", idx, "passkey_index", rec.LedgerIndex)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/clinician/keys?added=1", "fingerprint": k.Fingerprint})
	return nil
}

// removeClinicianKey removes one of the clinician's keys (a
// clinician-key-removed entry, as DELETE /api/v1/clinician/keys/{fp}
// makes). A key that is not theirs, or already removed, answers 404.
func (s *Server) removeClinicianKey(w http.ResponseWriter, r *http.Request, sess session) error {
	fp := r.PathValue("fingerprint")
	if !fingerprintRE.MatchString(fp) {
		return errNotFound
	}
	e := consent.New(consent.KindClinicianKeyDel, sess.UserID, s.now())
	e.Clinician = sess.UserID
	e.Key = &consent.ClinicianKey{Fingerprint: fp}
	_, err := s.ledger.Append(e)
	switch {
	case errors.Is(err, consent.ErrNoKey), errors.Is(err, consent.ErrKeyRemoved):
		return errNotFound
	case err != nil:
		return unavailable("Not removed", "The key could not be removed just now. Try again shortly.", err)
	}
	s.log.Info("clinician key removed", "user", sess.UserID, "fingerprint", fp)
	http.Redirect(w, r, "/clinician/keys?removed=1", http.StatusSeeOther)
	return nil
}
