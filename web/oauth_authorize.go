package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// The web half of OAuth authorization. The vault's OAuth provider (the
// authorization server) keeps each authorization request it receives
// pending and sends the browser to GET /oauth/authorize?id=ID. The web UI
// signs the person in (through /signin and back), shows what the client
// asks, and answers the provider through an Authorizer:
//
//   - a patient authorizing an app (patient/ scopes) sees what it asks for
//     in plain words, unticks what she will not share, chooses the data
//     window and how long access lasts, and signs an app grant with her
//     passkey (a ledger entry, consent.NewAppGrant); the provider is told
//     the grant id and the schemas she kept;
//   - a user signing in to a client (user/ scopes, or OpenID only) is asked
//     once per client; her answer is remembered (appconsent.go) until she
//     removes it on the apps page, and later requests are approved at once.
//
// Deny answers the provider with a refusal. Either way the browser goes
// back to the client at the URL the provider returns.

// Authorizer is the OAuth provider as the web UI needs it. cmd/vault
// adapts the provider to it.
type Authorizer interface {
	// Pending returns a pending authorization request; one that is
	// unknown, expired or answered is ErrAuthRequestGone.
	Pending(ctx context.Context, id string) (AuthRequest, error)
	// Approve answers a pending request for a user, and returns the URL
	// to send the browser to (the client's redirect URI with the code).
	Approve(ctx context.Context, id string, a AuthApproval) (redirect string, err error)
	// Deny answers a pending request with access_denied and returns the
	// URL to send the browser to.
	Deny(ctx context.Context, id string) (redirect string, err error)
	// ClientName is a registered client's display name (ErrAuthClientGone
	// for one that is not registered).
	ClientName(ctx context.Context, clientID string) (string, error)
	// RevokeUserClient ends every token a client holds for a user, at once.
	RevokeUserClient(ctx context.Context, userID, clientID string) error
}

// AuthRequest is a pending authorization request, as the provider parsed it.
type AuthRequest struct {
	ID         string
	ClientID   string
	ClientName string
	Scopes     []string
	// Patient: patient/ scopes; a patient is authorizing an app to read
	// her data.
	Patient bool
	// User: user/ scopes, or OpenID scopes only; a clinician is signing
	// in to the client (the provider signs only clinicians in this way).
	User bool
	// Schemas are the vault schema ids (namespace:name or
	// namespace:name:version) the resource scopes reach.
	Schemas []string
	// Offline: offline_access was asked (refresh tokens).
	Offline bool
	Expires time.Time
}

// AuthApproval is a user's answer to a request: who, and for a patient's
// app grant, the grant and the schemas she kept.
type AuthApproval struct {
	UserID  string
	GrantID string
	Schemas []string
	// Session is the answering session's launch binding (launch.go): an
	// EHR launch is answered only from the session that opened it.
	Session string
}

// Errors an Authorizer returns (wrapped or not) for the web UI to explain.
var (
	ErrAuthRequestGone = errors.New("no such pending authorization request")
	ErrAuthClientGone  = errors.New("no such OAuth client")
	// ErrAuthRefused: the provider refused the answer (the account's role
	// or the kept schemas do not fit the request).
	ErrAuthRefused = errors.New("the provider refused the answer")
)

// maxAuthRequestID bounds the id a request carries to /oauth/authorize.
const maxAuthRequestID = 256

// maxNextPath bounds a return path after sign-in.
const maxNextPath = 2048

