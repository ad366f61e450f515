package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
)

// handler serves one route. It writes a page, JSON or a redirect and
// returns nil, or returns an error for serve to answer (errors.go). sess is
// the request's session: the signed-in user on a route that needs one,
// the zero session on a route for anyone.
type handler func(w http.ResponseWriter, r *http.Request, sess session) error

// access is who may use a route.
type access int

const (
	anyone     access = iota // no session is looked up
	maybe                    // anyone; the session is passed when there is one
	signedIn                 // a live session; a page request without one goes to /signin
	patients                 // signedIn, as a patient; anyone else gets 404
	clinicians               // signedIn, as a clinician; anyone else gets 404
)

// guard is what a request must pass, besides access, before its handler
// runs. The guards run in this order, each refusing with its own error.
type guard uint

const (
	// limited: the per-address rate limit of sign-in and enrolment.
	limited guard = 1 << iota
	// jsonAPI: a /webauthn/… endpoint of the page script, JSON in and out:
	// the Origin header must be the vault's, the body application/json
	// (at most 64 KiB), and errors are answered as JSON.
	jsonAPI
	// origin: the Origin header must be the vault's (a state-changing
	// request made before there is a session to carry a CSRF token).
	origin
	// csrf: from the vault's own pages (Fetch Metadata, Origin) and with
	// the session's CSRF token (form field csrf, or header X-CSRF-Token).
	csrf
	// csrfMultipart: csrf for a multipart upload, whose token is the
	// body's first part (multipartCSRF).
	csrfMultipart
	// recent: signed in within RecentSignIn.
	recent
)

// route is one row of the route table.
type route struct {
	pattern string // method and path, as http.ServeMux reads them
	who     access
	guards  guard
	h       handler
}

// routeTable is every route the web interface serves. docs/web.md
// describes the pages; the /webauthn/… rows are the JSON halves of the
// passkey ceremonies.
func (s *Server) routeTable() []route {
	return []route{
		// pattern (method and path), who, guards, handler
		{"GET /{$}", maybe, 0, s.home},
		{"GET /signin", maybe, 0, s.signinPage},
		{"GET /signin/recovery", maybe, limited, s.recoverySigninPage},
		{"POST /signin/recovery", anyone, limited | origin, s.recoverySignin},
		{"POST /signout", signedIn, csrf, s.signout},
		{"GET /enrol/{token}", anyone, limited, s.enrolPage},
		{"GET /static/", anyone, 0, s.static},

		{"GET /passkeys", signedIn, 0, s.passkeysPage},
		{"POST /passkeys/{id}/rename", signedIn, csrf, s.renamePasskey},
		{"POST /passkeys/{id}/remove", signedIn, csrf | recent, s.removePasskey},

		{"GET /consent", patients, 0, s.consentPage},
		{"POST /consent/{id}/revoke", patients, csrf, s.revokeGrant},
		{"GET /access-log", patients, 0, s.accessLogPage},
		{"GET /upload", patients, 0, s.uploadPage},
		{"POST /upload", patients, csrfMultipart, s.upload},
		{"GET /ledger", patients, 0, s.ledgerPage},
		{"GET /tokens", patients, 0, s.tokensPage(patientTokens)},
		{"POST /tokens", patients, csrf | recent, s.createToken(patientTokens)},
		{"POST /tokens/{id}/revoke", patients, csrf, s.revokeToken(patientTokens)},
		{"GET /account", patients, 0, s.accountPage},
		{"POST /account/recovery-codes", patients, csrf | recent, s.newRecoveryCodes},
		{"GET /account/deleted", anyone, 0, s.accountDeletedPage},

		{"GET /patients", clinicians, 0, s.patientsPage},
		{"GET /patients/{id}", clinicians, 0, s.clinicianPatientPage},
		{"POST /patients/{id}/launch", clinicians, csrf, s.launchApp},
		{"GET /clinician/keys", clinicians, 0, s.clinicianKeysPage},
		{"POST /clinician/keys/{fingerprint}/remove", clinicians, csrf, s.removeClinicianKey},
		{"GET /clinician/export", clinicians, 0, s.clinicianExportPage},
		{"GET /clinician/tokens", clinicians, 0, s.tokensPage(clinicianTokens)},
		{"POST /clinician/tokens", clinicians, csrf | recent, s.createToken(clinicianTokens)},
		{"POST /clinician/tokens/{id}/revoke", clinicians, csrf, s.revokeToken(clinicianTokens)},

		{"POST /webauthn/enrol/begin", anyone, limited | jsonAPI, s.enrolBegin},
		{"POST /webauthn/enrol/finish", anyone, limited | jsonAPI, s.enrolFinish},
		{"POST /webauthn/signin/begin", anyone, limited | jsonAPI, s.signinBegin},
		{"POST /webauthn/signin/finish", anyone, limited | jsonAPI, s.signinFinish},
		{"POST /webauthn/passkeys/begin", signedIn, jsonAPI | csrf | recent, s.addPasskeyBegin},
		{"POST /webauthn/passkeys/finish", signedIn, jsonAPI | csrf | recent, s.addPasskeyFinish},
		{"POST /webauthn/grant/begin", patients, jsonAPI | csrf, s.grantBegin},
		{"POST /webauthn/grant/finish", patients, jsonAPI | csrf, s.grantFinish},
		{"POST /webauthn/account/delete/begin", patients, jsonAPI | csrf, s.deleteBegin},
		{"POST /webauthn/account/delete/finish", patients, jsonAPI | csrf, s.deleteFinish},
		{"POST /webauthn/clinician/keys/begin", clinicians, jsonAPI | csrf, s.keyBegin},
		{"POST /webauthn/clinician/keys/finish", clinicians, jsonAPI | csrf, s.keyFinish},

		{"GET /oauth/authorize", maybe, 0, s.authorize},
		{"POST /oauth/authorize/allow", signedIn, csrf, s.authorizeAllow},
		{"POST /oauth/authorize/deny", signedIn, csrf, s.authorizeDeny},
		{"POST /webauthn/oauth/begin", patients, jsonAPI | csrf, s.appGrantBegin},
		{"POST /webauthn/oauth/finish", patients, jsonAPI | csrf, s.appGrantFinish},
		{"POST /consent/apps/{id}/revoke", patients, csrf, s.revokeAppGrant},
		{"GET /apps", signedIn, 0, s.appsPage},
		{"POST /apps/{key}/remove", signedIn, csrf, s.removeApp},

		{"/", anyone, 0, s.notFound},
	}
}

