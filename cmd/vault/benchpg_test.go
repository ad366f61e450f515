package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestBenchPostgres runs 'vault bench --database' briefly on the test
// cluster and checks that its report parses: for each point kind, the
// vault's and the COPY baseline's readings per second and their ratio,
// all positive. No figure is asserted: the machine is shared.
func TestBenchPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	out, errOut, err := runVault(t, 5*time.Minute, "bench", "--database", dsn, "--readings", "300", "--batch", "100", "--uploaders", "2", "--rounds", "1")
	if err != nil {
		t.Fatalf("bench --database: %v\n%s\n%s", err, out, errOut)
	}
	t.Log(out)
	if !strings.HasPrefix(out, "vault bench (PostgreSQL): 600 readings per round") {
		t.Fatalf("header: %q", out)
	}
	num := `([0-9]+(?:\.[0-9]+)?)`
	for _, kind := range []string{"cgm-300", "ieee-444"} {
		re := regexp.MustCompile(`(?s)` + kind + `: mean point \d+ bytes\n.*?vault ingest over HTTP on PostgreSQL.*?\s` + num + `\s+[0-9.]+\s+[0-9.]+\s*\n\s*baseline: raw pgx COPY.*?\s` + num + `\s+[0-9.]+\s+[0-9.]+\s*\nratio vault / COPY: ` + num)
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s figures in the report:\n%s", kind, out)
		}
		for _, f := range m[1:] {
			if v, err := strconv.ParseFloat(f, 64); err != nil || v <= 0 {
				t.Fatalf("%s: figure %q in:\n%s", kind, f, out)
			}
		}
	}
	// Every scratch schema was dropped.
	var n int
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'vault_bench_%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("scratch schemas left: %d %v", n, err)
	}
}
