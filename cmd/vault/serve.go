package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/internal/demo"
	"github.com/jupyterhealth/vault/internal/ratelimit"
	"github.com/jupyterhealth/vault/jhe"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web"
)

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error")
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// checkBaseURL refuses a base URL the web UI can't use: an IP address
// (browsers refuse one as a passkey RP ID), plain http anywhere but
// localhost (passkeys and Secure cookies need https), or a path.
func checkBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--base-url must be an http or https URL, such as http://localhost:8080")
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, fmt.Errorf("--base-url host %q is an IP address; use a name (such as localhost), because browsers refuse an IP address as a passkey RP ID", u.Hostname())
	}
	if err := web.CheckBaseURL(u); err != nil {
		return nil, fmt.Errorf("--base-url: %s", strings.TrimPrefix(err.Error(), "web: "))
	}
	return u, nil
}

// resolveBaseURL is the vault's public URL: --base-url when given (flag or
// VAULT_BASE_URL), otherwise derived from the listen address. A loopback
// or unspecified address (127.0.0.1, ::1, localhost, 0.0.0.0, or none)
// becomes http://localhost:PORT, the origin a browser on this machine
// uses; any other address needs an explicit base URL, because the vault
// cannot know the name browsers reach it by, and every passkey is bound to
// it. Port 0 (a free port) is resolved by serve once it listens.
func resolveBaseURL(addr, baseURL string) (*url.URL, error) {
	if baseURL != "" {
		return checkBaseURL(baseURL)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--addr must be HOST:PORT, such as 127.0.0.1:8080")
	}
	ip := net.ParseIP(host)
	if host != "" && host != "localhost" && (ip == nil || !ip.IsLoopback() && !ip.IsUnspecified()) {
		return nil, fmt.Errorf("--addr %s is not a loopback address, so the vault cannot guess the URL browsers reach it by: set --base-url (or VAULT_BASE_URL) to it, such as https://vault.example.org (every passkey is bound to its host)", addr)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", port)}, nil
}

// registerServe declares serve's settings; cmdServe and cmdConfig share
// them. Each can also be set as VAULT_NAME (see config.go).
func registerServe(fs *flag.FlagSet) *serveFlags {
	sv := &serveFlags{}
	sv.store.register(fs)
	sv.listen.register(fs) // listen.go
	sv.addr = fs.String("addr", "127.0.0.1:8080", "listen address")
	sv.baseURL = fs.String("base-url", "", "public URL browsers use; its host is the passkey RP ID (default: http://localhost:PORT for a loopback --addr; required otherwise)")
	sv.demo = fs.Bool("demo", false, "seed demo patient Ada and clinician Dr. Rivera, and write DIR/demo/credentials.json")
	sv.demoDays = fs.Int("demo-days", 365, "days of synthetic history for --demo")
	sv.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	sv.keyDelay = fs.Duration("key-activation-delay", api.DefaultKeyActivationDelay, "how long a clinician key added with an API token waits before it can receive exports (0 with --demo unless set)")
	fs.Bool("require-signed-grants", false, "refuse exports not covered by a grant the patient signed with her passkey in the web UI (recommended once patients use it)")
	fs.String("tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key and an https --base-url")
	fs.String("tls-key", "", "the PEM private key of --tls-cert")
	fs.Int("exports-per-minute", api.DefaultExportsPerMinute, "per clinician token: exports a minute (the burst; one a second refills it); all of a user's tokens together get 4 times it")
	fs.Int("export-burst-per-grant", api.DefaultExportBurstPerGrant, "per grant: exports in a burst")
	fs.Duration("export-interval-per-grant", api.DefaultExportIntervalPerGrant, "per grant: one export per this interval after the burst")
	fs.Duration("oauth-access-token-ttl", time.Hour, "how long an OAuth access token lives (at most 1h); a client refreshes it with its refresh token")
	fs.String("trusted-proxies", "", "comma-separated CIDR ranges of reverse proxies whose X-Forwarded-For gives the client address rate limits key on (default: none, the TCP peer)")
	fs.Duration("scrub-interval", defaultScrubInterval, "PostgreSQL only: how often deleted patients' key, account and token rows are rewritten out of the tables' files (VACUUM FULL, which locks each table while it runs); 0 turns it off")
	fs.Bool("scrub-records", false, "PostgreSQL only: the scheduled scrub rewrites the records' table too (its cost grows with the table: see docs/scaling.md)")
	return sv
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	sv := registerServe(fs)
	// Not a setting of registerServe's: the connection string can hold a
	// password, so 'vault config' must not print it, and its variables are
	// VAULT_DATABASE_URL[_FILE] (database.go), not VAULT_DATABASE.
	database := fs.String("database", "", "PostgreSQL connection string (postgres://…) instead of bbolt in --data; better in VAULT_DATABASE_URL or VAULT_DATABASE_URL_FILE, which keep a password off the command line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkServe(fs); err != nil {
		return err
	}
	dsn, err := databaseURL(*database)
	if err != nil {
		return err
	}
	if dsn != "" {
		if err := checkDSN(dsn); err != nil {
			return err
		}
	}
	sv.store.database = dsn
	sf, addr, baseURL, demoMode, demoDays, logLevel, keyDelay := sv.store, sv.addr, sv.baseURL, sv.demo, sv.demoDays, sv.logLevel, sv.keyDelay
	requireSigned := fs.Lookup("require-signed-grants").Value.(flag.Getter).Get().(bool)
	getInt := func(name string) int { return fs.Lookup(name).Value.(flag.Getter).Get().(int) }
	exportsPerMinute, grantBurst := getInt("exports-per-minute"), getInt("export-burst-per-grant")
	grantInterval := fs.Lookup("export-interval-per-grant").Value.(flag.Getter).Get().(time.Duration)
	if exportsPerMinute < 1 || grantBurst < 1 || grantInterval <= 0 {
		return fmt.Errorf("--exports-per-minute, --export-burst-per-grant and --export-interval-per-grant must be positive")
	}
	proxies, err := ratelimit.ParsePrefixes(fs.Lookup("trusted-proxies").Value.String())
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %v", err)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	// Libraries that log through slog's default (zitadel/oidc's route
	// registration) write JSON records too, so the start line stays the one
	// line on stderr a person reads.
	slog.SetDefault(log)
	base, err := resolveBaseURL(*addr, *baseURL)
	if err != nil {
		return err
	}
	if *demoDays < 1 || *demoDays > 3660 {
		return fmt.Errorf("--demo-days must be between 1 and 3660")
	}
	if *keyDelay < 0 {
		return fmt.Errorf("--key-activation-delay must not be negative")
	}
	delaySet := os.Getenv(envName("key-activation-delay")) != ""
	fs.Visit(func(f *flag.Flag) { delaySet = delaySet || f.Name == "key-activation-delay" })
	if *demoMode && !delaySet {
		*keyDelay = 0
	}
	if *keyDelay == 0 {
		*keyDelay = -1 // api.Config: negative means no delay
	}
	start := time.Now()
	// The public listener (the API and health on echo, every other path
	// the web UI; the metrics have their own, listen.go) is bound first: a
	// port in use fails before a long demo seeding, and a free port (:0)
	// is known before the base URL derived from it is used.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %v", *addr, err)
	}
	defer ln.Close() // on an early return; Serve closes it otherwise
	if *baseURL == "" {
		host, _, _ := net.SplitHostPort(*addr)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		if base, err = resolveBaseURL(net.JoinHostPort(host, port), ""); err != nil {
			return err
		}
	}
	// Signals are caught from here on, so a SIGTERM during demo seeding
	// stops it between batches and closes the database cleanly.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	v, st, root, err := openVault(ctx, sf, openOrCreate, *demoMode, time.Second, log)
	if err != nil {
		return err
	}
	defer st.Close()
	evFrom, watch, err := eventsFrom(ctx, st)
	if err != nil {
		return err
	}
	// After eventsFrom: a keyset changed before the watch begins is read
	// here, one changed after is an event the watch sees.
	replica, err := joinReplicas(ctx, st, v, log, sf.database)
	if err != nil {
		return err
	}
	led, err := openLedger(st, v, base.Host)
	if err != nil {
		return err
	}
	if err := led.IndexError(); err != nil {
		log.Error("the consent ledger's grant index is not trusted: every access is denied until 'vault ledger rebuild'", "cause", err.Error())
	}

	if *demoMode {
		t := time.Now()
		res, err := demo.Seed(ctx, v, demo.Options{Dir: sf.data, Days: *demoDays, BaseURL: base.String(), Log: log, Ledger: led})
		if ctx.Err() != nil {
			log.Info("interrupted while seeding demo data; stopped cleanly")
			return nil
		}
		if err != nil {
			return fmt.Errorf("demo: %v", err)
		}
		log.Info("demo ready", "credentials", res.CredentialsPath, "readings_added", res.Added, "ms", time.Since(t).Milliseconds())
		// Seeding a year allocates a few hundred MB in passing; hand it back
		// now rather than when the scavenger gets round to it.
		debug.FreeOSMemory()
	}

	// Uploads being imported wait here, age-encrypted to a key that lives
	// only in this process; whatever a crash left behind is unreadable, and
	// goes now.
	spool := filepath.Join(sf.data, "spool")
	if err := os.RemoveAll(spool); err != nil {
		return err
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	importers := formats.New()
	accessTTL := fs.Lookup("oauth-access-token-ttl").Value.(flag.Getter).Get().(time.Duration)
	if accessTTL <= 0 || accessTTL > time.Hour {
		return fmt.Errorf("--oauth-access-token-ttl must be more than 0 and at most 1h")
	}
	prov, err := newOAuth(ctx, st, v, led, base, accessTTL, log)
	if err != nil {
		return fmt.Errorf("oauth: %v", err)
	}
	srv := api.New(api.Config{Vault: v, Ledger: led, Logger: log, KeyActivationDelay: *keyDelay, Importers: importers, SpoolDir: spool, Store: storeInfo(st), RequireSignedGrants: requireSigned, TrustedProxies: proxies, OAuth: prov,
		ExportsPerMinute: exportsPerMinute, ExportBurstPerGrant: grantBurst, ExportIntervalPerGrant: grantInterval})
	limiter, err := sharedAttemptLimiter(st)
	if err != nil {
		return err
	}
	ws, err := web.New(web.Config{Vault: v, Ledger: led, Store: st.Web(), AttemptLimiter: limiter, BaseURL: base, Logger: log, Importers: importers, SpoolDir: spool, OnSignInFailure: srv.CountSignInFailure, TrustedProxies: proxies, Authorizer: webAuthorizer{prov}, Launcher: webAuthorizer{prov}, RequireSignedGrants: requireSigned})
	if err != nil {
		return err
	}
	if *demoMode {
		if err := demoInvites(ctx, ws, sf.data); err != nil {
			return fmt.Errorf("demo: %v", err)
		}
		if _, err := demoOAuthClient(ctx, prov, led, sf.data); err != nil {
			return fmt.Errorf("demo: the JupyterHub client: %v", err)
		}
	}
	fs2, err := fhir.New(fhir.Config{BaseURL: base, Tokens: prov, Clients: prov, Records: v, Ledger: led, Sealer: v.Master(),
		RequireSignedGrants: requireSigned, Logger: log})
	if err != nil {
		return err
	}
	jh, err := jhe.New(jhe.Config{BaseURL: base, Reads: fs2, OAuth: prov, Accounts: v, Uploads: srv, Logger: log})
	if err != nil {
		return err
	}
	app, err := careReportApp(ctx, prov, led, v.Master(), base, log)
	if err != nil {
		return fmt.Errorf("the care report app: %v", err)
	}
	httpSrv := publicServer(publicHandler(srv, ws, prov.Handler(), fs2.Handler(), jh.Handler(), app.Handler()), &sv.listen, log)
	metricsSrv, mln, err := metricsServer(srv, &sv.listen, log)
	if err != nil {
		ln.Close()
		return err
	}
	sock := sockPath(sf.data)
	os.Remove(sock)
	// The socket is created 0600 (no window where others could connect):
	// its file mode is its only authentication.
	old := syscall.Umask(0o177)
	sln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		ln.Close()
		if mln != nil {
			mln.Close()
		}
		return fmt.Errorf("admin socket %s: %v", sock, err)
	}
	adminSrv := adminServer(api.NewAdmin(api.LocalAdmin{Vault: v, Ledger: led, Log: log, Importers: importers, SpoolDir: spool, Store: snapshotter(st), Root: root, Invites: ws, OAuth: oauthAdmin{prov}}, log), &sv.listen, log)
	go led.Run(ctx, func(err error) { log.Error("checkpoint signing failed", "cause", err.Error()) })
	go runScrubs(ctx, st, scrubSchedule(fs), log)
	if watch {
		go watchEvents(ctx, st, evFrom, eventTargets{replica: replica, vault: v, web: ws, metrics: srv, ledger: led, log: log, dsn: sf.database})
	}
	// A key rotation a crash or a kill cut short is finished in the
	// background; until then the old master key still opens what it
	// wrapped, so nothing waits for it.
	if p, err := v.PendingRotation(ctx); err == nil && p != nil {
		go func() {
			res, err := v.ResumeRotation(ctx, nil)
			if errors.Is(err, vault.ErrRotationBusy) {
				// Another replica on the database is finishing it.
				log.Info("the key rotation is being finished by another replica", "target", p.Target)
				return
			}
			if err != nil {
				log.Error("resuming the key rotation failed; run 'vault keys rotate' to finish it", "target", p.Target, "cause", err.Error())
				return
			}
			log.Info("key rotation resumed and finished", "target", res.Target, "rewrapped", res.Rewrapped)
			if _, err := led.Append(consent.NewAdmin("key-rotate", "", api.RotationDetail(res), time.Now())); err != nil {
				log.Error("the resumed rotation's ledger entry failed", "cause", err.Error())
			}
		}()
	}

	errc := make(chan error, 3)
	if cert, key := fs.Lookup("tls-cert").Value.String(), fs.Lookup("tls-key").Value.String(); cert != "" {
		// TLS without a proxy (checkServe made sure both are set and load).
		go func() { errc <- httpSrv.ServeTLS(ln, cert, key) }()
	} else {
		go func() { errc <- httpSrv.Serve(ln) }()
	}
	go func() { errc <- adminSrv.Serve(sln) }()
	metricsAddr := "off"
	if metricsSrv != nil {
		go func() { errc <- metricsSrv.Serve(mln) }()
		metricsAddr = mln.Addr().String()
	}
	log.Info("vault serving", "addr", ln.Addr().String(), "metrics_addr", metricsAddr, "base_url", base.String(), "admin_socket", sock, "ledger_verifier_key", led.VerifierKey(), "startup_ms", time.Since(start).Milliseconds(), "version", Version)
	hub := ""
	if *demoMode {
		hub = demoHubText(prov.Issuer(), sf.data)
	}
	startLine(stderr, base, ln.Addr(), *demoMode, sf.data, hub)

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "signal", context.Cause(ctx).Error())
	case serveErr = <-errc:
	}
	// In-flight requests (a batch being stored) finish; new ones are refused.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err.Error())
	}
	adminSrv.Shutdown(sctx)
	if metricsSrv != nil {
		metricsSrv.Shutdown(sctx)
	}
	os.Remove(sock)
	// A final checkpoint covers every entry appended before the stop.
	if _, err := led.Sign(); err != nil {
		log.Warn("final checkpoint", "err", err.Error())
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close database: %v", err)
	}
	log.Info("stopped cleanly")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// startLine prints the one human line of a start, beside the JSON log:
