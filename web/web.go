// Package web is the vault's browser interface: server-rendered pages
// (html/template, every asset embedded) for patients and clinicians, with
// passkey enrolment and sign-in (WebAuthn, github.com/go-webauthn/webauthn).
//
// The handler serves everything but the JSON API: the pages, "/static/…"
// and the JSON halves of the passkey ceremonies under "/webauthn/…".
// cmd/vault mounts it beside the API (/api/, /healthz, /metrics). Every
// route is one row of the table in routes.go, with who may use it and the
// guards it passes first (rate limit, Origin, session, CSRF token, role,
// recent sign-in). Every handler returns an error, which one adapter
// (errors.go) logs and answers: a *publicError with its public message, anything
// else as a generic 500, its text only in the log. docs/web.md describes
// the pages, sessions, CSRF defence, CSP, cookies, rate limits, error codes
// and the sign-count clone policy.
//
// Invites, passkey records, recovery codes, sessions and WebAuthn
// ceremonies live in a Store (package webstore; store/boltstore keeps
// them in the vault's file). Web seals every value under the master keyset
// with associated data naming its row; the store sees hashed ids, user
// ids, times and sealed bytes. Sessions and ceremonies so survive a
// restart, and a later replica could finish a ceremony another began.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
)

// Defaults and limits. docs/web.md lists them.
const (
	DefaultInviteTTL     = 72 * time.Hour
	MaxInviteTTL         = 30 * 24 * time.Hour
	DefaultIdleTimeout   = 30 * time.Minute
	DefaultAbsTimeout    = 12 * time.Hour
	DefaultAuthPerMinute = 30 // sign-in and enrolment requests per client address
	// CeremonyTimeout is how long an enrolment, a passkey being added, or
	// a step-up (grant, key confirmation, account deletion) may take.
	CeremonyTimeout = 5 * time.Minute
	// SignInTimeout is how long a passkey sign-in's sealed challenge is
	// accepted; its hash is kept once answered for that long plus
	// spentChallengeGrace.
	SignInTimeout = 2 * time.Minute
	// spentChallengeGrace keeps an answered challenge's hash past the
	// challenge's own expiry, so a replay that was let in just before the
	// expiry still finds it when it comes to spend.
	spentChallengeGrace = time.Minute
	MaxSessions         = 100000
	// MaxCeremonies bounds the ceremonies in flight; only signed-in users
	// and invitees can begin one (a sign-in stores nothing).
	MaxCeremonies = 10000
	// MaxSpentChallenges bounds the answered sign-in challenges kept
	// until they expire: each is a successful passkey sign-in in the last
	// SignInTimeout. A full table refuses sign-in (503 busy) rather than
	// forget one and let it be answered again.
	MaxSpentChallenges = MaxSessions
	MaxPasskeysPerUser = 20
	MaxLabelLength     = 60
	maxJSONBody        = 64 << 10
	maxFormBody        = 8 << 10
	// DefaultMaxUploadBytes caps an upload, as the API caps an import: an
	// Apple Health export.zip of several years.
	DefaultMaxUploadBytes = 2 << 30
	// maxConcurrentUploads bounds the uploads importing at once, over all
	// patients: each parses its file twice and holds one transaction's
	// readings. A file is spooled whole before it waits for one, so a
	// slow upload never holds one.
	maxConcurrentUploads = 2
	// maxUploadsPerPatient bounds one patient's uploads in flight
	// (sending or importing); another is refused with 429 busy.
	maxUploadsPerPatient = 1
	// uploadReadTimeout bounds an upload's whole body, whatever its rate
	// (which must also stay above the minimum upload rate).
	uploadReadTimeout = 30 * time.Minute
)

