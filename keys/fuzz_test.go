package keys

import (
	"bytes"
	"testing"
)

// fuzzKeys is one fixed patient for the fuzzers (made once per process).
func fuzzKeys(f *testing.F) *PatientKeys {
	m, err := NewMaster()
	if err != nil {
		f.Fatal(err)
	}
	pk, _, err := NewPatientKeys(m, "pt_fuzz")
	if err != nil {
		f.Fatal(err)
	}
	return pk
}

// FuzzOpen feeds arbitrary envelopes to Open: it must never panic, and
// must never accept bytes it did not seal.
func FuzzOpen(f *testing.F) {
	pk := fuzzKeys(f)
	ad := []byte("pt_fuzz|omh:blood-glucose:4.0|1|tag")
	sealed := map[string]bool{}
	for _, p := range []string{"", "x", `{"header":{},"body":{}}`, string(bytes.Repeat([]byte("a"), 500))} {
		env, err := pk.Seal([]byte(p), ad)
		if err != nil {
			f.Fatal(err)
		}
		sealed[string(env)] = true
		f.Add(env)
		f.Add(env[:len(env)/2])
		v2, err := pk.SealDerived(nil, []byte(p), ad)
		if err != nil {
			f.Fatal(err)
		}
		sealed[string(v2)] = true
		f.Add(v2)
		f.Add(v2[:len(v2)-1])
		v3, err := pk.SealIdentity(nil, []byte(p), ad, fuzzID)
		if err != nil {
			f.Fatal(err)
		}
		sealed[string(v3)] = true
		f.Add(v3)
		f.Add(v3[:len(v3)-1])
	}
	f.Add([]byte{envelopeV2})
	f.Add([]byte{envelopeV3})
	f.Add([]byte{})
	f.Add([]byte{envelopeV1, 0})
	f.Add([]byte{envelopeV1, 255, 1})
	f.Fuzz(func(t *testing.T, env []byte) {
		pt, err := pk.Open(env, ad)
		if err == nil && (!sealed[string(env)] || EnvelopeVersion(env) == EnvelopeIdentity) {
			t.Fatalf("Open accepted bytes it did not seal: %x -> %q", env, pt)
		}
		pt, err = pk.OpenInPlaceID(bytes.Clone(env), ad, fuzzID, new(OpenScratch))
		if err == nil && !sealed[string(env)] {
			t.Fatalf("OpenInPlaceID accepted bytes it did not seal: %x -> %q", env, pt)
		}
		EnvelopeKeyID(env)
		EnvelopeVersion(env)
	})
}

// fuzzID is the record identity of the fuzzers' v3 envelopes.
var fuzzID = [IDSize]byte{0xf0, 0x0d}

// FuzzSealOpen checks that Open(Seal(p)) and OpenInPlace(Seal(p)) return p
// for any plaintext and associated data, and that other associated data
// fails.
func FuzzSealOpen(f *testing.F) {
	pk := fuzzKeys(f)
	f.Add([]byte("reading"), []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Add(bytes.Repeat([]byte{0x80}, 33), []byte{0})
	f.Add(bytes.Repeat([]byte{0}, 64), []byte("x"))
	f.Fuzz(func(t *testing.T, p, ad []byte) {
		env, err := pk.Seal(p, ad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pk.Open(env, ad)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("round trip: %q, %v; want %q", got, err, p)
		}
		if _, err := pk.Open(env, append(bytes.Clone(ad), 1)); err == nil {
			t.Fatal("opened under other associated data")
		}
		// Open leaves the envelope as it was; OpenInPlace gives the same
		// plaintext from a copy it may overwrite.
		again, err := pk.OpenInPlace(bytes.Clone(env), ad)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("in place: %q, %v; want %q", again, err, p)
		}
		if _, err := pk.OpenInPlace(bytes.Clone(env), append(bytes.Clone(ad), 1)); err == nil {
			t.Fatal("opened in place under other associated data")
		}
		// The same for a v2 (derived-key) record.
		v2, err := pk.SealDerived([]byte("dst"), p, ad)
		if err != nil || string(v2[:3]) != "dst" || EnvelopeVersion(v2[3:]) != EnvelopeDerived {
			t.Fatalf("seal v2: %x, %v", v2, err)
		}
		got, err = pk.Open(v2[3:], ad)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("v2 round trip: %q, %v; want %q", got, err, p)
		}
		if _, err := pk.Open(v2[3:], append(bytes.Clone(ad), 1)); err == nil {
			t.Fatal("v2 opened under other associated data")
		}
		// And for a v3 (identity) record: other ad or another identity fails.
		var id [IDSize]byte
		copy(id[:], p)
		v3, err := pk.SealIdentity([]byte("dst"), p, ad, id)
		if err != nil || string(v3[:3]) != "dst" || EnvelopeVersion(v3[3:]) != EnvelopeIdentity {
			t.Fatalf("seal v3: %x, %v", v3, err)
		}
		got, err = pk.OpenInPlaceID(bytes.Clone(v3[3:]), ad, id, new(OpenScratch))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("v3 round trip: %q, %v; want %q", got, err, p)
		}
		if _, err := pk.OpenInPlaceID(bytes.Clone(v3[3:]), append(bytes.Clone(ad), 1), id, new(OpenScratch)); err == nil {
			t.Fatal("v3 opened under other associated data")
		}
		id[15] ^= 1
		if _, err := pk.OpenInPlaceID(bytes.Clone(v3[3:]), ad, id, new(OpenScratch)); err == nil {
			t.Fatal("v3 opened under another identity")
		}
	})
}
