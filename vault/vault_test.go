package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

type env struct {
	dir   string
	path  string
	root  *keys.Root
	store *boltstore.Store
	v     *vault.Vault
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	root, err := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, path: filepath.Join(dir, "vault.db"), root: root, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e.open(t)
	t.Cleanup(func() { e.close(t) })
	return e
}

func (e *env) open(t *testing.T) {
	t.Helper()
	st, err := boltstore.Open(e.path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(st, e.root, vault.RootInfo{Kind: e.root.Kind()}, vault.Options{Now: func() time.Time { return e.now }})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	e.store, e.v = st, v
}

// close closes the store and checks the file's integrity.
func (e *env) close(t *testing.T) {
	t.Helper()
	if e.store == nil {
		return
	}
	e.store.Close()
	e.store = nil
	if err := boltstore.Check(e.path); err != nil {
		t.Errorf("integrity: %v", err)
	}
}

func glucose(uuid string, at time.Time, value float64, source string) []byte {
	ts := at.Format(time.RFC3339)
	return fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":%q}]},"body":{"blood_glucose":{"value":%v,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
		uuid, ts, source, value, ts)
}

func parse(t *testing.T, raws ...[]byte) []*omh.Point {
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
	u, err := e.v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "Canary Patientname", TimeZone: "Europe/Berlin"})
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
	res, err := e.v.Ingest(context.Background(), p.ID, parse(t, raws...))
	if err != nil || res.Accepted != 600 || res.Duplicates != 0 {
		t.Fatalf("ingest = %+v, %v", res, err)
	}
	res, err = e.v.Ingest(context.Background(), p.ID, parse(t, raws...))
	if err != nil || res.Accepted != 0 || res.Duplicates != 600 {
		t.Fatalf("re-ingest = %+v, %v; want all duplicates", res, err)
	}
	got, err := readAll(t, e.v, p.ID, bg)
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
	for _, err := range e.v.Readings(context.Background(), p.ID, bg, base, base.Add(10*time.Minute)) {
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
		if _, err := e.v.Ingest(context.Background(), p.ID, parse(t, raw)); err != nil {
			t.Fatal(err)
		}
	}
	e.v.Ingest(context.Background(), q.ID, parse(t, raw))
	a, _ := readAll(t, e.v, p.ID, bg)
	b, _ := readAll(t, e.v, q.ID, bg)
	if len(a) != 1 {
		t.Fatalf("uuid-less point stored %d times, want once", len(a))
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

// rawRecords returns the patient's stored record keys and values.
func rawRecords(t *testing.T, st *boltstore.Store, pid string) (ks, vs [][]byte) {
	t.Helper()
	st.DB(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("readings")).Bucket([]byte(pid)).ForEach(func(k, v []byte) error {
				ks, vs = append(ks, bytes.Clone(k)), append(vs, bytes.Clone(v))
				return nil
			})
		})
	})
	return ks, vs
}

