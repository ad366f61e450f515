package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/bench"
)

// TestBenchLoad runs the load bench briefly against a real 'vault serve'
// (the test binary, as "vault" on PATH) and checks the report: every
// operation of the mix ran, none failed or was refused, the server's RSS
// was sampled, and the table names every operation.
func TestBenchLoad(t *testing.T) {
	exe, err := exec.LookPath("vault")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	r, err := bench.Mix(bench.MixConfig{Clients: 4, Pause: 20 * time.Millisecond, Duration: 2 * time.Second, Patients: 3,
		Dir: t.TempDir(), Exe: exe, Open: benchOpen, Stderr: &stderr})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, op := range bench.MixOps {
		o := r.Ops[op]
		if o.Count == 0 || o.Errors != 0 || o.Limited != 0 {
			t.Errorf("%s: %+v", op, o)
		}
		if o.P50 <= 0 || o.P99 < o.P50 || o.Max < o.P99 {
			t.Errorf("%s: latencies out of order: %+v", op, o)
		}
	}
	if r.Requests < len(bench.MixOps) || len(r.RSS) < 2 || r.RSSAt(0) == 0 {
		t.Errorf("%d requests, RSS samples %v", r.Requests, r.RSS)
	}
	var out bytes.Buffer
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{"requests/s", "0 errors, 0 refused with 429", "server RssAnon: start"}, bench.MixOps...) {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	// The command line too, with its defaults: once --replicas (whose
	// default is for --database) refused every plain 'vault bench load'.
	// With --ops, only the operations named are drawn and shown.
	stdout, errOut, err := runVault(t, 2*time.Minute, "bench", "load", "--clients", "2", "--patients", "1", "--demo-days", "1", "--duration", "1s", "--ops", "grants,checkpoint")
	if err != nil || !strings.Contains(stdout, "requests/s") {
		t.Fatalf("vault bench load: %v\n%s\n%s", err, stdout, errOut)
	}
	for _, op := range bench.MixOps {
		row := regexp.MustCompile(`(?m)^ *` + op + ` +[1-9][0-9]* `)
		if want := op == "grants" || op == "checkpoint"; row.MatchString(stdout) != want {
			t.Errorf("--ops grants,checkpoint: a row for %s with requests: %v, want %v\n%s", op, !want, want, stdout)
		}
	}
	if _, errOut, err := runVault(t, time.Minute, "bench", "load", "--ops", "grants,nope"); err == nil || !strings.Contains(errOut, `"nope" is not an operation of the mix`) {
		t.Errorf("--ops with an unknown operation: %v\n%s", err, errOut)
	}
}

// TestBenchLoadAttack runs the load bench briefly with --attack: beside
// the mix, a sign-in flood from many loopback addresses and uploads
// trickled from one device token, while honest patients enrol a passkey
// over HTTP and then sign in and upload. It checks the counts, not the
// times: the flood reached the sign-in route (answered 200: within the
// per-address limit), the trickles reached the upload routes, every
// honest sign-in and upload succeeded, and the report prints the honest
// figures next to the target.
func TestBenchLoadAttack(t *testing.T) {
	exe, err := exec.LookPath("vault")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	r, err := bench.Mix(bench.MixConfig{Clients: 2, Pause: 50 * time.Millisecond, Duration: 4 * time.Second, Patients: 2,
		Attack: &bench.AttackConfig{Honest: 2, Addrs: 30, Trickles: 4},
		Dir:    t.TempDir(), Exe: exe, Open: benchOpen, Stderr: &stderr})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	a := r.Attack
	if a == nil {
		t.Fatal("no attack in the report")
	}
	for _, op := range bench.HonestOps {
		if o := a.Honest[op]; o.Count == 0 || o.Errors != 0 || o.Limited != 0 {
			t.Errorf("honest %s under attack: %+v", op, o)
		}
	}
	for _, op := range bench.MixOps {
		if o := r.Ops[op]; o.Count == 0 || o.Errors != 0 {
			t.Errorf("%s under attack: %+v", op, o)
		}
	}
	if n := a.FloodBegins["200"]; n < 30 || len(a.FloodBegins) != 1 {
		t.Errorf("flood begins answered %v, want at least one 200 per address and nothing else", a.FloodBegins)
	}
	trickled := 0
	for k, n := range a.TrickleAnswer {
		if strings.HasPrefix(k, "readings ") || strings.HasPrefix(k, "imports ") {
			trickled += n
		}
	}
	if trickled < 4 || a.TrickleAnswer["imports 429"] == 0 {
		t.Errorf("trickled uploads %v: want each connection counted, and the second import of one patient refused", a.TrickleAnswer)
	}
	var out bytes.Buffer
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"under attack: a sign-in flood from 30 addresses", "honest op", "signin", "≤ 1000 ms, 0 failures", "target for honest clients under attack: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}
