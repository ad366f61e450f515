package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// deviceTokenDays are the lifetimes the token page offers, in days; the
// first is the default (vault.DefaultTokenTTL for a device token).
var deviceTokenDays = []int{180, 90, 30, 365}

type tokenView struct {
	ID       string
	Kind     string
	Created  string
	Expires  string
	LastUsed string
	Expired  bool
}

type tokensBody struct {
	Tokens  []tokenView
	Days    []option
	New     string // the secret of a token just made: shown once, never stored
	NewID   string
	NewKind string
}

var tokenKindLabels = map[string]string{
	vault.TokenDevice:  "Device (uploads readings)",
	vault.TokenPatient: "API (reads your data, makes grants)",
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, sess session) {
	d := s.signedData(r.Context(), sess, "Devices and tokens", "tokens")
	if r.URL.Query().Get("revoked") == "1" {
		d.Notice = "The token is revoked. Anything still using it is refused from now on."
	}
	s.renderTokens(r.Context(), w, sess, http.StatusOK, d, tokensBody{})
}

func (s *Server) renderTokens(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData, b tokensBody) {
	var err error
	if b.Tokens, err = s.tokenViews(ctx, sess, tokenKindLabels); err != nil {
		s.log.Error("web tokens", "user", sess.UserID, "cause", err.Error())
		status, d.Error = http.StatusInternalServerError, "Your tokens could not be read. Try again shortly."
	}
	b.Days = dayOptions(deviceTokenDays)
	d.Body = b
	s.render(w, status, "patient_tokens", d)
}

// createToken makes a device token and shows its secret once, in the
// response to the POST (not stored, not in a URL, not logged).
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, sess session) {
	days, err := strconv.Atoi(r.PostForm.Get("days"))
	ok := err == nil && slices.Contains(deviceTokenDays, days)
	if !ok {
		d := s.signedData(r.Context(), sess, "Devices and tokens", "tokens")
		d.Error = "Choose how long the token lasts from the list."
		s.renderTokens(r.Context(), w, sess, http.StatusBadRequest, d, tokensBody{})
		return
	}
	secret, t, err := consent.MintOwnToken(r.Context(), s.vault, s.ledger, sess.UserID, vault.TokenDevice, time.Duration(days)*24*time.Hour, s.now())
	if err != nil {
		s.log.Error("web token mint", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "No token made", "The token could not be made just now. Try again shortly.")
		return
	}
	s.log.Info("device token made by its user", "user", sess.UserID, "token_id", t.ID)
	d := s.signedData(r.Context(), sess, "Devices and tokens", "tokens")
	d.Notice = "Your new device token is below. Copy it now: it is shown only this once."
	s.renderTokens(r.Context(), w, sess, http.StatusOK, d, tokensBody{New: secret, NewID: t.ID, NewKind: tokenKindLabels[t.Kind]})
}

// revokeToken revokes one of the patient's tokens. A token that is not
// hers answers 404, as a missing one.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, sess session) {
	s.revokeOwnToken(w, r, sess, "/tokens")
}

// tokenViews lists the signed-in user's tokens for a tokens page, times in
// her zone, kinds by labels (the kind itself where it has none).
func (s *Server) tokenViews(ctx context.Context, sess session, labels map[string]string) ([]tokenView, error) {
	u, _ := s.vault.User(ctx, sess.UserID)
	loc := u.Location()
	now := s.now()
	list, err := s.vault.Tokens(ctx, sess.UserID)
	var out []tokenView
	for _, t := range list {
		v := tokenView{ID: t.ID, Kind: labels[t.Kind], Created: fmtTime(t.Created, loc), Expires: fmtTime(t.Expires, loc), LastUsed: "never", Expired: t.Expired(now)}
		if v.Kind == "" {
			v.Kind = t.Kind
		}
		if !t.LastUsed.IsZero() {
			v.LastUsed = fmtTime(t.LastUsed, loc)
		}
		out = append(out, v)
	}
	return out, err
}

// dayOptions are a token lifetime's choices, the first selected.
func dayOptions(days []int) []option {
	var out []option
	for i, n := range days {
		out = append(out, option{Value: strconv.Itoa(n), Label: strconv.Itoa(n) + " days", Selected: i == 0})
	}
	return out
}

// revokeOwnToken revokes one of the signed-in user's tokens and returns to
// back. A token that is not theirs answers 404, as a missing one.
func (s *Server) revokeOwnToken(w http.ResponseWriter, r *http.Request, sess session, back string) {
	err := consent.RevokeToken(r.Context(), s.vault, s.ledger, sess.UserID, r.PathValue("id"), s.now())
	switch {
	case errors.Is(err, vault.ErrNoToken):
		s.notFound(w, r)
		return
	case err != nil:
		s.log.Error("web token revoke", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "Not revoked", "The token could not be revoked just now. Try again shortly.")
		return
	}
	s.log.Info("token revoked by its user", "user", sess.UserID, "token_id", r.PathValue("id"))
	http.Redirect(w, r, back+"?revoked=1", http.StatusSeeOther)
}