// the origin browsers must use, where the passkey enrolment links are,
// and, with --demo, how a JupyterHub signs in (hub).
func startLine(w io.Writer, base *url.URL, addr net.Addr, demoMode bool, data, hub string) {
	enrol := fmt.Sprintf("make a passkey enrolment link with 'vault admin invite --data %s --user ID'", data)
	if demoMode {
		enrol = fmt.Sprintf("passkey enrolment links for Ada and Dr. Rivera are in %s (patient_invite, clinician_invite)", filepath.Join(data, "demo", "credentials.json"))
	}
	if hub != "" {
		enrol += "; " + hub
	}
	fmt.Fprintf(w, "vault: open %s in a browser (listening on %s; passkeys are bound to this origin); %s\n", base, addr, enrol)
}

// demoInvites gives Ada and Dr. Rivera an enrolment link each, written
// into credentials.json beside their tokens; a link still usable is kept,
// so a restart changes nothing.
func demoInvites(ctx context.Context, ws *web.Server, data string) error {
	c, err := demo.ReadCredentials(data)
	if err != nil {
		return err
	}
	changed := false
	for _, p := range []struct {
		link *string
		user string
	}{{&c.PatientInvite, c.PatientID}, {&c.ClinicianInvite, c.ClinicianID}} {
		if ws.InviteUsable(*p.link, p.user) {
			continue
		}
		if *p.link, err = ws.NewInvite(ctx, p.user, 0); err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return demo.WriteCredentials(data, c)
}
