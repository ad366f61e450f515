package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/bench"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestBenchLoadReplicas runs 'vault bench load --database DSN --replicas
// 2' for a few seconds on the test cluster: the bbolt baseline, then two
// 'vault serve --database' replicas with the clients' requests spread over
// them. It checks what the run did, not its times: both reports name every
// operation with no error and no 429, both replicas were sent requests,
// the p99 table sets the two side by side, and the scratch schema is
// dropped.
func TestBenchLoadReplicas(t *testing.T) {
	dsn := pgDatabase(t)
	out, errOut, err := runVault(t, 5*time.Minute, "bench", "load", "--database", dsn, "--replicas", "2",
		"--clients", "4", "--pause", "20ms", "--duration", "2s", "--patients", "3", "--demo-days", "1")
	if err != nil {
		t.Fatalf("bench load --database: %v\n%s\n%s", err, out, errOut)
	}
	t.Log(out)
	pg, base, ok := strings.Cut(out, "baseline, the same mix in the same run, just before:")
	if !ok {
		t.Fatalf("no baseline in the report:\n%s", out)
	}
	base, sideBySide, ok := strings.Cut(base, "p99 side by side")
	if !ok {
		t.Fatalf("no side-by-side table in the report:\n%s", out)
	}
	for name, part := range map[string]string{"PostgreSQL, 2 replicas": pg, "bbolt, one process": base} {
		if !strings.Contains(part, "vault bench load ("+name+"): 4 clients") {
			t.Errorf("the %s report's header:\n%s", name, part)
		}
		if !strings.Contains(part, " requests/s, 0 errors, 0 refused with 429\n") {
			t.Errorf("the %s report has errors:\n%s", name, part)
		}
		for _, op := range bench.MixOps {
			m := regexp.MustCompile(`(?m)^\s*` + op + `\s+(\d+)\s`).FindStringSubmatch(part)
			if m == nil || m[1] == "0" {
				t.Errorf("the %s report: no %s row, or none ran:\n%s", name, op, part)
			}
		}
	}
	m := regexp.MustCompile(`requests sent to each replica, round robin: (\d+) (\d+)\n`).FindStringSubmatch(pg)
	if m == nil {
		t.Fatalf("no requests per replica:\n%s", pg)
	}
	for _, s := range m[1:] {
		if n, err := strconv.Atoi(s); err != nil || n == 0 {
			t.Errorf("a replica was sent %s requests", s)
		}
	}
	for _, want := range append([]string{"bbolt, one process p99 ms", "PostgreSQL, 2 replicas p99 ms", "requests/s"}, bench.MixOps...) {
		if !strings.Contains(sideBySide, want) {
			t.Errorf("the side-by-side table lacks %q:\n%s", want, sideBySide)
		}
	}
	var n int
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'vault_bench_%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("scratch schemas left: %d %v", n, err)
	}

	// --replicas without --database is refused.
	if _, errOut, err := runVault(t, time.Minute, "bench", "load", "--replicas", "2", "--duration", "1s"); err == nil || !strings.Contains(errOut, "--replicas needs --database") {
		t.Fatalf("--replicas alone: %v %s", err, errOut)
	}
}