func putRaw(t *testing.T, st *boltstore.Store, pid string, k, v []byte) {
	t.Helper()
	err := st.DB(func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			b, err := tx.Bucket([]byte("readings")).CreateBucketIfNotExists([]byte(pid))
			if err != nil {
				return err
			}
			return b.Put(k, v)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBarriers(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	other := e.patient(t)
	at := time.Date(2025, 5, 5, 5, 5, 0, 0, time.UTC)
	canary := "CANARY-e1f0c9a7b3"
	pts := parse(t,
		glucose(uuidN(1), at, 987.654, canary),
		glucose(uuidN(2), at.Add(time.Minute), 123.457, canary),
	)
	if _, err := e.v.Ingest(context.Background(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	e.v.Ingest(context.Background(), other.ID, parse(t, glucose(uuidN(3), at, 111, "x")))

	t.Run("confidentiality", func(t *testing.T) {
		e.close(t)
		b, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{canary, "987.654", "123.457", "Canary Patientname", "Europe/Berlin", uuidN(1), "mg/dL", "blood_glucose"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%q is in the database file in plaintext", s)
			}
		}
		e.open(t)
	})
	t.Run("integrity", func(t *testing.T) {
		ks, vs := rawRecords(t, e.store, p.ID)
		orig := vs[0]
		for _, i := range []int{0, 1, 2, 10, len(orig) / 2, len(orig) - 1} {
			bad := bytes.Clone(orig)
			bad[i] ^= 0x01
			putRaw(t, e.store, p.ID, ks[0], bad)
			if got, err := readAll(t, e.v, p.ID, bg); err == nil {
				t.Fatalf("flipped byte %d: read %d readings without error", i, len(got))
			} else if !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("flipped byte %d: err %v, want ErrDecrypt", i, err)
			}
		}
		putRaw(t, e.store, p.ID, ks[0], orig)
		if _, err := readAll(t, e.v, p.ID, bg); err != nil {
			t.Fatalf("restored record does not read: %v", err)
		}
	})
	t.Run("move", func(t *testing.T) {
		ks, vs := rawRecords(t, e.store, p.ID)
		// Record 0's ciphertext under record 1's key.
		putRaw(t, e.store, p.ID, ks[1], vs[0])
		if _, err := readAll(t, e.v, p.ID, bg); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved within patient: %v", err)
		}
		putRaw(t, e.store, p.ID, ks[1], vs[1])
		// Record 0 into the other patient, under the same key.
		oks, ovs := rawRecords(t, e.store, other.ID)
		putRaw(t, e.store, other.ID, ks[0], vs[0])
		if _, err := readAll(t, e.v, other.ID, bg); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("moved to other patient: %v", err)
		}
		st := e.store
		st.DB(func(db *bolt.DB) error {
			return db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("readings")).Bucket([]byte(other.ID))
				b.Delete(ks[0])
				return b.Put(oks[0], ovs[0])
			})
		})
	})
	t.Run("uniqueness", func(t *testing.T) {
		q := e.patient(t)
		r := glucose(uuidN(9), at, 100, "same")
		e.v.Ingest(context.Background(), q.ID, parse(t, r))
		_, v1 := rawRecords(t, e.store, q.ID)
		// The same plaintext for another patient, and as a new point.
		q2 := e.patient(t)
		e.v.Ingest(context.Background(), q2.ID, parse(t, r))
		_, v2 := rawRecords(t, e.store, q2.ID)
		if bytes.Equal(v1[0], v2[0]) {
			t.Fatal("same plaintext gave the same ciphertext")
		}
	})
	t.Run("crypto-shred", func(t *testing.T) {
		blob, err := e.store.PatientKeys(p.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, envelopes := rawRecords(t, e.store, p.ID)
		if err := e.v.DeletePatient(p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, e.v, p.ID, bg); !errors.Is(err, vault.ErrNoPatient) {
			t.Fatalf("read after delete: %v", err)
		}
		// Even with the master key, nothing opens: the KEK is gone, and a
		// fresh KEK under the same id is a different key.
		master := e.v.Master()
		if _, err := keys.OpenPatientKeys(master, p.ID, nil); err == nil {
			t.Fatal("opened patient keys from nothing")
		}
		pk, _, err := keys.NewPatientKeys(master, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range envelopes {
			if _, err := pk.Open(env, nil); err == nil {
				t.Fatal("an envelope opened after its KEK was destroyed")
			}
		}
		e.close(t)
		b, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, blob) || bytes.Contains(b, blob[len(blob)/2:len(blob)/2+32]) {
			t.Fatal("the wrapped KEK's bytes are still in the database file")
		}
		for _, env := range envelopes {
			if bytes.Contains(b, env[2:34]) {
				t.Fatal("a deleted record's bytes are still in the database file")
			}
		}
		e.open(t)
		if _, err := readAll(t, e.v, other.ID, bg); err != nil {
			t.Fatalf("other patient unreadable after compaction: %v", err)
		}
	})
}

func TestWrongRootWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.patient(t)
	e.close(t)
	before, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := keys.CreateKeyFile(filepath.Join(e.dir, "wrong.key"))
	st, err := boltstore.Open(e.path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = vault.Open(st, wrong, vault.RootInfo{Kind: wrong.Kind()}, vault.Options{})
	st.Close()
	if !errors.Is(err, keys.ErrWrongRoot) {
		t.Fatalf("wrong root: %v", err)
	}
	after, _ := os.ReadFile(e.path)
	if !bytes.Equal(before, after) {
		t.Fatal("a refused start changed the database file")
	}
	pass, _ := keys.RootFromPassphrase([]byte("x"), keys.InsecureTestArgon2Params())
	st, _ = boltstore.Open(e.path, boltstore.Options{})
	_, err = vault.Open(st, pass, vault.RootInfo{Kind: pass.Kind()}, vault.Options{})
	st.Close()
	if err == nil || !strings.Contains(err.Error(), "key-file root") {
		t.Fatalf("passphrase on a key-file vault: %v", err)
	}
	e.open(t)
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	c, err := e.v.CreateUser(vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Canary", Organization: "Clinic"})
	if err != nil {
		t.Fatal(err)
	}
	dev, tok, err := e.v.MintToken(p.ID, vault.TokenDevice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dev, "vd_") || len(dev) < 40 {
		t.Fatalf("device token %q", dev)
	}
	got, err := e.v.Authenticate(dev)
	if err != nil || got.UserID != p.ID || got.Kind != vault.TokenDevice || got.ID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if _, _, err := e.v.MintToken(c.ID, vault.TokenDevice, 0); err == nil {
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
		if _, err := e.v.Authenticate(s); !errors.Is(err, vault.ErrTokenInvalid) {
			t.Errorf("%s: err = %v, want ErrTokenInvalid", name, err)
		}
	}
	e.now = e.now.Add(2 * time.Hour)
	if _, err := e.v.Authenticate(dev); !errors.Is(err, vault.ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	cs, err := e.v.Users(vault.RoleClinician)
	if err != nil || len(cs) != 1 || cs[0].Name != "Dr. Canary" {
		t.Fatalf("clinicians = %+v, %v", cs, err)
	}
	e.close(t)
	b, _ := os.ReadFile(e.path)
	if bytes.Contains(b, []byte(dev)) || bytes.Contains(b, []byte(dev[20:])) || bytes.Contains(b, []byte("Dr. Canary")) {
		t.Fatal("token secret or name in the database file")
	}
	e.open(t)
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
		if _, err := e.v.CreateUser(n); !errors.As(err, &ie) {
			t.Errorf("%+v: err = %v, want InputError", n, err)
		}
	}
}

// BenchmarkIngest measures the store path per reading: uuid tag, canonical
// JSON, sealing under a fresh DEK, and an fsync'd insert, in batches of
// 1,000 (parsing is measured in package omh, HTTP by 'vault bench').
func BenchmarkIngest(b *testing.B) {
	dir := b.TempDir()
	root, _ := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	st, err := boltstore.Open(filepath.Join(dir, "vault.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	v, err := vault.Open(st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "bench"})
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
		var pts []*omh.Point
		for _, r := range raws {
			p, _ := omh.Parse(r)
			pts = append(pts, p)
		}
		if _, err := v.Ingest(context.Background(), u.ID, pts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
}

func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	root, _ := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	st, _ := boltstore.Open(filepath.Join(dir, "vault.db"), boltstore.Options{})
	defer st.Close()
	v, _ := vault.Open(st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	u, _ := v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "bench"})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range 10000 {
		p, _ := omh.Parse(glucose(uuidN(i), base.Add(time.Duration(i)*time.Minute), 100, "bench"))
		pts = append(pts, p)
	}
	v.Ingest(context.Background(), u.ID, pts)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, err := range v.Readings(context.Background(), u.ID, bg, time.Time{}, time.Time{}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
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
				_, err := e.v.Ingest(context.Background(), p.ID, pt)
				if err != nil && !errors.Is(err, vault.ErrNoPatient) {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := e.v.DeletePatient(p.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, err := readAll(t, e.v, p.ID, bg); len(got) != 0 || !errors.Is(err, vault.ErrNoPatient) {
		t.Fatalf("after delete: %d readings, %v", len(got), err)
	}
	var left int
	e.store.DB(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte("readings")).Bucket([]byte(p.ID)); b != nil {
				left = b.Stats().KeyN
			}
			return nil
		})
	})
	if left != 0 {
		t.Fatalf("%d records stored after the delete", left)
	}
}
