package postgres

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
)

// ddlCount is how many schema objects the database has: tables,
// sequences, functions and triggers of the public schema.
func ddlCount(t *testing.T, dsn string) (objects int, xmin string) {
	t.Helper()
	c := pgtest.Connect(t, dsn)
	if err := c.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) +
		(SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) +
		(SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)`).Scan(&objects); err != nil {
		t.Fatal(err)
	}
	// The catalog row of vault_schema changes with any ALTER or re-create.
	if err := c.QueryRow(t.Context(), "SELECT xmin::text FROM pg_class WHERE oid = 'vault_schema'::regclass").Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	return objects, xmin
}

// TestMigrations: an empty database is migrated to the current schema; a
// current one is opened with no DDL (nothing in the catalog changes and no
// step runs); a database a newer binary migrated is refused with an
// "upgrade the binary" message.
func TestMigrations(t *testing.T) {
	s, dsn := openDSN(t)
	c := pgtest.Connect(t, dsn)
	var v int
	if err := c.QueryRow(t.Context(), "SELECT version FROM vault_schema").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations))
	}
	before, xmin := ddlCount(t, dsn)
	if before == 0 {
		t.Fatal("test is broken: no schema objects counted")
	}
	must(t, s.Close())

	conn := pgtest.Connect(t, dsn)
	n, err := migrate(t.Context(), conn)
	if err != nil || n != 0 {
		t.Fatalf("migrating a current database ran %d steps, %v", n, err)
	}
	s2, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s2.Close())
	if after, xmin2 := ddlCount(t, dsn); after != before || xmin2 != xmin {
		t.Fatalf("reopening a current database changed the schema: %d objects (xmin %s), was %d (xmin %s)", after, xmin2, before, xmin)
	}

	if _, err := c.Exec(t.Context(), "UPDATE vault_schema SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "upgrade the binary") {
		t.Fatalf("opening a newer database: %v; want ErrNewerSchema", err)
	}
}

// TestMigrateRace: processes starting at once on an empty database
// migrate it once; every one opens.
func TestMigrateRace(t *testing.T) {
	dsn := pgtest.New(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), "SELECT version FROM vault_schema").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v", v, err)
	}
}

// TestRefusesUnsafeDurability: the test cluster runs with fsync and
// synchronous_commit off; Open refuses it unless told otherwise, and
// names the setting.
func TestRefusesUnsafeDurability(t *testing.T) {
	dsn := pgtest.New(t)
	_, err := Open(t.Context(), dsn, Options{})
	if err == nil || !strings.Contains(err.Error(), "fsync=off") {
		t.Fatalf("Open on a server with fsync off: %v; want a refusal naming fsync", err)
	}
	// Nothing was migrated by the refused Open.
	var exists bool
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), "SELECT to_regclass('vault_schema') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("a refused Open migrated the database (%v, %v)", exists, err)
	}
}

func TestCheckDurability(t *testing.T) {
	for _, tc := range []struct {
		fsync, sc string
		refused   string
	}{
		{"on", "on", ""},
		{"on", "local", ""},
		{"on", "remote_write", ""},
		{"on", "remote_apply", ""},
		{"off", "on", "fsync=off"},
		{"on", "off", "synchronous_commit=off"},
		{"off", "off", "fsync=off"},
	} {
		err := checkDurability(tc.fsync, tc.sc)
		if (tc.refused == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.refused)) {
			t.Errorf("fsync=%s synchronous_commit=%s: %v; want refusal %q", tc.fsync, tc.sc, err, tc.refused)
		}
	}
}

// TestBadDSN: a malformed address is refused without repeating it (it may
// hold a password).
func TestBadDSN(t *testing.T) {
	_, err := Open(t.Context(), "postgres://vault:s3cret-pw@[::1", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("bad DSN: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromStep1: a database a slice-1 vault made (schema step 1
// only, with data in it) is brought up to date by appending the later
// steps; its rows are untouched.
func TestMigrateFromStep1(t *testing.T) {
	dsn := pgtest.New(t)
	c := pgtest.Connect(t, dsn)
	if _, err := c.Exec(t.Context(), migrations[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(t.Context(), "UPDATE vault_schema SET version = 1; INSERT INTO users (id, blob) VALUES ('pt_old', '\\x01')"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := c.QueryRow(t.Context(), "SELECT version FROM vault_schema").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations))
	}
	if b, err := s.User(t.Context(), "pt_old"); err != nil || string(b) != "\x01" {
		t.Fatalf("a slice-1 row after migrating: %q, %v", b, err)
	}
	if _, err := s.Web().Invites(t.Context()); err != nil {
		t.Fatalf("the web tables after migrating: %v", err)
	}
	if _, err := s.OAuth().Clients(t.Context()); err != nil {
		t.Fatalf("the OAuth tables after migrating: %v", err)
	}
}