// safeNext reports whether v is a safe place to go after sign-in: a path
// on this vault ("/…"), never an absolute URL, never "//host" or "/\host"
// (which browsers read as another host), no control characters, at most
// maxNextPath bytes. It returns the path, or "" and false.
func safeNext(v string) (string, bool) {
	if v == "" || len(v) > maxNextPath || v[0] != '/' || strings.HasPrefix(v, "//") || strings.HasPrefix(v, "/\\") {
		return "", false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	return v, true
}

// Refusals of the authorization pages.
var (
	errOAuthOff   = refuse(http.StatusNotFound, "not_found", "Page not found", "This vault does not sign anyone in to other applications.")
	errAuthBadID  = refuse(http.StatusBadRequest, "oauth_bad_request", "Request refused", "This sign-in link is not one the vault made. Go back to the application and start again.")
	errAuthGone   = refuse(http.StatusBadRequest, "oauth_request_gone", "Request expired", "This request has expired or was already answered. Go back to the application and start again.")
	errAuthDown   = refuse(http.StatusServiceUnavailable, "unavailable", "Try again shortly", "The vault could not read this request just now. Try again shortly.")
	errAuthNotPt  = refuse(http.StatusForbidden, "wrong_role", "Request refused", "This application asks for a patient's data. Sign out, and sign in with your patient account to allow it.")
	errAuthNotCl  = refuse(http.StatusForbidden, "wrong_role", "Request refused", "This application signs clinicians in. Sign out, and sign in with your clinician account.")
	errAuthPasskp = refuse(http.StatusBadRequest, "oauth_needs_passkey", "Request refused", "An application reading your data is allowed with your passkey, on the page that lists what it asks for. Start again from the application.")
)

// pendingFor reads the request id (query or form field "id") and its
// pending request, and checks the session's role may answer it.
func (s *Server) pendingFor(ctx context.Context, id string, sess session) (AuthRequest, error) {
	if s.auth == nil {
		return AuthRequest{}, errOAuthOff
	}
	if id == "" || len(id) > maxAuthRequestID {
		return AuthRequest{}, errAuthBadID
	}
	p, err := s.auth.Pending(ctx, id)
	switch {
	case errors.Is(err, ErrAuthRequestGone):
		return AuthRequest{}, errAuthGone.because(err)
	case err != nil:
		return AuthRequest{}, errAuthDown.because(err)
	}
	switch {
	case p.Patient && sess.Role != vault.RolePatient:
		return AuthRequest{}, errAuthNotPt
	case !p.Patient && sess.Role != vault.RoleClinician:
		return AuthRequest{}, errAuthNotCl
	}
	if p.ClientName == "" {
		p.ClientName = p.ClientID
	}
	return p, nil
}

// authorize is GET /oauth/authorize?id=ID, where the provider sends the
// browser. Signed out, the browser goes to /signin and comes back here.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, sess session) error {
	if s.auth == nil {
		return errOAuthOff
	}
	id := r.URL.Query().Get("id")
	if id == "" || len(id) > maxAuthRequestID {
		return errAuthBadID
	}
	self := "/oauth/authorize?id=" + url.QueryEscape(id)
	if !hasSession(sess) {
		// The session cookie is SameSite=Strict, so a browser arriving
		// from the client's site (a cross-site navigation and its
		// redirects) does not send it. One same-origin hop (a meta
		// refresh from this page) makes the request same-site, and the
		// cookie comes along if there is one.
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.URL.Query().Get("hop") == "" {
			return s.render(w, http.StatusOK, "oauth_continue", pageData{Title: "Continue", Refresh: self + "&hop=1", Body: oauthContinue{URL: self + "&hop=1"}})
		}
		http.Redirect(w, r, "/signin?next="+url.QueryEscape(self), http.StatusSeeOther)
		return nil
	}
	p, err := s.pendingFor(r.Context(), id, sess)
	if err != nil {
		return err
	}
	if p.Patient {
		return s.renderAppConsent(r.Context(), w, sess, p)
	}
	ok, err := s.appConsents.has(r.Context(), sess.UserID, p.ClientID)
	if err != nil {
		return unavailable("Try again shortly", "The vault could not read your apps just now. Try again shortly.", err)
	}
	if ok {
		to, err := s.auth.Approve(r.Context(), p.ID, AuthApproval{UserID: sess.UserID, Session: launchBinding(r)})
		if err != nil {
			return s.answerError(err)
		}
		s.log.Info("oauth sign-in approved (remembered)", "user", sess.UserID, "client", p.ClientID)
		http.Redirect(w, r, to, http.StatusSeeOther)
		return nil
	}
	d := s.signedData(r.Context(), sess, "Sign in to "+p.ClientName, "")
	d.Body = signinConsentBody{ID: p.ID, Client: p.ClientName, ClientID: p.ClientID, Clinician: sess.Role == vault.RoleClinician, Scopes: p.Scopes, Offline: p.Offline}
	return s.render(w, http.StatusOK, "oauth_signin", d)
}