// Config configures a Server. Vault, Ledger, Store and BaseURL are
// required.
type Config struct {
	Vault  *vault.Vault
	Ledger *consent.Ledger
	Store  Store
	// BaseURL is the public URL of the vault. Its host is the WebAuthn RP
	// ID and its origin the only origin ceremonies and state-changing
	// requests are accepted from. An IP address is refused (browsers refuse
	// it as an RP ID), and so is plain http anywhere but localhost
	// (WebAuthn and Secure cookies need a secure context).
	BaseURL *url.URL
	Logger  *slog.Logger
	// OnSignInFailure, when set, is told of each refused sign-in, by how it
	// was tried: "passkey", "recovery_code", or "rate_limited"; a sign-in
	// finish without a live sealed challenge (none, forged, expired or
	// replayed) is "bad_challenge"; and a ceremony (of any kind) refused
	// because its table is full is "ceremony_full" (for the metrics an
	// admin alerts on).
	OnSignInFailure func(method string)

	// Optional knobs; zero means the default.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// AuthPerMinute bounds requests to the sign-in and enrolment endpoints
	// per client address (a token bucket refilled at this rate a minute).
	AuthPerMinute int
	// AttemptLimiter, when set, is that bound instead of one in this
	// process's memory: on PostgreSQL, a limit every replica shares
	// (store/postgres.Limiter), so N replicas allow an address what one
	// would. AuthPerMinute is then the limiter's own business.
	AttemptLimiter AttemptLimiter
	// MaxCeremonies bounds the enrolments, passkey additions and step-ups
	// in flight (MaxCeremonies when 0).
	MaxCeremonies int
	// Now is the clock, for tests.
	Now func() time.Time

	// Importers are the file formats the upload page takes
	// (ingest/formats); nil turns the upload page off.
	Importers importer.Registry
	// SpoolDir holds uploads, age-encrypted to a key only in memory, while
	// they import (os.TempDir() when empty).
	SpoolDir string
	// MaxUploadBytes caps an upload (DefaultMaxUploadBytes when 0).
	MaxUploadBytes int64
	// MinUploadRate (bytes a second) and UploadGrace are the minimum rate
	// an upload must arrive at, averaged after the grace period
	// (upload.Rate; 0 means upload.DefaultMinBytesPerSecond and
	// upload.DefaultGrace).
	MinUploadRate int64
	UploadGrace   time.Duration
	// Authorizer is the OAuth provider the /oauth/authorize pages answer
	// (oauth_authorize.go); nil turns them off (404).
	Authorizer Authorizer
	// Launcher opens registered SMART apps for a patient from the
	// clinician's pages (launch.go); nil shows no "Open in app".
	Launcher Launcher
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed for the client address the rate limits key on
	// (--trusted-proxies, as for the API); none means the TCP peer.
	TrustedProxies []netip.Prefix
	// RequireSignedGrants, as for the API (--require-signed-grants): only
	// a grant the patient signed with her passkey lets a clinician view
	// her report in the browser.
	RequireSignedGrants bool
}

// Server is the web interface.
type Server struct {
	vault  *vault.Vault
	ledger *consent.Ledger
	store  Store
	log    *slog.Logger
	now    func() time.Time

	onSignInFailure func(method string)

	base   *url.URL
	origin string // scheme://host[:port], no trailing slash
	rpID   string
	secure bool // base URL is https: send HSTS

	wa       *webauthn.WebAuthn
	sessions *sessionStore
	cers     *ceremonyStore
	// limiter bounds sign-in and enrolment requests per client address.
	// Unlike the API's failure limit it counts every request: a WebAuthn
	// ceremony costs a challenge and a signature check whether or not it
	// succeeds, and an invite link is a secret worth guessing.
	limiter AttemptLimiter
	creds   *credStore
	invites *inviteStore
	pages   *pageSet
	mux     *http.ServeMux

	// clientIP finds a request's client address (ratelimit.ClientIP).
	clientIP func(*http.Request) string

	importers   importer.Registry
	spoolDir    string
	maxUpload   int64
	uploadSlots chan struct{} // the parse and store phase, over all patients
	uploadPer   *upload.PerKey
	uploadRate  upload.Rate

	// cache holds the dashboard's daily glucose in memory only (cache.go).
	cache *pageCache

	// auth is the OAuth provider (nil: no OAuth pages); appConsents the
	// clients users let sign them in.
	auth        Authorizer
	launcher    Launcher
	appConsents *appConsentStore
	// requireSigned: only signed grants cover a clinician's view.
	requireSigned bool
	// reportLimiter bounds each clinician's patient-page views
	// (MaxReportViewsPerMinute).
	reportLimiter *ratelimit.Limiter
}

// AttemptLimiter bounds the sign-in and enrolment attempts of one client
// address (Config.AttemptLimiter). Take spends one attempt of addr's
// budget, and reports false when none is left; an error (its store
// unreachable) refuses the attempt with 503.
type AttemptLimiter interface {
	Take(ctx context.Context, addr string) (bool, error)
}

// memLimiter is the default AttemptLimiter: this process's memory.
type memLimiter struct{ l *ratelimit.Limiter }

func (m memLimiter) Take(_ context.Context, addr string) (bool, error) { return m.l.Take(addr), nil }

// checkBase validates the base URL and returns its origin and RP ID.
func checkBase(u *url.URL) (origin, rpID string, err error) {
	if u == nil {
		return "", "", errors.New("web: BaseURL is required")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", errors.New("web: BaseURL must be an http or https URL, such as http://localhost:8080")
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return "", "", fmt.Errorf("web: BaseURL host %q is an IP address; use a name (such as localhost): browsers refuse an IP address as a passkey RP ID", host)
	}
	if u.Scheme == "http" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		return "", "", fmt.Errorf("web: BaseURL %s is plain http; passkeys and Secure cookies need https anywhere but localhost (put the vault behind a TLS reverse proxy and give its https URL)", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return "", "", errors.New("web: BaseURL must not have a path; serve the vault at the root of its host")
	}
	return u.Scheme + "://" + u.Host, strings.ToLower(host), nil
}

