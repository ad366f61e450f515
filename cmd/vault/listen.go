package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/web"
)

// serve's listeners and their deadlines. Every listener (public, metrics,
// admin socket) bounds how long a connection may take to send its request
// headers and how long it may sit idle between requests, so connections
// that trickle or say nothing are closed rather than piling up. Routes that
// take large uploads (POST /api/v1/imports, the web upload, the admin
// import) lengthen their own read deadline with http.ResponseController.
const (
	// defaultReadHeaderTimeout is --read-header-timeout's default.
	defaultReadHeaderTimeout = 10 * time.Second
	// publicReadTimeout bounds reading a whole request on the public
	// listener: a 16 MiB batch on a slow uplink, not forever.
	publicReadTimeout = 2 * time.Minute
	// defaultIdleTimeout is --idle-timeout's default.
	defaultIdleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds a request's headers on every listener.
	maxHeaderBytes = 64 << 10
	// metricsTimeout bounds a whole scrape: reading the request and
	// writing the answer.
	metricsTimeout = 30 * time.Second
	// defaultMetricsAddr is --metrics-addr's default: loopback, and not
	// 9090, which Prometheus itself takes on the same host.
	defaultMetricsAddr = "127.0.0.1:9464"
)

// listenFlags are serve's listener settings.
type listenFlags struct {
	metricsAddr       string
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
}

func (f *listenFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.metricsAddr, "metrics-addr", defaultMetricsAddr, "serve Prometheus /metrics on this HOST:PORT (keep it off the public network); off turns it off")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", defaultReadHeaderTimeout, "how long a connection may take to send a request's headers, on every listener")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", defaultIdleTimeout, "how long a kept-alive connection may wait for its next request, on every listener")
}

// metricsOff reports whether the metrics listener is turned off.
func (f *listenFlags) metricsOff() bool { return f.metricsAddr == "" || f.metricsAddr == "off" }

// check refuses bad listener settings.
func (f *listenFlags) check(addr string) error {
	var errs []error
	if !f.metricsOff() {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			errs = append(errs, errors.New("--metrics-addr must be HOST:PORT, such as 127.0.0.1:9464, or off"))
		} else if _, port, _ := net.SplitHostPort(addr); f.metricsAddr == addr && port != "0" {
			errs = append(errs, errors.New("--metrics-addr must differ from --addr: the metrics have their own listener"))
		}
	}
	if f.readHeaderTimeout <= 0 {
		errs = append(errs, errors.New("--read-header-timeout must be positive"))
	}
	if f.idleTimeout <= 0 {
		errs = append(errs, errors.New("--idle-timeout must be positive"))
	}
	return errors.Join(errs...)
}

// publicHandler is the public listener's handler: the API and health on
// echo, every other path the web UI, and around all of it the security
// headers, so that even what no handler of ours writes (ServeMux's
// redirects for // or /api) carries them. /metrics is not here: it is the
// web UI's 404.
func publicHandler(srv *api.Server, ws *web.Server, oauth, fhir, jhe, careReport http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", srv.Echo())
	mux.Handle("/healthz", srv.Echo())
	// The OAuth 2 / OpenID Connect / SMART provider: issuer BASE/fhir,
	// its endpoints under /fhir/auth/ and /fhir/.well-known/.
	mux.Handle("/fhir/auth/", srv.ObserveWeb(oauth))
	mux.Handle("/fhir/.well-known/", srv.ObserveWeb(oauth))
	// The FHIR R4 API (package fhir): every other path under the base.
	mux.Handle("/fhir/", srv.ObserveWeb(fhir))
	// The JupyterHealth Exchange–compatible read API (package jhe):
	// JHE_URL is BASE/jhe.
	mux.Handle("/jhe/", srv.ObserveWeb(jhe))
	// The care-team report, a SMART app the vault serves (carereport).
	mux.Handle("/apps/care-report/", srv.ObserveWeb(careReport))
	mux.Handle("/", srv.ObserveWeb(ws.Handler()))
	return ws.SecureDefaults(mux)
}

// publicServer serves the public listener.
func publicServer(h http.Handler, lf *listenFlags, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lf.readHeaderTimeout,
		ReadTimeout:       publicReadTimeout,
		IdleTimeout:       lf.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// adminServer serves the admin socket. It has no whole-request read
// timeout: only its owner can connect (the socket is 0600), and net/http
// cancels a request's context when that timeout passes, which would cut
// short a long backup or key rotation.
func adminServer(h http.Handler, lf *listenFlags, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lf.readHeaderTimeout,
		IdleTimeout:       lf.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// metricsServer listens on --metrics-addr and serves /metrics there, and
// nothing else; nil when it is off.
func metricsServer(srv *api.Server, lf *listenFlags, log *slog.Logger) (*http.Server, net.Listener, error) {
	if lf.metricsOff() {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", lf.metricsAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listener on %s: %v (set --metrics-addr to a free address, or off)", lf.metricsAddr, err)
	}
	if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		log.Warn("the metrics listener is not on loopback; keep it off the public network", "metrics_addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.Metrics())
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: lf.readHeaderTimeout,
		ReadTimeout:       metricsTimeout,
		WriteTimeout:      metricsTimeout,
		IdleTimeout:       lf.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, ln, nil
}

// listenSettings reads the listener settings back from a parsed flag set.
func listenSettings(fs *flag.FlagSet) *listenFlags {
	return &listenFlags{
		metricsAddr:       fs.Lookup("metrics-addr").Value.String(),
		readHeaderTimeout: fs.Lookup("read-header-timeout").Value.(flag.Getter).Get().(time.Duration),
		idleTimeout:       fs.Lookup("idle-timeout").Value.(flag.Getter).Get().(time.Duration),
	}
}
