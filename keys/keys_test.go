package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testMaster(t testing.TB) *Master {
	t.Helper()
	m, err := NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKeyFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "root.key")
	r1, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key mode = %v, want 0600", fi.Mode().Perm())
	}
	if _, err := CreateKeyFile(path); err == nil {
		t.Fatal("CreateKeyFile overwrote an existing key")
	}
	m := testMaster(t)
	wrapped, err := m.Wrap(r1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMaster(wrapped, r2); err != nil {
		t.Fatalf("reloaded root does not open master: %v", err)
	}
	other, err := CreateKeyFile(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMaster(wrapped, other); !errors.Is(err, ErrWrongRoot) {
		t.Fatalf("wrong root: err = %v, want ErrWrongRoot", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path); err == nil {
		t.Fatal("a world-readable root key file was accepted")
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoKeyFile) {
		t.Fatalf("missing file: err = %v", err)
	}
}

func TestPassphraseRoot(t *testing.T) {
	p := InsecureTestArgon2Params()
	r, err := RootFromPassphrase([]byte("correct horse"), p)
	if err != nil {
		t.Fatal(err)
	}
	m := testMaster(t)
	wrapped, err := m.Wrap(r)
	if err != nil {
		t.Fatal(err)
	}
	again, err := RootFromPassphrase([]byte("correct horse"), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMaster(wrapped, again); err != nil {
		t.Fatal(err)
	}
	wrong, err := RootFromPassphrase([]byte("correct horsE"), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMaster(wrapped, wrong); !errors.Is(err, ErrWrongRoot) {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	if _, err := RootFromPassphrase(nil, p); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func TestSealBarriers(t *testing.T) {
	m := testMaster(t)
	pk, blob, err := NewPatientKeys(m, "pt_a")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewPatientKeys(m, "pt_b")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"canary":"CANARY-7f3a9c","value":123.456}`)
	ad := []byte("pt_a|omh:blood-glucose:4.0|t1|u1")
	env, err := pk.Seal(plain, ad)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("confidentiality", func(t *testing.T) {
		if bytes.Contains(env, []byte("CANARY")) || bytes.Contains(env, []byte("123.456")) {
			t.Fatal("plaintext visible in envelope")
		}
		if len(env)%padBlock == 0 && len(env) < len(plain) {
			t.Fatal("envelope shorter than plaintext")
		}
	})
	t.Run("roundtrip", func(t *testing.T) {
		got, err := pk.Open(env, ad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, %v", got, err)
		}
		reopened, err := OpenPatientKeys(m, "pt_a", blob)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := reopened.Open(env, ad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("reopened keys: %q, %v", got, err)
		}
	})
	t.Run("integrity", func(t *testing.T) {
		for i := range env {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(env)
				bad[i] ^= bit
				if got, err := pk.Open(bad, ad); err == nil {
					t.Fatalf("flipped byte %d bit %#x opened to %q", i, bit, got)
				}
			}
		}
		if _, err := pk.Open(env[:len(env)-1], ad); err == nil {
			t.Fatal("truncated envelope opened")
		}
	})
	t.Run("move", func(t *testing.T) {
		if _, err := pk.Open(env, []byte("pt_a|omh:blood-glucose:4.0|t2|u1")); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("moved record: err = %v", err)
		}
		if _, err := other.Open(env, ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("other patient: err = %v", err)
		}
		if _, err := OpenPatientKeys(m, "pt_b", blob); err == nil {
			t.Fatal("patient key blob opened under another patient's id")
		}
	})
	t.Run("uniqueness", func(t *testing.T) {
		env2, err := pk.Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(env, env2) {
			t.Fatal("same plaintext sealed twice gave the same ciphertext")
		}
		if bytes.Equal(env[2:2+env[1]], env2[2:2+env2[1]]) {
			t.Fatal("DEK wrap repeated")
		}
	})
	t.Run("key version recorded", func(t *testing.T) {
		id, ok := EnvelopeKeyID(env)
		if !ok || id != pk.KEKID() {
			t.Fatalf("EnvelopeKeyID = %d, %v; KEK id %d", id, ok, pk.KEKID())
		}
	})
}

// TestSealDerivedBarriers is TestSealBarriers for v2 records, whose key is
// derived from the patient's key and the record's identity: the payload is
// not in the envelope, a flipped byte anywhere or a cut fails, the record
// opens nowhere but at its own identity (another record's ad, another
// patient, a v1 reading of it), and the blob's keys open it again after a
// restart, while a deleted (different) patient's keys never do.
func TestSealDerivedBarriers(t *testing.T) {
	m := testMaster(t)
	pk, blob, err := NewPatientKeys(m, "pt_a")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewPatientKeys(m, "pt_a") // same id, new keys: a deleted and re-made patient
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"canary":"CANARY-7f3a9c","value":123.456}`)
	ad := []byte("pt_a|omh:blood-glucose:4.0|t1|u1")
	env, err := pk.SealDerived(nil, plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("CANARY")) || bytes.Contains(env, []byte("123.456")) {
		t.Fatal("plaintext visible in envelope")
	}
	if want := 1 + 8 + 48 + 16; len(env) != want || EnvelopeVersion(env) != EnvelopeDerived {
		t.Fatalf("envelope of %d bytes, version %d; want %d bytes (format byte, random nonce part, 43 padded to 48, tag)", len(env), EnvelopeVersion(env), want)
	}
	if _, ok := EnvelopeKeyID(env); ok {
		t.Fatal("a v2 envelope reports a wrapped key id")
	}
	reopened, err := OpenPatientKeys(m, "pt_a", blob)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := reopened.Open(env, ad); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("reopened keys: %q, %v", got, err)
	}
	for i := range env {
		bad := bytes.Clone(env)
		bad[i] ^= 0x01
		if got, err := pk.Open(bad, ad); err == nil {
			t.Fatalf("flipped byte %d opened to %q", i, got)
		}
	}
	for name, try := range map[string]func() ([]byte, error){
		"truncated":                func() ([]byte, error) { return pk.Open(env[:len(env)-1], ad) },
		"moved to another time":    func() ([]byte, error) { return pk.Open(env, []byte("pt_a|omh:blood-glucose:4.0|t2|u1")) },
		"moved to another schema":  func() ([]byte, error) { return pk.Open(env, []byte("pt_a|omh:heart-rate:2.0|t1|u1")) },
		"other keys, same patient": func() ([]byte, error) { return other.Open(env, ad) },
		"read as v1":               func() ([]byte, error) { return pk.Open(append([]byte{envelopeV1}, env[1:]...), ad) },
	} {
		if got, err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %q, %v; want ErrDecrypt", name, got, err)
		}
	}
	env2, err := pk.SealDerived(nil, plain, ad)
	if err != nil || bytes.Equal(env, env2) {
		t.Fatalf("the same record sealed twice gave the same bytes (%v)", err)
	}
}

// TestSealIdentityBarriers is TestSealDerivedBarriers for v3 records,
// whose subkey is made from an identity the caller gives: a flipped byte
// anywhere or a cut fails, and the record opens nowhere but at its own
// identity and ad (another identity with the same ad, the same identity
// with another ad, another patient, a v1 or v2 reading of it).
func TestSealIdentityBarriers(t *testing.T) {
	m := testMaster(t)
	pk, blob, err := NewPatientKeys(m, "pt_a")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewPatientKeys(m, "pt_a") // same id, new keys: a deleted and re-made patient
	if err != nil {
		t.Fatal(err)
	}
	open := func(pk *PatientKeys, env, ad []byte, id [IDSize]byte) ([]byte, error) {
		return pk.OpenInPlaceID(bytes.Clone(env), ad, id, new(OpenScratch))
	}
	plain := []byte(`{"canary":"CANARY-7f3a9c","value":123.456}`)
	ad := []byte("pt_a|omh:blood-glucose:4.0|t1|u1")
	id := [IDSize]byte{1, 2, 3}
	env, err := pk.SealIdentity(nil, plain, ad, id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("CANARY")) || bytes.Contains(env, []byte("123.456")) {
		t.Fatal("plaintext visible in envelope")
	}
	if want := 1 + 8 + 48 + 16; len(env) != want || EnvelopeVersion(env) != EnvelopeIdentity {
		t.Fatalf("envelope of %d bytes, version %d; want %d bytes (format byte, random nonce part, 43 padded to 48, tag)", len(env), EnvelopeVersion(env), want)
	}
	if _, ok := EnvelopeKeyID(env); ok {
		t.Fatal("a v3 envelope reports a wrapped key id")
	}
	reopened, err := OpenPatientKeys(m, "pt_a", blob)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(reopened, env, ad, id); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("reopened keys: %q, %v", got, err)
	}
	for i := range env {
		bad := bytes.Clone(env)
		bad[i] ^= 0x01
		if got, err := open(pk, bad, ad, id); err == nil {
			t.Fatalf("flipped byte %d opened to %q", i, got)
		}
	}
	for i := range id {
		bad := id
		bad[i] ^= 0x01
		if got, err := open(pk, env, ad, bad); err == nil {
			t.Fatalf("flipped identity byte %d opened to %q", i, got)
		}
	}
	for name, try := range map[string]func() ([]byte, error){
		"truncated":                 func() ([]byte, error) { return open(pk, env[:len(env)-1], ad, id) },
		"same identity, another ad": func() ([]byte, error) { return open(pk, env, []byte("pt_a|omh:blood-glucose:4.0|t2|u1"), id) },
		"other keys, same patient":  func() ([]byte, error) { return open(other, env, ad, id) },
		"read as v1":                func() ([]byte, error) { return open(pk, append([]byte{envelopeV1}, env[1:]...), ad, id) },
		"read as v2":                func() ([]byte, error) { return open(pk, append([]byte{envelopeV2}, env[1:]...), ad, id) },
		"without its identity":      func() ([]byte, error) { return pk.Open(env, ad) },
	} {
		if got, err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %q, %v; want ErrDecrypt", name, got, err)
		}
	}
	// A v2 record of the same ad does not open as v3.
	v2, err := pk.SealDerived(nil, plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(pk, append([]byte{envelopeV3}, v2[1:]...), ad, id); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a v2 record read as v3: %q, %v", got, err)
	}
	env2, err := pk.SealIdentity(nil, plain, ad, id)
	if err != nil || bytes.Equal(env, env2) {
		t.Fatalf("the same record sealed twice gave the same bytes (%v)", err)
	}
}

