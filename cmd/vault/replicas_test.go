package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/internal/browsertest"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// The three-replica harness: three 'vault serve --database' processes on
// one database of the throwaway cluster, each with its own --data (its
// admin socket and spool), behind one in-test round-robin reverse proxy
// whose URL is every replica's --base-url (passkeys are bound to the
// origin), as docs/scaling.md lays the topology out.

// replica is one vault serve process behind the proxy.
type replica struct {
	i    int
	data string
	log  string
	proc atomic.Pointer[tortureProc]
	url  atomic.Pointer[url.URL]
	up   atomic.Bool
}

type replicaSet struct {
	t     *testing.T
	dsn   string
	key   string
	base  string // the proxy's URL, every replica's --base-url
	reps  []*replica
	next  atomic.Uint64
	extra []string
	// route, when set, names the replica a path goes to (-1: round
	// robin), so a test can send a ceremony's begin and finish to chosen
	// replicas; served records which replica answered each path.
	route func(path string) int
	// forwarded makes the proxy set X-Forwarded-For, for replicas started
	// with --trusted-proxies.
	forwarded bool
	mu        sync.Mutex
	served    []string
}

// startReplicas makes a database, a root key and the proxy, then starts n
// replicas at once on the empty database.
func startReplicas(t *testing.T, n int, extra ...string) *replicaSet {
	t.Helper()
	dir := t.TempDir()
	rs := &replicaSet{t: t, dsn: pgDatabase(t), key: filepath.Join(dir, "root.key"), extra: extra}
	if _, err := keys.CreateKeyFile(rs.key); err != nil {
		t.Fatal(err)
	}
	rs.listenProxy(t)

	for i := range n {
		r := &replica{i: i, data: filepath.Join(dir, fmt.Sprintf("data%d", i)), log: filepath.Join(dir, fmt.Sprintf("replica%d.log", i))}
		rs.reps = append(rs.reps, r)
	}
	// All at once: none waits for another's start.
	procs := make([]*tortureProc, n)
	for i, r := range rs.reps {
		procs[i] = launchReplica(t, r, rs)
	}
	for i, r := range rs.reps {
		waitReplica(t, procs[i])
		r.up.Store(true)
	}
	return rs
}

