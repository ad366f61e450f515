package consent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

type testEnv struct {
	path   string
	store  *boltstore.Store
	master *keys.Master
	l      *Ledger
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	m, err := keys.NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{path: filepath.Join(t.TempDir(), "vault.db"), master: m}
	e.open(t)
	t.Cleanup(func() { e.close(t) })
	return e
}

func (e *testEnv) open(t testing.TB) {
	t.Helper()
	st, err := boltstore.Open(e.path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(st, e.master, Options{Origin: "vault.example"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	e.store, e.l = st, l
}

func (e *testEnv) close(t testing.TB) {
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

func grantEntry(i int) Entry {
	e := New(KindGrant, "pt_a", time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC))
	e.Patient, e.Clinician = "pt_a", "cl_b"
	e.Grant = &Grant{ID: fmt.Sprintf("gr_%d", i), Schemas: []string{"omh:blood-glucose"}, Expires: "2099-01-01T00:00:00Z", Purpose: "TREAT"}
	return e
}

func TestEntryEncoding(t *testing.T) {
	e := grantEntry(1)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(b, again) {
		t.Fatalf("round trip changed bytes:\n%s\n%s", b, again)
	}
	bad := map[string]func(e *Entry){
		"version":     func(e *Entry) { e.V = 2 },
		"kind":        func(e *Entry) { e.Kind = "hug" },
		"two bodies":  func(e *Entry) { e.Revoke = &Revoke{} },
		"wrong body":  func(e *Entry) { e.Grant, e.Admin = nil, &Admin{Action: "x"} },
		"short salt":  func(e *Entry) { e.Salt = e.Salt[:8] },
		"local time":  func(e *Entry) { e.Time = "2026-01-01T01:00:00+01:00" },
		"no actor":    func(e *Entry) { e.Actor = "" },
		"padded time": func(e *Entry) { e.Time = "2026-01-01T00:00:01.000Z" },
	}
	for name, mutate := range bad {
		x := grantEntry(1)
		mutate(&x)
		if _, err := x.Marshal(); err == nil {
			t.Errorf("%s: marshalled", name)
		}
	}
	for name, text := range map[string]string{
		"spaces":        strings.Replace(string(b), `"v":1`, `"v": 1`, 1),
		"unknown field": strings.Replace(string(b), `{"v":1`, `{"x":0,"v":1`, 1),
		"trailing":      string(b) + "{}",
		"reordered":     strings.Replace(string(b), `"v":1,"kind":"grant"`, `"kind":"grant","v":1`, 1),
	} {
		if _, err := Parse([]byte(text)); err == nil {
			t.Errorf("%s: parsed a non-canonical entry", name)
		}
	}
	if a, b := New(KindAdmin, "admin", time.Now()), New(KindAdmin, "admin", time.Now()); bytes.Equal(a.Salt, b.Salt) {
		t.Fatal("two entries share a salt")
	}
}

// TestProofsExhaustive checks every inclusion and consistency proof for
// every tree size up to 200, and that altering any hash in a proof, or the
// leaf or root it is checked against, makes it fail.
func TestProofsExhaustive(t *testing.T) {
	e := newTestEnv(t)
	const N = 200
	var entries []Entry
	for i := range N {
		entries = append(entries, grantEntry(i))
	}
	if _, err := e.l.Append(entries...); err != nil {
		t.Fatal(err)
	}
	leaves := make([]tlog.Hash, N)
	roots := make([]tlog.Hash, N+1)
	for i := range int64(N) {
		_, raw, err := e.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		leaves[i] = tlog.RecordHash(raw)
		if h, _ := e.l.LeafHash(i); h != leaves[i] {
			t.Fatalf("leaf %d: stored hash differs from the entry's", i)
		}
	}
	for n := int64(1); n <= N; n++ {
		var err error
		if roots[n], err = e.l.TreeHash(n); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(h tlog.Hash, k int) tlog.Hash { h[k%tlog.HashSize] ^= 1; return h }
	checks := 0
	for n := int64(1); n <= N; n++ {
		for i := int64(0); i < n; i++ {
			p, err := e.l.ProveInclusion(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, n, roots[n], i, leaves[i]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
			}
			for j := range p {
				bad := append(tlog.RecordProof(nil), p...)
				bad[j] = flip(bad[j], int(i+n)+j)
				if tlog.CheckRecord(bad, n, roots[n], i, leaves[i]) == nil {
					t.Fatalf("inclusion %d in %d: altered proof hash %d verified", i, n, j)
				}
				checks++
			}
			if tlog.CheckRecord(p, n, flip(roots[n], int(i)), i, leaves[i]) == nil || tlog.CheckRecord(p, n, roots[n], i, flip(leaves[i], int(n))) == nil {
				t.Fatalf("inclusion %d in %d: altered root or leaf verified", i, n)
			}
		}
		for m := int64(1); m <= n; m++ {
			p, err := e.l.ProveConsistency(m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, n, roots[n], m, roots[m]); err != nil {
				t.Fatalf("consistency %d..%d: %v", m, n, err)
			}
			for j := range p {
				bad := append(tlog.TreeProof(nil), p...)
				bad[j] = flip(bad[j], int(m+n)+j)
				if tlog.CheckTree(bad, n, roots[n], m, roots[m]) == nil {
					t.Fatalf("consistency %d..%d: altered proof hash %d verified", m, n, j)
				}
				checks++
			}
			if m < n && tlog.CheckTree(p, n, roots[n], m, flip(roots[m], int(n))) == nil {
				t.Fatalf("consistency %d..%d: altered old root verified", m, n)
			}
		}
	}
	t.Logf("%d altered proofs refused", checks)
	if _, err := e.l.ProveInclusion(5, 5); err == nil {
		t.Fatal("proved index 5 in a tree of 5")
	}
	if _, err := e.l.ProveConsistency(3, N+1); err == nil {
		t.Fatal("proved consistency beyond the log")
	}
}

func TestCheckpoints(t *testing.T) {
	e := newTestEnv(t)
	e.l.Append(grantEntry(0), grantEntry(1))
	signed, err := e.l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(signed, e.l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	root, _ := e.l.TreeHash(2)
	if cp.Size != 2 || cp.Hash != root || cp.Origin != "vault.example" {
		t.Fatalf("checkpoint %+v", cp)
	}
	again, _ := e.l.Sign()
	if !bytes.Equal(again, signed) {
		t.Fatal("re-signing an unchanged log made a new checkpoint")
	}
	other := newTestEnv(t)
	if _, err := OpenCheckpoint(signed, other.l.VerifierKey()); err == nil {
		t.Fatal("checkpoint verified under another log's key")
	}
	// The signing key survives a reopen, sealed under the master.
	vk := e.l.VerifierKey()
	e.close(t)
	e.open(t)
	if e.l.VerifierKey() != vk {
		t.Fatal("verifier key changed across a reopen")
	}
	b, _ := os.ReadFile(e.path)
	if bytes.Contains(b, []byte("PRIVATE+KEY")) {
		t.Fatal("the log's signing key is on disk in plaintext")
	}
	if bytes.Contains(b, []byte("cl_b")) || bytes.Contains(b, []byte("omh:blood-glucose")) || bytes.Contains(b, []byte("TREAT")) {
		t.Fatal("entry content is on disk in plaintext")
	}
}

// TestConcurrentAppendsVerify runs grants, revokes and accesses from many
// goroutines at once (group-committed): no entry is lost, the index agrees
// with the log, and verify passes.
func TestConcurrentAppendsVerify(t *testing.T) {
	e := newTestEnv(t)
	var wg sync.WaitGroup
	const workers, rounds = 8, 20
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				id := w*1000 + i
				g := grantEntry(id)
				gi, err := e.l.Append(g)
				if err != nil {
					t.Error(err)
					return
				}
				acc := New(KindAccessStart, "cl_b", time.Now())
				acc.Patient, acc.Clinician = "pt_a", "cl_b"
				acc.Access = &Access{Schemas: []string{"omh:blood-glucose:4.0"}, Format: "omh"}
				if _, err := e.l.Append(acc); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					rev := New(KindRevoke, "pt_a", time.Now())
					rev.Patient, rev.Revoke = "pt_a", &Revoke{GrantIndex: gi, GrantID: g.Grant.ID}
					if _, err := e.l.Append(rev); err != nil {
						t.Error(err)
						return
					}
				}
				if i%7 == 0 {
					if _, err := e.l.Sign(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	e.l.Sign()
	res, err := e.l.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(workers * (rounds*2 + rounds/2))
	if res.Size != want || res.Latest.Size != want {
		t.Fatalf("verify: %+v, want %d entries", res, want)
	}
	active := 0
	for _, g := range e.l.Grants("pt_a", "") {
		if g.Active(time.Now()) {
			active++
		}
	}
	if active != workers*rounds/2 {
		t.Fatalf("%d active grants, want %d", active, workers*rounds/2)
	}
}

// tamperEnv makes a ledger of 30 entries with checkpoints at 10, 20 and 30,
// closes it, applies fn to the raw file, reopens it and verifies.
func tamperEnv(t *testing.T, prior func(e *testEnv) []byte, fn func(tx *bolt.Tx) error) (VerifyResult, error) {
	t.Helper()
	e := newTestEnv(t)
	for i := range 30 {
		e.l.Append(grantEntry(i))
		if (i+1)%10 == 0 {
			if _, err := e.l.Sign(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var kept []byte
	if prior != nil {
		kept = prior(e)
	}
	if res, err := e.l.Verify(kept); err != nil {
		t.Fatalf("untouched log fails: %v (%+v)", err, res)
	}
	if fn != nil {
		err := e.store.DB(func(db *bolt.DB) error { return db.Update(fn) })
		if err != nil {
			t.Fatal(err)
		}
	}
	return e.l.Verify(kept)
}

func flipIn(bucket []byte, key int64, at int) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := bytes.Clone(b.Get(u64(key)))
		if v == nil {
			return fmt.Errorf("no key %d in %s", key, bucket)
		}
		v[at%len(v)] ^= 0x01
		return b.Put(u64(key), v)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	swap := func(tx *bolt.Tx) error {
		b := tx.Bucket(bEntries)
		a, c := bytes.Clone(b.Get(u64(7))), bytes.Clone(b.Get(u64(8)))
		b.Put(u64(7), c)
		return b.Put(u64(8), a)
	}
	cases := []struct {
		name  string
		fn    func(tx *bolt.Tx) error
		index int64
		what  string
	}{
		{"flip entry byte", flipIn(bEntries, 12, 40), 12, "does not decrypt"},
		{"flip first entry byte", flipIn(bEntries, 0, 0), 0, "does not decrypt"},
		{"flip stored leaf hash", flipIn(bHashes, tlog.StoredHashIndex(0, 17), 3), 17, "stored Merkle hash"},
		{"flip stored interior hash", flipIn(bHashes, tlog.StoredHashIndex(1, 4), 31), 9, "stored Merkle hash"},
		{"flip checkpoint byte", flipIn(bCheckpoints, 20, 25), 20, "checkpoint"},
		{"delete entry", func(tx *bolt.Tx) error { return tx.Bucket(bEntries).Delete(u64(29)) }, 29, "missing"},
		{"delete last entry and shrink size", func(tx *bolt.Tx) error {
			tx.Bucket(bEntries).Delete(u64(29))
			return tx.Bucket(bLedgerMeta).Put([]byte("size"), u64(29))
		}, 29, "stored hash beyond"},
		{"reorder entries", swap, 7, "does not decrypt"},
		{"replace checkpoint with an older one", func(tx *bolt.Tx) error {
			cb := tx.Bucket(bCheckpoints)
			return cb.Put(u64(30), bytes.Clone(cb.Get(u64(20))))
		}, 30, "wrong size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tamperEnv(t, nil, tc.fn)
			var te *TamperError
			if !errors.As(err, &te) {
				t.Fatalf("verify: %v, want a TamperError", err)
			}
			if te.Index != tc.index || !strings.Contains(te.What, tc.what) {
				t.Fatalf("verify named %d %q, want %d %q", te.Index, te.What, tc.index, tc.what)
			}
		})
	}
}

// TestVerifyDetectsRollback rolls the database file back to an older copy:
// only a client holding a newer checkpoint can tell, and it does.
func TestVerifyDetectsRollback(t *testing.T) {
	e := newTestEnv(t)
	for i := range 10 {
		e.l.Append(grantEntry(i))
	}
	e.l.Sign()
	e.close(t)
	old, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	e.open(t)
	for i := 10; i < 15; i++ {
		e.l.Append(grantEntry(i))
	}
	newer, _ := e.l.Sign()
	e.close(t)
	if err := os.WriteFile(e.path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open(t)
	if _, err := e.l.Verify(nil); err != nil {
		t.Fatalf("the old copy is self-consistent and should verify alone: %v", err)
	}
	_, err = e.l.Verify(newer)
	var te *TamperError
	if !errors.As(err, &te) || te.Index != 15 || !strings.Contains(te.What, "rolled back") {
		t.Fatalf("rollback: %v", err)
	}
	// A fork: same size as the client's checkpoint, different entries.
	for i := 100; i < 105; i++ {
		e.l.Append(grantEntry(i))
	}
	_, err = e.l.Verify(newer)
	if !errors.As(err, &te) || !strings.Contains(te.What, "forked") {
		t.Fatalf("fork: %v", err)
	}
}