func TestTagsAndDerivedUUIDs(t *testing.T) {
	m := testMaster(t)
	a, _, err := NewPatientKeys(m, "pt_a")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := NewPatientKeys(m, "pt_b")
	if err != nil {
		t.Fatal(err)
	}
	ta1, err := a.Tag("u1")
	if err != nil {
		t.Fatal(err)
	}
	ta2, err := a.Tag("u1")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Tag("u1")
	if err != nil {
		t.Fatal(err)
	}
	if ta1 != ta2 {
		t.Fatal("tag not deterministic")
	}
	if ta1 == tb {
		t.Fatal("two patients share a dedup key")
	}
	u1, err := a.DeriveUUID([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	u2, err := a.DeriveUUID([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	u3, err := b.DeriveUUID([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if u1 != u2 || u1 == u3 || len(u1) != 36 || u1[14] != '8' {
		t.Fatalf("derived uuids %s %s %s", u1, u2, u3)
	}
}

func TestPad(t *testing.T) {
	for n := 0; n < 100; n++ {
		p := bytes.Repeat([]byte{0}, n)
		padded := pad(p)
		if len(padded)%padBlock != 0 || len(padded) <= n {
			t.Fatalf("pad(%d) len %d", n, len(padded))
		}
		got, ok := unpad(padded)
		if !ok || !bytes.Equal(got, p) {
			t.Fatalf("unpad(pad(%d zero bytes)) failed", n)
		}
	}
	if _, ok := unpad(make([]byte, 32)); ok {
		t.Fatal("all-zero block unpadded")
	}
}

var sink []byte

func benchPlain() []byte { return bytes.Repeat([]byte("x"), 405) }

func BenchmarkSeal(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain(), []byte("pt_bench|omh:blood-glucose:4.0|time|uuid")
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = pk.Seal(plain, ad)
	}
}

func BenchmarkOpen(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain(), []byte("pt_bench|omh:blood-glucose:4.0|time|uuid")
	env, err := pk.Seal(plain, ad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = pk.Open(env, ad)
	}
}

// BenchmarkSealDerived and BenchmarkOpenDerived: a v2 record of 64 bytes,
// about what a compressed 300-byte CGM point is.
func BenchmarkSealDerived(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain()[:64], []byte("pt_bench|omh:blood-glucose:4.0|time|uuid")
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = pk.SealDerived(sink[:0], plain, ad)
	}
}

func BenchmarkOpenDerived(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain()[:64], []byte("pt_bench|omh:blood-glucose:4.0|time|uuid")
	env, err := pk.SealDerived(nil, plain, ad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = pk.Open(env, ad)
	}
}

// BenchmarkOpenIdentity is BenchmarkOpenDerived for a v3 record: the
// same AEAD, without the SHA-256 of the ad (a record's ad is about 100
// bytes, as the vault's are).
func BenchmarkOpenIdentity(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain()[:64], []byte("jhvault/record/v3|pt_bench1234567890|omh:blood-glucose:4.0|01234567abcdefghijklmnopqrstuvwx")
	id := [IDSize]byte{7}
	env, err := pk.SealIdentity(nil, plain, ad, id)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(env))
	var s OpenScratch
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, env)
		sink, _ = pk.OpenInPlaceID(buf, ad, id, &s)
	}
}

// BenchmarkOpenDerivedAD is BenchmarkOpenIdentity for the same record in
// v2: the nonce prefix a SHA-256 of the ad.
func BenchmarkOpenDerivedAD(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	plain, ad := benchPlain()[:64], []byte("jhvault/record/v2|pt_bench1234567890|omh:blood-glucose:4.0|1735689600000000000|0123456789abcdef0123456789abcdef")
	env, err := pk.SealDerived(nil, plain, ad)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(env))
	var s OpenScratch
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, env)
		sink, _ = pk.OpenInPlaceID(buf, ad, [IDSize]byte{}, &s)
	}
}

func BenchmarkTag(b *testing.B) {
	pk, _, err := NewPatientKeys(testMaster(b), "pt_bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		t, _ := pk.Tag("aaaa1234-1a2b-3c4d-5e6f-000000000001")
		sink = t[:]
	}
}

// pad appends (as Seal does in place) 0x80 and zeros up to a multiple of padBlock (ISO/IEC 7816-4).
func pad(p []byte) []byte {
	out := make([]byte, paddedLen(len(p)))
	copy(out, p)
	out[len(p)] = 0x80
	return out
}