// listenProxy starts the in-test load balancer: a round-robin reverse
// proxy on a loopback port whose URL becomes rs.base. With rs.forwarded
// it sets X-Forwarded-For (and -Host, -Proto) as a load balancer would.
func (rs *replicaSet) listenProxy(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	rs.base = "http://localhost:" + port
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			r := rs.pick()
			if rs.route != nil {
				if i := rs.route(pr.In.URL.Path); i >= 0 {
					r = rs.reps[i]
				}
			}
			rs.mu.Lock()
			rs.served = append(rs.served, fmt.Sprintf("%s %s %d", pr.In.Method, pr.In.URL.Path, r.i))
			rs.mu.Unlock()
			pr.SetURL(r.url.Load())
			if rs.forwarded {
				pr.SetXForwarded()
			}
			pr.Out.Host = pr.In.Host // the replicas see the public host
			pr.Out.Header.Set("X-Test-Replica", strconv.Itoa(r.i))
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("X-Test-Replica", resp.Request.Header.Get("X-Test-Replica"))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Test-Replica", r.Header.Get("X-Test-Replica"))
			http.Error(w, "replica unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// launchReplica starts a replica's process without waiting for it.
func launchReplica(t *testing.T, r *replica, rs *replicaSet) *tortureProc {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p := &tortureProc{url: "http://" + addr, logPath: r.log, exited: make(chan struct{})}
	args := append([]string{"serve", "--data", r.data, "--root-key-file", rs.key, "--addr", addr, "--base-url", rs.base, "--database", rs.dsn}, rs.extra...)
	p.cmd = exec.Command("vault", args...)
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	r.url.Store(u)
	r.proc.Store(p)
	return p
}

func waitReplica(t *testing.T, p *tortureProc) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("replica exited during start (%v): %s", p.waitErr, tortureLogTail(p.logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not healthy in 90s: %s", tortureLogTail(p.logPath))
		}
	}
}

// pick is the next live replica, round robin.
func (rs *replicaSet) pick() *replica {
	for range 2 * len(rs.reps) {
		r := rs.reps[rs.next.Add(1)%uint64(len(rs.reps))]
		if r.up.Load() {
			return r
		}
	}
	return rs.reps[0] // none up: the request fails with 502
}

// kill SIGKILLs replica i; the proxy stops sending it requests.
func (rs *replicaSet) kill(t *testing.T, i int) {
	r := rs.reps[i]
	r.up.Store(false)
	r.proc.Load().kill(t)
}

// restart starts replica i again (a new port) and sends it requests once
// it is healthy.
func (rs *replicaSet) restart(t *testing.T, i int) {
	r := rs.reps[i]
	p := launchReplica(t, r, rs)
	waitReplica(t, p)
	r.up.Store(true)
}

// admin runs a vault admin command through replica i's admin socket.
func (rs *replicaSet) admin(t *testing.T, i int, args ...string) string {
	t.Helper()
	out, errOut, err := runVault(t, 60*time.Second, append(args, "--data", rs.reps[i].data)...)
	if err != nil {
		t.Fatalf("vault %s on replica %d: %v %s", strings.Join(args, " "), i, err, errOut)
	}
	return strings.TrimSpace(out)
}

// direct is replica i's own URL, past the proxy.
func (rs *replicaSet) direct(i int) string { return rs.reps[i].url.Load().String() }

// browser is an HTTP client as a page's script: the vault's origin, the
// cookies it was given (Secure ones included: the origin is localhost).
type browser struct {
	t       *testing.T
	origin  string
	cookies map[string]string
	csrf    string // the signed-in page's CSRF token, sent when set
}

type answer struct {
	status  int
	body    []byte
	replica string
}

func (b *browser) do(method, path string, body any) answer {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.origin+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", b.origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if b.csrf != "" {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return answer{status: resp.StatusCode, body: rb, replica: resp.Header.Get("X-Test-Replica")}
}

// enrol makes a software passkey for an invite, as a browser's
// navigator.credentials.create with a platform authenticator would (a
// "none" attestation), and returns it.
func (b *browser) enrol(link string) *consenttest.Authenticator {
	b.t.Helper()
	token := link[strings.LastIndex(link, "/")+1:]
	a := b.do("POST", "/webauthn/enrol/begin", map[string]string{"token": token, "label": "Soft key"})
	if a.status != 200 {
		b.t.Fatalf("enrol begin: %d %s", a.status, a.body)
	}
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(a.body, &opts); err != nil {
		b.t.Fatal(err)
	}
	ch, err1 := base64.RawURLEncoding.DecodeString(opts.PublicKey.Challenge)
	handle, err2 := base64.RawURLEncoding.DecodeString(opts.PublicKey.User.ID)
	if err := errors.Join(err1, err2); err != nil {
		b.t.Fatalf("creation options: %v: %s", err, a.body)
	}
	auth := consenttest.New(opts.PublicKey.RP.ID, b.origin)
	auth.Handle = handle
	cd, err := json.Marshal(map[string]any{"type": "webauthn.create", "challenge": base64.RawURLEncoding.EncodeToString(ch), "origin": b.origin, "crossOrigin": false})
	if err != nil {
		b.t.Fatal(err)
	}
	rp := sha256.Sum256([]byte(auth.RPID))
	ad := append(rp[:], 0x01|0x04|0x40) // user present, user verified, attested credential data
	ad = binary.BigEndian.AppendUint32(ad, 0)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(auth.ID)))
	ad = append(ad, auth.ID...)
	ad = append(ad, auth.PublicKey()...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		b.t.Fatal(err)
	}
	id := base64.RawURLEncoding.EncodeToString(auth.ID)
	a2 := b.do("POST", "/webauthn/enrol/finish", map[string]any{
		"id": id, "rawId": id, "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
			"attestationObject": base64.RawURLEncoding.EncodeToString(att),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{"credProps": map[string]any{"rk": true}},
	})
	if a2.status != 200 {
		b.t.Fatalf("enrol finish (begun on replica %s, finished on %s): %d %s", a.replica, a2.replica, a2.status, a2.body)
	}
	b.t.Logf("enrolment begun on replica %s, finished on replica %s", a.replica, a2.replica)
	return auth
}