// CheckBaseURL reports whether u can be the vault's public URL (the same
// checks as New), so a bad one is refused before anything starts.
func CheckBaseURL(u *url.URL) error {
	_, _, err := checkBase(u)
	return err
}

// New builds the web server. Invites an earlier version stored with their
// user only sealed are completed in the store (Store.Invites).
func New(cfg Config) (*Server, error) {
	if cfg.Vault == nil || cfg.Ledger == nil || cfg.Store == nil {
		return nil, errors.New("web: Vault, Ledger and Store are required")
	}
	origin, rpID, err := checkBase(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.AbsoluteTimeout <= 0 {
		cfg.AbsoluteTimeout = DefaultAbsTimeout
	}
	if cfg.AuthPerMinute <= 0 {
		cfg.AuthPerMinute = DefaultAuthPerMinute
	}
	if cfg.MaxCeremonies <= 0 {
		cfg.MaxCeremonies = MaxCeremonies
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         "JupyterHealth Vault",
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("web: webauthn: %v", err)
	}
	s := &Server{
		vault: cfg.Vault, ledger: cfg.Ledger, store: cfg.Store, log: cfg.Logger, now: cfg.Now,
		base: cfg.BaseURL, origin: origin, rpID: rpID, secure: cfg.BaseURL.Scheme == "https",
		wa:      wa,
		limiter: cfg.AttemptLimiter,

		clientIP: ratelimit.ClientIP(cfg.TrustedProxies),

		onSignInFailure: cfg.OnSignInFailure,

		importers: cfg.Importers, spoolDir: cfg.SpoolDir, maxUpload: cfg.MaxUploadBytes,
		uploadSlots: make(chan struct{}, maxConcurrentUploads),
		uploadPer:   upload.NewPerKey(maxUploadsPerPatient),
		uploadRate:  upload.Rate{MinBytesPerSecond: cfg.MinUploadRate, Grace: cfg.UploadGrace, Max: uploadReadTimeout}.WithDefaults(),

		requireSigned: cfg.RequireSignedGrants,
		reportLimiter: ratelimit.New(MaxReportViewsPerMinute, cfg.Now),
	}
	if s.limiter == nil {
		s.limiter = memLimiter{ratelimit.New(cfg.AuthPerMinute, cfg.Now)}
	}
	sealer := cfg.Vault.Master()
	s.sessions = &sessionStore{store: cfg.Store, sealer: sealer, idle: cfg.IdleTimeout, abs: cfg.AbsoluteTimeout, now: cfg.Now}
	s.cers = &ceremonyStore{store: cfg.Store, sealer: sealer, now: cfg.Now, max: cfg.MaxCeremonies, full: func(what string) {
		s.log.Warn("web ceremony refused: too many in flight", "kind", what)
		s.signInFailed("ceremony_full")
	}}
	s.creds = &credStore{store: cfg.Store, sealer: sealer}
	s.invites = &inviteStore{store: cfg.Store, sealer: sealer}
	s.auth = cfg.Authorizer
	s.launcher = cfg.Launcher
	s.appConsents = &appConsentStore{store: cfg.Store, sealer: sealer, now: cfg.Now}
	if err := s.invites.adoptOld(context.Background()); err != nil {
		return nil, fmt.Errorf("web: invites: %v", err)
	}
	if s.pages, err = loadPages(); err != nil {
		return nil, fmt.Errorf("web: templates: %v", err)
	}
	s.cache = newPageCache(cfg.Vault, cfg.Now)
	s.routes()
	return s, nil
}

// Handler serves the web interface. Every response carries the security
// headers (CSP and the rest), whatever its status.
func (s *Server) Handler() http.Handler { return s.secureHeaders(s.mux) }

// csp is the Content-Security-Policy of every web UI response: no inline script
// or style, nothing from another origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		setBaseline(h, r.TLS != nil || s.secure) // headers.go
		h.Set("Content-Security-Policy", csp)
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddr is the address rate limits apply to, found as the API finds
// it: the TCP peer, or what a trusted proxy (Config.TrustedProxies) says
// it saw. IPv6 clients are grouped by /64.
func (s *Server) clientAddr(r *http.Request) string {
	return ratelimit.ClientKey(s.clientIP(r))
}

// sameOrigin reports whether a state-changing request comes from the
// vault's own pages, by the Fetch Metadata and Origin headers browsers send.
// A request without either (an old browser, a script) is left to the CSRF
// token; requireOrigin demands the Origin header.
func (s *Server) sameOrigin(r *http.Request, requireOrigin bool) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return !requireOrigin
	}
	return o == s.origin
}

// signInFailed reports a refused sign-in to Config.OnSignInFailure.
func (s *Server) signInFailed(method string) {
	if s.onSignInFailure != nil {
		s.onSignInFailure(method)
	}
}
