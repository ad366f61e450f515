package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/jupyterhealth/vault/consent"
)

// DeleteConfirmation is what the patient types to confirm deleting her
// account.
const DeleteConfirmation = "delete my account"

type accountBody struct {
	Codes        []string // new recovery codes, shown once
	Remaining    int
	Count        int
	Confirmation string
	Recovered    bool
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Account", "account")
	if r.URL.Query().Get("recovered") == "1" {
		d.Notice = "You signed in with a recovery code, which now no longer works. Add a new passkey on the Passkeys page now, and remove any passkey you lost."
	}
	v, ok, err := s.takeReveal(w, r, sess, "/account")
	switch {
	case err != nil:
		return unavailable("Account unavailable", "Your new recovery codes could not be read just now. Reload the page shortly to see them.", err)
	case ok:
		d.Notice = newCodesNotice
	}
	return s.renderAccount(r.Context(), w, sess, http.StatusOK, d, v.Codes)
}

// newCodesNotice is said over new recovery codes.
const newCodesNotice = "Your new recovery codes are below. Save them now: they are shown only this once, and your old codes no longer work."

func (s *Server) renderAccount(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData, codes []string) error {
	n, err := s.recovery().remaining(ctx, sess.UserID)
	if err != nil {
		if codes == nil {
			return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Account unavailable", Message: "Your account page could not be read just now. Try again shortly.", Cause: err}
		}
		// The new codes are made: show them whatever else fails.
		s.log.Error("web recovery count", "user", sess.UserID, "cause", err.Error())
		n = len(codes)
	}
	d.Body = accountBody{Codes: codes, Remaining: n, Count: RecoveryCodeCount, Confirmation: DeleteConfirmation}
	d.Script, d.Scripts = true, []string{"patient_account.js"}
	return s.render(w, status, "patient_account", d)
}

type deleteBeginRequest struct {
	Confirm string `json:"confirm"`
}

// deleteChallenge binds the re-authentication to this one action: a
// signature over it cannot be replayed as a sign-in or a grant.
func deleteChallenge(userID string, nonce []byte) []byte {
	h := sha256.New()
	h.Write([]byte("jhvault/delete-account/v1\x00" + userID + "\x00"))
	h.Write(nonce)
	return h.Sum(nil)
}

// deleteBegin checks the typed confirmation and starts the passkey
// re-authentication: an assertion with user verification, by one of the
// patient's own passkeys, over a fresh server challenge.
func (s *Server) deleteBegin(w http.ResponseWriter, r *http.Request, sess session) error {
	var req deleteBeginRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if !strings.EqualFold(strings.Join(strings.Fields(req.Confirm), " "), DeleteConfirmation) {
		return refuse(http.StatusBadRequest, "not_confirmed", "Request refused", "Type \""+DeleteConfirmation+"\" to confirm.")
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	return s.beginStepUp(r.Context(), w, sess, ceremony{Kind: "delete-account", Nonce: nonce}, deleteChallenge(sess.UserID, nonce), "delete",
		"Deleting your account needs one of your passkeys. Add one on the Passkeys page first.")
}

const deleteRefused = "Your passkey could not be verified, so nothing was deleted. Try again, and unlock the passkey with your fingerprint, face or PIN."

// deleteFinish verifies the re-authentication, then deletes the account
// as the admin's vault admin delete-user does (consent.DeletePatient:
// revoke her active grants, crypto-shred, record it), then removes her web
// credentials, recovery codes and invites and ends all her sessions.
func (s *Server) deleteFinish(w http.ResponseWriter, r *http.Request, sess session) error {
	su, err := s.finishStepUp(w, r, sess, "delete-account", nil, stepUpRefusal{what: "account deletion", code: "reauth_refused", refused: deleteRefused, stale: "This request has expired or was already used. Start again."})
	if err != nil {
		return err
	}
	parsed, cred, rec := su.parsed, su.cred, su.rec
	if _, err := s.noteUse(r.Context(), rec, cred, parsed); err != nil {
		s.log.Error("web credential update", "user", sess.UserID, "cause", err.Error())
	}
	if err := consent.DeletePatient(r.Context(), s.vault, s.ledger, sess.UserID, sess.UserID, s.now()); err != nil {
		return unavailable("Not deleted", "Your account could not be deleted just now. Try again shortly, or ask your vault's administrator.", err)
	}
	if err := s.forgetUser(r.Context(), sess.UserID); err != nil {
		// The account is gone (its sign-ins are refused: the user no
		// longer exists); only the web records linger.
		s.log.Error("web records of a deleted account remain", "user", sess.UserID, "cause", err.Error())
	}
	s.clearCookie(w, SessionCookie)
	s.log.Info("account deleted by its user", "user", sess.UserID)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/account/deleted"})
	return nil
}

// ForgetUser removes what the web interface keeps about a deleted user, for
// a deletion made elsewhere (vault admin user delete): the same as the web
// UI's own account deletion does.
func (s *Server) ForgetUser(userID string) error { return s.forgetUser(context.Background(), userID) }

// EvictPatient drops a patient's decrypted daily figures from this
// process's page cache, for a deletion another replica made (its
// patient-deleted event); that replica removed her web records from the
// shared store already.
func (s *Server) EvictPatient(userID string) { s.cache.invalidate(userID) }

// forgetUser removes what the web interface keeps about a user, in one
// store transaction: passkey records (their ledger entries stay; the
// ledger is append-only), recovery codes, invites, and every session and
// ceremony. Her decrypted daily figures leave the page cache.
func (s *Server) forgetUser(ctx context.Context, userID string) error {
	s.cache.invalidate(userID) // decrypted daily figures go with the keys
	return s.store.ForgetUser(ctx, userID)
}

func (s *Server) accountDeletedPage(w http.ResponseWriter, _ *http.Request, _ session) error {
	return s.render(w, http.StatusOK, "patient_account_deleted", pageData{Title: "Account deleted"})
}
