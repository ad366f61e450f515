package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// The crash torture test: the real binary under concurrent ingest, grants,
// revokes and fresh checkpoints over HTTP, killed with SIGKILL at a random
// moment, then checked: the file opens and passes bbolt's page check, the
// consent ledger verifies and still extends the newest checkpoint a client
// was given, and after a restart every acknowledged write is there (no
// batch in part). See docs/testing.md, "Crash torture test".
var (
	tortureRounds = flag.Int("torture.rounds", 0, "rounds of the crash torture test (default 5, or $VAULT_TORTURE_ROUNDS)")
	tortureSeed   = flag.Uint64("torture.seed", 0, "seed of the crash torture test, to replay a run (default: from the clock, or $VAULT_TORTURE_SEED)")
)

const (
	tortureDefaultRounds = 5
	tortureIngesters     = 4  // two per patient
	tortureGranters      = 2  // one per patient
	tortureMaxBatch      = 40 // points per batch: 1 to this
)

// tortureParams reads the flags, falling back to the environment (so that
// `VAULT_TORTURE_ROUNDS=100 scripts/test` works) and then to the defaults.
func tortureParams(t *testing.T) (rounds int, seed uint64) {
	rounds, seed = *tortureRounds, *tortureSeed
	if rounds == 0 {
		rounds = tortureDefaultRounds
		if v := os.Getenv("VAULT_TORTURE_ROUNDS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("VAULT_TORTURE_ROUNDS=%q: want a positive number", v)
			}
			rounds = n
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
		if v := os.Getenv("VAULT_TORTURE_SEED"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				t.Fatalf("VAULT_TORTURE_SEED=%q: want a positive number", v)
			}
			seed = n
		}
	}
	return rounds, seed
}

// tortureProc is one `vault serve` process, which the test kills.
type tortureProc struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{}
	waitErr error
}

func startTortureProc(t *testing.T, data, key, logPath string, extra ...string) *tortureProc {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p := &tortureProc{url: "http://" + addr, logPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command("vault", append([]string{"serve", "--data", data, "--root-key-file", key, "--addr", addr}, extra...)...)
	p.cmd.Stderr = logf // a file: the child writes it directly
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	// Whatever happens to the test, the process does not outlive it.
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("server exited during start (%v): %s", p.waitErr, tortureLogTail(p.logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not become healthy in 60s: %s", tortureLogTail(p.logPath))
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *tortureProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("server still running 30s after SIGKILL")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("server was not killed by SIGKILL but ended with %v: %s", p.waitErr, tortureLogTail(p.logPath))
	}
}

// term sends SIGTERM and requires a clean exit.
func (p *tortureProc) term(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not stop within 60s of SIGTERM: %s", tortureLogTail(p.logPath))
	}
	if p.waitErr != nil {
		t.Fatalf("server stop: %v: %s", p.waitErr, tortureLogTail(p.logPath))
	}
	if b, _ := os.ReadFile(p.logPath); !bytes.Contains(b, []byte("stopped cleanly")) {
		t.Fatalf("no clean stop in the log: %s", tortureLogTail(p.logPath))
	}
}

func tortureLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "\n--- " + path + ": unreadable: " + err.Error() + " ---"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "\n--- " + path + " ---\n" + string(b)
}

// tortureUUID names point i of batch id; the batch and index are read back
// from the uuid.
func tortureUUID(batch, i int) string {
	return fmt.Sprintf("7e57ba7c-0000-4000-8000-%07d%05d", batch, i)
}

