package main

import (
	"bytes"
	"os/exec"
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
}
