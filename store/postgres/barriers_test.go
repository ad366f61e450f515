package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

// The vault's barrier tests (vault.TestBarriers, on bbolt's file), on
// PostgreSQL: a real vault (vault.Open, real keys) on a fresh database of
// the throwaway cluster, and the database read as an attacker with a copy
// of it would, with Debian's pg_dump and the table's files themselves.

// pgEnv is a vault on a fresh database, with a direct connection to the
// same database for tampering and inspection.
type pgEnv struct {
	st    *Store
	v     *vault.Vault
	dsn   string
	conn  *pgx.Conn
	admin *pgx.Conn
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	st, dsn := openDSN(t)
	root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(t.Context(), st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &pgEnv{st: st, v: v, dsn: dsn, conn: pgtest.Connect(t, dsn), admin: pgtest.Admin(t)}
}

func (e *pgEnv) patient(t *testing.T, name string) vault.User {
	t.Helper()
	u, err := e.v.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: name, TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

const pgSchema = "omh:blood-glucose:4.0"

func glucosePoint(t *testing.T, uuid string, at time.Time, value float64, source string) *omh.Point {
	t.Helper()
	ts := at.Format(time.RFC3339)
	raw := fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":%q}]},"body":{"blood_glucose":{"value":%v,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
		uuid, ts, source, value, ts)
	p, err := omh.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return p
}

func readAllPG(v *vault.Vault, pid string) ([]vault.Reading, error) {
	var out []vault.Reading
	for r, err := range v.Readings(context.Background(), pid, pgSchema, time.Time{}, time.Time{}) {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// rawRow is one stored record row as the database holds it.
type rawRow struct {
	schema string
	t      int64
	tag    []byte
	value  []byte
}

func rawRows(t *testing.T, e *pgEnv, pid string) []rawRow {
	t.Helper()
	rows, err := e.conn.Query(t.Context(), "SELECT schema_id, t, tag, value FROM readings WHERE patient = $1 ORDER BY schema_id, t, tag", pid)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rawRow, error) {
		var x rawRow
		return x, r.Scan(&x.schema, &x.t, &x.tag, &x.value)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putRawRow stores value under the row's identity for pid, replacing
// whatever is there, below the vault.
func putRawRow(t *testing.T, e *pgEnv, pid string, r rawRow, value []byte) {
	t.Helper()
	if _, err := e.conn.Exec(t.Context(), `INSERT INTO readings (patient, schema_id, t, tag, value) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (patient, schema_id, t, tag) DO UPDATE SET value = EXCLUDED.value`, pid, r.schema, r.t, r.tag, value); err != nil {
		t.Fatal(err)
	}
}

// pgDump is `pg_dump --data-only` of the test's database, with Debian's
// pg_dump over the throwaway cluster's socket.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	pgDumpBin, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatalf("pg_dump (Debian's postgresql-client) is not installed: %v", err)
	}
	out, err := exec.Command(pgDumpBin, "--data-only", "--no-password", "-d", dsn).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pg_dump: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

// inDump reports whether b is in a pg_dump's text, as text or as bytea's
// hex form.
func inDump(dump, b []byte) bool {
	return bytes.Contains(dump, b) || bytes.Contains(dump, []byte(hex.EncodeToString(b)))
}

// TestBarriersPostgres checks, through the vault on a real PostgreSQL
// database: no reading value, display name, time zone, uuid, source or
// token secret in a pg_dump of the data (and the dump does hold the
// patient's id and the rows, so the search is not looking at nothing); a
// flipped stored byte fails to open; a ciphertext moved to another record
// of the patient or to another patient fails to open.
func TestBarriersPostgres(t *testing.T) {
	e := newPGEnv(t)
	const name, canary = "Canary Pgpatientname", "CANARY-pg-b7d41e09"
	p := e.patient(t, name)
	other := e.patient(t, "Other Pgpatient")
	at := time.Date(2025, 5, 5, 5, 5, 0, 0, time.UTC)
	uuid1, uuid2 := "5e2a0c1d-0000-4000-8000-000000000001", "5e2a0c1d-0000-4000-8000-000000000002"
	if _, err := e.v.Ingest(t.Context(), p.ID, []*omh.Point{
		glucosePoint(t, uuid1, at, 987.654, canary),
		glucosePoint(t, uuid2, at.Add(time.Minute), 123.457, canary),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Ingest(t.Context(), other.ID, []*omh.Point{glucosePoint(t, "5e2a0c1d-0000-4000-8000-000000000003", at, 111, "x")}); err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.v.MintToken(t.Context(), p.ID, vault.TokenDevice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("confidentiality", func(t *testing.T) {
		dump := pgDump(t, e.dsn)
		// The dump is the database's data: the patient's id and her rows
		// are in it (in the clear, as docs/architecture.md lists), and a
		// bytea column is written in hex, so the search below looks for
		// each canary both as text and in hex; a stored value is found
		// that way, so the search sees inside bytea columns.
		if !bytes.Contains(dump, []byte(p.ID)) || !bytes.Contains(dump, []byte("COPY public.readings")) {
			t.Fatalf("the dump holds no patient id or no readings: %.500s", dump)
		}
		if !inDump(dump, rawRows(t, e, p.ID)[0].value) {
			t.Fatal("a stored record value is not found in the dump: the search below would prove nothing")
		}
		for _, s := range []string{canary, "987.654", "123.457", name, "Europe/Berlin", uuid1, uuid2, "mg/dL", "blood_glucose", secret} {
			if inDump(dump, []byte(s)) {
				t.Errorf("%q is in pg_dump --data-only in plaintext", s)
			}
		}
		if got, err := readAllPG(e.v, p.ID); err != nil || len(got) != 2 {
			t.Fatalf("the patient's readings: %d, %v", len(got), err)
		}
	})
	t.Run("integrity", func(t *testing.T) {
		rows := rawRows(t, e, p.ID)
		orig := rows[0].value
		for _, i := range []int{0, 1, 2, 10, len(orig) / 2, len(orig) - 1} {
			bad := bytes.Clone(orig)
			bad[i] ^= 0x01
			putRawRow(t, e, p.ID, rows[0], bad)
			if got, err := readAllPG(e.v, p.ID); err == nil {
				t.Fatalf("flipped byte %d: read %d readings without error", i, len(got))
			} else if !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("flipped byte %d: err %v, want ErrDecrypt", i, err)
			}
		}
		putRawRow(t, e, p.ID, rows[0], orig)
		if _, err := readAllPG(e.v, p.ID); err != nil {
			t.Fatalf("restored record does not read: %v", err)
		}
	})
	t.Run("move", func(t *testing.T) {
		rows := rawRows(t, e, p.ID)
		// Record 0's ciphertext under record 1's identity.
		putRawRow(t, e, p.ID, rows[1], rows[0].value)
		if _, err := readAllPG(e.v, p.ID); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved within the patient: %v", err)
		}
		putRawRow(t, e, p.ID, rows[1], rows[1].value)
		// Record 0 into the other patient, under the same identity.
		putRawRow(t, e, other.ID, rows[0], rows[0].value)
		if _, err := readAllPG(e.v, other.ID); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved to another patient: %v", err)
		}
		if _, err := e.conn.Exec(t.Context(), "DELETE FROM readings WHERE patient = $1 AND schema_id = $2 AND t = $3 AND tag = $4", other.ID, rows[0].schema, rows[0].t, rows[0].tag); err != nil {
			t.Fatal(err)
		}
		if got, err := readAllPG(e.v, other.ID); err != nil || len(got) != 1 {
			t.Fatalf("the other patient after the moved record is gone: %d readings, %v", len(got), err)
		}
		if got, err := readAllPG(e.v, p.ID); err != nil || len(got) != 2 {
			t.Fatalf("the patient after the records are back: %d readings, %v", len(got), err)
		}
	})
}

// relationBytes returns the contents of a table's files (every segment of
// its main fork) after a CHECKPOINT has written the shared buffers out:
// what a copy of the data directory holds. The test runs as root or as the
// cluster's owner, so it can read them.
func relationBytes(t *testing.T, e *pgEnv, table string) []byte {
	t.Helper()
	if _, err := e.admin.Exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var dataDir, rel string
	if err := e.admin.QueryRow(t.Context(), "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.QueryRow(t.Context(), "SELECT pg_relation_filepath($1)", table).Scan(&rel); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, rel)
	var all []byte
	for seg := 0; ; seg++ {
		p := path
		if seg > 0 {
			p = fmt.Sprintf("%s.%d", path, seg)
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && seg > 0 {
			break
		}
		if err != nil {
			t.Fatalf("read the relation file of %s: %v", table, err)
		}
		all = append(all, b...)
	}
	return all
}

// TestScrubPostgres: a patient's deletion removes her wrapped key row at
// once; its bytes stay in the key table's file as a dead row until a
// scrub (Store.Scrub, VACUUM FULL) rewrites the table, and are gone from
// it after. With ScrubOptions.Records the records' ciphertexts leave the
// readings table's file too. The other patient's key and records are
// untouched and still open.
func TestScrubPostgres(t *testing.T) {
	e := newPGEnv(t)
	p := e.patient(t, "Shredded Patient")
	other := e.patient(t, "Kept Patient")
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for i, u := range []vault.User{p, other} {
		if _, err := e.v.Ingest(t.Context(), u.ID, []*omh.Point{glucosePoint(t, fmt.Sprintf("6e2a0c1d-0000-4000-8000-%012d", i), at, 101, "scrub")}); err != nil {
			t.Fatal(err)
		}
	}
	// Plain VACUUM (autovacuum) could prune the dead row's page at any
	// time; off for these tables, so the "before" check sees what a
	// deletion alone leaves, which is the point of the scrub.
	for _, tbl := range []string{"patient_keys", "readings"} {
		if _, err := e.conn.Exec(t.Context(), "ALTER TABLE "+tbl+" SET (autovacuum_enabled = off)"); err != nil {
			t.Fatal(err)
		}
	}
	blob, err := e.st.PatientKeys(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	otherBlob, err := e.st.PatientKeys(t.Context(), other.ID)
	if err != nil {
		t.Fatal(err)
	}
	env := rawRows(t, e, p.ID)[0].value
	envTail := env[len(env)-32:]
	if !bytes.Contains(relationBytes(t, e, "patient_keys"), blob) || !bytes.Contains(relationBytes(t, e, "readings"), envTail) {
		t.Fatal("the live key or record is not in its table's file: the search below would prove nothing")
	}

	if err := e.v.DeletePatient(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	// Gone from the table at once, on any connection.
	var n int
	if err := e.conn.QueryRow(t.Context(), "SELECT count(*) FROM patient_keys WHERE patient = $1", p.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the deleted patient's key rows: %d, %v", n, err)
	}
	if _, err := e.st.PatientKeys(t.Context(), p.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("PatientKeys after the delete: %v", err)
	}
	if dump := pgDump(t, e.dsn); inDump(dump, blob[len(blob)-32:]) {
		t.Fatal("the deleted key is in a pg_dump")
	} else if !inDump(dump, otherBlob) {
		t.Fatal("the other patient's key is not found in the pg_dump: the search above proves nothing")
	}
	// Still in the file, as a dead row.
	if !bytes.Contains(relationBytes(t, e, "patient_keys"), blob) {
		t.Fatal("the deleted key's bytes are not in the table's file before the scrub: the test cannot tell a scrub from none")
	}

	// The key tables only: the key is gone, the records' file is not
	// rewritten.
	res, err := e.st.Scrub(t.Context(), ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scrub of %v took %v", res.Tables, res.Took)
	if res.Skipped || len(res.Tables) != len(scrubKeyTables) {
		t.Fatalf("scrub: %+v", res)
	}
	keyFile := relationBytes(t, e, "patient_keys")
	for _, needle := range [][]byte{blob, blob[:32], blob[len(blob)/2 : len(blob)/2+32], blob[len(blob)-32:]} {
		if bytes.Contains(keyFile, needle) {
			t.Fatal("the deleted key's bytes are in the key table's file after the scrub")
		}
	}
	if !bytes.Contains(keyFile, otherBlob) {
		t.Fatal("the other patient's key is not in the key table's file after the scrub")
	}
	if !bytes.Contains(relationBytes(t, e, "readings"), envTail) {
		t.Fatal("the deleted record's bytes left the readings file without a records scrub: the next check proves nothing")
	}

	res, err = e.st.Scrub(t.Context(), ScrubOptions{Records: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scrub of %v took %v", res.Tables, res.Took)
	if bytes.Contains(relationBytes(t, e, "readings"), envTail) {
		t.Fatal("the deleted record's bytes are in the readings file after a records scrub")
	}
	if got, err := readAllPG(e.v, other.ID); err != nil || len(got) != 1 {
		t.Fatalf("the other patient after the scrubs: %d readings, %v", len(got), err)
	}
}

// TestScrubOneAtATime: while one process holds the scrub lock, another's
// Scrub skips, rewriting nothing; once released it runs.
func TestScrubOneAtATime(t *testing.T) {
	e := newPGEnv(t)
	if _, err := e.conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", lockScrub); err != nil {
		t.Fatal(err)
	}
	res, err := e.st.Scrub(t.Context(), ScrubOptions{})
	if err != nil || !res.Skipped || len(res.Tables) != 0 {
		t.Fatalf("scrub while another holds the lock: %+v, %v", res, err)
	}
	if _, err := e.conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", lockScrub); err != nil {
		t.Fatal(err)
	}
	res, err = e.st.Scrub(t.Context(), ScrubOptions{})
	if err != nil || res.Skipped || len(res.Tables) != len(scrubKeyTables) {
		t.Fatalf("scrub after the lock is free: %+v, %v", res, err)
	}
	e.st.Close()
	if _, err := e.st.Scrub(t.Context(), ScrubOptions{}); err == nil {
		t.Fatal("scrub on a closed store succeeded")
	}
}