// TestReplicasPasskeySignIn: through the proxy, a patient enrols a
// passkey from an invite (begun and finished on different replicas), then
// signs in with it, the sign-in begun on one replica and finished on
// another, and her dashboard, which needs the session, is served by the
// third. No browser: a software authenticator answers as one would.
func TestReplicasPasskeySignIn(t *testing.T) {
	rs := startReplicas(t, 3)
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Replica Patient")
	link := rs.admin(t, 1, "admin", "invite", "--user", pt)
	if !strings.HasPrefix(link, rs.base+"/enrol/") {
		t.Fatalf("invite link %q is not on the proxy's origin %s", link, rs.base)
	}
	enrolling := &browser{t: t, origin: rs.base, cookies: map[string]string{}}
	auth := enrolling.enrol(link)

	b := &browser{t: t, origin: rs.base, cookies: map[string]string{}}
	begin := b.do("POST", "/webauthn/signin/begin", map[string]string{})
	if begin.status != 200 {
		t.Fatalf("sign-in begin: %d %s", begin.status, begin.body)
	}
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(begin.body, &opts); err != nil {
		t.Fatal(err)
	}
	ch, err := base64.RawURLEncoding.DecodeString(opts.PublicKey.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	finish := b.do("POST", "/webauthn/signin/finish", json.RawMessage(auth.ResponseJSON(auth.Sign(ch, consenttest.Options{}))))
	if finish.status != 200 || b.cookies["__Host-vault_session"] == "" {
		t.Fatalf("sign-in finish: %d %s", finish.status, finish.body)
	}
	page := b.do("GET", "/", nil)
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if page.status != 200 || m == nil {
		t.Fatalf("the dashboard with the session: %d %.300s", page.status, page.body)
	}
	b.csrf = string(m[1])
	if begin.replica == finish.replica || finish.replica == page.replica || begin.replica == page.replica {
		t.Fatalf("begin, finish and page went to replicas %s, %s, %s: not three", begin.replica, finish.replica, page.replica)
	}
	t.Logf("sign-in begun on replica %s, finished on %s, dashboard from %s", begin.replica, finish.replica, page.replica)

	// Signed out on one replica is signed out on all.
	out := b.do("POST", "/signout", nil)
	if out.status >= 400 {
		t.Fatalf("sign out: %d %s", out.status, out.body)
	}
	for range 3 {
		if a := b.do("GET", "/", nil); a.status == 200 {
			t.Fatalf("replica %s still served the dashboard after sign-out on %s", a.replica, out.replica)
		}
	}
}

// TestReplicasStartTogether: three replicas started at once on one empty
// database (above) end with one master keyset and one ledger log key:
// every replica announces the same ledger verifier key, and what one
// seals the others open (a patient and token made through two replicas'
// admin sockets, readings uploaded through the third, read back from
// each).
func TestReplicasStartTogether(t *testing.T) {
	rs := startReplicas(t, 3)
	var keysSeen []string
	re := regexp.MustCompile(`"ledger_verifier_key":"([^"]+)"`)
	for _, r := range rs.reps {
		b, err := os.ReadFile(r.log)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(b)
		if m == nil {
			t.Fatalf("replica %d announced no ledger key: %s", r.i, tortureLogTail(r.log))
		}
		keysSeen = append(keysSeen, string(m[1]))
	}
	if keysSeen[0] != keysSeen[1] || keysSeen[1] != keysSeen[2] {
		t.Fatalf("three replicas, ledger keys %q", keysSeen)
	}
	c := pgtest.Connect(t, rs.dsn)
	var masters int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM meta WHERE key = 'master'").Scan(&masters); err != nil || masters != 1 {
		t.Fatalf("master keysets stored: %d, %v", masters, err)
	}
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Together")
	dev := rs.admin(t, 1, "admin", "token", "--user", pt, "--kind", "device")
	tok := rs.admin(t, 2, "admin", "token", "--user", pt, "--kind", "patient")
	if st, body := httpDo(t, "POST", rs.direct(2)+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 0, 10)); st != 201 {
		t.Fatalf("upload on replica 2: %d %s", st, body)
	}
	for i := range rs.reps {
		if got := readUUIDs(t, rs.direct(i), tok); len(got) != 10 {
			t.Fatalf("replica %d reads %d of 10 readings", i, len(got))
		}
	}
}

// replicaUUID names reading i of client c's batch n.
func replicaUUID(c, n, i int) string {
	return fmt.Sprintf("4e9a1ca0-0000-4000-8%03d-%07d%05d", c, n, i)
}

