package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/internal/procstat"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// MixCommand is the first argument that makes the running executable the
// load bench's client process ([RunMix]).
const MixCommand = "bench-mix"

// MixOps are the operations of the load bench's mix, each drawn with the
// same probability: a patient reads one day of readings, a device uploads
// a batch of 10, a patient lists her grants, a clinician exports one day,
// anyone reads the signed checkpoint, a patient reads the first page of
// her access log.
var MixOps = []string{"read", "upload", "grants", "export", "checkpoint", "access-log"}

// mixDay is the day every patient has readings for and every read and
// export asks for.
var mixDay = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// MixConfig is what 'vault bench load' takes.
type MixConfig struct {
	Clients  int           // concurrent clients
	Pause    time.Duration // mean pause between a client's requests (exponential); 0 is saturation
	Duration time.Duration // how long the clients run
	Patients int           // patients, each with two days of CGM, a device token and a grant to the clinician
	DemoDays int           // days of demo data the server seeds (--demo); 0: no demo
	// Ops are the operations drawn, each with the same probability; nil
	// draws every one of MixOps. One operation alone measures what the
	// server and the clients can do with nothing else in the way.
	Ops []string
	// KeepLimits keeps the server's per-token and per-grant export limits;
	// by default they are lifted (serve flags), so that the exports are
	// measured rather than refused.
	KeepLimits bool
	// Attack, when set, runs issue 12's attack beside the mix and
	// measures honest clients' sign-ins and uploads under it (attack.go).
	Attack *AttackConfig
	// Database, when set, runs the mix against Replicas 'vault serve
	// --database' processes on this PostgreSQL database (in a scratch
	// schema, dropped after), each client's requests spread over them
	// round robin; and before it, in the same run, the same mix against
	// one bbolt process, as the baseline ([MixReport.Baseline]). The
	// vault for the seed is opened with OpenDatabase.
	Database     string
	Replicas     int
	OpenDatabase func(dir, dsn string) (*Handle, error)
	Dir          string // scratch directory; "" makes a temporary one, removed after
	Exe          string // the vault executable: it serves, and runs [RunMix]
	Open         Opener
	Stderr       io.Writer // the children's errors
}

// OpStats is one operation's figures, latencies in milliseconds.
type OpStats struct {
	Count    int     `json:"count"`
	Errors   int     `json:"errors"`  // neither 2xx nor 429, or no answer
	Limited  int     `json:"limited"` // 429
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	FirstErr string  `json:"first_error,omitempty"`
}

// RSSSample is the server's anonymous RSS at a time into the run.
type RSSSample struct {
	At time.Duration
	KB uint64
}

// MixReport is what [Mix] measured.
type MixReport struct {
	// Servers is how many 'vault serve' processes served the mix: 1 on
	// bbolt, the replicas on PostgreSQL. RSS is then their sum.
	Servers    int
	PerServer  []int // the requests sent to each replica (with several)
	Database   bool  // on PostgreSQL
	Clients    int
	Pause      time.Duration
	Seconds    float64 // the clients' wall time
	Requests   int
	Drawn      []string // the operations drawn: MixOps unless MixConfig.Ops chose some
	Ops        map[string]OpStats
	RSS        []RSSSample // the server's RssAnon, about once a second
	Warmup     time.Duration
	GOMAXPROCS int
	// LoadBefore and Load are /proc/loadavg's three figures before the
	// server started and when the clients ended.
	LoadBefore, Load string
	Attack           *AttackReport // with MixConfig.Attack
	// Baseline is the same mix against one bbolt process, measured just
	// before in the same run (with MixConfig.Database).
	Baseline *MixReport
}

// RSSAt is the last sample at or before d (the first if none is).
func (r *MixReport) RSSAt(d time.Duration) uint64 {
	if len(r.RSS) == 0 {
		return 0
	}
	kb := r.RSS[0].KB
	for _, s := range r.RSS {
		if s.At <= d {
			kb = s.KB
		}
	}
	return kb
}

// Errors is the errors of every operation together.
func (r *MixReport) Errors() (errs, limited int) {
	for _, o := range r.Ops {
		errs, limited = errs+o.Errors, limited+o.Limited
	}
	return errs, limited
}

