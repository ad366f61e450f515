package boltstore

import (
	"compress/gzip"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/keys"
)

// TestLedgerOpensOlderFile opens testdata/ledger-v0.db.gz, a file the vault
// wrote before the ledger store existed (commit 3c4a1b4, when consent
// opened bbolt itself): 12 grants to two clinicians (checkpoint at 6), a
// revoke of gr_2, a clinician key, an access, and a checkpoint at 15. The
// master keyset is in meta "golden_master", wrapped under a passphrase
// root. The ledger store reads it as it is: same log key, same root, same
// index, and it appends on.
func TestLedgerOpensOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	gunzip(t, "testdata/ledger-v0.db.gz", path)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := Check(path); err != nil {
			t.Errorf("integrity: %v", err)
		}
	}()
	wrapped, err := s.Meta(t.Context(), "golden_master")
	if err != nil || wrapped == nil {
		t.Fatalf("wrapped master: %v", err)
	}
	root, err := keys.RootFromPassphrase([]byte("golden"), keys.Argon2Params{Salt: []byte("golden-ledger-v0"), Time: 1, MemoryKiB: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.OpenMaster(wrapped, root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := consent.Open(s.Ledger(), m, consent.Options{Origin: "other.example"})
	if err != nil {
		t.Fatal(err)
	}
	if vk := l.VerifierKey(); vk != "golden.example+927a6ea5+AZ+LLZWwVHPye6I5moJRmlTZBUvZomQ1d/lpN/B5bSSX" {
		t.Fatalf("verifier key %s", vk)
	}
	if err := l.IndexError(); err != nil {
		t.Fatal(err)
	}
	res, err := l.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(res.Latest.Hash[:]); res.Size != 15 || res.Checkpoints != 2 || res.Latest.Size != 15 || got != "BO9jWESOBOIojqJywfeyTepH2+eNjmNxig/1G2LGW8Q=" {
		t.Fatalf("verify: %+v (root %s)", res, got)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d := l.Decide(consent.Request{Clinician: "cl_b", Patient: "pt_a", Schema: "omh:heart-rate:2.0", Now: now})
	if !d.Permit || len(d.Grants) != 5 {
		t.Fatalf("decision: %+v, want a permit from 5 grants (gr_2 is revoked)", d)
	}
	if g, err := l.Grant("gr_2"); err != nil || g.RevokeIndex == nil || *g.RevokeIndex != 12 {
		t.Fatalf("gr_2: %+v %v", g, err)
	}
	if ks := l.ClinicianKeys("cl_b"); len(ks) != 1 || ks[0].Fingerprint != "fp_1" {
		t.Fatalf("clinician keys %+v", ks)
	}
	if as, err := l.Accesses("pt_a", 0); err != nil || len(as) != 1 || as[0].Start != 14 {
		t.Fatalf("accesses %+v", as)
	}
	if es, more, err := l.PartyEntries("cl_c", 0, 0); err != nil || more || len(es) != 6 || es[0].Index != 11 {
		t.Fatalf("cl_c's entries: %d, %v", len(es), err)
	}
	e := consent.NewAdmin("user-add", "pt_b", "after the upgrade", now)
	if at, err := l.Append(e); err != nil || at != 15 {
		t.Fatalf("append: at %d, %v", at, err)
	}
	signed, err := l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if res, err := l.Verify(signed); err != nil || res.Size != 16 || res.Checkpoints != 3 {
		t.Fatalf("verify after an append: %+v %v", res, err)
	}
}

func gunzip(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
