package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects the server's log lines, to scan them for secrets.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is the whole stack in-process: a real vault and ledger in a
// bbolt file under t.TempDir(), and the web server.
type fixture struct {
	t    testing.TB
	dir  string
	root *keys.Root
	log  *slog.Logger
	cfg  Config       // the server's configuration, for restart
	hs   *http.Server // serving on addr, when the fixture listens
	addr string
	st   *boltstore.Store
	v    *vault.Vault
	led  *consent.Ledger
	srv  *Server
	h    http.Handler
	prov *oauth.Provider // the real OAuth provider, when fixtureOpts.oauth
	// fhirH and appH are the FHIR API and the care-team report app, when
	// fixtureOpts.smartApp (carereport_e2e_test.go).
	fhirH, appH http.Handler
	launches    launchLog // the app's launch URLs the browser opened
	base        string
	logs        *logBuffer
	clock       *clock // nil when the server runs on the real clock
	// wrapLedger, when set, wraps the ledger's store as it opens (to
	// inject its failures).
	wrapLedger func(consent.Store) consent.Store
	// wrapBackend, likewise, wraps the vault's store.
	wrapBackend func(vault.Backend) vault.Backend
	patient     vault.User
	other       vault.User
	clin        vault.User
}

type fixtureOpts struct {
	baseURL  string // default http://localhost:8080
	listen   bool   // serve on a loopback listener, base URL http://localhost:PORT
	clock    bool   // a settable clock instead of time.Now
	perMin   int
	days     int // days of CGM history for the patient (0: none)
	cfgTweak func(*Config)
	// oauth builds the real OAuth provider (package oauth) on the same
	// bbolt file, wired as cmd/vault wires it: the web UI's Authorizer,
	// its tokens bound to the ledger's app grants, its handler under
	// /fhir/ beside the web UI.
	oauth bool
	// smartApp (with oauth) adds the FHIR API under /fhir/ and the
	// care-team report app under /apps/care-report/, registered with the
	// provider as cmd/vault registers it, and the web UI's Launcher.
	smartApp bool
	// wrapLedger wraps the ledger's real store (see fixture.wrapLedger).
	wrapLedger func(consent.Store) consent.Store
	// wrapBackend wraps the vault's real store, as wrapLedger the ledger's.
	wrapBackend func(vault.Backend) vault.Backend
}

// patientName and clinicianName are canaries: they must never reach the
// database file or a log line.
const (
	patientName   = "Ada Moreno"
	otherName     = "Bo Lindqvist"
	clinicianName = "Dr. Sofia Rivera"
)

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	root, err := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &fixture{t: t, dir: dir, root: root, log: log, logs: logs, wrapLedger: o.wrapLedger, wrapBackend: o.wrapBackend}
	f.open()
	t.Cleanup(func() { f.st.Close() })
	v := f.v
	f.patient = f.user(vault.NewUser{Role: vault.RolePatient, Name: patientName, TimeZone: "America/New_York"})
	f.other = f.user(vault.NewUser{Role: vault.RolePatient, Name: otherName})
	f.clin = f.user(vault.NewUser{Role: vault.RoleClinician, Name: clinicianName, Organization: "Riverside", TimeZone: "America/New_York"})

	cfg := Config{Vault: v, Ledger: f.led, Store: f.st.Web(), Logger: log, AuthPerMinute: o.perMin, Importers: formats.New(), SpoolDir: filepath.Join(dir, "spool")}
	if err := os.Mkdir(cfg.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	base := o.baseURL
	if o.listen {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		base = fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	}
	if base == "" {
		base = "http://localhost:8080"
	}
	f.base = base
	cfg.BaseURL = mustURL(t, base)
	now := time.Now()
	if o.clock {
		f.clock = &clock{t: now}
		cfg.Now = f.clock.Now
		now = f.clock.Now()
	}
	if o.cfgTweak != nil {
		o.cfgTweak(&cfg)
	}
	if o.days > 0 {
		f.seedReadings(now, o.days)
	}
	if o.oauth {
		f.prov = f.newProvider(cfg.BaseURL)
		cfg.Authorizer = providerAuthorizer{f.prov}
		if o.smartApp {
			f.addSMARTApp(cfg.BaseURL)
			cfg.Launcher = providerAuthorizer{f.prov}
		}
	}
	f.cfg = cfg
	if f.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.h = f.handler()
	if ln != nil {
		f.addr = ln.Addr().String()
		f.serve(ln)
		t.Cleanup(func() { f.hs.Close() })
	}
	return f
}