// answerError explains a failed Approve or Deny.
func (s *Server) answerError(err error) error {
	switch {
	case errors.Is(err, ErrAuthRequestGone):
		return errAuthGone.because(err)
	case errors.Is(err, ErrAuthRefused):
		return refuse(http.StatusBadRequest, "oauth_refused", "Request refused", "The vault could not give this application what it asked with your answer. Go back to it and start again.").because(err)
	}
	return unavailable("Not answered", "The vault could not answer the application just now. Go back to it and start again.", err)
}

type oauthContinue struct{ URL string }

type signinConsentBody struct {
	ID, Client, ClientID string
	Clinician            bool
	Scopes               []string
	Offline              bool
}

// sendBack answers a form post by sending the browser to the client: a
// page that moves on at once (a form's redirect to another origin would
// be stopped by the form-action policy), with a link for a browser that
// does not.
func (s *Server) sendBack(w http.ResponseWriter, to string) error {
	return s.render(w, http.StatusOK, "oauth_continue", pageData{Title: "Returning to the application", Refresh: to, Body: oauthContinue{URL: to}})
}

// authorizeAllow is POST /oauth/authorize/allow: a user lets a client sign
// her in. The answer is remembered, and the provider told.
func (s *Server) authorizeAllow(w http.ResponseWriter, r *http.Request, sess session) error {
	p, err := s.pendingFor(r.Context(), r.PostFormValue("id"), sess)
	if err != nil {
		return err
	}
	if p.Patient {
		return errAuthPasskp
	}
	if err := s.appConsents.put(r.Context(), sess.UserID, p.ClientID, p.ClientName); err != nil {
		return err
	}
	to, err := s.auth.Approve(r.Context(), p.ID, AuthApproval{UserID: sess.UserID, Session: launchBinding(r)})
	if err != nil {
		return s.answerError(err)
	}
	s.log.Info("oauth sign-in allowed", "user", sess.UserID, "client", p.ClientID)
	return s.sendBack(w, to)
}

// authorizeDeny is POST /oauth/authorize/deny: the provider answers the
// client access_denied.
func (s *Server) authorizeDeny(w http.ResponseWriter, r *http.Request, sess session) error {
	p, err := s.pendingFor(r.Context(), r.PostFormValue("id"), sess)
	if err != nil {
		return err
	}
	to, err := s.auth.Deny(r.Context(), p.ID)
	if err != nil {
		return s.answerError(err)
	}
	s.log.Info("oauth request denied", "user", sess.UserID, "client", p.ClientID)
	return s.sendBack(w, to)
}

// ---- a patient authorizing an app ----

type appConsentBody struct {
	ID, Client, ClientID string
	Schemas              []option
	Unknown              []string // schemas the page has no checkbox for (none, normally)
	Today                string
	ExpiresOn            string
	MaxOn                string
	Offline              bool
}

func (s *Server) renderAppConsent(ctx context.Context, w http.ResponseWriter, sess session, p AuthRequest) error {
	u, err := s.vault.User(ctx, sess.UserID)
	if err != nil {
		return errNoAccount.because(err)
	}
	loc, now := u.Location(), s.now()
	b := appConsentBody{
		ID: p.ID, Client: p.ClientName, ClientID: p.ClientID, Offline: p.Offline,
		Today:     now.In(loc).Format(time.DateOnly),
		ExpiresOn: now.In(loc).AddDate(0, 0, DefaultGrantDays).Format(time.DateOnly),
		MaxOn:     now.Add(consent.MaxGrantLifetime).In(loc).AddDate(0, 0, -1).Format(time.DateOnly),
	}
	for _, id := range p.Schemas {
		b.Schemas = append(b.Schemas, option{Value: id, Label: schemaLabel(schemaName(id)), Selected: true})
	}
	d := s.signedData(ctx, sess, "Allow "+p.ClientName, "consent")
	d.Body, d.Script = b, true
	return s.render(w, http.StatusOK, "oauth_consent", d)
}

