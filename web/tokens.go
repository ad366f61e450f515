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

// tokenPage is one of the two token pages: the patient's devices and
// tokens (she makes device tokens) and the clinician's API tokens (for his
// hub). Both list the user's tokens and revoke them; the shared template
// (templates/partials/tokens.html) takes the wording from here and the
// page's own prose from its page template.
type tokenPage struct {
	Path     string // the page, and the base of its forms' actions
	Template string
	Title    string
	Kind     string            // the kind of token the page makes
	Days     []int             // the lifetimes offered, in days; the first is the default (vault.DefaultTokenTTL of Kind)
	Labels   map[string]string // token kinds for people; nil leaves the kind column out
	NewLabel string            // names a token just made
	Noun     string            // "a device token", for the form's heading and button
	Holder   string            // where the person copies a new token to
	Caption  string            // the token table's caption
	None     string            // said when there are no tokens
	Made     string            // the notice over a new token
	Revoked  string            // the notice after a revoke
}

var (
	patientTokens = &tokenPage{
		Path: "/tokens", Template: "patient_tokens", Title: "Devices and tokens",
		Kind: vault.TokenDevice, Days: []int{180, 90, 30, 365},
		Labels: map[string]string{
			vault.TokenDevice:  "Device (uploads readings)",
			vault.TokenPatient: "API (reads your data, makes grants)",
		},
		NewLabel: "Device (uploads readings) token", Noun: "a device token", Holder: "device",
		Caption: "Your API and device tokens, newest first", None: "You have no tokens.",
		Made:    "Your new device token is below. Copy it now: it is shown only this once.",
		Revoked: "The token is revoked. Anything still using it is refused from now on.",
	}
	clinicianTokens = &tokenPage{
		Path: "/clinician/tokens", Template: "clinician_tokens", Title: "API tokens",
		Kind: vault.TokenClinician, Days: []int{30, 7, 90},
		NewLabel: "Clinician API token", Noun: "an API token", Holder: "hub",
		Caption: "Your API tokens, newest first", None: "You have no API tokens.",
		Made:    "Your new API token is below. Copy it into your hub now: it is shown only this once.",
		Revoked: "The token is revoked. Any hub or notebook still using it is refused from now on.",
	}
)

type tokenView struct {
	ID       string
	Kind     string
	Created  string
	Expires  string
	LastUsed string
	Expired  bool
}

type tokensBody struct {
	Page    *tokenPage
	Tokens  []tokenView
	Days    []option
	New     string // the secret of a token just made: shown once, never stored
	NewID   string
	BaseURL string
}

func (s *Server) tokensPage(p *tokenPage) handler {
	return func(w http.ResponseWriter, r *http.Request, sess session) error {
		d := s.signedData(r.Context(), sess, p.Title, "tokens")
		if r.URL.Query().Get("revoked") == "1" {
			d.Notice = p.Revoked
		}
		var b tokensBody
		v, ok, err := s.takeReveal(w, r, sess, p.Path)
		switch {
		case err != nil:
			return unavailable("Tokens unavailable", "Your new token could not be read just now. Reload the page shortly to see it.", err)
		case ok:
			d.Notice, b.New, b.NewID = p.Made, v.Token, v.TokenID
		}
		return s.renderTokens(r.Context(), w, sess, p, http.StatusOK, d, b)
	}
}

func (s *Server) renderTokens(ctx context.Context, w http.ResponseWriter, sess session, p *tokenPage, status int, d pageData, b tokensBody) error {
	var err error
	if b.Tokens, err = s.tokenViews(ctx, sess, p.Labels); err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Tokens unavailable", Message: "Your tokens could not be read. Try again shortly.", Cause: err}
	}
	b.Page, b.Days, b.BaseURL = p, dayOptions(p.Days), s.origin
	d.Body = b
	return s.render(w, status, p.Template, d)
}

// createToken makes a token of the page's kind and redirects to the page,
// which shows its secret once (reveal.go: held sealed for that one view,
// never in a URL or a log). It is a token-mint ledger entry, as the
// admin's vault admin token is. Should the secret not be held, it is
// shown in the response to the POST instead, so it is never lost.
func (s *Server) createToken(p *tokenPage) handler {
	return func(w http.ResponseWriter, r *http.Request, sess session) error {
		if err := r.ParseForm(); err != nil {
			return errBadForm.because(err)
		}
		d := s.signedData(r.Context(), sess, p.Title, "tokens")
		days, err := strconv.Atoi(r.PostForm.Get("days"))
		if err != nil || !slices.Contains(p.Days, days) {
			d.Error = "Choose how long the token lasts from the list."
			return s.renderTokens(r.Context(), w, sess, p, http.StatusBadRequest, d, tokensBody{})
		}
		secret, t, err := consent.MintOwnToken(r.Context(), s.vault, s.ledger, sess.UserID, p.Kind, time.Duration(days)*24*time.Hour, s.now())
		if err != nil {
			return unavailable("No token made", "The token could not be made just now. Try again shortly.", err)
		}
		s.log.Info("token made by its user", "user", sess.UserID, "kind", t.Kind, "token_id", t.ID)
		if err := s.holdReveal(r.Context(), w, sess, p.Path, revealed{Token: secret, TokenID: t.ID}); err != nil {
			s.log.Error("web new token shown in the POST response", "user", sess.UserID, "cause", err.Error())
			d.Notice = p.Made
			return s.renderTokens(r.Context(), w, sess, p, http.StatusOK, d, tokensBody{New: secret, NewID: t.ID})
		}
		http.Redirect(w, r, p.Path, http.StatusSeeOther)
		return nil
	}
}

// revokeToken revokes one of the signed-in user's tokens and returns to
// the page. A token that is not theirs answers 404, as a missing one.
func (s *Server) revokeToken(p *tokenPage) handler {
	return func(w http.ResponseWriter, r *http.Request, sess session) error {
		err := consent.RevokeToken(r.Context(), s.vault, s.ledger, sess.UserID, r.PathValue("id"), s.now())
		switch {
		case errors.Is(err, vault.ErrNoToken):
			return errNotFound
		case err != nil:
			return unavailable("Not revoked", "The token could not be revoked just now. Try again shortly.", err)
		}
		s.log.Info("token revoked by its user", "user", sess.UserID, "token_id", r.PathValue("id"))
		http.Redirect(w, r, p.Path+"?revoked=1", http.StatusSeeOther)
		return nil
	}
}

// tokenViews lists the signed-in user's tokens for a tokens page, times in
// her zone, kinds by labels (the kind itself where it has none).
func (s *Server) tokenViews(ctx context.Context, sess session, labels map[string]string) ([]tokenView, error) {
	u, _ := s.vault.User(ctx, sess.UserID)
	loc := u.Location()
	now := s.now()
	list, err := s.vault.Tokens(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
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
	return out, nil
}

// dayOptions are a token lifetime's choices, the first selected.
func dayOptions(days []int) []option {
	var out []option
	for i, n := range days {
		out = append(out, option{Value: strconv.Itoa(n), Label: strconv.Itoa(n) + " days", Selected: i == 0})
	}
	return out
}
