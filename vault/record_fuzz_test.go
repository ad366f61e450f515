package vault

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jupyterhealth/vault/internal/pointdict"
	"github.com/jupyterhealth/vault/keys"
)

// fuzzVault is the part of a Vault that seals and opens records: the
// point dictionary, and one patient's keys.
func fuzzVault(f *testing.F) (*Vault, *keys.PatientKeys) {
	m, err := keys.NewMaster()
	if err != nil {
		f.Fatal(err)
	}
	pk, _, err := keys.NewPatientKeys(m, "pt_fuzz")
	if err != nil {
		f.Fatal(err)
	}
	d, err := pointdict.Load(pointdict.V1)
	if err != nil {
		f.Fatal(err)
	}
	return &Vault{dict: d, writeFormat: RecordFormat}, pk
}

// FuzzCompactRecord seals any point as a compact record, in format 2 and
// in format 3, and opens it: the same bytes come back; the record does not
// open under another time, schema or tag, and a flipped byte anywhere
// fails with ErrDecrypt.
func FuzzCompactRecord(f *testing.F) {
	v, pk := fuzzVault(f)
	f.Add([]byte(`{"header":{"uuid":"9d3b2e1f-6a7c-4b8d-9e0f-1a2b3c4d5e6f","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{}}`), int64(1), uint16(3))
	f.Add([]byte{}, int64(-5), uint16(0))
	f.Add(bytes.Repeat([]byte{0x80}, 300), int64(0), uint16(299))
	f.Fuzz(func(t *testing.T, point []byte, at int64, flip uint16) {
		for _, format := range []int{FormatCompact, FormatIdentity} {
			r := Record{Schema: "omh:blood-glucose:4.0", Time: at, Tag: [16]byte{1, 2, 3}}
			var ad, comp []byte
			var codes schemaCodes
			sc := new(openScratch)
			sealed, err := v.sealRecord(pk, format, "pt_fuzz", &r, point, &ad, &comp, &codes)
			if err != nil {
				t.Fatal(err)
			}
			if keys.EnvelopeVersion(sealed) != format {
				t.Fatalf("sealed as format %d, want %d", keys.EnvelopeVersion(sealed), format)
			}
			r.Value = bytes.Clone(sealed)
			got, err := v.openRecord(pk, "pt_fuzz", &r, sc)
			if err != nil || !bytes.Equal(got, point) {
				t.Fatalf("format %d round trip: %q, %v", format, got, err)
			}
			for name, move := range map[string]func(*Record){
				"another time":   func(m *Record) { m.Time = at + 1 },
				"another schema": func(m *Record) { m.Schema = "omh:heart-rate:2.0" },
				"another tag":    func(m *Record) { m.Tag[15] ^= 1 },
			} {
				moved := r
				move(&moved)
				moved.Value = bytes.Clone(sealed)
				if _, err := v.openRecord(pk, "pt_fuzz", &moved, sc); !errors.Is(err, keys.ErrDecrypt) {
					t.Fatalf("format %d opened at %s: %v", format, name, err)
				}
			}
			bad := r
			bad.Value = bytes.Clone(sealed)
			bad.Value[int(flip)%len(bad.Value)] ^= 0x40
			if _, err := v.openRecord(pk, "pt_fuzz", &bad, sc); !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("format %d: a flipped byte opened: %v", format, err)
			}
		}
	})
}

// FuzzOpenRecord feeds arbitrary stored bytes to the record reader: it
// fails with ErrDecrypt, never panics, and never returns a point.
func FuzzOpenRecord(f *testing.F) {
	v, pk := fuzzVault(f)
	r := Record{Schema: "omh:heart-rate:2.0", Time: 7}
	var ad, comp []byte
	var codes schemaCodes
	for _, p := range []string{"", `{"a":1}`} {
		for _, format := range []int{FormatWrapped, FormatCompact, FormatIdentity} {
			sealed, err := v.sealRecord(pk, format, "pt_fuzz", &r, []byte(p), &ad, &comp, &codes)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(sealed[:len(sealed)-1])
			f.Add(append(bytes.Clone(sealed), 0))
		}
	}
	f.Add([]byte{FormatCompact})
	f.Add([]byte{FormatIdentity})
	f.Fuzz(func(t *testing.T, stored []byte) {
		rec := r
		rec.Value = bytes.Clone(stored)
		got, err := v.openRecord(pk, "pt_fuzz", &rec, new(openScratch))
		if !errors.Is(err, keys.ErrDecrypt) || got != nil {
			t.Fatalf("arbitrary bytes: %q, %v", got, err)
		}
	})
}