// appGrantForm is the app consent form as the page's script sends it.
// Dates are days in the patient's time zone, as on the consent form.
type appGrantForm struct {
	ID        string   `json:"id"`
	Schemas   []string `json:"schemas"`
	DataFrom  string   `json:"data_from"`
	DataTo    string   `json:"data_to"`
	ExpiresOn string   `json:"expires_on"`
}

// appGrantBegin checks the app consent form against the pending request,
// makes the app grant's entry (unsigned), and starts a passkey assertion
// over it, as grantBegin does for a clinician grant.
func (s *Server) appGrantBegin(w http.ResponseWriter, r *http.Request, sess session) error {
	var f appGrantForm
	if err := readJSON(r, &f); err != nil {
		return err
	}
	p, err := s.pendingFor(r.Context(), f.ID, sess)
	if err != nil {
		return err
	}
	if !p.Patient {
		return errAuthBadID
	}
	if len(f.Schemas) == 0 {
		return refuse(http.StatusBadRequest, "bad_schemas", "Request refused", "Tick at least one kind of data, or choose Deny.")
	}
	for _, sc := range f.Schemas {
		if !slices.Contains(p.Schemas, sc) {
			return refuse(http.StatusBadRequest, "bad_schemas", "Request refused", "Choose only kinds of data the application asked for.")
		}
	}
	u, err := s.vault.User(r.Context(), sess.UserID)
	if err != nil {
		return errNoAccount.because(err)
	}
	req, msg := grantForm{DataFrom: f.DataFrom, DataTo: f.DataTo, ExpiresOn: f.ExpiresOn}.request(u.Location())
	if msg != "" {
		return refuse(http.StatusBadRequest, "bad_date", "Request refused", msg)
	}
	e, err := consent.NewAppGrant(sess.UserID, consent.AppGrantRequest{App: p.ClientID, Schemas: f.Schemas, DataFrom: req.DataFrom, DataTo: req.DataTo, ExpiresAt: req.ExpiresAt}, s.now())
	if err != nil {
		return refuseGrant(err, "new app grant")
	}
	nonce, challenge, err := grantChallenge(e)
	if err != nil {
		return err
	}
	return s.beginStepUp(r.Context(), w, sess, ceremony{Kind: "oauth-grant", Grant: &e, Nonce: nonce, OAuth: p.ID}, challenge, "app grant",
		"An application is allowed with a passkey, and this account has none. Add one on the Passkeys page first.")
}

const appGrantRefused = "Your passkey's signature could not be verified, so the application was not allowed. Try again, and unlock the passkey with your fingerprint, face or PIN."

// appGrantFinish verifies the assertion, appends the signed app grant,
// and approves the pending request with the grant's id and schemas. If
// the provider cannot take the approval, the grant is revoked at once, so
// no grant stands that no app holds.
func (s *Server) appGrantFinish(w http.ResponseWriter, r *http.Request, sess session) error {
	su, err := s.finishStepUp(w, r, sess, "oauth-grant", func(c ceremony) bool { return c.Grant != nil && c.OAuth != "" && c.Grant.App != "" },
		stepUpRefusal{what: "app grant", code: "grant_refused", refused: appGrantRefused, stale: "This request has expired or was already used. Go back to the application and start again."})
	if err != nil {
		return err
	}
	e := *su.c.Grant
	p, err := s.pendingFor(r.Context(), su.c.OAuth, sess)
	if err != nil {
		return err
	}
	exp, _ := time.Parse(time.RFC3339Nano, e.Grant.Expires)
	if p.ClientID != e.App || !p.Patient || !exp.After(s.now()) {
		return refuse(http.StatusConflict, "grant_stale", "Request refused", "The request changed or its dates passed. Go back to the application and start again.")
	}
	g := *e.Grant
	g.Assertion = su.assertion()
	e.Grant = &g
	idx, err := s.ledger.Append(e)
	switch {
	case errors.Is(err, consent.ErrBadAssertion):
		s.log.Warn("web app grant refused by the ledger", "user", sess.UserID, "ledger_index", su.rec.LedgerIndex, "cause", err.Error())
		return refuse(http.StatusUnauthorized, "grant_refused", "Request refused", appGrantRefused)
	case err != nil:
		return unavailable("Not allowed", "The grant could not be recorded. Nothing was allowed; try again shortly.", err)
	}
	if _, err := s.noteUse(r.Context(), su.rec, su.cred, su.parsed); err != nil {
		s.log.Error("web credential update", "user", sess.UserID, "cause", err.Error())
	}
	to, err := s.auth.Approve(r.Context(), p.ID, AuthApproval{UserID: sess.UserID, GrantID: g.ID, Schemas: g.Schemas, Session: launchBinding(r)})
	if err != nil {
		st, gerr := s.ledger.Grant(g.ID)
		if gerr == nil {
			_, gerr = s.ledger.Append(consent.NewRevoke(sess.UserID, st, s.now()))
		}
		if gerr != nil {
			s.log.Error("web app grant not approved, and not revoked", "user", sess.UserID, "grant", g.ID, "cause", gerr.Error())
		}
		return s.answerError(err)
	}
	s.log.Info("app grant signed", "user", sess.UserID, "client", e.App, "grant", g.ID, "ledger_index", idx, "passkey_index", su.rec.LedgerIndex)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": to, "grant": g.ID})
	return nil
}