// Print writes the report as 'vault bench load' shows it.
func (r *MixReport) Print(w io.Writer) error {
	fmt.Fprintf(w, "vault bench load (%s): %d clients, mean pause %v, %.1f s, GOMAXPROCS=%d, load average before %s, at the end %s\n\n",
		r.servedBy(), r.Clients, r.Pause, r.Seconds, r.GOMAXPROCS, r.LoadBefore, r.Load)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tp50 ms\tp99 ms\tmax ms\terrors\t429\t")
	for _, name := range r.Drawn {
		o := r.Ops[name]
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%d\t%d\t\n", name, o.Count, o.P50, o.P99, o.Max, o.Errors, o.Limited)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	errs, limited := r.Errors()
	fmt.Fprintf(w, "\n%d requests, %.0f requests/s, %d errors, %d refused with 429\n", r.Requests, float64(r.Requests)/r.Seconds, errs, limited)
	if len(r.PerServer) > 0 {
		fmt.Fprintf(w, "requests sent to each replica, round robin: %s\n", strings.Trim(fmt.Sprint(r.PerServer), "[]"))
	}
	for _, name := range r.Drawn {
		if e := r.Ops[name].FirstErr; e != "" {
			fmt.Fprintf(w, "first %s error: %s\n", name, e)
		}
	}
	start, warm := r.RSSAt(0), r.RSSAt(r.Warmup)
	end := r.RSSAt(time.Duration(1 << 62))
	growth := 0.0
	if warm > 0 {
		growth = 100 * (float64(end) - float64(warm)) / float64(warm)
	}
	who := "server RssAnon"
	if r.Servers > 1 {
		who = fmt.Sprintf("servers' RssAnon (the %d together)", r.Servers)
	}
	_, err := fmt.Fprintf(w, "%s: start %.1f MiB, after warm-up (%v) %.1f MiB, end %.1f MiB (%+.1f%% since warm-up)\n",
		who, float64(start)/1024, r.Warmup, float64(warm)/1024, float64(end)/1024, growth)
	if err != nil {
		return err
	}
	if r.Attack != nil {
		if err := r.Attack.Print(w); err != nil {
			return err
		}
	}
	if r.Baseline == nil {
		return nil
	}
	fmt.Fprintf(w, "\nbaseline, the same mix in the same run, just before:\n")
	if err := r.Baseline.Print(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\np99 side by side (issue 12's targets at ~1,000 requests/s offered):\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "operation\t%s p99 ms\t%s p99 ms\ttarget ms\t\n", r.Baseline.servedBy(), r.servedBy())
	for _, name := range r.Drawn {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%s\t\n", name, r.Baseline.Ops[name].P99, r.Ops[name].P99, map[bool]string{true: "<= 100", false: "<= 25"}[name == "export"])
	}
	fmt.Fprintf(tw, "requests/s\t%.0f\t%.0f\t\t\n", float64(r.Baseline.Requests)/r.Baseline.Seconds, float64(r.Requests)/r.Seconds)
	return tw.Flush()
}

// servedBy says what served the mix.
func (r *MixReport) servedBy() string {
	if !r.Database {
		return "bbolt, one process"
	}
	return fmt.Sprintf("PostgreSQL, %d replicas", r.Servers)
}

// mixPlan is what the client process reads on its stdin.
type mixPlan struct {
	URL string `json:"url"`
	// URLs, when more than one, are the replicas: every request goes to
	// the next, round robin, as through a load balancer.
	URLs            []string      `json:"urls,omitempty"`
	Pause           time.Duration `json:"pause"`
	Duration        time.Duration `json:"duration"`
	Ops             []string      `json:"ops"` // drawn from, each a name in MixOps
	Patients        []mixPatient  `json:"patients"`
	ClinicianTokens []string      `json:"clinician_tokens"` // one per client
	Attack          *attackPlan   `json:"attack,omitempty"`
}

type mixPatient struct {
	ID, Token, Device string
}

// mixResult is what the client process writes on its stdout.
type mixResult struct {
	Seconds  float64            `json:"seconds"`
	Requests int                `json:"requests"`
	Ops      map[string]OpStats `json:"ops"`
	Attack   *AttackReport      `json:"attack,omitempty"`
	// PerServer is the requests sent to each replica (none with one
	// server).
	PerServer []int `json:"per_server,omitempty"`
}

// Mix seeds a vault, serves it with 'vault serve' as a child process, and
// drives it from another ([RunMix]) with c.Clients clients in the mixed
// workload of [MixOps], sampling the server's anonymous RSS meanwhile.
func Mix(c MixConfig) (*MixReport, error) {
	if c.Clients < 1 || c.Patients < 1 || c.Duration <= 0 || c.Pause < 0 || c.DemoDays < 0 {
		return nil, errors.New("--clients, --patients and --duration must be positive, --pause and --demo-days not negative")
	}
	for _, op := range c.Ops {
		if !slices.Contains(MixOps, op) {
			return nil, fmt.Errorf("--ops: %q is not an operation of the mix (%s)", op, strings.Join(MixOps, ", "))
		}
	}
	if a := c.Attack; a != nil && (a.Honest < 1 || a.Honest > 250 || a.Addrs < 0 || a.Trickles < 0 || a.Addrs > 250*250 || a.Trickles > 250) {
		return nil, errors.New("--attack-honest must be 1 to 250, --attack-addrs 0 to 62500, --attack-trickles 0 to 250")
	}
	if c.Database == "" {
		if c.Replicas > 1 {
			return nil, errors.New("--replicas needs --database: replicas share a PostgreSQL database")
		}
		scratch, cleanup, err := scratchDir(c.Dir, "vault-bench-load-")
		if err != nil {
			return nil, err
		}
		defer cleanup()
		return mixOnce(c, scratch)
	}
	if c.Replicas < 1 || c.Replicas > 32 {
		return nil, errors.New("--replicas must be 1 to 32")
	}
	if c.Attack != nil {
		return nil, errors.New("--attack runs against one bbolt server: not with --database")
	}
	if c.OpenDatabase == nil {
		return nil, errors.New("no way to open a vault on PostgreSQL")
	}
	scratch, cleanup, err := scratchDir(c.Dir, "vault-bench-load-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	base := c
	base.Database, base.Replicas = "", 0
	b, err := mixOnce(base, filepath.Join(scratch, "bbolt"))
	if err != nil {
		return nil, fmt.Errorf("the bbolt baseline: %v", err)
	}
	r, err := mixOnce(c, filepath.Join(scratch, "postgres"))
	if err != nil {
		return nil, err
	}
	r.Baseline = b
	return r, nil
}

// drawn is the operations the clients draw from.
func (c MixConfig) drawn() []string {
	if len(c.Ops) == 0 {
		return MixOps
	}
	return c.Ops
}

// mixOnce seeds a vault in scratch (on c.Database when set), serves it
// (one bbolt process, or c.Replicas on PostgreSQL) and runs the clients.
func mixOnce(c MixConfig, scratch string) (*MixReport, error) {
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, err
	}
	loadBefore := loadAvg()
	open := func() (*Handle, error) { return c.Open(scratch, 0) }
	servers := 1
	// The servers' environment: never a database the caller's
	// environment names, only the scratch schema on PostgreSQL.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VAULT_DATABASE_URL") {
			env = append(env, e)
		}
	}
	if c.Database != "" {
		dsn, drop, err := pgScratch(context.Background(), c.Database, "load")
		if err != nil {
			return nil, err
		}
		defer drop() // after the servers have stopped (deferred later)
		open = func() (*Handle, error) { return c.OpenDatabase(scratch, dsn) }
		servers = c.Replicas
		env = append(env, "VAULT_DATABASE_URL="+dsn)
	}
	plan, honest, err := seedMix(open, c)
	if err != nil {
		return nil, fmt.Errorf("seeding: %v", err)
	}
	addrs := make([]string, servers)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
		plan.URLs = append(plan.URLs, "http://"+addrs[i])
	}
	plan.URL = plan.URLs[0]
	if servers == 1 {
		plan.URLs = nil
	}
	if plan.Attack != nil {
		if err := inviteAll(c, scratch, addrs[0], plan.Attack, honest); err != nil {
			return nil, fmt.Errorf("seeding: %v", err)
		}
	}
	// The children write their errors to c.Stderr at once.
	stderr := &lockedWriter{w: cmp.Or[io.Writer](c.Stderr, io.Discard)}
	var pids []int
	// Replica 0 seeds the demo data (once); the others start together
	// once it is up.
	for _, group := range [][]int{{0}, seq(1, servers)} {
		for _, i := range group {
			data := filepath.Join(scratch, "data")
			if i > 0 {
				data += fmt.Sprint(i)
			}
			args := []string{"serve", "--data", data, "--root-key-file", filepath.Join(scratch, "root.key"),
				"--addr", addrs[i], "--metrics-addr", "off", "--log-level", "error"}
			if c.Database != "" {
				// One origin for every replica's checkpoints: the seed's.
				args = append(args, "--base-url", "http://localhost:8080", "--scrub-interval", "0")
			}
			if c.DemoDays > 0 && i == 0 {
				args = append(args, "--demo", "--demo-days", fmt.Sprint(c.DemoDays))
			}
			if !c.KeepLimits {
				args = append(args, "--exports-per-minute", "1000000000", "--export-burst-per-grant", "1000000000", "--export-interval-per-grant", "1ns")
			}
			srv := exec.Command(c.Exe, args...)
			srv.Env = env
			srv.Stderr = stderr
			if err := srv.Start(); err != nil {
				return nil, err
			}
			defer func() {
				srv.Process.Signal(syscall.SIGTERM)
				srv.Wait()
			}()
			pids = append(pids, srv.Process.Pid)
		}
		for _, i := range group {
			if err := waitHealthy("http://"+addrs[i], 5*time.Minute); err != nil {
				return nil, err
			}
		}
	}

	r := &MixReport{Servers: servers, Database: c.Database != "", Clients: c.Clients, Pause: c.Pause, Drawn: c.drawn(), Warmup: max(time.Second, c.Duration/5), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	rss := func() (kb uint64) {
		for _, pid := range pids {
			kb += procstat.PidKB(pid, "RssAnon")
		}
		return kb
	}
	stop := make(chan struct{})
	sampled := make(chan []RSSSample)
	go func() {
		t0 := time.Now()
		s := []RSSSample{{0, rss()}}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- append(s, RSSSample{time.Since(t0), rss()})
				return
			case <-tick.C:
				s = append(s, RSSSample{time.Since(t0), rss()})
			}
		}
	}()
	in, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	cl := exec.Command(c.Exe, MixCommand)
	cl.Env = env
	cl.Stdin = bytes.NewReader(in)
	cl.Stderr = stderr
	out, err := cl.Output()
	close(stop)
	r.RSS = <-sampled
	if err != nil {
		return nil, fmt.Errorf("load clients: %v", err)
	}
	var res mixResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("load clients' output: %v", err)
	}
	r.Seconds, r.Requests, r.Ops, r.Attack, r.PerServer = res.Seconds, res.Requests, res.Ops, res.Attack, res.PerServer
	r.LoadBefore, r.Load = loadBefore, loadAvg()
	return r, nil
}

