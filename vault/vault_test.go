package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// env is a vault on a real file (vaulttest) with a clock the test moves.
type env struct {
	*vaulttest.Env
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e.Env = vaulttest.New(t, vaulttest.Options{Now: func() time.Time { return e.now }})
	return e
}

func glucose(uuid string, at time.Time, value float64, source string) []byte {
	ts := at.Format(time.RFC3339)
	return fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":%q}]},"body":{"blood_glucose":{"value":%v,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
		uuid, ts, source, value, ts)
}

func parse(t testing.TB, raws ...[]byte) []*omh.Point {
	t.Helper()
	var out []*omh.Point
	for _, r := range raws {
		p, err := omh.Parse(r)
		if err != nil {
			t.Fatalf("parse %s: %v", r, err)
		}
		out = append(out, p)
	}
	return out
}

func uuidN(i int) string { return fmt.Sprintf("3f1c2b7a-0000-4000-8000-%012d", i) }

func (e *env) patient(t *testing.T) vault.User {
	t.Helper()
	u, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: "Canary Patientname", TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func readAll(t *testing.T, v *vault.Vault, pid, schema string) ([]vault.Reading, error) {
	t.Helper()
	var out []vault.Reading
	for r, err := range v.Readings(context.Background(), pid, schema, time.Time{}, time.Time{}) {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

const bg = "omh:blood-glucose:4.0"

func TestIngestReadDedup(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	base := time.Date(2025, 3, 1, 8, 0, 0, 0, time.FixedZone("", -4*3600))
	var raws [][]byte
	for i := range 600 { // above the parallel threshold, out of order
		raws = append(raws, glucose(uuidN(i), base.Add(time.Duration((i*7)%600)*time.Minute), float64(80+i%100), "cgm"))
	}
	res, err := e.Vault.Ingest(context.Background(), p.ID, parse(t, raws...))
	if err != nil || res.Accepted != 600 || res.Duplicates != 0 {
		t.Fatalf("ingest = %+v, %v", res, err)
	}
	res, err = e.Vault.Ingest(context.Background(), p.ID, parse(t, raws...))
	if err != nil || res.Accepted != 0 || res.Duplicates != 600 {
		t.Fatalf("re-ingest = %+v, %v; want all duplicates", res, err)
	}
	got, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(got) != 600 {
		t.Fatalf("read %d, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Fatalf("readings out of time order at %d", i)
		}
	}
	// Window [from, to) is half-open.
	var n int
	for _, err := range e.Vault.Readings(context.Background(), p.ID, bg, base, base.Add(10*time.Minute)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("10-minute window gave %d readings, want 10", n)
	}
}

func TestDerivedUUIDIsStableAndKeyed(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	q := e.patient(t)
	raw := []byte(`{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2025-01-01T00:00:00Z"},"body":{"blood_glucose":{"value":101,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-01-01T00:00:00Z"}}}`)
	for range 2 {
		if _, err := e.Vault.Ingest(context.Background(), p.ID, parse(t, raw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Vault.Ingest(t.Context(), q.ID, parse(t, raw)); err != nil {
		t.Fatal(err)
	}
	a, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(a) != 1 {
		t.Fatalf("uuid-less point stored %d times (%v), want once", len(a), err)
	}
	b, err := readAll(t, e.Vault, q.ID, bg)
	if err != nil || len(b) != 1 {
		t.Fatalf("other patient: %d readings, %v", len(b), err)
	}
	ua, ub := extractUUID(a[0].JSON), extractUUID(b[0].JSON)
	if ua == "" || ua == ub {
		t.Fatalf("derived uuids %q and %q: want non-empty and different per patient", ua, ub)
	}
}

func extractUUID(js []byte) string {
	_, after, ok := bytes.Cut(js, []byte(`"uuid":"`))
	if !ok {
		return ""
	}
	u, _, _ := bytes.Cut(after, []byte(`"`))
	return string(u)
}

// rawRecords returns the patient's stored records, values as stored.
func rawRecords(t *testing.T, e *env, pid string) []vault.Record {
	t.Helper()
	recs, err := e.Store.RecordTamperer().Records(t.Context(), pid)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// putRaw stores r for the patient below the vault, replacing the record
// with its identity.
func putRaw(t *testing.T, e *env, pid string, r vault.Record) {
	t.Helper()
	if err := e.Store.RecordTamperer().PutRecord(t.Context(), pid, r); err != nil {
		t.Fatal(err)
	}
}

// withValue is r holding another value.
func withValue(r vault.Record, v []byte) vault.Record {
	r.Value = v
	return r
}

// TestBarriers checks, on the real file, for records of each format: no
// value, name or uuid readable on disk; a flipped byte detected; a record
// moved to another identity or patient refused; no two ciphertexts alike;
// and crypto-shredding.
func TestBarriers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format int
	}{{"identity", vault.FormatIdentity}, {"compact", vault.FormatCompact}, {"wrapped", vault.FormatWrapped}} {
		t.Run(tc.name, func(t *testing.T) { testBarriers(t, tc.format) })
	}
}

// openRaw opens a stored record of the format with pk, outside the vault.
func openRaw(pk *keys.PatientKeys, format int, patientID string, r vault.Record, env []byte) ([]byte, error) {
	var id [keys.IDSize]byte
	if format == vault.FormatIdentity {
		id = vault.RecordID(r.Schema, r.Time, r.Tag)
	}
	return pk.OpenInPlaceID(bytes.Clone(env), vault.RecordAD(format, patientID, r.Schema, r.Time, r.Tag), id, new(keys.OpenScratch))
}

func testBarriers(t *testing.T, format int) {
	e := newEnv(t)
	vault.WriteFormat(e.Vault, format)
	p := e.patient(t)
	other := e.patient(t)
	at := time.Date(2025, 5, 5, 5, 5, 0, 0, time.UTC)
	canary := "CANARY-e1f0c9a7b3"
	pts := parse(t,
		glucose(uuidN(1), at, 987.654, canary),
		glucose(uuidN(2), at.Add(time.Minute), 123.457, canary),
	)
	if _, err := e.Vault.Ingest(context.Background(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Vault.Ingest(t.Context(), other.ID, parse(t, glucose(uuidN(3), at, 111, "x"))); err != nil {
		t.Fatal(err)
	}

	t.Run("confidentiality", func(t *testing.T) {
		e.Close(t)
		b, err := os.ReadFile(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{canary, "987.654", "123.457", "Canary Patientname", "Europe/Berlin", uuidN(1), "mg/dL", "blood_glucose"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%q is in the database file in plaintext", s)
			}
		}
		e.Open(t)
		vault.WriteFormat(e.Vault, format)
		for _, r := range rawRecords(t, e, p.ID) {
			if got := keys.EnvelopeVersion(r.Value); got != format {
				t.Fatalf("a record of format %d, want %d", got, format)
			}
		}
	})
	t.Run("integrity", func(t *testing.T) {
		recs := rawRecords(t, e, p.ID)
		orig := recs[0].Value
		for _, i := range []int{0, 1, 2, 10, len(orig) / 2, len(orig) - 1} {
			bad := bytes.Clone(orig)
			bad[i] ^= 0x01
			putRaw(t, e, p.ID, withValue(recs[0], bad))
			if got, err := readAll(t, e.Vault, p.ID, bg); err == nil {
				t.Fatalf("flipped byte %d: read %d readings without error", i, len(got))
			} else if !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("flipped byte %d: err %v, want ErrDecrypt", i, err)
			}
		}
		putRaw(t, e, p.ID, recs[0])
		if _, err := readAll(t, e.Vault, p.ID, bg); err != nil {
			t.Fatalf("restored record does not read: %v", err)
		}
	})
	t.Run("move", func(t *testing.T) {
		recs := rawRecords(t, e, p.ID)
		// Record 0's ciphertext under record 1's identity.
		putRaw(t, e, p.ID, withValue(recs[1], recs[0].Value))
		if _, err := readAll(t, e.Vault, p.ID, bg); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved within patient: %v", err)
		}
		putRaw(t, e, p.ID, recs[1])
		// Record 0 into the other patient, under the same identity.
		putRaw(t, e, other.ID, recs[0])
		if _, err := readAll(t, e.Vault, other.ID, bg); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved to other patient: %v", err)
		}
		if err := e.Store.RecordTamperer().DeleteRecord(t.Context(), other.ID, recs[0]); err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, e.Vault, other.ID, bg); err != nil || len(got) != 1 {
			t.Fatalf("other patient after the moved record is gone: %d readings, %v", len(got), err)
		}
	})
	t.Run("uniqueness", func(t *testing.T) {
		q := e.patient(t)
		r := glucose(uuidN(9), at, 100, "same")
		if _, err := e.Vault.Ingest(t.Context(), q.ID, parse(t, r)); err != nil {
			t.Fatal(err)
		}
		v1 := rawRecords(t, e, q.ID)
		// The same plaintext for another patient, and as a new point.
		q2 := e.patient(t)
		if _, err := e.Vault.Ingest(t.Context(), q2.ID, parse(t, r)); err != nil {
			t.Fatal(err)
		}
		v2 := rawRecords(t, e, q2.ID)
		if len(v1) != 1 || len(v2) != 1 {
			t.Fatalf("stored %d and %d records, want one each", len(v1), len(v2))
		}
		if bytes.Equal(v1[0].Value, v2[0].Value) {
			t.Fatal("same plaintext gave the same ciphertext")
		}
	})
	t.Run("crypto-shred", func(t *testing.T) {
		blob, err := e.Store.PatientKeys(t.Context(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var envelopes [][]byte
		shredded := rawRecords(t, e, p.ID)
		for _, r := range shredded {
			envelopes = append(envelopes, bytes.Clone(r.Value))
		}
		// The check below can fail: before the delete, the keys open them.
		if pk, err := keys.OpenPatientKeys(e.Vault.Master(), p.ID, blob); err != nil {
			t.Fatal(err)
		} else if _, err := openRaw(pk, format, p.ID, shredded[0], envelopes[0]); err != nil {
			t.Fatalf("a record does not open with its patient's keys: %v", err)
		}
		if err := e.Vault.DeletePatient(t.Context(), p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, e.Vault, p.ID, bg); !errors.Is(err, vault.ErrNoPatient) {
			t.Fatalf("read after delete: %v", err)
		}
		// Even with the master key, nothing opens: the KEK is gone, and a
		// fresh KEK under the same id is a different key.
		master := e.Vault.Master()
		if _, err := keys.OpenPatientKeys(master, p.ID, nil); err == nil {
			t.Fatal("opened patient keys from nothing")
		}
		pk, _, err := keys.NewPatientKeys(master, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range shredded {
			if _, err := openRaw(pk, format, p.ID, r, envelopes[i]); !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("an envelope opened after its patient's keys were destroyed: %v", err)
			}
		}
		e.Close(t)
		b, err := os.ReadFile(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, blob) || bytes.Contains(b, blob[len(blob)/2:len(blob)/2+32]) {
			t.Fatal("the wrapped KEK's bytes are still in the database file")
		}
		for _, env := range envelopes {
			if bytes.Contains(b, env[len(env)-32:]) {
				t.Fatal("a deleted record's bytes are still in the database file")
			}
		}
		e.Open(t)
		if _, err := readAll(t, e.Vault, other.ID, bg); err != nil {
			t.Fatalf("other patient unreadable after compaction: %v", err)
		}
	})
}

// openWith opens the closed env's file with another root and closes it
// again, returning vault.Open's error.
func openWith(t *testing.T, e *env, root *keys.Root) error {
	t.Helper()
	st, err := boltstore.Open(e.Path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = vault.Open(t.Context(), st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if cerr := st.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	return err
}

func TestWrongRootWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.patient(t)
	e.Close(t)
	before := readFile(t, e.Path)
	wrong, err := keys.CreateKeyFile(filepath.Join(e.Dir, "wrong.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := openWith(t, e, wrong); !errors.Is(err, keys.ErrWrongRoot) {
		t.Fatalf("wrong root: %v", err)
	}
	if !bytes.Equal(before, readFile(t, e.Path)) {
		t.Fatal("a refused start changed the database file")
	}
	pass, err := keys.RootFromPassphrase([]byte("x"), keys.InsecureTestArgon2Params())
	if err != nil {
		t.Fatal(err)
	}
	if err := openWith(t, e, pass); err == nil || !strings.Contains(err.Error(), "key-file root") {
		t.Fatalf("passphrase on a key-file vault: %v", err)
	}
	e.Open(t)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	c, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Canary", Organization: "Clinic"})
	if err != nil {
		t.Fatal(err)
	}
	dev, tok, err := e.Vault.MintToken(t.Context(), p.ID, vault.TokenDevice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dev, "vd_") || len(dev) < 40 {
		t.Fatalf("device token %q", dev)
	}
	got, err := e.Vault.Authenticate(t.Context(), dev)
	if err != nil || got.UserID != p.ID || got.Kind != vault.TokenDevice || got.ID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if _, _, err := e.Vault.MintToken(t.Context(), c.ID, vault.TokenDevice, 0); err == nil {
		t.Fatal("device token minted for a clinician")
	}
	cases := map[string]string{
		"flipped secret": dev[:len(dev)-1] + string(dev[len(dev)-1]^1),
		"other prefix":   "vp_" + dev[3:],
		"truncated":      dev[:20],
		"empty":          "",
		"garbage":        "vd_" + strings.Repeat("a", 16) + "_x",
	}
	for name, s := range cases {
		if _, err := e.Vault.Authenticate(t.Context(), s); !errors.Is(err, vault.ErrTokenInvalid) {
			t.Errorf("%s: err = %v, want ErrTokenInvalid", name, err)
		}
	}
	e.now = e.now.Add(2 * time.Hour)
	if _, err := e.Vault.Authenticate(t.Context(), dev); !errors.Is(err, vault.ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	cs, err := e.Vault.Users(t.Context(), vault.RoleClinician)
	if err != nil || len(cs) != 1 || cs[0].Name != "Dr. Canary" {
		t.Fatalf("clinicians = %+v, %v", cs, err)
	}
	e.Close(t)
	b := readFile(t, e.Path)
	if bytes.Contains(b, []byte(dev)) || bytes.Contains(b, []byte(dev[20:])) || bytes.Contains(b, []byte("Dr. Canary")) {
		t.Fatal("token secret or name in the database file")
	}
	e.Open(t)
}

func TestCreateUserValidation(t *testing.T) {
	e := newEnv(t)
	for _, n := range []vault.NewUser{
		{Role: "admin", Name: "x"},
		{Role: vault.RolePatient, Name: ""},
		{Role: vault.RolePatient, Name: "x", TimeZone: "Mars/Olympus"},
		{Role: vault.RolePatient, Name: strings.Repeat("x", 201)},
	} {
		var ie *vault.InputError
		if _, err := e.Vault.CreateUser(t.Context(), n); !errors.As(err, &ie) {
			t.Errorf("%+v: err = %v, want InputError", n, err)
		}
	}
}

// benchFormats are the record formats the benchmarks compare, in one run.
var benchFormats = []struct {
	name   string
	format int
}{{"wrapped", vault.FormatWrapped}, {"compact", vault.FormatCompact}, {"identity", vault.FormatIdentity}}

// BenchmarkIngest measures the store path per reading: uuid tag, canonical
// JSON, sealing (and compressing, for compact records), and an fsync'd
// insert, in batches of 1,000 (parsing is measured in package omh, HTTP by
// 'vault bench'), for each record format.
func BenchmarkIngest(b *testing.B) {
	for _, f := range benchFormats {
		b.Run(f.name, func(b *testing.B) {
			e := vaulttest.New(b, vaulttest.Options{})
			vault.WriteFormat(e.Vault, f.format)
			u := e.User(b, vault.RolePatient, "bench")
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			const batch = 1000
			raws := make([][]byte, 0, batch)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				raws = raws[:0]
				for range batch {
					raws = append(raws, glucose(uuidN(i), base.Add(time.Duration(i)*time.Minute), float64(70+i%200), "bench"))
					i++
				}
				if _, err := e.Vault.Ingest(b.Context(), u.ID, parse(b, raws...)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkRead reads 10,000 readings (vault.Readings: scan, decrypt, and
// decompress for compact records) for each record format, and copies each
// point into a 64 KiB buffer, as an export's writer does (so the point's
// memory is read, as it is in an export).
func BenchmarkRead(b *testing.B) {
	type reader = func(v *vault.Vault, ctx context.Context, patientID, schema string, from, to time.Time) iter.Seq2[vault.Reading, error]
	cases := []struct {
		name   string
		format int
		read   reader
	}{
		{"wrapped", vault.FormatWrapped, (*vault.Vault).Readings},
		{"compact", vault.FormatCompact, (*vault.Vault).Readings},
		// ReadingsStream, as the export reads: points decompressed into
		// reused memory.
		{"compact-stream", vault.FormatCompact, (*vault.Vault).ReadingsStream},
		{"identity", vault.FormatIdentity, (*vault.Vault).Readings},
		{"identity-stream", vault.FormatIdentity, (*vault.Vault).ReadingsStream},
	}
	for _, f := range cases {
		b.Run(f.name, func(b *testing.B) {
			e := vaulttest.New(b, vaulttest.Options{})
			vault.WriteFormat(e.Vault, f.format)
			u := e.User(b, vault.RolePatient, "bench")
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			raws := make([][]byte, 0, 10000)
			for i := range 10000 {
				raws = append(raws, glucose(uuidN(i), base.Add(time.Duration(i)*time.Minute), 100, "bench"))
			}
			if _, err := e.Vault.Ingest(b.Context(), u.ID, parse(b, raws...)); err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			n := 0
			cpu := cpuTime(b)
			for b.Loop() {
				for r, err := range f.read(e.Vault, b.Context(), u.ID, bg, time.Time{}, time.Time{}) {
					if err != nil {
						b.Fatal(err)
					}
					if len(out)+len(r.JSON) > cap(out) {
						out = out[:0]
					}
					out = append(out, r.JSON...)
					n++
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
			// The process's CPU per reading (all goroutines, the GC's
			// included): on a shared machine it varies less than the time.
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n), "cpu-ns/reading")
		})
	}
}

// TestDeleteRacingIngest deletes a patient while uploads continue: once the
// delete returns, nothing of theirs may be stored or readable.
func TestDeleteRacingIngest(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				pt := parse(t, glucose(uuidN(w*1000000+i), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w*1000000+i)*time.Second), 100, "x"))
				_, err := e.Vault.Ingest(context.Background(), p.ID, pt)
				if err != nil && !errors.Is(err, vault.ErrNoPatient) {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := e.Vault.DeletePatient(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, err := readAll(t, e.Vault, p.ID, bg); len(got) != 0 || !errors.Is(err, vault.ErrNoPatient) {
		t.Fatalf("after delete: %d readings, %v", len(got), err)
	}
	left, err := e.Store.Count(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d records stored after the delete", left)
	}
}

// masterGate holds every opener's first read of the master keyset until
// all of them have made it, so all find the store empty before any of them
// writes: the interleaving that makes a read-then-write creation store two
// keysets. Later reads pass.
type masterGate struct {
	vault.Backend
	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func newMasterGate(b vault.Backend, openers int) *masterGate {
	return &masterGate{Backend: b, waiting: openers, all: make(chan struct{})}
}

func (g *masterGate) Meta(ctx context.Context, key string) ([]byte, error) {
	v, err := g.Backend.Meta(ctx, key)
	if key != vault.MetaMaster {
		return v, err
	}
	g.mu.Lock()
	first := g.waiting > 0
	if first {
		if g.waiting--; g.waiting == 0 {
			close(g.all)
		}
	}
	g.mu.Unlock()
	if first {
		select {
		case <-g.all:
		case <-time.After(10 * time.Second):
			return nil, errors.New("test: the other openers never read the master")
		}
	}
	return v, err
}

// TestFirstOpenRace opens an empty store from several openers at once. They
// must end with one master keyset, and each must open what the others
// sealed: a patient made through one is read through the next.
//
// Two processes would each hold a handle of their own; bbolt allows one
// handle per file in a process (a second Open waits for the file's lock),
// so here the openers are goroutines sharing one handle. A backend that
// allows several handles runs the same race on one handle each.
func TestFirstOpenRace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		openers int
		gated   bool // every opener reads the empty store before any writes
	}{
		{"all read first", 4, true},
		{"free", 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := vaulttest.Empty(t, vaulttest.Options{})
			st, root := e.Store, e.Root
			var b vault.Backend = st
			if tc.gated {
				b = newMasterGate(st, tc.openers)
			}
			vs := make([]*vault.Vault, tc.openers)
			errs := make([]error, tc.openers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range vs {
				wg.Go(func() {
					<-start
					vs[i], errs[i] = vault.Open(t.Context(), b, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("opener %d: %v", i, err)
				}
			}
			// One keyset, the stored one.
			stored, err := st.Meta(t.Context(), vault.MetaMaster)
			if err != nil {
				t.Fatal(err)
			}
			m, err := keys.OpenMaster(stored, root)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vs {
				if !v.Master().SameKeys(m) {
					t.Fatalf("opener %d runs a master keyset that is not the stored one", i)
				}
			}
			if info, err := vault.ReadRootInfo(t.Context(), st); err != nil || info == nil || info.Kind != root.Kind() {
				t.Fatalf("stored root description = %+v, %v", info, err)
			}
			// Each reads what the next sealed.
			at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, v := range vs {
				p, err := v.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: fmt.Sprint("patient of opener ", i)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := v.Ingest(t.Context(), p.ID, parse(t, glucose(uuidN(i), at, 100+float64(i), "cgm"))); err != nil {
					t.Fatal(err)
				}
				other := vs[(i+1)%len(vs)]
				if u, err := other.User(t.Context(), p.ID); err != nil || u.Name != fmt.Sprint("patient of opener ", i) {
					t.Fatalf("opener %d's account read through another: %+v, %v", i, u, err)
				}
				got, err := readAll(t, other, p.ID, bg)
				if err != nil || len(got) != 1 {
					t.Fatalf("opener %d's reading read through another: %d, %v", i, len(got), err)
				}
			}
		})
	}
}

func TestStorageFull(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "vault.db", Err: syscall.ENOSPC}
	cases := []struct {
		name string
		err  error
		full bool
	}{
		{"nil", nil, false},
		{"other", errors.New("boom"), false},
		{"enospc wrapped", fmt.Errorf("commit: %w", enospc), true},
		{"edquot", &os.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, true},
		// bbolt formats a failed resize with %s, dropping the errno.
		{"resize text", fmt.Errorf("file resize error: %s", enospc), true},
		{"already", fmt.Errorf("%w: x", vault.ErrStorageFull), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := vault.StorageFull(c.err)
			if full := errors.Is(got, vault.ErrStorageFull); full != c.full {
				t.Fatalf("StorageFull(%v) = %v; full %v, want %v", c.err, got, full, c.full)
			}
			if c.err != nil && !errors.Is(got, c.err) {
				t.Fatalf("StorageFull(%v) lost its cause", c.err)
			}
			if !c.full && got != c.err {
				t.Fatalf("StorageFull(%v) = %v; want it unchanged", c.err, got)
			}
		})
	}
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSchemaCodes: the 8-byte codes format 3 puts in a record's identity
// (its subkey's input) differ for every schema the vault stores, so two
// records differ in identity whenever they differ in schema.
func TestSchemaCodes(t *testing.T) {
	seen := map[[8]byte]string{}
	for _, id := range omh.Accepted() {
		rid := vault.RecordID(id.String(), 0, [16]byte{})
		code := [8]byte(rid[8:])
		if prev, ok := seen[code]; ok {
			t.Fatalf("schemas %s and %s have one code", prev, id)
		}
		seen[code] = id.String()
		// The time and the tag are in it too.
		if vault.RecordID(id.String(), 1, [16]byte{}) == rid || vault.RecordID(id.String(), 0, [16]byte{15: 1}) == rid {
			t.Fatalf("%s: the identity does not change with the time or the tag", id)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d schemas", len(seen))
	}
}