func torturePoints(batch, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := base.Add(time.Duration(batch*tortureMaxBatch+i) * time.Second).Format(time.RFC3339)
		fmt.Fprintf(&b, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`+"\n",
			tortureUUID(batch, i), 70+(batch+i)%150, ts)
	}
	return b.Bytes()
}

type tortureBatch struct {
	patient, size int
	acked         bool // 201 received
	seen          bool // found whole after a restart: it must stay
}

type tortureGrant struct {
	patient                  int
	acked                    bool // 201 received (else found after a restart though its answer was lost)
	revokeTried, revokeAcked bool
	seenRevoked              bool
}

type tortureStats struct {
	batches, batchesAcked, points, pointsAcked   int
	grants, grantsAcked, revokes, revokesAcked   int
	grantsRefused                                int // by the ledger-write quota
	checkpoints                                  int
	killsMidRequest, inFlightAtKill              int
	batchesUnackedStored, grantsUnackedStored    int
	revokesUnackedStored                         int
	readingsChecked, grantsChecked, roundsPassed int
	refusedDBDown                                int // 500 or 503 while the database was down
}

// tortureState is what the clients were told, across every round.
type tortureState struct {
	mu         sync.Mutex
	batches    []*tortureBatch
	grants     map[string]*tortureGrant
	grantPosts [2]int // grant posts without an answer, per patient
	checkpoint []byte // the newest signed checkpoint a client received
	cpSize     int64
	stats      tortureStats
}

func (s *tortureState) newBatch(patient, size int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, &tortureBatch{patient: patient, size: size})
	s.stats.batches++
	s.stats.points += size
	return len(s.batches) - 1
}

// revocable picks a grant of the patient known to exist and never revoked,
// and marks it as being revoked.
func (s *tortureState) revocable(patient int, rng *rand.Rand) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, g := range s.grants {
		if g.patient == patient && !g.revokeTried {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	slices.Sort(ids) // map order is random; sorted, the choice replays
	id := ids[rng.IntN(len(ids))]
	s.grants[id].revokeTried = true
	s.stats.revokes++
	return id
}

func checkpointSize(cp []byte) (int64, bool) {
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	return n, err == nil
}

// tortureTarget is the database a torture run stands on.
type tortureTarget struct {
	name  string
	serve []string        // serve's flags for it
	pg    *pgtest.Cluster // PostgreSQL's private cluster; nil for bbolt in --data
}

// The kinds of round on PostgreSQL (on bbolt every round is a kill).
const (
	roundKill = iota // SIGKILL the vault
	roundDB          // pg_ctl -m immediate stop and start under the running vault
	roundBoth        // crash the database, SIGKILL the vault while it is down
)

var roundNames = []string{"kill the vault", "crash the database under the running vault", "crash the database and kill the vault"}

// TestTorture: see the comment at the top of the file.
func TestTorture(t *testing.T) { runTorture(t, tortureTarget{name: "bbolt"}) }

func runTorture(t *testing.T, tgt tortureTarget) {
	rounds, seed := tortureParams(t)
	t.Logf("crash torture on %s: %d rounds, seed %d (replay with -torture.seed=%d -torture.rounds=%d)", tgt.name, rounds, seed, seed, rounds)
	// Under -race every child process otherwise sleeps a second as it
	// exits (the race runtime's atexit_sleep_ms), and the test runs dozens.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	began := time.Now()
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	db := dbPath(data)
	cpFile := filepath.Join(dir, "checkpoint.txt")
	if tgt.pg == nil {
		initVault(t, data, key)
	}
	proc := startTortureProc(t, data, key, filepath.Join(dir, "server-00.log"), tgt.serve...)

	admin := func(args ...string) string {
		t.Helper()
		out, stderr, err := runVault(t, 60*time.Second, append(args, "--data", data, "--root-key-file", key)...)
		if err != nil {
			t.Fatalf("vault %s: %v: %s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	var patients [2]string
	var devTok, ptTok [2]string
	for i := range patients {
		patients[i] = admin("admin", "user", "add", "--role", "patient", "--name", fmt.Sprintf("Torture Patient %d", i))
		devTok[i] = admin("admin", "token", "--user", patients[i], "--kind", "device")
		ptTok[i] = admin("admin", "token", "--user", patients[i], "--kind", "patient")
	}
	clinician := admin("admin", "user", "add", "--role", "clinician", "--name", "Dr. Torture", "--org", "Crash Lab")
	clinTok := admin("admin", "token", "--user", clinician, "--kind", "clinician")
	if st, b := httpDo(t, "GET", proc.url+"/api/v1/clinicians", clinTok, "", nil); st != 200 || !bytes.Contains(b, []byte(clinician)) {
		t.Fatalf("clinician token: %d %s", st, b)
	}

	s := &tortureState{grants: map[string]*tortureGrant{}}
	master := rand.New(rand.NewPCG(seed, 0x70127e))
	fail := func(round int, format string, args ...any) {
		t.Helper()
		t.Fatalf("round %d (seed %d): %s", round, seed, fmt.Sprintf(format, args...))
	}

	verify := func(round int, where string) {
		t.Helper()
		args := []string{"ledger", "verify", "--data", data, "--root-key-file", key}
		s.mu.Lock()
		if s.checkpoint != nil {
			if err := os.WriteFile(cpFile, s.checkpoint, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--checkpoint", cpFile)
		}
		s.mu.Unlock()
		out, stderr, err := runVault(t, 120*time.Second, args...)
		if err != nil || !strings.HasPrefix(out, "ledger ok") {
			fail(round, "vault ledger verify %s: %v\n%s\n%s", where, err, out, stderr)
		}
	}

	sawCrash := map[string]bool{} // the logs of servers the database crashed under
	for round := range rounds {
		// Run the clients against the live server for 50–400 ms, then kill
		// it (or crash the database under it) while they are mid-request.
		d := time.Duration(50+master.IntN(351)) * time.Millisecond
		rseed := master.Uint64()
		mode := roundKill
		if tgt.pg != nil {
			mode = round % 3
		}
		// While the database is down a request is refused (500 or 503):
		// an answer that acknowledges nothing, as a lost one, and the
		// client carries on.
		transient := func(st int) bool {
			if mode == roundKill || (st != http.StatusInternalServerError && st != http.StatusServiceUnavailable) {
				return false
			}
			s.mu.Lock()
			s.stats.refusedDBDown++
			s.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			return true
		}
		client := &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
			Timeout:   60 * time.Second,
		}
		var inflight atomic.Int64
		stop := make(chan struct{})
		stopped := func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		}
		// do sends one request; err means no answer arrived (the kill).
		do := func(method, path, token string, body []byte) (int, []byte, error) {
			req, err := http.NewRequest(method, proc.url+path, bytes.NewReader(body))
			if err != nil {
				return 0, nil, err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			if strings.HasSuffix(path, "/readings") {
				req.Header.Set("Content-Type", "application/x-ndjson")
			}
			inflight.Add(1)
			defer inflight.Add(-1)
			resp, err := client.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return 0, nil, err
			}
			return resp.StatusCode, b, nil
		}
		var wg sync.WaitGroup
		for w := range tortureIngesters {
			patient := w % 2
			rng := rand.New(rand.NewPCG(rseed, uint64(w)))
			wg.Go(func() {
				for !stopped() {
					size := 1 + rng.IntN(tortureMaxBatch)
					id := s.newBatch(patient, size)
					st, b, err := do("POST", "/api/v1/readings", devTok[patient], torturePoints(id, size))
					if err != nil {
						return
					}
					if transient(st) {
						continue
					}
					var res struct{ Accepted, Duplicates int }
					if st != 201 || json.Unmarshal(b, &res) != nil || res.Accepted != size || res.Duplicates != 0 {
						t.Errorf("round %d: batch %d of %d points: %d %s", round, id, size, st, b)
						return
					}
					s.mu.Lock()
					s.batches[id].acked = true
					s.stats.batchesAcked++
					s.stats.pointsAcked += size
					s.mu.Unlock()
				}
			})
		}
		for w := range tortureGranters {
			patient := w
			rng := rand.New(rand.NewPCG(rseed, uint64(100+w)))
			wg.Go(func() {
				for !stopped() {
					if rng.IntN(3) == 0 {
						if id := s.revocable(patient, rng); id != "" {
							st, b, err := do("POST", "/api/v1/grants/"+id+"/revoke", ptTok[patient], nil)
							if err != nil {
								return
							}
							if transient(st) {
								continue
							}
							if st != 200 || !bytes.Contains(b, []byte(`"status":"revoked"`)) {
								t.Errorf("round %d: revoke %s: %d %s", round, id, st, b)
								return
							}
							s.mu.Lock()
							s.grants[id].revokeAcked = true
							s.stats.revokesAcked++
							s.mu.Unlock()
							continue
						}
					}
					body := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`,
						clinician, time.Now().Add(time.Duration(30+rng.IntN(300))*24*time.Hour).UTC().Format(time.RFC3339))
					s.mu.Lock()
					s.grantPosts[patient]++
					s.stats.grants++
					s.mu.Unlock()
					st, b, err := do("POST", "/api/v1/grants", ptTok[patient], []byte(body))
					if err != nil {
						return
					}
					if transient(st) {
						continue
					}
					if st == http.StatusTooManyRequests && bytes.Contains(b, []byte(`"code":"ledger_quota"`)) {
						// The per-token quota on ledger writes refused it:
						// nothing is stored, and the test checks that
						// after the kill like any other answer.
						s.mu.Lock()
						s.grantPosts[patient]--
						s.stats.grantsRefused++
						s.mu.Unlock()
						time.Sleep(50 * time.Millisecond)
						continue
					}
					var g struct{ ID, Status string }
					if st != 201 || json.Unmarshal(b, &g) != nil || !strings.HasPrefix(g.ID, "gr_") || g.Status != "active" {
						t.Errorf("round %d: grant: %d %s", round, st, b)
						return
					}
					s.mu.Lock()
					s.grantPosts[patient]--
					s.grants[g.ID] = &tortureGrant{patient: patient, acked: true}
					s.stats.grantsAcked++
					s.mu.Unlock()
				}
			})
		}
		// Fresh checkpoints: each is a signed promise the log must keep.
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rseed, 200))
			for !stopped() {
				time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond)
				st, b, err := do("GET", "/api/v1/ledger/checkpoint?fresh=1", "", nil)
				if err != nil {
					return
				}
				if transient(st) {
					continue
				}
				n, ok := checkpointSize(b)
				if st != 200 || !ok {
					t.Errorf("round %d: checkpoint: %d %s", round, st, b)
					return
				}
				s.mu.Lock()
				s.stats.checkpoints++
				if n >= s.cpSize {
					s.checkpoint, s.cpSize = b, n
				}
				s.mu.Unlock()
			}
		})

		time.Sleep(d)
		n := inflight.Load()
		if mode != roundKill {
			sawCrash[proc.logPath] = true
			tgt.pg.Crash(t)
		}
		if mode == roundDB {
			// The vault lives on: the clients keep at it while the
			// database is down and after it is back.
			time.Sleep(time.Duration(master.IntN(200)) * time.Millisecond)
			tgt.pg.Start(t)
			time.Sleep(time.Duration(100+master.IntN(300)) * time.Millisecond)
		} else {
			proc.kill(t)
		}
		close(stop)
		wg.Wait()
		client.CloseIdleConnections()
		if mode == roundBoth {
			tgt.pg.Start(t)
		}
		if mode == roundDB && !t.Failed() {
			tortureRecovered(t, s, proc.url, devTok, ptTok, clinician, round, seed)
		}
		if t.Failed() {
			fail(round, "a client got an unexpected answer (above); server log: %s", tortureLogTail(proc.logPath))
		}
		s.mu.Lock()
		s.stats.inFlightAtKill += int(n)
		if n > 0 {
			s.stats.killsMidRequest++
		}
		s.mu.Unlock()

		if tgt.pg == nil {
			// The process is gone: the file must open and check, and the
			// ledger verify, before anything (a start) touches it.
			if err := boltstore.Check(db); err != nil {
				fail(round, "bbolt check after SIGKILL: %v", err)
			}
			verify(round, "on the killed file")
		}
		// (On PostgreSQL 'vault ledger verify' works through a running
		// server's admin socket only: the checks below are made through
		// the restarted server, or the one that lived through the
		// database's crash, which replays the log from the database.)

		killedLog := proc.logPath
		if mode != roundDB {
			proc = startTortureProc(t, data, key, filepath.Join(dir, fmt.Sprintf("server-%02d.log", round+1)), tgt.serve...)
		}
		tortureCheck(t, s, proc.url, ptTok, round, seed)
		verify(round, "through the "+map[bool]string{true: "server that lived through the database's crash", false: "restarted server"}[mode == roundDB])
		// The log of the killed process too: a race report there would
		// otherwise go unseen, since it never exits by itself. Where the
		// database crashed under a server, that server logs the failed
		// requests as errors, as it should: only a race or a panic fails
		// the round then.
		for _, l := range []string{killedLog, proc.logPath} {
			b, err := os.ReadFile(l)
			if err != nil {
				fail(round, "server log: %v", err)
			}
			errorsLogged := bytes.Contains(b, []byte(`"level":"ERROR"`)) && !sawCrash[l]
			if errorsLogged || bytes.Contains(b, []byte("DATA RACE")) || bytes.Contains(b, []byte("panic:")) {
				fail(round, "a server logged an error: %s", tortureLogTail(l))
			}
		}
		s.stats.roundsPassed++
		t.Logf("round %d (%s): after %v with %d requests in flight; %d batches, %d grants, %d revokes acknowledged so far",
			round, roundNames[mode], d, n, s.stats.batchesAcked, s.stats.grantsAcked, s.stats.revokesAcked)
	}

	if tgt.pg != nil {
		verify(rounds, "through the server before its clean stop")
	}
	proc.term(t)
	if tgt.pg == nil {
		if err := boltstore.Check(db); err != nil {
			t.Fatalf("bbolt check after the final clean stop: %v", err)
		}
		verify(rounds, "after the final clean stop")
	}
	st := s.stats
	t.Logf("crash torture passed: %d rounds in %v, seed %d; %d kills landed with requests in flight (%d requests in all)",
		st.roundsPassed, time.Since(began).Round(time.Millisecond), seed, st.killsMidRequest, st.inFlightAtKill)
	t.Logf("acknowledged: %d of %d batches (%d of %d readings), %d of %d grants, %d of %d revokes, %d fresh checkpoints; lost: none",
		st.batchesAcked, st.batches, st.pointsAcked, st.points, st.grantsAcked, st.grants, st.revokesAcked, st.revokes, st.checkpoints)
	t.Logf("stored though the answer was lost to the kill: %d batches, %d grants, %d revokes; %d grants refused by the ledger-write quota; %d requests refused while the database was down",
		st.batchesUnackedStored, st.grantsUnackedStored, st.revokesUnackedStored, st.grantsRefused, st.refusedDBDown)
}

