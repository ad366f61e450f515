package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// A form that makes a secret (a token, recovery codes) answers with a
// redirect, and the page it redirects to shows the secret once
// (post/redirect/get): reloading that page sends no form again, so it
// makes no second token and voids no codes. The secret never reaches a
// URL or a log on the way: the POST holds it sealed in the web store as a
// ceremony of kind "reveal:" + the page, for CeremonyTimeout at most,
// under a one-time id in the RevealCookie (with the page's name); the GET takes it (deletes it)
// and shows it. It opens only for the session that made it (its user and
// the hash of its CSRF token), so a leaked cookie shows another browser
// nothing. A second view, a reload or another tab, finds nothing.

// RevealCookie carries the id of a secret waiting for its one view.
const RevealCookie = "__Host-vault_reveal"

// revealed is a secret to show once, on the page it was made for.
type revealed struct {
	Token   string   `json:"token,omitempty"`
	TokenID string   `json:"token_id,omitempty"`
	Codes   []string `json:"codes,omitempty"`
}

func revealKind(page string) string { return "reveal:" + page }

// holdReveal stores a secret for its page's next view and sets the
// cookie that finds it.
func (s *Server) holdReveal(ctx context.Context, w http.ResponseWriter, sess session, page string, v revealed) error {
	id, err := s.cers.put(ctx, ceremony{Kind: revealKind(page), UserID: sess.UserID, Session: hashOf(sess.CSRF), Reveal: &v})
	if err != nil {
		return err
	}
	s.setCookie(w, RevealCookie, page+"."+id, int(CeremonyTimeout/time.Second))
	return nil
}

// takeReveal takes the secret waiting for this view of a page, if there
// is one for this session, and clears the cookie. A store failure is
// returned with the cookie kept, so a reload can still show the secret.
func (s *Server) takeReveal(w http.ResponseWriter, r *http.Request, sess session, page string) (revealed, bool, error) {
	// The cookie names its page: another page's secret waits for that
	// page.
	id, ok := strings.CutPrefix(cookieValue(r, RevealCookie), page+".")
	if !ok {
		return revealed{}, false, nil
	}
	c, err := s.cers.take(r.Context(), id, revealKind(page))
	switch {
	case errors.Is(err, errNoCeremony):
		s.clearCookie(w, RevealCookie) // shown already, or expired
		return revealed{}, false, nil
	case err != nil:
		return revealed{}, false, err
	}
	s.clearCookie(w, RevealCookie)
	if c.Reveal == nil || c.UserID != sess.UserID || c.Session != hashOf(sess.CSRF) {
		return revealed{}, false, nil
	}
	return *c.Reveal, true, nil
}
