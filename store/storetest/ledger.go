package storetest

// The consent ledger's conformance suite: the real consent.Ledger, with
// real crypto, over the backend's ledger store.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/keys"
	"golang.org/x/mod/sumdb/tlog"
)

// LedgerTamperer alters a ledger store's rows behind the ledger's back, as
// someone holding the database could. Each backend implements it on its
// own storage for the tamper cases; nothing in the product uses it.
//
// Tables are named by the Table constants. Entries, hashes and checkpoints
// are keyed by their number in decimal (entry index, stored hash index,
// tree size); index rows by row id; metadata by name.
type LedgerTamperer interface {
	// Raw returns a copy of a row's stored bytes, or nil when it is absent.
	Raw(table, key string) ([]byte, error)
	// SetRaw stores val as a row's bytes, or deletes the row if val is nil.
	SetRaw(table, key string, val []byte) error
	// Snapshot copies the ledger's whole storage; restore puts that copy
	// back, as restoring an older backup does.
	Snapshot() (restore func() error, err error)
}

// The ledger store's tables, as LedgerTamperer names them.
const (
	TableEntries     = "entries"
	TableHashes      = "hashes"
	TableCheckpoints = "checkpoints"
	TableIndex       = "index"
	TableMeta        = "meta"
)

// LedgerBackend is fresh, empty ledger storage under test.
type LedgerBackend struct {
	Store  consent.Store
	Tamper LedgerTamperer
	// Reopen closes the storage and opens it again, as a restart does,
	// and sets Store and Tamper to the new handles.
	Reopen func(t *testing.T)
}

// LedgerFactory makes fresh, empty ledger storage for one test. The
// factory closes it when the test ends (t.Cleanup) and may check its
// integrity then. A test may call it more than once.
type LedgerFactory func(t *testing.T) *LedgerBackend

