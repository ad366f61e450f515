package vault_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// The old-format fixtures: testdata/records-v<N>.db.gz is a small vault
// whose every record is in format N, with its root key in
// testdata/records-v<N>.root.key. records-v1 was written by the code of
// commit 3fb2866, before compact records existed (every record a v1
// envelope: a wrapped random DEK and padded canonical JSON); records-v2 by
// the code of commit 6b56cf4, when format 2 (compact, nonce prefix
// SHA-256 of the AD) was the one new readings were sealed in. Each holds
// three patients: Ada (blood glucose in both header dialects, heart rate,
// steps, blood pressure, body weight; a batch sent twice, so duplicates),
// Ben (glucose points without a uuid, whose uuids the vault derived; one
// sent twice) and a third patient deleted afterwards.
// testdata/records-v<N>.golden lists every reading as the code that wrote
// it read it back: patient, schema, time in nanoseconds and the canonical
// point, tab-separated, then for each patient and export format the
// SHA-256 of the export's data lines (the encoder's header and one record
// per reading).
//
// VAULT_WRITE_RECORDS_FIXTURE=v<N> go test -run TestRecordsFixtureWrite ./vault/
// writes fixture N again, sealing in format N; each was run once, at its
// commit, and must not be run again (the point of a fixture is what the
// old code wrote).
type recordsFixture struct {
	name   string // "v1": testdata/records-v1.*
	format int    // the format of every record in it
	gone   string // the patient deleted before the file was taken
}

func (f recordsFixture) db() string     { return "testdata/records-" + f.name + ".db.gz" }
func (f recordsFixture) root() string   { return "testdata/records-" + f.name + ".root.key" }
func (f recordsFixture) golden() string { return "testdata/records-" + f.name + ".golden" }

var recordsFixtures = []recordsFixture{
	{name: "v1", format: vault.FormatWrapped, gone: "pt_ia6tnw43sn7nibyf"},
	{name: "v2", format: vault.FormatCompact, gone: "pt_ja7qek5u3z27bybc"},
}