// loadAvg is /proc/loadavg's three load averages, or "?" off Linux.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// seedMix makes the clinician (one token per client, and a hub key) and
// the patients (two days of CGM, a patient and a device token, a grant to
// the clinician) through an in-process API, then closes the vault. With an
// attack it also makes the honest patients (returned, for their invites)
// and the attacker, each with a device token.
func seedMix(open func() (*Handle, error), c MixConfig) (*mixPlan, []string, error) {
	h, err := open()
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	v := h.Vault
	// The origin is the host of serve's default --base-url.
	led, err := h.Ledger("localhost:8080")
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	base := "http://" + ln.Addr().String()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := &http.Server{Handler: api.New(api.Config{Vault: v, Ledger: led, Logger: log, KeyActivationDelay: -1, LedgerWritesPerMinute: 1 << 20}).Echo()}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	life := c.Duration + 2*time.Hour
	clin, err := v.CreateUser(ctx, vault.NewUser{Role: vault.RoleClinician, Name: "bench clinician"})
	if err != nil {
		return nil, nil, err
	}
	plan := &mixPlan{Pause: c.Pause, Duration: c.Duration, Ops: c.drawn()}
	for range c.Clients {
		tok, _, err := v.MintToken(ctx, clin.ID, vault.TokenClinician, life)
		if err != nil {
			return nil, nil, err
		}
		plan.ClinicianTokens = append(plan.ClinicianTokens, tok)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, nil, err
	}
	if err := post(base+"/api/v1/clinician/keys", plan.ClinicianTokens[0], api.KeyRequest{Label: "bench hub", Recipient: id.Recipient().String()}); err != nil {
		return nil, nil, err
	}
	for i := range c.Patients {
		p, err := v.CreateUser(ctx, vault.NewUser{Role: vault.RolePatient, Name: fmt.Sprintf("bench patient %d", i)})
		if err != nil {
			return nil, nil, err
		}
		var pts []*omh.Point
		var buf []byte
		for j := range 2 * 288 {
			buf = point(buf[:0], 1<<20+i, j, mixDay.Add(time.Duration(j)*5*time.Minute))
			pt, err := omh.Parse(buf)
			if err != nil {
				return nil, nil, err
			}
			pts = append(pts, pt)
		}
		if _, err := v.Ingest(ctx, p.ID, pts); err != nil {
			return nil, nil, err
		}
		ptok, _, err := v.MintToken(ctx, p.ID, vault.TokenPatient, life)
		if err != nil {
			return nil, nil, err
		}
		dtok, _, err := v.MintToken(ctx, p.ID, vault.TokenDevice, life)
		if err != nil {
			return nil, nil, err
		}
		err = post(base+"/api/v1/grants", ptok, api.GrantRequest{Clinician: clin.ID, Schemas: []string{"omh:blood-glucose"},
			ExpiresAt: time.Now().Add(life).UTC().Format(time.RFC3339), Purpose: "TREAT"})
		if err != nil {
			return nil, nil, err
		}
		plan.Patients = append(plan.Patients, mixPatient{ID: p.ID, Token: ptok, Device: dtok})
	}
	if c.Attack == nil {
		return plan, nil, nil
	}
	plan.Attack = &attackPlan{Addrs: c.Attack.Addrs, Trickles: c.Attack.Trickles}
	var honest []string
	for i := range c.Attack.Honest + 1 {
		name := fmt.Sprintf("bench honest patient %d", i)
		if i == c.Attack.Honest {
			name = "bench attacker"
		}
		p, err := v.CreateUser(ctx, vault.NewUser{Role: vault.RolePatient, Name: name})
		if err != nil {
			return nil, nil, err
		}
		dtok, _, err := v.MintToken(ctx, p.ID, vault.TokenDevice, life)
		if err != nil {
			return nil, nil, err
		}
		if i == c.Attack.Honest {
			plan.Attack.Attacker = dtok
			break
		}
		honest = append(honest, p.ID)
		plan.Attack.Honest = append(plan.Attack.Honest, honestClient{Device: dtok})
	}
	return plan, honest, nil
}