// tortureRecovered requires the server that lived through the database's
// crash to take writes again: a batch for each patient and a grant,
// retried while it answers 500 or 503 (its pool reconnecting), for at
// most a minute; each then counts as acknowledged.
func tortureRecovered(t *testing.T, s *tortureState, url string, devTok, ptTok [2]string, clinician string, round int, seed uint64) {
	t.Helper()
	post := func(what, path, token, ctype string, body []byte, want int) []byte {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			st, b := httpDo(t, "POST", url+path, token, ctype, body)
			if st == want {
				return b
			}
			if (st != http.StatusInternalServerError && st != http.StatusServiceUnavailable) || time.Now().After(deadline) {
				t.Fatalf("round %d (seed %d): %s after the database came back: %d %s", round, seed, what, st, b)
			}
		}
	}
	for p := range devTok {
		size := 5
		id := s.newBatch(p, size)
		post("a batch", "/api/v1/readings", devTok[p], "application/x-ndjson", torturePoints(id, size), 201)
		s.mu.Lock()
		s.batches[id].acked = true
		s.stats.batchesAcked++
		s.stats.pointsAcked += size
		s.mu.Unlock()
	}
	body := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"}`, clinician, time.Now().Add(90*24*time.Hour).UTC().Format(time.RFC3339))
	s.mu.Lock()
	s.grantPosts[0]++
	s.stats.grants++
	s.mu.Unlock()
	b := post("a grant", "/api/v1/grants", ptTok[0], "application/json", []byte(body), 201)
	var g struct{ ID string }
	if json.Unmarshal(b, &g) != nil || !strings.HasPrefix(g.ID, "gr_") {
		t.Fatalf("round %d: grant after the database came back: %s", round, b)
	}
	s.mu.Lock()
	s.grantPosts[0]--
	s.grants[g.ID] = &tortureGrant{patient: 0, acked: true}
	s.stats.grantsAcked++
	s.mu.Unlock()
}

