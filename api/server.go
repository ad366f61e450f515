// Package api is the vault's HTTP JSON API, on echo. Every route is
// registered in routes.go; each handler lives in its own file and returns an
// error, which the one error handler (errors.go) turns into a stable
// {code, message} body while the cause goes only to the log.
package api

import (
	"cmp"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/internal/upload"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits. They are documented in docs/api.md.
const (
	DefaultMaxBodyBytes          = 16 << 20 // 16 MiB per request
	DefaultMaxBatch              = 10000    // points per ingest request
	DefaultAuthFailuresPerMinute = 20       // failed token checks per client address
	// DefaultMaxConcurrentIngest bounds the ingest requests validating
	// and sealing at once, over all patients; a body is read whole before
	// it takes one, so a slow client never holds one, and it is given back
	// before the batch waits for the store's commit.
	DefaultMaxConcurrentIngest = 8
	// maxIngestPerPatient bounds one patient's ingest requests in flight
	// (reading their bodies or storing); more wait for one of these, so a
	// patient's devices queue behind each other, never behind another
	// patient's. It also bounds the bodies held in memory per patient.
	maxIngestPerPatient = 4
	// ingestReadTimeout bounds reading an ingest body whatever its rate,
	// as the public listener's read timeout does an ordinary request.
	ingestReadTimeout = 2 * time.Minute
)

// Config configures a Server.
type Config struct {
	Vault    *vault.Vault
	Ledger   *consent.Ledger
	Logger   *slog.Logger
	Registry *prometheus.Registry // metrics are registered here; nil makes one

	MaxBodyBytes          int64
	MaxBatch              int
	AuthFailuresPerMinute int
	MaxConcurrentIngest   int
	// MinUploadRate (bytes a second) and UploadGrace are the minimum
	// rate a request body must arrive at, averaged after the grace period,
	// on POST /api/v1/readings and /api/v1/imports (upload.Rate; 0 means
	// upload.DefaultMinBytesPerSecond and upload.DefaultGrace).
	MinUploadRate int64
	UploadGrace   time.Duration
	// KeyActivationDelay is how long a clinician key added with an API
	// token waits before it can receive exports. Negative means none;
	// zero means DefaultKeyActivationDelay.
	KeyActivationDelay time.Duration

	// Importers are the formats POST /api/v1/imports takes; nil turns
	// imports off.
	Importers Importers
	// MaxImportBytes caps an import's upload (DefaultMaxImportBytes when 0).
	MaxImportBytes int64
	// Store feeds the database size and last-backup gauges; nil leaves
	// them out.
	Store StoreInfo
	// SpoolDir holds uploads, age-encrypted to a key only in memory, while
	// they import (os.TempDir() when empty).
	SpoolDir string
	// RequireSignedGrants refuses exports that no grant signed with the
	// patient's passkey covers (403 unsigned_grant): a grant made with an
	// API token then covers nothing (--require-signed-grants).
	RequireSignedGrants bool
	// OAuth checks OAuth access tokens on the clinician's patient list and
	// the export (the OAuth provider); nil accepts none.
	OAuth OAuthTokens
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (--trusted-proxies); none means the client address is the
	// TCP peer.
	TrustedProxies []netip.Prefix
	// ExportsPerMinute and LedgerWritesPerMinute are the per-token quotas
	// (DefaultExportsPerMinute, DefaultLedgerWritesPerMinute when 0).
	ExportsPerMinute, LedgerWritesPerMinute int

	// ExportBurstPerGrant and ExportIntervalPerGrant limit exports per
	// grant (exportlimit.go); zero means the defaults.
	ExportBurstPerGrant    int
	ExportIntervalPerGrant time.Duration
	// ExportStallTimeout drops an export whose client has read nothing
	// for this long (DefaultExportStallTimeout when 0; stream.go).
	ExportStallTimeout time.Duration
}

// DefaultKeyActivationDelay is the wait of a key added with an API token.
const DefaultKeyActivationDelay = 24 * time.Hour

// Server serves the API.
type Server struct {
	vault   *vault.Vault
	ledger  *consent.Ledger
	log     *slog.Logger
	echo    *echo.Echo
	metrics *metrics
	// failures bounds failed authentications per client address; only a
	// failed check is charged (requireToken).
	failures *ratelimit.Limiter
	// exportQuota and writeQuota are the per-token and per-user quotas
	// on ledger appends (quota.go).
	exportQuota, writeQuota ledgerQuota

	registry *prometheus.Registry

	maxBody     int64
	maxBatch    int
	ingestSlots chan struct{} // the CPU phase (parse, validate, seal), over all patients
	ingestPer   *upload.PerKey
	keyDelay    time.Duration
	uploadRate  upload.Rate

	importers   Importers
	importSlots chan struct{} // the parse and store phase, over all patients
	importPer   *upload.PerKey
	maxImport   int64
	spoolDir    string

	requireSigned bool
	oauth         OAuthTokens

	exportLimit *exportLimiter // exports per grant
	// exportBufs keeps the buffers exports gather their data lines in,
	// cleared between exports (export.Pool).
	exportBufs export.Pool
	// exportStall is Config.ExportStallTimeout (stream.go).
	exportStall time.Duration
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.AuthFailuresPerMinute <= 0 {
		cfg.AuthFailuresPerMinute = DefaultAuthFailuresPerMinute
	}
	if cfg.MaxConcurrentIngest <= 0 {
		cfg.MaxConcurrentIngest = DefaultMaxConcurrentIngest
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = DefaultMaxImportBytes
	}
	if cfg.ExportsPerMinute <= 0 {
		cfg.ExportsPerMinute = DefaultExportsPerMinute
	}
	if cfg.LedgerWritesPerMinute <= 0 {
		cfg.LedgerWritesPerMinute = DefaultLedgerWritesPerMinute
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	switch {
	case cfg.KeyActivationDelay == 0:
		cfg.KeyActivationDelay = DefaultKeyActivationDelay
	case cfg.KeyActivationDelay < 0:
		cfg.KeyActivationDelay = 0
	}
	s := &Server{
		vault:    cfg.Vault,
		ledger:   cfg.Ledger,
		log:      cfg.Logger,
		metrics:  newMetrics(cfg.Registry),
		failures: ratelimit.New(cfg.AuthFailuresPerMinute, nil),

		exportQuota: newLedgerQuota(cfg.ExportsPerMinute),
		writeQuota:  newLedgerQuota(cfg.LedgerWritesPerMinute),
		registry:    cfg.Registry,
		maxBody:     cfg.MaxBodyBytes,
		maxBatch:    cfg.MaxBatch,

		ingestSlots: make(chan struct{}, cfg.MaxConcurrentIngest),
		ingestPer:   upload.NewPerKey(maxIngestPerPatient),
		keyDelay:    cfg.KeyActivationDelay,
		uploadRate:  upload.Rate{MinBytesPerSecond: cfg.MinUploadRate, Grace: cfg.UploadGrace}.WithDefaults(),

		importers:   cfg.Importers,
		importSlots: make(chan struct{}, maxConcurrentImports),
		importPer:   upload.NewPerKey(maxImportsPerPatient),
		maxImport:   cfg.MaxImportBytes,
		spoolDir:    cfg.SpoolDir,

		requireSigned: cfg.RequireSignedGrants,
		oauth:         cfg.OAuth,

		exportLimit: newExportLimiter(cfg.ExportBurstPerGrant, cfg.ExportIntervalPerGrant),
		exportStall: cmp.Or(cfg.ExportStallTimeout, DefaultExportStallTimeout),
	}
	s.registerGauges(cfg.Registry, cfg.Store)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	// The client address is the TCP peer, or what a trusted proxy says it
	// saw: nobody else can dodge the failure limit by sending the header.
	e.IPExtractor = ratelimit.ClientIP(cfg.TrustedProxies)
	e.Use(trackBody)
	e.Use(s.observe)
	e.Use(noStore)
	s.routes(e)
	s.echo = e
	return s
}

// Echo returns the underlying echo instance (an http.Handler).
func (s *Server) Echo() *echo.Echo { return s.echo }

// trackBody notes whether the request's body is read to its end, so that
// the error handler can close the connection after a refusal that left it
// unread (upload.CloseIfUnread).
func trackBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.SetRequest(upload.TrackBody(c.Request()))
		return next(c)
	}
}

// observe logs each request (never its query, body or headers) and records
// its latency.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		st := c.Response().Status
		d := time.Since(start)
		s.metrics.latency.WithLabelValues(c.Request().Method, route, statusClass(st)).Observe(d.Seconds())
		s.log.Debug("request", "method", c.Request().Method, "route", route, "status", st, "bytes", c.Response().Size, "ms", d.Milliseconds())
		return nil
	}
}

// ObserveWeb wraps the web UI's handler so its pages land in the same
// latency histogram as the API, under the route "web" (a page's path may
// hold a secret, such as an invite token, so it is not a label).
func (s *Server) ObserveWeb(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		s.metrics.latency.WithLabelValues(r.Method, "web", statusClass(sw.status)).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing) through the wrapper.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func statusClass(st int) string {
	return string(rune('0'+st/100)) + "xx"
}
