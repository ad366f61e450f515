// Package carereport is the care-team CGM report as a SMART on FHIR app,
// served by the vault at /apps/care-report/ and registered with the
// vault's OAuth provider as a confidential client (docs/smart-app.md).
//
// It is an app like any other SMART app: it knows the vault only by its
// FHIR base (the issuer), signs its user in with OAuth 2 (code flow with
// PKCE S256 and its client secret), and reads the patient's glucose
// through the FHIR API with the access token it got, so every read is
// decided by the consent ledger and shows in the patient's access log.
// It trusts one issuer only, the vault that serves it: a launch naming
// another iss is refused, so its secret and its tokens never go anywhere
// else.
//
// Two launches:
//
//   - EHR launch: the clinician's "Open in app" in the vault's web UI
//     sends the browser to launch?iss=…&launch=…; the app asks for
//     launch openid fhirUser user/Patient.rs and blood glucose
//     (user/Observation.rs?category=…|laboratory); the token response
//     names the patient in context;
//   - standalone launch: a patient opens the app herself (launch with no
//     launch id); it asks for launch/patient openid fhirUser
//     patient/Patient.rs and patient/Observation.rs for blood glucose, and
//     she allows it with her passkey on the vault's consent page.
//
// The app is server-side: the browser gets HTML and SVG, no script. The
// code exchange, which needs the secret, happens here, and so do the FHIR
// reads and the drawing: the report is the vault's own AGP (package stats
// computes it, package report draws it), built from the Observations the
// FHIR API returned.
//
// The app keeps nothing in memory between requests. A pending launch
// (state, PKCE verifier) and a signed-in session (the access token, the
// patient) travel in the browser's cookies, sealed with the vault's
// master keyset (an AEAD: the browser holds ciphertext only, and a
// changed, moved or forged cookie does not open). Every replica on one
// database holds the same keyset, so a launch begun on one replica comes
// back to any other, and the report is served by any. A pending launch is
// bound to its state (the callback's state must be the one sealed in the
// cookie) and to the app's registration (the client id is the associated
// data, so a new base URL voids every cookie); its code is single-use at
// the vault, so an answer replayed with the cookie fails at the exchange.
// A session lasts as long as its access token (the app asks no
// offline_access); there is no sign-out but the cookie's end and the
// token's (revoking the clinician's grant or the app ends it at once).
package carereport

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Path is where the vault serves the app.
const Path = "/apps/care-report/"

// Name is the app's client name, as the vault's consent pages show it.
const Name = "Care team CGM report"

// Limits of the app.
const (
	// PendingTTL is how long a launch may take to come back with a code.
	PendingTTL = 10 * time.Minute
	// MaxCookie bounds a sealed cookie's value (browsers keep 4096 bytes
	// a cookie); a token too long for it is refused (502) rather than cut.
	MaxCookie = 3800
	// ReportDays is the AGP's period: the consensus report's 14 days.
	ReportDays = 14
	// MaxPages and MaxReadings bound one report's reads.
	MaxPages    = 50
	MaxReadings = 50000
	pageSize    = 1000
)

// Cookie names; both are scoped to Path.
const (
	launchCookie  = "care_report_launch"
	sessionCookie = "care_report_session"
)

// Scopes the app asks for.
const glucoseCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

var (
	ehrScopes        = []string{"launch", "openid", "fhirUser", "user/Patient.rs", "user/Observation.rs?category=" + glucoseCategory}
	standaloneScopes = []string{"launch/patient", "openid", "fhirUser", "patient/Patient.rs", "patient/Observation.rs?category=" + glucoseCategory}
)

// RedirectURI and LaunchURI are the app's URLs under the vault's base
// URL, as it registers them.
func RedirectURI(base *url.URL) string {
	return strings.TrimSuffix(base.String(), "/") + Path + "callback"
}
func LaunchURI(base *url.URL) string { return strings.TrimSuffix(base.String(), "/") + Path + "launch" }

// Sealer seals and opens the app's cookies: the master keyset's AEAD
// (keys.Master), the same on every replica. The associated data names
// what is sealed.
type Sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
}