func replicaPoints(c, n, size int) []byte {
	var b bytes.Buffer
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range size {
		ts := base.Add(time.Duration((c*100000+n)*100+i) * time.Second).Format(time.RFC3339)
		fmt.Fprintf(&b, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`+"\n",
			replicaUUID(c, n, i), 70+(n+i)%150, ts)
	}
	return b.Bytes()
}

// readUUIDs reads a patient's glucose through url and returns the uuids.
func readUUIDs(t *testing.T, base, tok string) map[string]bool {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/readings?schema=omh:blood-glucose:4.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("read through %s: %d %s", base, resp.StatusCode, b)
	}
	seen := map[string]bool{}
	re := regexp.MustCompile(`"uuid":"(4e9a1ca0-[^"]+)"`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, m := range re.FindAllStringSubmatch(sc.Text(), -1) {
			if seen[m[1]] {
				t.Fatalf("reading %s twice", m[1])
			}
			seen[m[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// eventLag waits (a minute at most: a bound for a hung watcher, not a
// timing check) for replica r's log to say it applied a patient-deleted
// event that found the patient's key in its cache and evicted it, and
// returns the lag it logged.
func eventLag(t *testing.T, r *replica) time.Duration {
	t.Helper()
	re := regexp.MustCompile(`"msg":"replica event applied","kind":"patient-deleted","event":\d+,"lag_ms":(\d+),"key_evicted":true`)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(r.log)
		if err != nil {
			t.Fatal(err)
		}
		if m := re.FindSubmatch(b); m != nil {
			ms, err := strconv.Atoi(string(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			return time.Duration(ms) * time.Millisecond
		}
	}
	t.Fatalf("replica %d never applied the deletion: %s", r.i, tortureLogTail(r.log))
	return 0
}

// metricLine returns the line of replica r's /metrics that starts with
// prefix.
func metricLine(t *testing.T, r *replica, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"metrics_addr":"([^"]+)"`).FindAllSubmatch(b, -1)
	if m == nil {
		t.Fatalf("replica %d logged no metrics address", r.i)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+string(m[len(m)-1][1])+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, body := clientDo(t, req)
	for l := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestReplicasPatientDeleted: a patient whose keys every replica has
// cached (each read her readings) is deleted through replica 0's admin
// socket. At once, before any event could arrive, ingest for her is
// refused on replicas 1 and 2 and nothing of hers is stored; then each of
// them logs the patient-deleted event applied (her unwrapped key and
// cached figures gone from its memory) and counts it in
// vault_replica_event_lag_seconds. The lag is logged: the target is 2 s.
func TestReplicasPatientDeleted(t *testing.T) {
	rs := startReplicas(t, 3)
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Leaving")
	dev := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "device")
	tok := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "patient")
	if st, body := httpDo(t, "POST", rs.base+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 0, 20)); st != 201 {
		t.Fatalf("upload: %d %s", st, body)
	}
	for i := range rs.reps {
		if got := readUUIDs(t, rs.direct(i), tok); len(got) != 20 {
			t.Fatalf("replica %d reads %d of 20", i, len(got))
		}
	}
	rs.admin(t, 0, "admin", "user", "delete", "--user", pt, "--yes")
	deleted := time.Now()
	for _, i := range []int{1, 2} {
		st, body := httpDo(t, "POST", rs.direct(i)+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 1, 5))
		if st != 401 {
			t.Fatalf("ingest for the deleted patient on replica %d: %d %s", i, st, body)
		}
		if st, body := httpDo(t, "GET", rs.direct(i)+"/api/v1/readings", tok, "", nil); st != 401 {
			t.Fatalf("read of the deleted patient on replica %d: %d %s", i, st, body)
		}
	}
	c := pgtest.Connect(t, rs.dsn)
	var n int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM readings WHERE patient = $1", pt).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the deleted patient's readings in the database: %d, %v", n, err)
	}
	t.Logf("ingest refused on replicas 1 and 2 within %v of the deletion returning", time.Since(deleted))
	for _, i := range []int{1, 2} {
		lag := eventLag(t, rs.reps[i])
		t.Logf("replica %d evicted the deleted patient %v after the deletion on replica 0 (target ≤ 2s)", i, lag)
		if l := metricLine(t, rs.reps[i], `vault_replica_event_lag_seconds_count{kind="patient-deleted"}`); !strings.HasSuffix(l, " 1") {
			t.Fatalf("replica %d's metric: %q", i, l)
		}
	}
}

