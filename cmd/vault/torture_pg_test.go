package main

import (
	"testing"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// TestTorturePostgres is the crash torture test (TestTorture) against
// 'vault serve --database' on a private PostgreSQL cluster that runs with
// PostgreSQL's durable defaults. Its rounds take turns: SIGKILL the vault;
// crash the database (pg_ctl -m immediate) and start it again under the
// running vault, whose clients carry on; crash the database and SIGKILL
// the vault while it is down. After each, every acknowledged batch, grant
// and revoke is there, no batch in part, and 'vault ledger verify
// --checkpoint' (through the running server's admin socket: the command
// cannot open a PostgreSQL vault itself) says the log extends the newest
// checkpoint a client was given. Same flags as TestTorture
// (-torture.rounds, -torture.seed, VAULT_TORTURE_*).
func TestTorturePostgres(t *testing.T) {
	c := pgtest.NewCluster(t)
	runTorture(t, tortureTarget{name: "PostgreSQL", pg: c, serve: []string{"--database", c.DSN()}})
}
