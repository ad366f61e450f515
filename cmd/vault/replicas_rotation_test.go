package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestReplicasKeyRotation: 'vault keys rotate' runs through replica 0's
// admin socket while clients upload and read through the round-robin
// proxy and straight at random replicas, and new patients are made on
// random replicas (an account and a patient key blob sealed under
// whichever master key their replica's primary is at that moment) and
// read through the others. No request fails; every acknowledged reading
// reads back through every replica; and the reload on an unknown key,
// the rotation's safety net, never fired on any replica
// (vault_master_unknown_key_reloads_total 0): each held the new key before
// anything was sealed under it. After the rotation a patient made on
// replica 0 is read through replicas 1 and 2, each of which must then
// open an account and a key blob under the new key: without the first
// phase (the key promoted at once) that is exactly where the safety net
// fires.
func TestReplicasKeyRotation(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rs := startReplicas(t, 3)
	c := pgtest.Connect(t, rs.dsn)
	var live int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM vault_replicas").Scan(&live); err != nil || live != 3 {
		t.Fatalf("replicas heartbeating before the rotation: %d, %v; want 3", live, err)
	}

	type client struct {
		dev, tok string
		batches  []int // acknowledged batch numbers
	}
	newClient := func(via int, name string) *client {
		pt := rs.admin(t, via, "admin", "user", "add", "--role", "patient", "--name", name)
		return &client{
			dev: rs.admin(t, (via+1)%3, "admin", "token", "--user", pt, "--kind", "device"),
			tok: rs.admin(t, (via+2)%3, "admin", "token", "--user", pt, "--kind", "patient"),
		}
	}
	const size = 10
	hc := &http.Client{Timeout: 30 * time.Second}
	do := func(method, url, tok string, body []byte) (int, string) {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, fmt.Sprintf("replica %s: %s", resp.Header.Get("X-Test-Replica"), b)
	}

	// vault runs a command from a client's goroutine (runVault is for the
	// test's own).
	vault := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, "vault", args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return strings.TrimSpace(out.String()), errb.String(), err
	}
	var mu sync.Mutex
	var failures []string
	fail := func(f string, a ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	var clients []*client
	for i := range 3 {
		clients = append(clients, newClient(i, fmt.Sprintf("Steady %d", i)))
	}
	ctx, stop := context.WithCancel(t.Context())
	var after atomic.Bool // set once the rotation returned
	var roundsAfter atomic.Int64
	var wg sync.WaitGroup
	for ci, cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(ci)))
			for n := 0; ctx.Err() == nil; n++ {
				if st, body := do("POST", rs.base+"/api/v1/readings", cl.dev, replicaPoints(ci, n, size)); st != 201 {
					fail("client %d upload %d: %d %s", ci, n, st, body)
					return
				}
				mu.Lock()
				cl.batches = append(cl.batches, n)
				mu.Unlock()
				if st, body := do("GET", rs.direct(rng.IntN(3))+"/api/v1/readings?schema=omh:blood-glucose:4.0", cl.tok, nil); st != 200 {
					fail("client %d read: %d %s", ci, st, body)
					return
				}
				if after.Load() {
					roundsAfter.Add(1)
				}
			}
		})
	}
	// New patients during the rotation: made on one replica, used through
	// the others.
	var made atomic.Int64
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 99))
		for k := 0; ctx.Err() == nil; k++ {
			via := rng.IntN(3)
			pt, errOut, err := vault("admin", "user", "add", "--role", "patient", "--name", fmt.Sprintf("New %d", k), "--data", rs.reps[via].data)
			if err != nil {
				fail("user add on replica %d: %v %s", via, err, errOut)
				return
			}
			dev, errOut, err := vault("admin", "token", "--user", pt, "--kind", "device", "--data", rs.reps[(via+1)%3].data)
			if err != nil {
				fail("token on replica %d: %v %s", (via+1)%3, err, errOut)
				return
			}
			if st, body := do("POST", rs.direct((via+2)%3)+"/api/v1/readings", dev, replicaPoints(50+k, 0, size)); st != 201 {
				fail("new patient %d's upload: %d %s", k, st, body)
				return
			}
			made.Add(1)
		}
	})

	// Traffic first, then the rotation through replica 0's admin socket.
	for made.Load() < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	out := rs.admin(t, 0, "keys", "rotate")
	after.Store(true)
	t.Logf("keys rotate: %s", out)
	m := regexp.MustCompile(`rotated: master key \d+ -> (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys rotate said %q", out)
	}
	target := m[1]
	// Traffic carries on past the rotation (counted, not timed).
	for roundsAfter.Load() < 30 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	madeAtRotation := made.Load()
	for made.Load() < madeAtRotation+2 && len(failures) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during the rotation; first: %s", len(failures), failures[0])
	}

	// After it: a patient made on replica 0 (account and key blob under
	// the new key), used through replicas 1 and 2.
	late := newClient(0, "Late")
	for _, i := range []int{1, 2} {
		if st, body := do("POST", rs.direct(i)+"/api/v1/readings", late.dev, replicaPoints(90+i, 0, size)); st != 201 {
			t.Fatalf("the late patient's upload through replica %d: %d %s", i, st, body)
		}
	}
	clients = append(clients, late)
	late.batches = nil

	// Every acknowledged reading, through every replica.
	for i := range rs.reps {
		for ci, cl := range clients[:3] {
			got := readUUIDs(t, rs.direct(i), cl.tok)
			for _, n := range cl.batches {
				for j := range size {
					if !got[replicaUUID(ci, n, j)] {
						t.Fatalf("replica %d: client %d's acknowledged reading %d/%d is missing", i, ci, n, j)
					}
				}
			}
		}
		if got := readUUIDs(t, rs.direct(i), late.tok); len(got) != 2*size {
			t.Fatalf("replica %d reads %d of the late patient's %d readings", i, len(got), 2*size)
		}
	}
	// The safety net never fired, on any replica.
	for i, r := range rs.reps {
		if l := metricLine(t, r, "vault_master_unknown_key_reloads_total "); l != "vault_master_unknown_key_reloads_total 0" {
			t.Fatalf("replica %d: %q; want 0 (it met the new key before holding it)", i, l)
		}
	}
	// Every replica seals under the new key in the end (the promotion's
	// event; a bound for a lost watcher, not a timing check).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := c.QueryRow(t.Context(), "SELECT count(*) FROM vault_replicas WHERE master_primary = $1", target).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 replicas report the new primary %s", n, target)
		}
	}
	b, err := os.ReadFile(rs.reps[0].log)
	if err != nil {
		t.Fatal(err)
	}
	w := regexp.MustCompile(`"msg":"every live replica holds the new master key","key":` + target + `,"waited_ms":(\d+)`).FindSubmatch(b)
	if w == nil {
		t.Fatalf("replica 0 did not log the wait for the replicas: %s", tortureLogTail(rs.reps[0].log))
	}
	total := 0
	for _, cl := range clients[:3] {
		total += len(cl.batches)
	}
	t.Logf("%d batches of %d acknowledged and read back through every replica, %d patients made on one replica and used through another while the clients ran, %d client rounds after the rotation; the promotion waited %s ms for the three replicas to hold the key; no unknown-key reload anywhere", total, size, made.Load(), roundsAfter.Load(), w[1])
}