// routes registers the route table.
func (s *Server) routes() {
	m := http.NewServeMux()
	for _, rt := range s.routeTable() {
		m.Handle(rt.pattern, s.serve(rt))
	}
	s.mux = m
}

// serve is the one adapter between a route and net/http: it runs the
// route's guards and its handler, and answers any error either returns
// (respond, errors.go).
func (s *Server) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{ResponseWriter: w}
		r = upload.TrackBody(r) // respond closes after a refusal that left the body unread
		gr, sess, err := s.guard(rw, r, rt)
		if err == nil && gr == nil {
			return // answered by the guard
		}
		if gr != nil {
			r = gr
		}
		if err == nil {
			var cur session
			if sess != nil {
				cur = *sess
			}
			err = rt.h(rw, r, cur)
		}
		if err != nil {
			s.respond(rw, r, rt, sess, err)
		}
	})
}

// guard runs a route's guards. It returns the request the handler gets
// (a guard may have read part of it), or nil when it has answered the
// request itself (a signed-out page request, sent to /signin), and the
// session when there is one.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, rt route) (*http.Request, *session, error) {
	if rt.guards&limited != 0 {
		ok, err := s.limiter.Take(r.Context(), s.clientAddr(r))
		if err != nil {
			return r, nil, unavailable("Try again shortly", "The vault could not check this request just now. Try again in a moment.", fmt.Errorf("sign-in rate limit: %w", err))
		}
		if !ok {
			s.signInFailed("rate_limited")
			s.log.Warn("web rate limit", "route", rt.pattern, "addr", s.clientAddr(r))
			w.Header().Set("Retry-After", "60")
			return r, nil, errRateLimit
		}
	}
	if rt.guards&jsonAPI != 0 {
		if !s.sameOrigin(r, true) {
			return r, nil, errBadOrigin
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return r, nil, errBadCType
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
	}
	if rt.guards&origin != 0 && !s.sameOrigin(r, true) {
		return r, nil, errBadOrigin
	}
	if rt.who == anyone {
		return r, nil, nil
	}
	sess, err := s.session(r)
	switch {
	case err == nil:
	case rt.who == maybe:
		if !errors.Is(err, errNoSession) {
			s.log.Error("web session lookup", "route", rt.pattern, "cause", err.Error())
		}
		return r, nil, nil
	case !errors.Is(err, errNoSession):
		// The session may well be live: keep the cookie.
		return r, nil, errSessionDown.because(err)
	default:
		if cookieValue(r, SessionCookie) != "" {
			s.clearCookie(w, SessionCookie)
		}
		if r.Method == http.MethodGet && rt.guards&jsonAPI == 0 {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return nil, nil, nil
		}
		return r, nil, errSignedOut
	}
	if rt.guards&(csrf|csrfMultipart) != 0 {
		check := s.validCSRF
		if rt.guards&csrfMultipart != 0 {
			check = s.multipartCSRF
		}
		ok := s.sameOrigin(r, false)
		if ok {
			r, ok = check(w, r, sess)
		}
		if !ok {
			s.log.Warn("web csrf refused", "route", rt.pattern, "user", sess.UserID)
			return r, &sess, errCSRF
		}
	}
	if want := roleOf(rt.who); want != "" && sess.Role != want {
		if rt.guards&jsonAPI != 0 {
			return r, &sess, refuse(http.StatusNotFound, "not_found", "Page not found", "Only a "+want+" can do this.")
		}
		return r, &sess, errNotFound
	}
	if rt.guards&recent != 0 && s.now().Sub(sess.Created) > RecentSignIn {
		return r, &sess, errNotRecent
	}
	return r, &sess, nil
}

// roleOf is the role an access level asks for, if any.
func roleOf(a access) string {
	switch a {
	case patients:
		return vault.RolePatient
	case clinicians:
		return vault.RoleClinician
	}
	return ""
}