// Config is what New needs.
type Config struct {
	// BaseURL is the vault's public base URL; the app is at BaseURL/apps/care-report/.
	BaseURL *url.URL
	// Issuer is the one FHIR base the app reads from (BaseURL/fhir).
	Issuer string
	// ClientID and ClientSecret are the app's registration.
	ClientID, ClientSecret string
	// Sealer seals the launch and session cookies; every process serving
	// the app must have the same keys (the vault's master keyset).
	Sealer Sealer
	// HTTPClient reaches the issuer (token endpoint, FHIR API); nil means
	// a client with a 30-second timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// App is the care-team report app.
type App struct {
	issuer string
	oauth  oauth2.Config
	secure bool // cookies are Secure (an https base URL)
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	pages  *template.Template
	sealer Sealer
	// launchAD and sessionAD are the cookies' associated data: what they
	// hold and the registration they belong to.
	launchAD, sessionAD []byte
}

// pendingLaunch is a launch on its way to the vault and back, as its
// sealed cookie holds it.
type pendingLaunch struct {
	State    string    `json:"state"`
	Verifier string    `json:"verifier"`
	EHR      bool      `json:"ehr,omitempty"`
	Expires  time.Time `json:"expires"`
}

// appSession is a signed-in user's: the token and the patient in
// context, as the sealed session cookie holds them.
type appSession struct {
	Token   *oauth2.Token `json:"token"`
	Patient string        `json:"patient"` // FHIR id, pt-…
	Banner  bool          `json:"banner,omitempty"`
	Scope   string        `json:"scope,omitempty"`
	Expires time.Time     `json:"expires"`
}

//go:embed templates/*.html static/*
var assets embed.FS

// New builds the app.
func New(c Config) (*App, error) {
	if c.BaseURL == nil || c.Issuer == "" || c.ClientID == "" || c.ClientSecret == "" || c.Sealer == nil {
		return nil, errors.New("carereport: BaseURL, Issuer, ClientID, ClientSecret and Sealer are required")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	pages, err := template.ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	iss := strings.TrimSuffix(c.Issuer, "/")
	return &App{
		issuer: iss,
		oauth: oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: RedirectURI(c.BaseURL),
			Endpoint: oauth2.Endpoint{AuthURL: iss + "/auth/authorize", TokenURL: iss + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}},
		secure:    c.BaseURL.Scheme == "https",
		client:    c.HTTPClient,
		log:       c.Logger,
		now:       c.Now,
		pages:     pages,
		sealer:    c.Sealer,
		launchAD:  []byte("jhvault/care-report/launch/v1|" + c.ClientID),
		sessionAD: []byte("jhvault/care-report/session/v1|" + c.ClientID),
	}, nil
}

// csp is the app's Content-Security-Policy: its own style sheet, inline
// SVG, no script at all.
const csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the app under Path.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path+"{$}", a.index)
	mux.HandleFunc("GET "+Path+"launch", a.launch)
	mux.HandleFunc("GET "+Path+"callback", a.callback)
	mux.HandleFunc("GET "+Path+"app.css", a.css)
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusNotFound, "not_found", "There is no such page in this app.")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

func (a *App) css(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("static/app.css")
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "internal", "The style sheet is missing.")
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}

// page is what the templates read.
type page struct {
	Title     string
	Error     string
	ErrorCode string
	Report    *reportView
	Start     bool // the start page: no session
}

func (a *App) render(w http.ResponseWriter, status int, p page) {
	var b strings.Builder
	if err := a.pages.ExecuteTemplate(&b, "page.html", p); err != nil {
		a.log.Error("care report page", "cause", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// fail answers with the error page: a stable code and what to do.
func (a *App) fail(w http.ResponseWriter, status int, code, msg string) {
	a.render(w, status, page{Title: "Care team CGM report", Error: msg, ErrorCode: code})
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// seal makes a cookie value of v: JSON sealed under ad, base64url.
func (a *App) seal(v any, ad []byte) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	ct, err := a.sealer.Encrypt(b, ad)
	if err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(ct)
	if len(s) > MaxCookie {
		return "", fmt.Errorf("a sealed cookie of %d bytes is over the limit of %d", len(s), MaxCookie)
	}
	return s, nil
}

// open reads a cookie value seal made with the same ad into v; false if
// it is not one (changed, forged, another registration's, or garbage).
func (a *App) open(value string, ad []byte, v any) bool {
	if value == "" || len(value) > MaxCookie {
		return false
	}
	ct, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	b, err := a.sealer.Decrypt(ct, ad)
	return err == nil && json.Unmarshal(b, v) == nil
}

func (a *App) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Path, MaxAge: maxAge, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode})
}

