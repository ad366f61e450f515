package consent

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
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
	l, err := Open(st.Ledger(), e.master, Options{Origin: "vault.example"})
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
	if err := e.store.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	e.store = nil
	if err := boltstore.Check(e.path); err != nil {
		t.Errorf("integrity: %v", err)
	}
}

// append appends entries as a test's setup, failing the test on an error.
func (e *testEnv) append(t testing.TB, entries ...Entry) int64 {
	t.Helper()
	i, err := e.l.Append(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func (e *testEnv) sign(t testing.TB) []byte {
	t.Helper()
	b, err := e.l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *testEnv) size(t testing.TB) int64 {
	t.Helper()
	n, err := e.l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
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
	again, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
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
		if h, err := e.l.LeafHash(i); err != nil || h != leaves[i] {
			t.Fatalf("leaf %d: %v, stored hash differs from the entry's", i, err)
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

// grantLog is a test ledger of n grants.
func grantLog(t *testing.T, n int) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	var entries []Entry
	for i := range n {
		entries = append(entries, grantEntry(i))
	}
	e.append(t, entries...)
	return e
}

// TestProvenEntries: the proofs and entries an export's manifest takes
// from one read are the ones InclusionProof and Entry give one by one, and
// they verify against the tree's root; an index past the tree or the log
// is refused with nothing returned.
func TestProvenEntries(t *testing.T) {
	e := grantLog(t, 37)
	const n = 30
	root, err := e.l.TreeHash(n)
	if err != nil {
		t.Fatal(err)
	}
	idxs := []int64{29, 0, 17, 17, 5}
	proofs, raws, err := e.l.ProvenEntries(idxs, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(proofs) != len(idxs) || len(raws) != len(idxs) {
		t.Fatalf("%d proofs and %d entries for %d indexes", len(proofs), len(raws), len(idxs))
	}
	for k, i := range idxs {
		one, err := e.l.InclusionProof(i, n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(proofs[k], one) {
			t.Errorf("index %d: proof %+v, InclusionProof %+v", i, proofs[k], one)
		}
		_, raw, err := e.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raws[k], raw) {
			t.Errorf("index %d: entry %q, Entry %q", i, raws[k], raw)
		}
		var p tlog.RecordProof
		for _, h := range proofs[k].Proof {
			b, _ := base64.StdEncoding.DecodeString(h)
			p = append(p, tlog.Hash(b))
		}
		if err := tlog.CheckRecord(p, n, root, i, tlog.RecordHash(raws[k])); err != nil {
			t.Errorf("index %d: %v", i, err)
		}
		if proofs[k].RootHash != base64.StdEncoding.EncodeToString(root[:]) || *proofs[k].Index != i {
			t.Errorf("index %d: root %s, index %d", i, proofs[k].RootHash, *proofs[k].Index)
		}
	}
	for _, bad := range []struct {
		idxs []int64
		n    int64
	}{{[]int64{3, 30}, n}, {[]int64{-1}, n}, {[]int64{1}, 38}, {[]int64{1}, 0}} {
		if ps, rs, err := e.l.ProvenEntries(bad.idxs, bad.n); err == nil || ps != nil || rs != nil {
			t.Errorf("ProvenEntries(%v, %d): %d proofs, %d entries, error %v; want an error alone", bad.idxs, bad.n, len(ps), len(rs), err)
		}
	}
}

// TestConsistencyProofVerifies: ConsistencyProof, which reads its stored
// hashes in one read, gives the proof ProveConsistency gives and the
// roots TreeHash gives, and the proof verifies; a bad pair is refused.
func TestConsistencyProofVerifies(t *testing.T) {
	e := grantLog(t, 37)
	for _, c := range [][2]int64{{1, 1}, {1, 37}, {5, 8}, {13, 30}, {36, 37}, {37, 37}} {
		m, n := c[0], c[1]
		out, err := e.l.ConsistencyProof(m, n)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
		}
		want, err := e.l.ProveConsistency(m, n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out.Proof, b64s(want)) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, ProveConsistency %v", m, n, out.Proof, b64s(want))
		}
		mh, err := e.l.TreeHash(m)
		if err != nil {
			t.Fatal(err)
		}
		nh, err := e.l.TreeHash(n)
		if err != nil {
			t.Fatal(err)
		}
		if out.FromHash != b64(mh) || out.RootHash != b64(nh) || *out.From != m || out.Size != n {
			t.Errorf("ConsistencyProof(%d, %d) = %+v", m, n, out)
		}
		if err := tlog.CheckTree(want, n, nh, m, mh); err != nil {
			t.Errorf("(%d, %d): %v", m, n, err)
		}
	}
	for _, c := range [][2]int64{{0, 5}, {6, 5}, {1, 38}} {
		if _, err := e.l.ConsistencyProof(c[0], c[1]); err == nil {
			t.Errorf("ConsistencyProof(%d, %d): no error", c[0], c[1])
		}
	}
}

// TestSealedOnDisk: the log's signing key is sealed under the master and
// entries are sealed, so neither is in the file in plaintext. (How
// checkpoints are signed, re-signed and kept, and that the key survives a
// reopen, is storetest.RunLedger's, which runs on this backend from
// store/boltstore.)
func TestSealedOnDisk(t *testing.T) {
	e := newTestEnv(t)
	e.append(t, grantEntry(0), grantEntry(1))
	e.sign(t)
	e.close(t)
	b, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("PRIVATE+KEY")) {
		t.Fatal("the log's signing key is on disk in plaintext")
	}
	if bytes.Contains(b, []byte("cl_b")) || bytes.Contains(b, []byte("omh:blood-glucose")) || bytes.Contains(b, []byte("TREAT")) {
		t.Fatal("entry content is on disk in plaintext")
	}
}