// ---- app grants on the consent page ----

type appGrantView struct {
	ID, Client string
	grantView
	Index     int64
	Created   string
	RevokedAt string
	Active    bool
}

// appGrantViews are a patient's app grants for her consent page, newest
// first.
func (s *Server) appGrantViews(ctx context.Context, patient string, loc *time.Location) ([]appGrantView, error) {
	gs, err := s.ledger.AppGrants(patient)
	if err != nil {
		return nil, err
	}
	var out []appGrantView
	names := map[string]string{}
	now := s.now()
	for _, g := range gs {
		name, ok := names[g.App]
		if !ok {
			name = g.App
			if s.auth != nil {
				if n, err := s.auth.ClientName(ctx, g.App); err == nil && n != "" {
					name = n
				}
			}
			names[g.App] = name
		}
		v := appGrantView{ID: g.ID, Client: name, grantView: grantViewOf(g, loc), Index: g.Index, Created: fmtTime(g.Created, loc), Active: g.Active(now)}
		v.Schemas = schemaList(g.Schemas)
		v.Expires = expiryText(g.Expires, loc)
		if g.RevokedAt != nil {
			v.RevokedAt = fmtTime(*g.RevokedAt, loc)
		}
		out = append(out, v)
	}
	return out, nil
}

// revokeAppGrant is POST /consent/apps/{id}/revoke: a revoke entry for one
// of the patient's app grants; the provider ends the app's tokens at once.
func (s *Server) revokeAppGrant(w http.ResponseWriter, r *http.Request, sess session) error {
	g, err := s.ledger.Grant(r.PathValue("id"))
	if err != nil && !errors.Is(err, consent.ErrNoGrant) {
		return grantsUnavailable(err)
	}
	if err != nil || g.Patient != sess.UserID || g.App == "" {
		return errNotFound
	}
	_, err = s.ledger.Append(consent.NewRevoke(sess.UserID, g, s.now()))
	switch {
	case errors.Is(err, consent.ErrRevoked):
		return refuse(http.StatusConflict, "already_revoked", "Already revoked", "That application's access was already revoked.")
	case err != nil:
		return unavailable("Not revoked", "The application's access could not be revoked just now. Try again shortly.", fmt.Errorf("revoke %s: %w", g.ID, err))
	}
	// The provider checks the grant on every use of a token, so the
	// revoke above already ends them; this drops them from its store too.
	if s.auth != nil {
		if err := s.auth.RevokeUserClient(r.Context(), sess.UserID, g.App); err != nil {
			s.log.Error("oauth tokens not dropped after a revoke", "user", sess.UserID, "client", g.App, "cause", err.Error())
		}
	}
	s.log.Info("app grant revoked", "user", sess.UserID, "grant", g.ID, "client", g.App)
	http.Redirect(w, r, "/consent?revoked=1#apps", http.StatusSeeOther)
	return nil
}