// launch starts a launch: an EHR launch with iss and launch, or a
// standalone one (iss alone, or nothing: the app's own vault).
func (a *App) launch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if iss := strings.TrimSuffix(q.Get("iss"), "/"); iss != "" && iss != a.issuer {
		a.fail(w, http.StatusBadRequest, "unknown_iss", "This app reads only from the vault that serves it ("+a.issuer+"); the launch named another FHIR server.")
		return
	}
	launchID := q.Get("launch")
	if len(launchID) > 256 {
		a.fail(w, http.StatusBadRequest, "bad_launch", "The launch id is too long. Open the app from the vault again.")
		return
	}
	pl := pendingLaunch{State: random(), Verifier: oauth2.GenerateVerifier(), EHR: launchID != "", Expires: a.now().Add(PendingTTL)}
	sealed, err := a.seal(pl, a.launchAD)
	if err != nil {
		a.log.Error("care report: sealing the launch cookie", "cause", err.Error())
		a.fail(w, http.StatusInternalServerError, "internal", "The app could not start the launch. Try again shortly.")
		return
	}
	scopes := standaloneScopes
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pl.Verifier), oauth2.SetAuthURLParam("aud", a.issuer)}
	if pl.EHR {
		scopes = ehrScopes
		opts = append(opts, oauth2.SetAuthURLParam("launch", launchID))
	}
	cfg := a.oauth
	cfg.Scopes = scopes
	a.setCookie(w, launchCookie, sealed, int(PendingTTL/time.Second))
	http.Redirect(w, r, cfg.AuthCodeURL(pl.State, opts...), http.StatusSeeOther)
}

// callback takes the vault's answer: the code (exchanged here, with the
// secret and the PKCE verifier) or the refusal.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st := q.Get("state")
	var pl pendingLaunch
	c, err := r.Cookie(launchCookie)
	if st == "" || err != nil || !a.open(c.Value, a.launchAD, &pl) || !a.now().Before(pl.Expires) ||
		subtle.ConstantTimeCompare([]byte(st), []byte(pl.State)) != 1 {
		a.fail(w, http.StatusBadRequest, "bad_state", "This answer does not belong to a launch made in this browser, or it came too late. Open the app again.")
		return
	}
	a.setCookie(w, launchCookie, "", -1)
	if e := q.Get("error"); e != "" {
		msg := "The vault refused the launch"
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		a.fail(w, http.StatusForbidden, "refused_"+safeCode(e), msg+".")
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, a.client)
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		a.log.Warn("care report: code exchange", "cause", exchangeCause(err))
		a.fail(w, http.StatusBadGateway, "exchange_failed", "The vault did not give this app a token. Open the app again.")
		return
	}
	patient, _ := tok.Extra("patient").(string)
	if patient == "" {
		a.fail(w, http.StatusBadRequest, "no_patient", "The vault named no patient for this launch. Open the app for a patient from your patient list.")
		return
	}
	banner, _ := tok.Extra("need_patient_banner").(bool)
	scope, _ := tok.Extra("scope").(string)
	sess := &appSession{Token: tok, Patient: patient, Banner: banner || !pl.EHR, Scope: scope, Expires: tok.Expiry}
	if sess.Expires.IsZero() {
		sess.Expires = a.now().Add(time.Hour)
	}
	sealed, err := a.seal(sess, a.sessionAD)
	if err != nil {
		a.log.Warn("care report: sealing the session cookie", "cause", err.Error())
		a.fail(w, http.StatusBadGateway, "session_failed", "The app could not keep the vault's answer for this browser. Open the app again.")
		return
	}
	a.setCookie(w, sessionCookie, sealed, int(sess.Expires.Sub(a.now())/time.Second)+1)
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

// exchangeCause is a token endpoint's refusal without anything secret.
func exchangeCause(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return "token endpoint: " + re.ErrorCode
	}
	return "token endpoint unreachable"
}

// safeCode keeps an OAuth error code's letters and underscores.
func safeCode(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '_' || (c >= 'a' && c <= 'z') {
			b.WriteRune(c)
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// session is the request's live session, if any.
func (a *App) session(r *http.Request) *appSession {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	var s appSession
	if !a.open(c.Value, a.sessionAD, &s) || s.Token == nil || !a.now().Before(s.Expires) {
		return nil
	}
	return &s
}

// index shows the report for the session's patient, or the start page.
func (a *App) index(w http.ResponseWriter, r *http.Request) {
	s := a.session(r)
	if s == nil {
		a.render(w, http.StatusOK, page{Title: "Care team CGM report", Start: true})
		return
	}
	rv, err := a.buildReport(r.Context(), s)
	var fe *fhirError
	switch {
	case errors.As(err, &fe):
		a.fail(w, fe.status(), fe.code(), fe.message())
		return
	case err != nil:
		a.log.Warn("care report: reading the FHIR API", "cause", err.Error())
		a.fail(w, http.StatusBadGateway, "fhir_unavailable", "The vault's FHIR API could not be read just now. Reload the page to try again.")
		return
	}
	a.render(w, http.StatusOK, page{Title: "CGM report: " + rv.Name, Report: rv})
}