// TestReplicasSharedSignInLimit: the sign-in limit of an address is one
// budget for all three replicas: DefaultAuthPerMinute sign-in begins
// through the round-robin proxy pass, spread over every replica, and the
// next is refused (429), whichever replica it reaches.
func TestReplicasSharedSignInLimit(t *testing.T) {
	rs := startReplicas(t, 3)
	b := &browser{t: t, origin: rs.base, cookies: map[string]string{}}
	served := map[string]int{}
	for i := range 30 {
		a := b.do("POST", "/webauthn/signin/begin", map[string]string{})
		if a.status != 200 {
			t.Fatalf("sign-in begin %d: %d %s", i+1, a.status, a.body)
		}
		served[a.replica]++
	}
	if len(served) != 3 {
		t.Fatalf("the begins reached replicas %v, not all three", served)
	}
	for range 3 {
		if a := b.do("POST", "/webauthn/signin/begin", map[string]string{}); a.status != http.StatusTooManyRequests {
			t.Fatalf("begin 31 on replica %s: %d %s", a.replica, a.status, a.body)
		}
	}
	t.Logf("30 begins spread %v, then refused on every replica", served)
}

// TestReplicasKilledAtRandom: clients upload batches through the proxy
// while replicas are SIGKILLed at random and started again; afterwards
// every acknowledged batch is readable, whole, through every replica, and
// no reading is stored twice. VAULT_REPLICA_KILLS sets the kills (6).
func TestReplicasKilledAtRandom(t *testing.T) {
	kills := 6
	if v := os.Getenv("VAULT_REPLICA_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil || kills < 1 {
			t.Fatalf("VAULT_REPLICA_KILLS=%q", v)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	rs := startReplicas(t, 3)
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Steady")
	dev := rs.admin(t, 1, "admin", "token", "--user", pt, "--kind", "device")
	tok := rs.admin(t, 2, "admin", "token", "--user", pt, "--kind", "patient")

	const clients, size = 3, 20
	type batch struct {
		c, n  int
		acked bool
	}
	var mu sync.Mutex
	var batches []*batch
	var refused atomic.Int64
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				b := &batch{c: c, n: n}
				mu.Lock()
				batches = append(batches, b)
				mu.Unlock()
				req, err := http.NewRequest("POST", rs.base+"/api/v1/readings", bytes.NewReader(replicaPoints(c, n, size)))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Authorization", "Bearer "+dev)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := hc.Do(req)
				if err != nil {
					refused.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					mu.Lock()
					b.acked = true
					mu.Unlock()
				} else {
					refused.Add(1)
				}
			}
		})
	}
	for k := range kills {
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		i := rng.IntN(len(rs.reps))
		rs.kill(t, i)
		t.Logf("kill %d: replica %d", k+1, i)
		rs.restart(t, i)
	}
	stop()
	wg.Wait()

	acked := 0
	for i := range rs.reps {
		got := readUUIDs(t, rs.direct(i), tok)
		for _, b := range batches {
			have := 0
			for j := range size {
				if got[replicaUUID(b.c, b.n, j)] {
					have++
				}
			}
			if have != 0 && have != size {
				t.Fatalf("replica %d: batch %d/%d stored in part: %d of %d", i, b.c, b.n, have, size)
			}
			if b.acked && have == 0 {
				t.Fatalf("LOST: replica %d does not have acknowledged batch %d/%d", i, b.c, b.n)
			}
		}
		if i == 0 {
			for _, b := range batches {
				if b.acked {
					acked++
				}
			}
			t.Logf("%d batches sent, %d acknowledged (%d readings), %d refused or cut by a kill, %d readings stored", len(batches), acked, acked*size, refused.Load(), len(got))
		}
	}
	if acked == 0 {
		t.Fatal("no batch was acknowledged: the test tested nothing")
	}
}