// tortureCheck compares the restarted server with what the clients were
// told: every acknowledged batch whole, no batch in part, nothing unknown;
// every acknowledged grant listed, every acknowledged revoke revoked, and no
// more grants than posts that went unanswered.
func tortureCheck(t *testing.T, s *tortureState, url string, ptTok [2]string, round int, seed uint64) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("round %d (seed %d): after restart: %s", round, seed, fmt.Sprintf(format, args...))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	count := make([]int, len(s.batches))
	for p := range ptTok {
		req, err := http.NewRequest("GET", url+"/api/v1/readings?schema=omh:blood-glucose:4.0", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ptTok[p])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fail("read patient %d: %v", p, err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fail("read patient %d: %d %s", p, resp.StatusCode, b)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := map[string]bool{}
		for sc.Scan() {
			l := sc.Text()
			i := strings.Index(l, `"uuid":"7e57ba7c-0000-4000-8000-`)
			if i < 0 || len(l) < i+8+36 {
				fail("patient %d has a reading the test never sent: %.200s", p, l)
			}
			u := l[i+8 : i+8+36]
			batch, err1 := strconv.Atoi(u[24:31])
			idx, err2 := strconv.Atoi(u[31:36])
			if err1 != nil || err2 != nil || batch >= len(s.batches) || idx >= s.batches[batch].size || s.batches[batch].patient != p {
				fail("patient %d has a reading the test never sent them: %s", p, u)
			}
			if seen[u] {
				fail("patient %d has reading %s twice", p, u)
			}
			seen[u] = true
			count[batch]++
			s.stats.readingsChecked++
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			fail("read patient %d: %v", p, err)
		}
	}
	for id, b := range s.batches {
		switch {
		case count[id] != 0 && count[id] != b.size:
			fail("batch %d is stored in part: %d of %d readings (acknowledged: %v)", id, count[id], b.size, b.acked)
		case count[id] == 0 && b.acked:
			fail("LOST: acknowledged batch %d (%d readings, patient %d) is missing", id, b.size, b.patient)
		case count[id] == 0 && b.seen:
			fail("LOST: batch %d, found whole after an earlier restart, is missing", id)
		case count[id] != 0 && !b.acked && !b.seen:
			s.stats.batchesUnackedStored++
		}
		if count[id] != 0 {
			b.seen = true
		}
	}

	for p := range ptTok {
		st, body := httpDo(t, "GET", url+"/api/v1/grants", ptTok[p], "", nil)
		var list []struct{ ID, Patient, Status string }
		if st != 200 || json.Unmarshal(body, &list) != nil {
			fail("list grants of patient %d: %d %.300s", p, st, body)
		}
		listed := map[string]string{}
		unknown := 0
		for _, g := range list {
			listed[g.ID] = g.Status
			known := s.grants[g.ID]
			if known == nil {
				// Committed, but its 201 was lost to a kill: it must stay.
				unknown++
				s.grants[g.ID] = &tortureGrant{patient: p}
				s.stats.grantsUnackedStored++
				known = s.grants[g.ID]
			}
			if known.patient != p {
				fail("grant %s of patient %d is listed for patient %d", g.ID, known.patient, p)
			}
		}
		if unknown > s.grantPosts[p] {
			fail("patient %d has %d grants the test was never told of, but only %d grant posts went unanswered", p, unknown, s.grantPosts[p])
		}
		s.grantPosts[p] -= unknown
		for id, g := range s.grants {
			if g.patient != p {
				continue
			}
			st, ok := listed[id]
			switch {
			case !ok && g.acked:
				fail("LOST: acknowledged grant %s is missing", id)
			case !ok:
				fail("LOST: grant %s, listed after an earlier restart, is missing", id)
			case g.revokeAcked && st != "revoked":
				fail("LOST: grant %s's acknowledged revoke: it is %s", id, st)
			case g.seenRevoked && st != "revoked":
				fail("LOST: grant %s was revoked after an earlier restart; now it is %s", id, st)
			case st == "revoked" && !g.revokeTried:
				fail("grant %s is revoked but nobody revoked it", id)
			case st != "revoked" && st != "active":
				fail("grant %s is %s", id, st)
			}
			if st == "revoked" && !g.revokeAcked && !g.seenRevoked {
				s.stats.revokesUnackedStored++
			}
			if st == "revoked" {
				g.seenRevoked = true
			}
			s.stats.grantsChecked++
		}
	}
}