// seq is from, from+1, …, to-1.
func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// roundRobin sends each request to the next of hosts, as a load balancer
// in front of replicas would.
type roundRobin struct {
	hosts []string
	sent  []atomic.Int64 // requests sent to each host
	next  atomic.Uint64
	rt    http.RoundTripper
}

func (r *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	i := r.next.Add(1) % uint64(len(r.hosts))
	r.sent[i].Add(1)
	out := req.Clone(req.Context())
	out.URL.Host = r.hosts[i]
	out.Host = ""
	return r.rt.RoundTrip(out)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy waits until GET /healthz answers 200.
func waitHealthy(base string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not come up within %v: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RunMix is the load bench's client process, run by [Mix] with the
// arguments after [MixCommand]. It reads its plan as JSON on stdin, runs
// one client per clinician token until the duration is up, and writes
// what it measured as JSON on stdout.
func RunMix(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vault "+MixCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var plan mixPlan
	if err := json.NewDecoder(stdin).Decode(&plan); err != nil {
		return err
	}
	n := len(plan.ClinicianTokens)
	if n == 0 || len(plan.Patients) == 0 {
		return errors.New("no clients or no patients")
	}
	// Each drawn operation as its index in MixOps, which the samples keep.
	var ops []int
	for _, name := range plan.Ops {
		i := slices.Index(MixOps, name)
		if i < 0 {
			return fmt.Errorf("%q is not an operation of the mix", name)
		}
		ops = append(ops, i)
	}
	if len(ops) == 0 {
		return errors.New("no operations to draw")
	}
	var rt http.RoundTripper = &http.Transport{MaxIdleConns: n * max(1, len(plan.URLs)), MaxIdleConnsPerHost: n}
	var rr *roundRobin
	if len(plan.URLs) > 1 {
		rr = &roundRobin{rt: rt, sent: make([]atomic.Int64, len(plan.URLs))}
		for _, u := range plan.URLs {
			pu, err := url.Parse(u)
			if err != nil {
				return err
			}
			rr.hosts = append(rr.hosts, pu.Host)
		}
		rt = rr
	}
	client := &http.Client{Transport: rt, Timeout: time.Minute}
	day := url.Values{"from": {mixDay.Format(time.RFC3339)}, "to": {mixDay.AddDate(0, 0, 1).Format(time.RFC3339)}}
	all := make([][]sample, n)
	deadline := time.Now().Add(plan.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	var attack *AttackReport
	if plan.Attack != nil {
		wg.Go(func() { attack = runAttack(plan.URL, plan.Attack, deadline) })
	}
	for i, ctok := range plan.ClinicianTokens {
		wg.Go(func() {
			p := plan.Patients[i%len(plan.Patients)]
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			var seq int
			for time.Now().Before(deadline) {
				op := ops[rng.IntN(len(ops))]
				var req *http.Request
				switch MixOps[op] {
				case "read":
					req, _ = http.NewRequest(http.MethodGet, plan.URL+"/api/v1/readings?"+day.Encode(), nil)
					req.Header.Set("Authorization", "Bearer "+p.Token)
				case "upload":
					var body []byte
					for range 10 {
						body = point(body, i, seq, mixDay.AddDate(0, 1, 0).Add(time.Duration(seq)*time.Minute))
						body = append(body, '\n')
						seq++
					}
					req, _ = http.NewRequest(http.MethodPost, plan.URL+"/api/v1/readings", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+p.Device)
					req.Header.Set("Content-Type", "application/x-ndjson")
				case "grants":
					req, _ = http.NewRequest(http.MethodGet, plan.URL+"/api/v1/grants", nil)
					req.Header.Set("Authorization", "Bearer "+p.Token)
				case "export":
					req, _ = http.NewRequest(http.MethodGet, plan.URL+"/api/v1/patients/"+p.ID+"/export?schema=omh:blood-glucose:4.0&"+day.Encode(), nil)
					req.Header.Set("Authorization", "Bearer "+ctok)
				case "checkpoint":
					req, _ = http.NewRequest(http.MethodGet, plan.URL+"/api/v1/ledger/checkpoint", nil)
				case "access-log":
					req, _ = http.NewRequest(http.MethodGet, plan.URL+"/api/v1/access-log", nil)
					req.Header.Set("Authorization", "Bearer "+p.Token)
				}
				t := time.Now()
				s := sample{op: op}
				resp, err := client.Do(req)
				if err != nil {
					s.err = err.Error()
				} else {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode == http.StatusTooManyRequests:
						s.err = "429"
					case resp.StatusCode >= 300:
						s.err = fmt.Sprintf("%s: %.200s", resp.Status, b)
					case rerr != nil:
						s.err = rerr.Error()
					}
				}
				s.ms = float64(time.Since(t).Microseconds()) / 1000
				all[i] = append(all[i], s)
				if plan.Pause > 0 {
					time.Sleep(time.Duration(rng.ExpFloat64() * float64(plan.Pause)))
				}
			}
		})
	}
	wg.Wait()
	var samples []sample
	for _, ss := range all {
		samples = append(samples, ss...)
	}
	res := mixResult{Seconds: time.Since(start).Seconds(), Requests: len(samples), Ops: summarise(MixOps, samples), Attack: attack}
	if rr != nil {
		for i := range rr.sent {
			res.PerServer = append(res.PerServer, int(rr.sent[i].Load()))
		}
	}
	return json.NewEncoder(stdout).Encode(res)
}

// sample is one request's outcome: its operation (an index into the ops
// summarise is given), milliseconds, and "" if it succeeded, "429" if it
// was refused with 429, or what went wrong.
type sample struct {
	op  int
	ms  float64
	err string
}

// summarise is each operation's figures from its samples.
func summarise(ops []string, samples []sample) map[string]OpStats {
	res := map[string]OpStats{}
	lat := make([][]float64, len(ops))
	for _, s := range samples {
		o := res[ops[s.op]]
		o.Count++
		switch s.err {
		case "":
		case "429":
			o.Limited++
		default:
			o.Errors++
			if o.FirstErr == "" {
				o.FirstErr = s.err
			}
		}
		res[ops[s.op]] = o
		lat[s.op] = append(lat[s.op], s.ms)
	}
	for op, l := range lat {
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		o := res[ops[op]]
		o.P50, o.P99, o.Max = l[len(l)/2], l[min(len(l)-1, len(l)*99/100)], l[len(l)-1]
		res[ops[op]] = o
	}
	return res
}
