package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// clinicianTokenDays are the lifetimes the clinician's token page offers,
// in days; the first is the default (vault.DefaultTokenTTL for a
// clinician token).
var clinicianTokenDays = []int{30, 7, 90}

type clinicianTokensBody struct {
	Tokens  []tokenView
	Days    []option
	New     string // the secret of a token just made: shown once, never stored
	NewID   string
	BaseURL string
}

func (s *Server) clinicianTokensPage(w http.ResponseWriter, r *http.Request, sess session) {
	d := s.signedData(r.Context(), sess, "API tokens", "tokens")
	if r.URL.Query().Get("revoked") == "1" {
		d.Notice = "The token is revoked. Any hub or notebook still using it is refused from now on."
	}
	s.renderClinicianTokens(r.Context(), w, sess, http.StatusOK, d, clinicianTokensBody{})
}

func (s *Server) renderClinicianTokens(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData, b clinicianTokensBody) {
	var err error
	if b.Tokens, err = s.tokenViews(ctx, sess, nil); err != nil {
		s.log.Error("web clinician tokens", "user", sess.UserID, "cause", err.Error())
		status, d.Error = http.StatusInternalServerError, "Your tokens could not be read. Try again shortly."
	}
	b.Days = dayOptions(clinicianTokenDays)
	b.BaseURL = s.origin
	d.Body = b
	s.render(w, status, "clinician_tokens", d)
}

// createClinicianToken makes a clinician API token for the clinician's
// hub and shows its secret once, in the response to the POST (not stored,
// not in a URL, not logged). It is a token-mint ledger entry, as the
// admin's vault admin token is.
func (s *Server) createClinicianToken(w http.ResponseWriter, r *http.Request, sess session) {
	days, err := strconv.Atoi(r.PostForm.Get("days"))
	if err != nil || !slices.Contains(clinicianTokenDays, days) {
		d := s.signedData(r.Context(), sess, "API tokens", "tokens")
		d.Error = "Choose how long the token lasts from the list."
		s.renderClinicianTokens(r.Context(), w, sess, http.StatusBadRequest, d, clinicianTokensBody{})
		return
	}
	secret, t, err := consent.MintOwnToken(r.Context(), s.vault, s.ledger, sess.UserID, vault.TokenClinician, time.Duration(days)*24*time.Hour, s.now())
	if err != nil {
		s.log.Error("web clinician token mint", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "No token made", "The token could not be made just now. Try again shortly.")
		return
	}
	s.log.Info("clinician token made by its user", "user", sess.UserID, "token_id", t.ID)
	d := s.signedData(r.Context(), sess, "API tokens", "tokens")
	d.Notice = "Your new API token is below. Copy it into your hub now: it is shown only this once."
	s.renderClinicianTokens(r.Context(), w, sess, http.StatusOK, d, clinicianTokensBody{New: secret, NewID: t.ID})
}

// revokeClinicianToken revokes one of the clinician's tokens (see
// revokeOwnToken).
func (s *Server) revokeClinicianToken(w http.ResponseWriter, r *http.Request, sess session) {
	s.revokeOwnToken(w, r, sess, "/clinician/tokens")
}