// open opens the vault's file, the vault and the ledger.
func (f *fixture) open() {
	f.t.Helper()
	st, err := boltstore.Open(filepath.Join(f.dir, "vault.db"), boltstore.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.st = st
	var vb vault.Backend = st
	if f.wrapBackend != nil {
		vb = f.wrapBackend(vb)
	}
	if f.v, err = vault.Open(f.t.Context(), vb, f.root, vault.RootInfo{Kind: f.root.Kind()}, vault.Options{Logger: f.log}); err != nil {
		f.t.Fatal(err)
	}
	var ls consent.Store = st.Ledger()
	if f.wrapLedger != nil {
		ls = f.wrapLedger(ls)
	}
	if f.led, err = consent.Open(ls, f.v.Master(), consent.Options{Origin: "vault.test"}); err != nil {
		f.t.Fatal(err)
	}
}

// newProvider is the OAuth provider over the fixture's file, as
// cmd/vault's newOAuth builds it.
func (f *fixture) newProvider(base *url.URL) *oauth.Provider {
	f.t.Helper()
	p, err := oauth.New(f.t.Context(), oauth.Config{BaseURL: base, Store: f.st.OAuth(), Sealer: f.v.Master(), Users: f.v, Logger: f.log,
		GrantActive: f.led.AppGrantActive})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// handler is the web UI, with the OAuth provider under /fhir/ when the
// fixture has one (as cmd/vault's publicHandler mounts it).
func (f *fixture) handler() http.Handler {
	if f.prov == nil {
		return f.srv.Handler()
	}
	mux := http.NewServeMux()
	if f.fhirH != nil {
		mux.Handle("/fhir/auth/", f.prov.Handler())
		mux.Handle("/fhir/.well-known/", f.prov.Handler())
		mux.Handle("/fhir/", f.fhirH)
		mux.Handle("/apps/care-report/", f.appH)
	} else {
		mux.Handle("/fhir/", f.prov.Handler())
	}
	mux.Handle("/", f.srv.Handler())
	return mux
}

func (f *fixture) serve(ln net.Listener) {
	f.hs = &http.Server{Handler: f.h, ReadHeaderTimeout: 10 * time.Second}
	go f.hs.Serve(ln)
}

// restart is a process restart: the web server stops, the store closes,
// and the same file opens again under a new vault, ledger and web server
// with the same configuration, served (when the fixture listens) on the
// same address. Only what is in the file survives.
func (f *fixture) restart() {
	f.t.Helper()
	if f.hs != nil {
		if err := f.hs.Close(); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
	cfg := f.cfg
	cfg.Vault, cfg.Ledger, cfg.Store = f.v, f.led, f.st.Web()
	if f.prov != nil {
		f.prov = f.newProvider(cfg.BaseURL)
		cfg.Authorizer = providerAuthorizer{f.prov}
	}
	srv, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
	f.h = f.handler()
	if f.addr != "" {
		ln, err := net.Listen("tcp", f.addr)
		if err != nil {
			f.t.Fatal(err)
		}
		f.serve(ln)
	}
}

// seedReadings gives the patient `days` days of 5-minute CGM readings
// ending now (meals, a dawn rise and noise, with a few lows and highs),
// and a little heart rate, steps and blood pressure.
func (f *fixture) seedReadings(now time.Time, days int) {
	f.t.Helper()
	end := now.Truncate(5 * time.Minute)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	var pts []*omh.Point
	parse := func(s string) {
		p, err := omh.Parse([]byte(s))
		if err != nil {
			f.t.Fatalf("seed point: %v\n%s", err, s)
		}
		pts = append(pts, p)
	}
	hdr := func(name, version string, t time.Time) string {
		return fmt.Sprintf(`{"schema_id":{"namespace":"omh","name":%q,"version":%q},"source_creation_date_time":%q,"modality":"sensed"}`, name, version, t.Format(time.RFC3339))
	}
	i := 0
	for t := start; t.Before(end); t = t.Add(5 * time.Minute) {
		if t.Sub(start) > 50*time.Hour && t.Sub(start) < 53*time.Hour {
			continue // a sensor change: a gap the chart must not join across
		}
		h := float64(t.Hour()) + float64(t.Minute())/60
		v := 115 + 15*math.Sin(2*math.Pi*(h-4)/24)
		for _, meal := range []float64{7.5, 12.5, 19} {
			if d := h - meal; d > 0 && d < 4 {
				v += 68 * d * math.Exp(1-d)
			}
		}
		v += 12 * math.Sin(float64(i)*0.37) * math.Cos(float64(i)*0.11)
		if t.Weekday() == time.Tuesday && h > 3 && h < 4 {
			v = 58 - 6*math.Sin(h*3)
		}
		parse(fmt.Sprintf(`{"header":%s,"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
			hdr("blood-glucose", "4.0", t), int(math.Round(v)), t.Format(time.RFC3339)))
		i++
	}
	// Heart rate every 20 minutes (a daily rhythm, higher after meals and
	// on a walk) and hourly step counts in the daytime, for the activity
	// charts; they stop before the latest readings below.
	for t := start; t.Before(end.Add(-3 * time.Hour)); t = t.Add(20 * time.Minute) {
		h := float64(t.Hour()) + float64(t.Minute())/60
		hr := 64 + 10*math.Sin(2*math.Pi*(h-10)/24) + 6*math.Sin(float64(t.Unix()/1200)*0.7)
		if h >= 17 && h < 18 {
			hr += 35
		}
		parse(fmt.Sprintf(`{"header":%s,"body":{"heart_rate":{"value":%d,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`, hdr("heart-rate", "2.0", t), int(math.Round(hr)), t.Format(time.RFC3339)))
		if t.Minute() < 20 && h >= 8 && h < 21 {
			steps := 300 + int(250*math.Abs(math.Sin(float64(t.Unix()/3600)*1.3)))
			if h >= 17 && h < 18 {
				steps += 3500
			}
			parse(fmt.Sprintf(`{"header":%s,"body":{"step_count":{"value":%d,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
				hdr("step-count", "3.0", t), steps, t.Format(time.RFC3339), t.Add(time.Hour).Format(time.RFC3339)))
		}
	}
	last := end.Add(-10 * time.Minute)
	parse(fmt.Sprintf(`{"header":%s,"body":{"heart_rate":{"value":72,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`, hdr("heart-rate", "2.0", last), last.Format(time.RFC3339)))
	parse(fmt.Sprintf(`{"header":%s,"body":{"systolic_blood_pressure":{"value":118,"unit":"mmHg"},"diastolic_blood_pressure":{"value":76,"unit":"mmHg"},"effective_time_frame":{"date_time":%q}}}`, hdr("blood-pressure", "4.0", last), last.Format(time.RFC3339)))
	parse(fmt.Sprintf(`{"header":%s,"body":{"step_count":{"value":5234,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
		hdr("step-count", "3.0", last), last.Add(-time.Hour).Format(time.RFC3339), last.Format(time.RFC3339)))
	if _, err := f.v.Ingest(context.Background(), f.patient.ID, pts); err != nil {
		f.t.Fatal(err)
	}
}

// grant records an active grant from the patient to the clinician.
func (f *fixture) grant(patient, clinician string) {
	f.t.Helper()
	now := time.Now()
	e := consent.New(consent.KindGrant, patient, now)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &consent.Grant{ID: vault.NewID("gr_"), Schemas: []string{"omh:blood-glucose"}, Expires: now.Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339Nano), Purpose: "TREAT"}
	if _, err := f.led.Append(e); err != nil {
		f.t.Fatal(err)
	}
}

// signIn makes a session for a user directly (the handler tests' stand-in
// for a passkey ceremony; the e2e test does the real one) and returns its
// cookie value and CSRF token.
func (f *fixture) signIn(userID string) (cookie, csrf string) {
	f.t.Helper()
	id, s, err := f.srv.sessions.create(f.t.Context(), session{UserID: userID, Role: vault.RoleOf(userID)})
	if err != nil {
		f.t.Fatal(err)
	}
	return id, s.CSRF
}

// addCred stores a credential record for a user without a ceremony.
func (f *fixture) addCred(userID, label string) []byte {
	f.t.Helper()
	id := []byte(vault.NewID("cred-"))
	rec := credRecord{ID: id, UserID: userID, Handle: []byte("handle-" + userID), PublicKey: []byte{1, 2, 3}, Label: label, Created: time.Now()}
	if err := f.srv.creds.add(f.t.Context(), &rec); err != nil {
		f.t.Fatal(err)
	}
	return id
}

type req struct {
	method, path string
	cookie       string
	body         string
	ctype        string
	headers      map[string]string
	cookies      []*http.Cookie // besides the session's
}

// do sends a request through the handler (no network).
func (f *fixture) do(r req) *http.Response {
	f.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	hr := httptest.NewRequest(r.method, f.base+r.path, strings.NewReader(r.body))
	hr.RemoteAddr = "192.0.2.10:1234"
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: SessionCookie, Value: r.cookie})
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, hr)
	return w.Result()
}

func body(t testing.TB, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The helpers below read the fixture's state for a test; each fails the
// test on an error, so no test goes on from a read that did not happen.

// size is the ledger's size.
func (f *fixture) size() int64 {
	f.t.Helper()
	n, err := f.led.Size()
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// entry is the ledger's entry i.
func (f *fixture) entry(i int64) consent.Entry {
	f.t.Helper()
	e, _, err := f.led.Entry(i)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// grantState is a grant as the ledger's index has it.
func (f *fixture) grantState(id string) consent.GrantState {
	f.t.Helper()
	g, err := f.led.Grant(id)
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

// partyEntries are the entries naming a user, as the ledger page reads
// them.
func (f *fixture) partyEntries(userID string, size int64, limit int) ([]consent.PartyEntry, bool) {
	f.t.Helper()
	es, more, err := f.led.PartyEntries(userID, size, limit)
	if err != nil {
		f.t.Fatal(err)
	}
	return es, more
}

// creds are a user's stored passkeys.
func (f *fixture) creds(userID string) []credRecord {
	f.t.Helper()
	recs, err := f.srv.creds.list(f.t.Context(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
}

// codesLeft counts a user's unused recovery codes.
func (f *fixture) codesLeft(userID string) int {
	f.t.Helper()
	n, err := f.srv.recovery().remaining(f.t.Context(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// tokens are a user's API tokens.
func (f *fixture) tokens(userID string) []vault.TokenInfo {
	f.t.Helper()
	list, err := f.v.Tokens(f.t.Context(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

// mint makes an API token directly (the admin's way).
func (f *fixture) mint(userID, kind string, ttl time.Duration) (string, vault.Token) {
	f.t.Helper()
	secret, tok, err := f.v.MintToken(f.t.Context(), userID, kind, ttl)
	if err != nil {
		f.t.Fatal(err)
	}
	return secret, tok
}

// user makes an account.
func (f *fixture) user(n vault.NewUser) vault.User {
	f.t.Helper()
	u, err := f.v.CreateUser(f.t.Context(), n)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// dbFile is the vault's file as it is on disk now.
func (f *fixture) dbFile() []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "vault.db"))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// mustJSONBody is v as a request body.
func mustJSONBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustURL parses a URL the test wrote.
func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// follow is the browser after a form's answer: it must be a 303 to want
// (the path, before any query); follow then opens it with the session
// cookie and the cookies the answer set (the reveal cookie of a new
// secret), and returns that page.
func (f *fixture) follow(r *http.Response, sess, want string) *http.Response {
	f.t.Helper()
	loc := r.Header.Get("Location")
	if path, _, _ := strings.Cut(loc, "?"); r.StatusCode != http.StatusSeeOther || path != want {
		f.t.Fatalf("answer %d to %q, want 303 to %s", r.StatusCode, loc, want)
	}
	var set []*http.Cookie
	for _, c := range r.Cookies() {
		if c.MaxAge >= 0 && c.Value != "" {
			set = append(set, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return f.do(req{path: loc, cookie: sess, cookies: set})
}

// grants is the ledger's clinician grants of a patient; an error fails
// the test.
func (f *fixture) grants(patient string) []consent.GrantState {
	f.t.Helper()
	gs, err := f.led.Grants(patient, "")
	if err != nil {
		f.t.Fatalf("grants of %s: %v", patient, err)
	}
	return gs
}

// appGrants is the ledger's app grants of a patient; an error fails the
// test.
func (f *fixture) appGrants(patient string) []consent.GrantState {
	f.t.Helper()
	gs, err := f.led.AppGrants(patient)
	if err != nil {
		f.t.Fatalf("app grants of %s: %v", patient, err)
	}
	return gs
}