// TestReplicasReadAfterRevoke: once a revoke returns on one replica, no
// replica allows a read under that grant, and a grant made on one is in
// force on the others at once, with no restart: each replica's grant index
// catches up with the shared ledger before it decides (docs/scaling.md,
// "The ledger across replicas"). Three rounds, each with the grant, the
// key and the revoke made through different replicas.
func TestReplicasReadAfterRevoke(t *testing.T) {
	rs := startReplicas(t, 3, "--key-activation-delay", "0")
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Revoking")
	cl := rs.admin(t, 0, "admin", "user", "add", "--role", "clinician", "--name", "Dr. Replica", "--org", "Lab")
	dev := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "device")
	ptok := rs.admin(t, 0, "admin", "token", "--user", pt, "--kind", "patient")
	ctok := rs.admin(t, 0, "admin", "token", "--user", cl, "--kind", "clinician")
	if st, body := httpDo(t, "POST", rs.direct(0)+"/api/v1/readings", dev, "application/x-ndjson", replicaPoints(0, 0, 5)); st != 201 {
		t.Fatalf("upload: %d %s", st, body)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if st, body := httpDo(t, "POST", rs.direct(2)+"/api/v1/clinician/keys", ctok, "application/json", []byte(`{"recipient":"`+id.Recipient().String()+`","label":"hub"}`)); st/100 != 2 {
		t.Fatalf("clinician key on replica 2: %d %s", st, body)
	}
	export := "/api/v1/patients/" + pt + "/export?schema=omh:blood-glucose:4.0&from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
	for round := range 3 {
		granter, revoker := round%3, (round+1)%3
		grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, cl, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
		st, body := httpDo(t, "POST", rs.direct(granter)+"/api/v1/grants", ptok, "application/json", []byte(grant))
		if st != 201 {
			t.Fatalf("round %d: grant on replica %d: %d %s", round, granter, st, body)
		}
		var g struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &g); err != nil || g.ID == "" {
			t.Fatalf("grant answer %s: %v", body, err)
		}
		for i := range rs.reps {
			if st, body := httpDo(t, "GET", rs.direct(i)+export, ctok, "", nil); st != 200 {
				t.Fatalf("round %d: export on replica %d under the grant made on replica %d: %d %.300s", round, i, granter, st, body)
			}
		}
		if st, body := httpDo(t, "POST", rs.direct(revoker)+"/api/v1/grants/"+g.ID+"/revoke", ptok, "", nil); st/100 != 2 {
			t.Fatalf("round %d: revoke on replica %d: %d %s", round, revoker, st, body)
		}
		for i := range rs.reps {
			if st, _ := httpDo(t, "GET", rs.direct(i)+export, ctok, "", nil); st == 200 {
				t.Errorf("round %d: replica %d allowed an export after the revoke on replica %d returned", round, i, revoker)
			}
		}
	}
}

// TestReplicasChromiumPasskey: real Chromium with a virtual authenticator,
// through the proxy: every WebAuthn begin goes to replica 0, every finish
// to replica 1, and every page and asset to replica 2. The patient enrols
// from an invite, signs out, and signs in again with her passkey; the
// signed-in pages come from the third replica.
func TestReplicasChromiumPasskey(t *testing.T) {
	ctx := browsertest.New(t, 1100, 900)
	browsertest.Authenticator(t, ctx)
	rs := startReplicas(t, 3)
	pt := rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Chromium Patient")
	link := rs.admin(t, 1, "admin", "invite", "--user", pt)
	rs.mu.Lock()
	rs.route = func(path string) int {
		switch {
		case strings.HasPrefix(path, "/webauthn/") && strings.HasSuffix(path, "/begin"):
			return 0
		case strings.HasPrefix(path, "/webauthn/") && strings.HasSuffix(path, "/finish"):
			return 1
		}
		return 2
	}
	rs.mu.Unlock()
	signedIn := chromedp.WaitVisible(chromedp.CSS(`form[action="/signout"] button`))
	browsertest.Run(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#enrol-form")),
		chromedp.Click(chromedp.CSS("#enrol-form button")), signedIn,
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#signin-button")))
	browsertest.Run(t, ctx, chromedp.Navigate(rs.base+"/signin"), chromedp.WaitVisible(chromedp.CSS("#signin-button")),
		chromedp.Click(chromedp.CSS("#signin-button")), signedIn)
	rs.mu.Lock()
	served := slices.Clone(rs.served)
	rs.mu.Unlock()
	for _, want := range []string{"POST /webauthn/enrol/begin 0", "POST /webauthn/enrol/finish 1", "POST /webauthn/signin/begin 0", "POST /webauthn/signin/finish 1", "GET / 2"} {
		if !slices.Contains(served, want) {
			t.Fatalf("no %q among the requests served: %q", want, served)
		}
	}
}