// RunLedger runs the ledger store's suite.
func RunLedger(t *testing.T, open LedgerFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open LedgerFactory)
	}{
		{"AppendsAndProofs", testLedgerProofs},
		{"ConcurrentAppends", testLedgerConcurrent},
		{"FirstOpenRace", testLedgerFirstOpen},
		{"TwoLedgersOneStore", testLedgerTwoLedgers},
		{"GrantsAndDecide", testLedgerGrants},
		{"Checkpoints", testLedgerCheckpoints},
		{"PartyEntries", testLedgerPartyEntries},
		{"Reopen", testLedgerReopen},
		{"Tamper", testLedgerTamper},
		{"TamperIndex", testLedgerTamperIndex},
		{"Rollback", testLedgerRollback},
		{"ContextDone", testLedgerContext},
		{"BadArguments", testLedgerBadArguments},
		{"IndexRowsByID", testLedgerIndexRowsByID},
		{"EntriesDesc", testLedgerEntriesDesc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// ledgerEnv is one ledger over one backend, with the master it seals with.
type ledgerEnv struct {
	b      *LedgerBackend
	master *keys.Master
	l      *consent.Ledger
}

func newLedgerEnv(t *testing.T, open LedgerFactory) *ledgerEnv {
	t.Helper()
	m, err := keys.NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	e := &ledgerEnv{b: open(t), master: m}
	e.l = e.openLedger(t)
	return e
}

func (e *ledgerEnv) openLedger(t *testing.T) *consent.Ledger {
	t.Helper()
	l, err := consent.Open(e.b.Store, e.master, consent.Options{Origin: "vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// reopen restarts the storage and the ledger on it.
func (e *ledgerEnv) reopen(t *testing.T) {
	t.Helper()
	e.b.Reopen(t)
	e.l = e.openLedger(t)
}

func (e *ledgerEnv) append(t *testing.T, entries ...consent.Entry) int64 {
	t.Helper()
	i, err := e.l.Append(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func (e *ledgerEnv) sign(t *testing.T) []byte {
	t.Helper()
	b, err := e.l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *ledgerEnv) verify(t *testing.T) consent.VerifyResult {
	t.Helper()
	res, err := e.l.Verify(nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res
}

var (
	ledgerT0     = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ledgerExpiry = ledgerT0.Add(30 * 24 * time.Hour)
)

func grantEntry(id, patient, clinician string) consent.Entry {
	e := consent.New(consent.KindGrant, patient, ledgerT0)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &consent.Grant{ID: id, Schemas: []string{"omh:heart-rate"}, Expires: ledgerExpiry.Format(time.RFC3339Nano), Purpose: "TREAT"}
	return e
}

func grantN(i int) consent.Entry { return grantEntry(fmt.Sprintf("gr_%d", i), "pt_a", "cl_b") }

func revokeEntry(t *testing.T, l *consent.Ledger, id string) consent.Entry {
	t.Helper()
	g, err := l.Grant(id)
	if err != nil {
		t.Fatal(err)
	}
	return consent.NewRevoke(g.Patient, g, ledgerT0)
}

func accessEntry(patient, clinician string) consent.Entry {
	e := consent.New(consent.KindAccessStart, clinician, ledgerT0)
	e.Patient, e.Clinician = patient, clinician
	e.Access = &consent.Access{Schemas: []string{"omh:heart-rate:2.0"}, Format: "omh"}
	return e
}

var heartRate = consent.Request{Clinician: "cl_b", Patient: "pt_a", Schema: "omh:heart-rate:2.0", Now: ledgerT0}

func key(n int64) string { return strconv.FormatInt(n, 10) }

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// testLedgerProofs appends 200 entries in batches of growing size, then
// checks every inclusion proof and every consistency proof of every tree
// size against roots computed here from the entries' own bytes.
func testLedgerProofs(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	const N = 200
	for i, k := 0, 1; i < N; k++ {
		var batch []consent.Entry
		for ; len(batch) < k && i < N; i++ {
			batch = append(batch, grantN(i))
		}
		if first := e.append(t, batch...); first != int64(i-len(batch)) {
			t.Fatalf("batch appended at %d, want %d", first, i-len(batch))
		}
	}
	// The tree, computed apart from the store.
	var mem []tlog.Hash
	memReader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = mem[x]
		}
		return out, nil
	})
	leaves := make([]tlog.Hash, N)
	roots := make([]tlog.Hash, N+1)
	for i := range int64(N) {
		_, raw, err := e.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(i, raw, memReader)
		if err != nil {
			t.Fatal(err)
		}
		mem = append(mem, hs...)
		leaves[i] = tlog.RecordHash(raw)
		if roots[i+1], err = tlog.TreeHash(i+1, memReader); err != nil {
			t.Fatal(err)
		}
		if h, err := e.l.LeafHash(i); err != nil || h != leaves[i] {
			t.Fatalf("leaf %d: %v, stored hash differs from the entry's", i, err)
		}
	}
	for n := int64(1); n <= N; n++ {
		if h, err := e.l.TreeHash(n); err != nil || h != roots[n] {
			t.Fatalf("root of %d: %v, differs from the entries'", n, err)
		}
		for i := range n {
			p, err := e.l.ProveInclusion(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, n, roots[n], i, leaves[i]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
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
		}
	}
	if _, err := e.l.ProveInclusion(N, N); err == nil {
		t.Fatal("proved an index beyond the log")
	}
	if _, err := e.l.ProveConsistency(3, N+1); err == nil {
		t.Fatal("proved consistency beyond the log")
	}
	if _, _, err := e.l.Entry(N); !errors.Is(err, consent.ErrNoEntry) {
		t.Fatalf("entry beyond the log: %v", err)
	}
	if res := e.verify(t); res.Size != N {
		t.Fatalf("verify replayed %d entries, want %d", res.Size, N)
	}
}

// testLedgerConcurrent appends grants, accesses and revokes from many
// goroutines at once (group-committed) with checkpoints between: no entry
// is lost, the index agrees with the log, and verify passes.
func testLedgerConcurrent(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				g := grantN(w*1000 + i)
				gi, err := e.l.Append(g)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := e.l.Append(accessEntry("pt_a", "cl_b")); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					rev := consent.New(consent.KindRevoke, "pt_a", ledgerT0)
					rev.Patient, rev.Revoke = "pt_a", &consent.Revoke{GrantIndex: gi, GrantID: g.Grant.ID}
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
	e.sign(t)
	res := e.verify(t)
	want := int64(workers * (rounds*2 + rounds/2))
	if res.Size != want || res.Latest.Size != want {
		t.Fatalf("verify: %+v, want %d entries", res, want)
	}
	active := 0
	for _, g := range mustGrants(t, e.l, "pt_a") {
		if g.Active(ledgerT0) {
			active++
		}
	}
	if active != workers*rounds/2 {
		t.Fatalf("%d active grants, want %d", active, workers*rounds/2)
	}
	if a, err := e.l.Accesses("pt_a", 0); err != nil || len(a) != workers*rounds {
		t.Fatalf("%d accesses, want %d (%v)", len(a), workers*rounds, err)
	}
}

// testLedgerFirstOpen opens ledgers on one empty store from several
// goroutines at once: they end with one signing key, one verifier key and
// one digest key, and each opens and checks what the others wrote.
func testLedgerFirstOpen(t *testing.T, open LedgerFactory) {
	const racers = 4
	for round := range 5 {
		m, err := keys.NewMaster()
		if err != nil {
			t.Fatal(err)
		}
		b := open(t)
		ls := make([]*consent.Ledger, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for k := range ls {
			wg.Go(func() {
				<-start
				ls[k], errs[k] = consent.Open(b.Store, m, consent.Options{Origin: fmt.Sprintf("racer-%d.example", k)})
			})
		}
		close(start)
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("round %d: open %d: %v", round, k, err)
			}
		}
		for k, l := range ls {
			if l.VerifierKey() != ls[0].VerifierKey() || l.Origin() != ls[0].Origin() {
				t.Fatalf("round %d: ledger %d has key %q, ledger 0 %q: two log keys", round, k, l.VerifierKey(), ls[0].VerifierKey())
			}
		}
		// Every ledger's appends change the index under one digest key: a
		// fresh open trusts the index, and verify passes.
		for k, l := range ls {
			if _, err := l.Append(grantN(round*100 + k)); err != nil {
				t.Fatal(err)
			}
		}
		signed, err := ls[1].Sign()
		if err != nil {
			t.Fatal(err)
		}
		again, err := consent.Open(b.Store, m, consent.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := again.IndexError(); err != nil {
			t.Fatalf("round %d: index untrusted after racing opens: %v", round, err)
		}
		if _, err := consent.OpenCheckpoint(signed, ls[0].VerifierKey()); err != nil {
			t.Fatalf("round %d: one ledger's checkpoint under another's key: %v", round, err)
		}
		res, err := again.Verify(signed)
		if err != nil || res.Size != racers {
			t.Fatalf("round %d: verify %+v: %v", round, res, err)
		}
		for _, name := range []string{"skey", "vkey", "dkey"} {
			if v, err := b.Tamper.Raw(TableMeta, name); err != nil || v == nil {
				t.Fatalf("round %d: meta %s: %v", round, name, err)
			}
		}
	}
}

// testLedgerTwoLedgers has two ledgers on one store append alternately and
// then at once: each reads the size inside its transaction, so they make
// one tree, which both verify.
func testLedgerTwoLedgers(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	other := e.openLedger(t)
	ls := []*consent.Ledger{e.l, other}
	for i := range 20 {
		at, err := ls[i%2].Append(grantN(i))
		if err != nil {
			t.Fatal(err)
		}
		if at != int64(i) {
			t.Fatalf("append %d landed at %d", i, at)
		}
	}
	var wg sync.WaitGroup
	for k, l := range ls {
		wg.Go(func() {
			for i := range 25 {
				if _, err := l.Append(grantN(1000*(k+1) + i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpA, err := e.l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	cpB, err := other.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cpA, cpB) {
		t.Fatal("two ledgers on one store sign the same tree differently")
	}
	for k, l := range ls {
		res, err := l.Verify(cpA)
		if err != nil || res.Size != 70 {
			t.Fatalf("ledger %d: verify %+v: %v", k, res, err)
		}
	}
	if err := e.openLedger(t).IndexError(); err != nil {
		t.Fatalf("index after two writers: %v", err)
	}
}

// testLedgerGrants grants, revokes and decides over the index, refuses
// what makes no sense, and rebuilds to the same decisions.
func testLedgerGrants(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	e.append(t, grantEntry("gr_1", "pt_a", "cl_b"), grantEntry("gr_2", "pt_a", "cl_b"), grantEntry("gr_3", "pt_a", "cl_c"))
	if d := e.l.Decide(heartRate); !d.Permit || len(d.Grants) != 2 {
		t.Fatalf("decision with two grants: %+v", d)
	}
	e.append(t, revokeEntry(t, e.l, "gr_1"), revokeEntry(t, e.l, "gr_2"))
	if d := e.l.Decide(heartRate); d.Permit || d.Reason != "revoked" {
		t.Fatalf("after revokes: %+v", d)
	}
	n0, err := e.l.Size()
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name  string
		entry consent.Entry
		want  error
	}{
		{"revoke twice", consent.NewRevoke("pt_a", consent.GrantState{ID: "gr_1", Index: 0, Patient: "pt_a", Clinician: "cl_b"}, ledgerT0), consent.ErrRevoked},
		{"revoke unknown", consent.NewRevoke("pt_a", consent.GrantState{ID: "gr_9", Index: 0, Patient: "pt_a", Clinician: "cl_b"}, ledgerT0), consent.ErrNoGrant},
		{"grant id reused", grantEntry("gr_3", "pt_a", "cl_b"), nil},
	}
	for _, tc := range refused {
		// A refusal in a batch fails the whole batch.
		_, err := e.l.Append(grantN(50), tc.entry)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if n, err := e.l.Size(); err != nil || n != n0 {
		t.Fatalf("size %d after refused appends, was %d (%v)", n, n0, err)
	}
	if _, err := e.l.Grant("gr_50"); !errors.Is(err, consent.ErrNoGrant) {
		t.Fatal("a grant from a refused batch is in the index")
	}
	want := mustGrants(t, e.l, "pt_a")
	if n, err := e.l.Rebuild(); err != nil || n != 3 {
		t.Fatalf("rebuild: %d rows, %v", n, err)
	}
	if got := mustGrants(t, e.l, "pt_a"); !sameJSON(t, got, want) {
		t.Fatalf("rebuild changed the grants:\n%+v\n%+v", got, want)
	}
	if d := e.l.Decide(consent.Request{Clinician: "cl_c", Patient: "pt_a", Schema: "omh:heart-rate:2.0", Now: ledgerT0}); !d.Permit {
		t.Fatalf("after rebuild: %+v", d)
	}
	e.verify(t)
}

// testLedgerCheckpoints signs, re-signs an unchanged log, keeps one
// checkpoint per size, and stores the first of two for one size.
func testLedgerCheckpoints(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	if cp, err := e.l.LatestCheckpoint(); err != nil || cp != nil {
		t.Fatalf("a new ledger has checkpoint %q (%v)", cp, err)
	}
	e.append(t, grantN(0), grantN(1))
	signed := e.sign(t)
	if again := e.sign(t); !bytes.Equal(again, signed) {
		t.Fatal("re-signing an unchanged log made a new checkpoint")
	}
	cp, err := consent.OpenCheckpoint(signed, e.l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	root, err := e.l.TreeHash(2)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 2 || cp.Hash != root || cp.Origin != "vault.example" {
		t.Fatalf("checkpoint %+v", cp)
	}
	e.append(t, grantN(2))
	three := e.sign(t)
	if latest, err := e.l.LatestCheckpoint(); err != nil || !bytes.Equal(latest, three) {
		t.Fatalf("latest checkpoint %q, want %q (%v)", latest, three, err)
	}
	// A checkpoint already stored for a size stays.
	err = e.b.Store.Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		return tx.PutCheckpoint(2, []byte("another"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	err = e.b.Store.View(context.Background(), func(tx ledgerstore.ReadTx) error {
		return tx.Checkpoints(func(size int64, v []byte) error {
			sizes = append(sizes, size)
			if size == 2 && !bytes.Equal(v, signed) {
				return errors.New("the checkpoint of size 2 was replaced")
			}
			return nil
		})
	})
	if err != nil || fmt.Sprint(sizes) != "[2 3]" {
		t.Fatalf("checkpoints of sizes %v: %v", sizes, err)
	}
	if res := e.verify(t); res.Checkpoints != 2 || res.Latest.Size != 3 {
		t.Fatalf("verify: %+v", res)
	}
	other := newLedgerEnv(t, open)
	if _, err := consent.OpenCheckpoint(signed, other.l.VerifierKey()); err == nil {
		t.Fatal("checkpoint verified under another log's key")
	}
}

// testLedgerPartyEntries pages a party's entries, newest first.
func testLedgerPartyEntries(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	var ada []int64 // indexes of entries naming pt_ada, oldest first
	for i := range 40 {
		patient := "pt_bo"
		if i%3 == 0 {
			patient = "pt_ada"
		}
		at := e.append(t, grantEntry(fmt.Sprintf("gr_%d", i), patient, "cl_b"))
		if patient == "pt_ada" {
			ada = append(ada, at)
		}
	}
	var got []int64
	size := int64(0)
	for page := 0; ; page++ {
		es, more, err := e.l.PartyEntries("pt_ada", size, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, pe := range es {
			if pe.Entry.Patient != "pt_ada" || pe.LeafHash != tlog.RecordHash(pe.Raw) {
				t.Fatalf("entry %d: patient %s, leaf hash matches %v", pe.Index, pe.Entry.Patient, pe.LeafHash == tlog.RecordHash(pe.Raw))
			}
			got = append(got, pe.Index)
		}
		if !more {
			break
		}
		if len(es) != 4 || page > 10 {
			t.Fatalf("page %d: %d entries with more set", page, len(es))
		}
		size = es[len(es)-1].Index
	}
	for i, j := 0, len(ada)-1; i < j; i, j = i+1, j-1 {
		ada[i], ada[j] = ada[j], ada[i]
	}
	if fmt.Sprint(got) != fmt.Sprint(ada) {
		t.Fatalf("pages gave %v, want %v", got, ada)
	}
	if es, more, err := e.l.PartyEntries("cl_b", 0, 0); err != nil || more || len(es) != 40 || es[0].Index != 39 {
		t.Fatalf("unlimited: %d entries, more %v, %v", len(es), more, err)
	}
	if es, _, err := e.l.PartyEntries("pt_nobody", 0, 0); err != nil || len(es) != 0 {
		t.Fatalf("a stranger: %d entries, %v", len(es), err)
	}
	// A hole in the log is an error, not a shorter answer.
	if err := e.b.Tamper.SetRaw(TableEntries, key(20), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.l.PartyEntries("pt_ada", 0, 0); err == nil || !strings.Contains(err.Error(), "entry 20 is missing") {
		t.Fatalf("with entry 20 gone: %v", err)
	}
	if err := e.b.Tamper.SetRaw(TableEntries, key(0), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.l.PartyEntries("pt_ada", 20, 0); err == nil || !strings.Contains(err.Error(), "entry 0 is missing") {
		t.Fatalf("with entry 0 gone: %v", err)
	}
}

// testLedgerReopen restarts the storage: entries, hashes, checkpoints, the
// key and the index are all still there.
func testLedgerReopen(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	e.append(t, grantEntry("gr_1", "pt_a", "cl_b"), grantEntry("gr_2", "pt_a", "cl_b"), accessEntry("pt_a", "cl_b"))
	e.append(t, revokeEntry(t, e.l, "gr_1"))
	signed := e.sign(t)
	vk := e.l.VerifierKey()
	root, err := e.l.TreeHash(4)
	if err != nil {
		t.Fatal(err)
	}
	grants := mustGrants(t, e.l, "pt_a")
	e.reopen(t)
	if e.l.VerifierKey() != vk {
		t.Fatal("verifier key changed across a reopen")
	}
	if err := e.l.IndexError(); err != nil {
		t.Fatal(err)
	}
	if h, err := e.l.TreeHash(4); err != nil || h != root {
		t.Fatalf("root after reopen: %v", err)
	}
	if latest, err := e.l.LatestCheckpoint(); err != nil || !bytes.Equal(latest, signed) {
		t.Fatalf("checkpoint after reopen: %q %v", latest, err)
	}
	if got := mustGrants(t, e.l, "pt_a"); !sameJSON(t, got, grants) {
		t.Fatalf("grants after reopen:\n%+v\n%+v", got, grants)
	}
	if d := e.l.Decide(heartRate); !d.Permit || len(d.Grants) != 1 || d.Grants[0].ID != "gr_2" {
		t.Fatalf("decision after reopen: %+v", d)
	}
	if res, err := e.l.Verify(signed); err != nil || res.Size != 4 {
		t.Fatalf("verify after reopen: %+v %v", res, err)
	}
	if at := e.append(t, grantN(9)); at != 4 {
		t.Fatalf("append after reopen at %d", at)
	}
}

// tamperSetup is a ledger of 30 entries with checkpoints at 10, 20 and 30:
// grants gr_0…gr_29 at their own index, except entry 25, which revokes
// gr_3. oldRow is gr_3's index row from before the revoke.
type tamperSetup struct {
	*ledgerEnv
	oldRow []byte
	t      *testing.T
	open   LedgerFactory
}

func newTamperSetup(t *testing.T, open LedgerFactory) *tamperSetup {
	t.Helper()
	s := &tamperSetup{ledgerEnv: newLedgerEnv(t, open), t: t, open: open}
	for i := range 30 {
		en := grantN(i)
		if i == 25 {
			var err error
			if s.oldRow, err = s.b.Tamper.Raw(TableIndex, "gr_3"); err != nil || s.oldRow == nil {
				t.Fatalf("gr_3's row: %v", err)
			}
			en = revokeEntry(t, s.l, "gr_3")
		}
		s.append(t, en)
		if (i+1)%10 == 0 {
			s.sign(t)
		}
	}
	if res := s.verify(t); res.Size != 30 || res.Checkpoints != 3 {
		t.Fatalf("untouched log: %+v", res)
	}
	return s
}

func (s *tamperSetup) flip(table, k string, at int) error {
	v, err := s.b.Tamper.Raw(table, k)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("no row %s in %s", k, table)
	}
	v[at%len(v)] ^= 1
	return s.b.Tamper.SetRaw(table, k, v)
}

func (s *tamperSetup) copyRow(table, from, to string) error {
	v, err := s.b.Tamper.Raw(table, from)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("no row %s in %s", from, table)
	}
	return s.b.Tamper.SetRaw(table, to, v)
}

func (s *tamperSetup) setSize(n int64) error {
	return s.b.Store.Update(context.Background(), func(tx ledgerstore.WriteTx) error { return tx.SetSize(n) })
}

// testLedgerTamper alters the log's rows one way at a time: verify (or, for
// the keys, opening the ledger) names each.
func testLedgerTamper(t *testing.T, open LedgerFactory) {
	cases := []struct {
		name  string
		fn    func(s *tamperSetup) error
		index int64  // where verify says it is, or -2 when Open refuses
		what  string // what verify or Open says
	}{
		{"flip an entry byte", func(s *tamperSetup) error { return s.flip(TableEntries, "12", 40) }, 12, "does not decrypt"},
		{"flip the first entry's first byte", func(s *tamperSetup) error { return s.flip(TableEntries, "0", 0) }, 0, "does not decrypt"},
		{"flip a stored leaf hash", func(s *tamperSetup) error { return s.flip(TableHashes, key(tlog.StoredHashIndex(0, 17)), 3) }, 17, "stored Merkle hash"},
		{"flip a stored interior hash", func(s *tamperSetup) error { return s.flip(TableHashes, key(tlog.StoredHashIndex(1, 4)), 31) }, 9, "stored Merkle hash"},
		{"delete a stored hash", func(s *tamperSetup) error {
			return s.b.Tamper.SetRaw(TableHashes, key(tlog.StoredHashIndex(0, 5)), nil)
		}, 5, "stored Merkle hash"},
		{"truncate a stored hash", func(s *tamperSetup) error {
			return s.b.Tamper.SetRaw(TableHashes, key(tlog.StoredHashIndex(0, 6)), []byte("short"))
		}, 6, "stored Merkle hash"},
		{"stray hash beyond the log", func(s *tamperSetup) error {
			return s.copyRow(TableHashes, "0", key(tlog.StoredHashCount(30)))
		}, 30, "stored hash beyond"},
		{"flip a checkpoint byte", func(s *tamperSetup) error { return s.flip(TableCheckpoints, "20", 25) }, 20, "checkpoint"},
		{"replace a checkpoint with an older one", func(s *tamperSetup) error { return s.copyRow(TableCheckpoints, "20", "30") }, 30, "wrong size"},
		{"checkpoint beyond the log", func(s *tamperSetup) error { return s.copyRow(TableCheckpoints, "30", "31") }, 31, "wrong size"},
		{"delete an entry", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableEntries, "29", nil) }, 29, "missing"},
		{"delete the last entry and shrink the size", func(s *tamperSetup) error {
			if err := s.b.Tamper.SetRaw(TableEntries, "29", nil); err != nil {
				return err
			}
			return s.setSize(29)
		}, 29, "stored hash beyond"},
		{"grow the size", func(s *tamperSetup) error { return s.setSize(31) }, 30, "missing"},
		{"swap two entries", func(s *tamperSetup) error {
			a, err := s.b.Tamper.Raw(TableEntries, "7")
			if err != nil {
				return err
			}
			if err := s.copyRow(TableEntries, "8", "7"); err != nil {
				return err
			}
			return s.b.Tamper.SetRaw(TableEntries, "8", a)
		}, 7, "does not decrypt"},
		{"copy an entry to another index", func(s *tamperSetup) error { return s.copyRow(TableEntries, "3", "4") }, 4, "does not decrypt"},
		{"stray entry beyond the log", func(s *tamperSetup) error { return s.copyRow(TableEntries, "29", "30") }, 30, "entry beyond"},
		{"stray metadata", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableMeta, "extra", []byte("x")) }, -1, "unknown key"},
		{"flip the verifier key", func(s *tamperSetup) error { return s.flip(TableMeta, "vkey", 30) }, -2, "verifier key"},
		{"swap in another log's verifier key", func(s *tamperSetup) error {
			other := newLedgerEnv(s.t, s.open)
			return s.b.Tamper.SetRaw(TableMeta, "vkey", []byte(other.l.VerifierKey()))
		}, -2, "verifier key does not match"},
		{"flip the sealed signing key", func(s *tamperSetup) error { return s.flip(TableMeta, "skey", 20) }, -2, "signing key does not decrypt"},
		{"flip the sealed digest key", func(s *tamperSetup) error { return s.flip(TableMeta, "dkey", 20) }, -2, "digest key does not decrypt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTamperSetup(t, open)
			if err := tc.fn(s); err != nil {
				t.Fatal(err)
			}
			if tc.index == -2 {
				if _, err := consent.Open(s.b.Store, s.master, consent.Options{}); err == nil || !strings.Contains(err.Error(), tc.what) {
					t.Fatalf("open: %v, want an error saying %q", err, tc.what)
				}
				return
			}
			// Verify on the ledger that was open, and on a fresh one.
			for _, l := range []*consent.Ledger{s.l, s.openLedger(t)} {
				_, err := l.Verify(nil)
				var te *consent.TamperError
				if !errors.As(err, &te) {
					t.Fatalf("verify: %v, want a TamperError", err)
				}
				if te.Index != tc.index || !strings.Contains(te.What, tc.what) {
					t.Fatalf("verify named %d %q, want %d %q", te.Index, te.What, tc.index, tc.what)
				}
			}
		})
	}
}

// testLedgerTamperIndex alters the stored grant index: the ledger still
// opens, every decision denies with index_untrusted, grants cannot change,
// verify names it, and a rebuild restores the truth.
func testLedgerTamperIndex(t *testing.T, open LedgerFactory) {
	cases := []struct {
		name string
		fn   func(s *tamperSetup) error
	}{
		{"restore a revoked grant's old row", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableIndex, "gr_3", s.oldRow) }},
		{"flip a byte of a row", func(s *tamperSetup) error { return s.flip(TableIndex, "gr_3", 30) }},
		{"delete a row", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableIndex, "gr_4", nil) }},
		{"stray row", func(s *tamperSetup) error { return s.copyRow(TableIndex, "gr_4", "gr_99") }},
		{"flip the sealed digest", func(s *tamperSetup) error { return s.flip(TableMeta, "idigest", 10) }},
		{"delete the digest", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableMeta, "idigest", nil) }},
		{"delete the digest key", func(s *tamperSetup) error { return s.b.Tamper.SetRaw(TableMeta, "dkey", nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTamperSetup(t, open)
			if err := tc.fn(s); err != nil {
				t.Fatal(err)
			}
			l := s.openLedger(t)
			if l.IndexError() == nil {
				t.Fatal("no index error reported")
			}
			for _, r := range []consent.Request{heartRate, {Clinician: "cl_b", Patient: "pt_a", Schema: "omh:heart-rate:2.0", Now: ledgerT0.Add(time.Hour)}} {
				if d := l.Decide(r); d.Permit || d.Reason != "index_untrusted" {
					t.Fatalf("decision on a tampered index: %+v", d)
				}
			}
			if _, err := l.Verify(nil); err == nil {
				t.Fatal("verify passed a tampered index")
			}
			if _, err := l.Append(grantN(100)); err == nil {
				t.Fatal("a grant was appended onto an untrusted index")
			}
			if n, err := l.Rebuild(); err != nil || n != 29 {
				t.Fatalf("rebuild: %d rows, %v", n, err)
			}
			if err := l.IndexError(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Verify(nil); err != nil {
				t.Fatalf("after rebuild: %v", err)
			}
			if g, err := l.Grant("gr_3"); err != nil || g.RevokeIndex == nil || *g.RevokeIndex != 25 {
				t.Fatalf("gr_3 after rebuild: %+v %v", g, err)
			}
			if _, err := l.Grant("gr_99"); !errors.Is(err, consent.ErrNoGrant) {
				t.Fatalf("a stray row survived the rebuild: %v", err)
			}
			if err := s.openLedger(t).IndexError(); err != nil {
				t.Fatalf("reopened after rebuild: %v", err)
			}
		})
	}
}

// testLedgerRollback rolls the storage back to an older snapshot: the old
// copy is self-consistent, and only a client holding a newer checkpoint
// can tell; it does, and it tells a fork too.
func testLedgerRollback(t *testing.T, open LedgerFactory) {
	e := newLedgerEnv(t, open)
	for i := range 10 {
		e.append(t, grantN(i))
	}
	e.sign(t)
	restore, err := e.b.Tamper.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		e.append(t, grantN(i))
	}
	newer := e.sign(t)
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	e.l = e.openLedger(t)
	if res, err := e.l.Verify(nil); err != nil || res.Size != 10 {
		t.Fatalf("the old copy is self-consistent and should verify alone: %+v %v", res, err)
	}
	_, err = e.l.Verify(newer)
	var te *consent.TamperError
	if !errors.As(err, &te) || te.Index != 15 || !strings.Contains(te.What, "rolled back") {
		t.Fatalf("rollback: %v", err)
	}
	// A fork: the client's size again, other entries.
	for i := 100; i < 105; i++ {
		e.append(t, grantN(i))
	}
	_, err = e.l.Verify(newer)
	if !errors.As(err, &te) || te.Index != 15 || !strings.Contains(te.What, "forked") {
		t.Fatalf("fork: %v", err)
	}
}

// testLedgerContext: a done context stops a transaction before it starts.
func testLedgerContext(t *testing.T, open LedgerFactory) {
	b := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := b.Store.View(ctx, func(ledgerstore.ReadTx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("view with a done context: %v, ran %v", err, ran)
	}
	if err := b.Store.Update(ctx, func(ledgerstore.WriteTx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("update with a done context: %v, ran %v", err, ran)
	}
	// An Update that fails writes nothing.
	boom := errors.New("boom")
	err := b.Store.Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		if err := tx.PutEntry(0, []byte("sealed")); err != nil {
			return err
		}
		if err := tx.SetSize(1); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want its fn's error", err)
	}
	err = b.Store.View(context.Background(), func(tx ledgerstore.ReadTx) error {
		n, err := tx.Size()
		if err != nil {
			return err
		}
		v, err := tx.Entry(0)
		if err != nil {
			return err
		}
		if n != 0 || v != nil {
			return fmt.Errorf("a failed update left size %d, entry %q", n, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testLedgerBadArguments: the store refuses what no ledger writes, the
// same way on every backend, and a write transaction sees its own writes
// in every read. (Found by store/postgres's TestDifferentialLedger:
// PostgreSQL took an empty name or id and read "size" as metadata, bbolt
// took a negative stored-hash index and its Extent missed the
// transaction's own writes, and an empty value read back as nil, not
// stored, inside bbolt's write transaction.)
func testLedgerBadArguments(t *testing.T, open LedgerFactory) {
	s := open(t).Store
	ctx := context.Background()
	h := tlog.Hash{1}
	refused := []struct {
		what string
		fn   func(tx ledgerstore.WriteTx) error
	}{
		{"PutMeta of an empty name", func(tx ledgerstore.WriteTx) error { return tx.PutMeta("", []byte("v")) }},
		{`PutMeta("size")`, func(tx ledgerstore.WriteTx) error { return tx.PutMeta("size", []byte("v")) }},
		{`Meta("size")`, func(tx ledgerstore.WriteTx) error { _, err := tx.Meta("size"); return err }},
		{"PutIndexRow of an empty id", func(tx ledgerstore.WriteTx) error { return tx.PutIndexRow("", []byte("v")) }},
		{"PutHashes from -1", func(tx ledgerstore.WriteTx) error { return tx.PutHashes(-1, []tlog.Hash{h}) }},
		{"PutHashes past the largest index", func(tx ledgerstore.WriteTx) error { return tx.PutHashes(1<<63-1, []tlog.Hash{h, h}) }},
		{"PutEntry at -1", func(tx ledgerstore.WriteTx) error { return tx.PutEntry(-1, []byte("v")) }},
		{"SetSize(-1)", func(tx ledgerstore.WriteTx) error { return tx.SetSize(-1) }},
		{"PutEntry of an empty value", func(tx ledgerstore.WriteTx) error { return tx.PutEntry(0, nil) }},
		{"PutIndexRow of an empty value", func(tx ledgerstore.WriteTx) error { return tx.PutIndexRow("g", []byte{}) }},
		{"PutMeta of an empty value", func(tx ledgerstore.WriteTx) error { return tx.PutMeta("m", nil) }},
		{"PutCheckpoint of an empty value", func(tx ledgerstore.WriteTx) error { return tx.PutCheckpoint(0, []byte{}) }},
	}
	for _, c := range refused {
		if err := s.Update(ctx, c.fn); err == nil {
			t.Errorf("%s: accepted", c.what)
		}
	}
	var inside ledgerstore.Extent
	if err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
		if err := tx.PutEntry(0, []byte("e")); err != nil {
			return err
		}
		if err := tx.PutHashes(0, []tlog.Hash{h, h}); err != nil {
			return err
		}
		var err error
		inside, err = tx.Extent()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := (ledgerstore.Extent{Entries: 1, LastEntry: 0, Hashes: 2, LastHash: 1}); inside != want {
		t.Fatalf("Extent inside the writing transaction: %+v, want %+v", inside, want)
	}
	var after ledgerstore.Extent
	if err := s.View(ctx, func(tx ledgerstore.ReadTx) error {
		var err error
		after, err = tx.Extent()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if after != inside {
		t.Fatalf("Extent after the commit: %+v, inside: %+v", after, inside)
	}
}

// testLedgerIndexRowsByID: the rows named, in the order asked, nil for an
// id with none (a prefix of a stored id, or a longer id, is not it), an id
// asked twice answered twice, binary and NUL bytes kept, and what a
// transaction wrote visible to its own reads; no ids, no rows.
func testLedgerIndexRowsByID(t *testing.T, open LedgerFactory) {
	s := open(t).Store
	ctx := context.Background()
	stored := map[string][]byte{"acc/pt_a/9": []byte("nine"), "acc/pt_a/10": {0, 1, 0, 255}, "gr_1": []byte("grant")}
	ask := []string{"acc/pt_a/10", "acc/pt_a/1", "gr_1", "acc/pt_a/9", "acc/pt_a/100", "acc/pt_a/10", "gr_"}
	want := [][]byte{stored["acc/pt_a/10"], nil, stored["gr_1"], stored["acc/pt_a/9"], nil, stored["acc/pt_a/10"], nil}
	check := func(what string, got [][]byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows for %d ids", what, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || (got[i] == nil) != (want[i] == nil) {
				t.Errorf("%s: row %d (%s) = %q, want %q", what, i, ask[i], got[i], want[i])
			}
		}
	}
	if err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
		for id, v := range stored {
			if err := tx.PutIndexRow(id, v); err != nil {
				return err
			}
		}
		got, err := tx.IndexRowsByID(ask)
		check("inside the writing transaction", got, err)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx ledgerstore.ReadTx) error {
		got, err := tx.IndexRowsByID(ask)
		check("after the commit", got, err)
		none, err := tx.IndexRowsByID(nil)
		if err != nil || len(none) != 0 {
			t.Errorf("no ids: %q, %v", none, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// mustGrants is Ledger.Grants of a patient, failing the test on an error.
func mustGrants(t *testing.T, l *consent.Ledger, patient string) []consent.GrantState {
	t.Helper()
	gs, err := l.Grants(patient, "")
	if err != nil {
		t.Fatalf("grants of %s: %v", patient, err)
	}
	return gs
}

// testLedgerEntriesDesc: EntriesDesc gives every stored entry below its
// bound, highest first, skipping missing indexes, and stops where its
// callback says, whatever pages the backend reads in (PostgreSQL reads
// growing pages: 8 rows, then 16, up to 256); inside the writing
// transaction it sees that transaction's entries too.
func testLedgerEntriesDesc(t *testing.T, open LedgerFactory) {
	s := open(t).Store
	ctx := context.Background()
	const n = 700
	stored := func(i int64) bool { return i%97 != 5 && i != 300 } // gaps
	val := func(i int64) []byte { return []byte(fmt.Sprintf("entry %d", i)) }
	var want []int64 // every stored index, highest first
	for i := int64(n - 1); i >= 0; i-- {
		if stored(i) {
			want = append(want, i)
		}
	}
	check := func(tx ledgerstore.ReadTx, what string, below int64, stop int) {
		t.Helper()
		var got []int64
		err := tx.EntriesDesc(below, func(i int64, sealed []byte) bool {
			if !bytes.Equal(sealed, val(i)) {
				t.Errorf("%s: entry %d reads %q", what, i, sealed)
			}
			got = append(got, i)
			return len(got) < stop
		})
		if err != nil {
			t.Fatalf("%s: EntriesDesc(%d): %v", what, below, err)
		}
		var exp []int64
		for _, i := range want {
			if i < below && len(exp) < stop {
				exp = append(exp, i)
			}
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("%s: EntriesDesc(%d, stop after %d) gave %d entries %v..., want %d %v...", what, below, stop, len(got), head(got), len(exp), head(exp))
		}
	}
	cases := func(tx ledgerstore.ReadTx, what string) {
		for _, below := range []int64{0, 1, 6, 9, 300, 301, n, n + 50, math.MaxInt64} {
			for _, stop := range []int{1, 7, 8, 9, 24, 25, 257, 505, n + 1} {
				check(tx, what, below, stop)
			}
		}
	}
	if err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
		for i := int64(0); i < n; i++ {
			if stored(i) {
				if err := tx.PutEntry(i, val(i)); err != nil {
					return err
				}
			}
		}
		cases(tx, "inside the writing transaction")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx ledgerstore.ReadTx) error {
		cases(tx, "after the commit")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// head is the start of a list of indexes, for a message.
func head(xs []int64) []int64 { return xs[:min(len(xs), 12)] }