func fixturePoints() (ada, adaDup, ben, gone [][]byte) {
	at := time.Date(2025, 3, 30, 0, 30, 0, 0, time.UTC) // across the Berlin DST change
	for i := range 24 {
		tm := at.Add(time.Duration(i) * 5 * time.Minute)
		ts := tm.Format(time.RFC3339)
		ada = append(ada, glucose(uuidN(i), tm, float64(80+i*3%90), "fixture-cgm"))
		// The IEEE 1752 dialect, as devices send it.
		ada = append(ada, fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"heart_rate":{"value":%d,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`,
			uuidN(1000+i), ts, 60+i%25, ts))
	}
	for i := range 3 {
		tm := at.Add(time.Duration(i) * time.Hour)
		ada = append(ada, fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"step-count","version":"3.0"},"source_creation_date_time":%q},"body":{"step_count":{"value":%d,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
			uuidN(2000+i), tm.Format(time.RFC3339), 100*i+7, tm.Format(time.RFC3339), tm.Add(time.Hour).Format(time.RFC3339)))
	}
	ada = append(ada,
		[]byte(`{"header":{"uuid":"6a1f0c52-6b1e-4c47-9d0e-000000000001","schema_id":{"namespace":"omh","name":"blood-pressure","version":"4.0"},"source_creation_date_time":"2025-03-30T08:00:00+02:00"},"body":{"systolic_blood_pressure":{"value":124,"unit":"mmHg"},"diastolic_blood_pressure":{"value":81,"unit":"mmHg"},"effective_time_frame":{"date_time":"2025-03-30T08:00:00+02:00"},"body_posture":"sitting"}}`),
		[]byte(`{"header":{"uuid":"6a1f0c52-6b1e-4c47-9d0e-000000000002","schema_id":{"namespace":"omh","name":"body-weight","version":"2.0"},"source_creation_date_time":"2025-03-30T07:00:00Z"},"body":{"body_weight":{"value":71.25,"unit":"kg"},"effective_time_frame":{"date_time":"2025-03-30T07:00:00Z"}}}`),
	)
	adaDup = ada[:10]
	for i := range 8 {
		tm := at.Add(time.Duration(i) * 15 * time.Minute)
		ts := tm.Format(time.RFC3339)
		ben = append(ben, fmt.Appendf(nil, `{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q},"body":{"blood_glucose":{"value":%d,"unit":"mmol/L"},"effective_time_frame":{"date_time":%q}}}`,
			ts, 5+i%4, ts))
	}
	ben = append(ben, ben[0]) // no uuid, same content: a duplicate
	for i := range 5 {
		gone = append(gone, glucose(uuidN(3000+i), at.Add(time.Duration(i)*time.Minute), 99, "gone"))
	}
	return ada, adaDup, ben, gone
}

// TestRecordsFixtureWrite writes an old-format fixture; it skips unless
// VAULT_WRITE_RECORDS_FIXTURE names one (v1, v2).
func TestRecordsFixtureWrite(t *testing.T) {
	name := os.Getenv("VAULT_WRITE_RECORDS_FIXTURE")
	i := slices.IndexFunc(recordsFixtures, func(f recordsFixture) bool { return f.name == name })
	if i < 0 {
		t.Skip("writes testdata/records-v<N>.*; set VAULT_WRITE_RECORDS_FIXTURE=v<N>")
	}
	fx := recordsFixtures[i]
	dir := t.TempDir()
	for _, f := range []string{fx.db(), fx.root(), fx.golden()} {
		os.Remove(f)
	}
	root, err := keys.CreateKeyFile(fx.root())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vault.db")
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(t.Context(), st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vault.WriteFormat(v, fx.format)
	ada, adaDup, ben, gone := fixturePoints()
	mk := func(name string) string {
		u, err := v.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: name, TimeZone: "Europe/Berlin"})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	ingest := func(id string, raws [][]byte, accepted, dups int) {
		res, err := v.Ingest(t.Context(), id, parse(t, raws...))
		if err != nil || res.Accepted != accepted || res.Duplicates != dups {
			t.Fatalf("ingest for %s: %+v %v, want %d accepted and %d duplicates", id, res, err, accepted, dups)
		}
	}
	a, b, g := mk("Ada Fixture"), mk("Ben Fixture"), mk("Gone Fixture")
	ingest(a, ada, len(ada), 0)
	ingest(a, adaDup, 0, len(adaDup))
	ingest(b, ben, len(ben)-1, 1)
	ingest(g, gone, len(gone), 0)
	if err := v.DeletePatient(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	golden := readFixture(t, v)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.db(), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.golden(), []byte(golden), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("fixture: %d bytes of database, %d gzipped; deleted patient %s", len(raw), gz.Len(), g)
}

// readFixture reads every reading of every patient of v, and each
// patient's export data lines in every format, as the golden file lists
// them.
func readFixture(t *testing.T, v *vault.Vault) string {
	t.Helper()
	users, err := v.Users(t.Context(), vault.RolePatient)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, u := range users {
		var points [][]byte
		var schemas []string
		for _, id := range omh.Supported() {
			for r, err := range v.Readings(t.Context(), u.ID, id.String(), time.Time{}, time.Time{}) {
				if err != nil {
					t.Fatalf("read %s of %s: %v", id, u.ID, err)
				}
				fmt.Fprintf(&out, "%s\t%s\t%d\t%s\n", u.ID, r.Schema, r.Time.UnixNano(), r.JSON)
				points = append(points, bytes.Clone(r.JSON))
				schemas = append(schemas, r.Schema)
			}
		}
		for _, f := range export.Formats() {
			enc, err := export.NewEncoder(f, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			data := slices.Clone(enc.Header())
			for i, p := range points {
				if !export.Supports(f, schemas[i]) {
					continue
				}
				if data, err = enc.AppendRecord(data, p); err != nil {
					t.Fatalf("export %s: %v", f, err)
				}
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&out, "export\t%s\t%s\t%s\n", u.ID, f, hex.EncodeToString(sum[:]))
		}
	}
	return out.String()
}

// openFixture copies an old-format fixture into a temporary directory and
// opens it with its root key.
func openFixture(t *testing.T, fx recordsFixture) (*vault.Vault, *boltstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.db")
	f, err := os.Open(fx.db())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(fx.root())
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "root.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := keys.LoadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, vault.ErrClosed) {
			t.Error(err)
		}
		if err := boltstore.Check(path); err != nil {
			t.Errorf("integrity: %v", err)
		}
	})
	v, err := vault.Open(t.Context(), st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v, st, path
}

func fixtureGoldenText(t *testing.T, fx recordsFixture) string {
	t.Helper()
	b, err := os.ReadFile(fx.golden())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixtureCounts counts the golden file's readings per patient.
func fixtureCounts(t *testing.T, golden string) map[string]int {
	t.Helper()
	n := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(golden))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.SplitN(sc.Text(), "\t", 2); f[0] != "export" {
			n[f[0]]++
		}
	}
	return n
}

// TestRecordsFixtureReads opens each vault the old code wrote and reads
// every reading of every patient identically, in the same order, and
// exports each patient's readings to the same data lines in every format.
func TestRecordsFixtureReads(t *testing.T) {
	for _, fx := range recordsFixtures {
		t.Run(fx.name, func(t *testing.T) {
			v, _, _ := openFixture(t, fx)
			golden := fixtureGoldenText(t, fx)
			if got := readFixture(t, v); got != golden {
				t.Fatalf("the old-format vault reads differently:\n%s\nwant:\n%s", got, golden)
			}
			counts := fixtureCounts(t, golden)
			if len(counts) != 2 {
				t.Fatalf("golden lists %d patients, want Ada and Ben", len(counts))
			}
			total := 0
			for _, n := range counts {
				total += n
			}
			if total != 61 {
				t.Fatalf("golden lists %d readings, want 61 (53 of Ada's, 8 of Ben's)", total)
			}
			if st, err := v.RecordStatus(t.Context()); err != nil || st.Formats[fx.format] != 61 || len(st.Formats) != 1 {
				t.Fatalf("the fixture's formats: %+v %v, want 61 records in format %d", st, err, fx.format)
			}
			st, err := v.VerifyRecords(t.Context())
			if err != nil || st.Patients != 2 || st.Records != total {
				t.Fatalf("verify: %+v %v", st, err)
			}
			// The deleted patient stays deleted.
			for _, err := range v.Readings(t.Context(), fx.gone, bg, time.Time{}, time.Time{}) {
				if !errors.Is(err, vault.ErrNoPatient) {
					t.Fatalf("the deleted patient's readings: %v, want ErrNoPatient", err)
				}
			}
			// Re-sending what is stored is still a duplicate.
			ada, _, _, _ := fixturePoints()
			for id, n := range counts {
				if n != 53 {
					continue
				}
				res, err := v.Ingest(t.Context(), id, parse(t, ada...))
				if err != nil || res.Accepted != 0 || res.Duplicates != len(ada) {
					t.Fatalf("re-send to the old vault: %+v %v", res, err)
				}
			}
		})
	}
}

// TestRecordsFixtureRewrite rewrites each old-format vault to the current
// format: every record changes format, and every reading and export data
// line reads back exactly as the old code wrote it. New readings added
// before the rewrite (a mixed vault) come through too.
func TestRecordsFixtureRewrite(t *testing.T) {
	for _, fx := range recordsFixtures {
		t.Run(fx.name, func(t *testing.T) {
			v, st, _ := openFixture(t, fx)
			golden := fixtureGoldenText(t, fx)
			counts := fixtureCounts(t, golden)
			before, err := v.RecordStatus(t.Context())
			if err != nil || before.Formats[fx.format] != 61 || len(before.Formats) != 1 {
				t.Fatalf("the fixture's formats: %+v %v", before, err)
			}
			// A mixed vault: Ben gets a new reading, sealed in the current format.
			var ben string
			for id, n := range counts {
				if n == 8 {
					ben = id
				}
			}
			late := glucose(uuidN(7777), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 101, "late")
			if res, err := v.Ingest(t.Context(), ben, parse(t, late)); err != nil || res.Accepted != 1 {
				t.Fatalf("new reading in the old vault: %+v %v", res, err)
			}
			res, err := v.RewriteRecords(t.Context(), vault.RewriteOptions{Batch: 7})
			if err != nil || res.Rewritten != 61 || res.Current != 1 || res.Patients != 2 {
				t.Fatalf("rewrite: %+v %v", res, err)
			}
			after, err := v.RecordStatus(t.Context())
			if err != nil || after.Formats[vault.RecordFormat] != 62 || len(after.Formats) != 1 {
				t.Fatalf("formats after the rewrite: %+v %v", after, err)
			}
			bens, err := readAll(t, v, ben, bg)
			if err != nil || len(bens) != 9 || extractUUID(bens[8].JSON) != uuidN(7777) {
				t.Fatalf("Ben after the rewrite: %d readings, %v", len(bens), err)
			}
			// Without the late reading, the vault reads as the golden file says.
			if err := st.RecordTamperer().DeleteRecord(t.Context(), ben, lateRecord(t, st, ben)); err != nil {
				t.Fatal(err)
			}
			if got := readFixture(t, v); got != golden {
				t.Fatalf("the rewritten vault reads differently:\n%s\nwant:\n%s", got, golden)
			}
		})
	}
}

// lateRecord finds the reading of 2026 that TestRecordsFixtureRewrite added.
func lateRecord(t *testing.T, st *boltstore.Store, pid string) vault.Record {
	t.Helper()
	recs, err := st.RecordTamperer().Records(t.Context(), pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if time.Unix(0, r.Time).Year() == 2026 {
			return r
		}
	}
	t.Fatal("the late reading is not stored")
	return vault.Record{}
}
