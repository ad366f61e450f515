package consent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

var (
	t0     = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	expiry = t0.Add(30 * 24 * time.Hour)
)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

func grantFor(id, patient, clinician string, schemas []string, from, to time.Time, expires time.Time) Entry {
	e := New(KindGrant, patient, t0)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &Grant{ID: id, Schemas: schemas, Expires: expires.UTC().Format(time.RFC3339Nano), Purpose: "TREAT"}
	if !from.IsZero() {
		e.Grant.DataFrom = from.UTC().Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		e.Grant.DataTo = to.UTC().Format(time.RFC3339Nano)
	}
	return e
}

func revokeOf(l *Ledger, t *testing.T, id string) {
	t.Helper()
	g, err := l.Grant(id)
	if err != nil {
		t.Fatal(err)
	}
	e := New(KindRevoke, g.Patient, t0)
	e.Patient, e.Revoke = g.Patient, &Revoke{GrantIndex: g.Index, GrantID: id}
	if _, err := l.Append(e); err != nil {
		t.Fatal(err)
	}
}

// TestDecideScope is the grant-scope table: each behaviour decided and
// documented in docs/ledger.md.
func TestDecideScope(t *testing.T) {
	e := newTestEnv(t)
	l := e.l
	if _, err := l.Append(
		grantFor("gr_glucose", "pt_ada", "cl_riv", []string{"omh:blood-glucose"}, day(-10), day(10), expiry),
		grantFor("gr_hr", "pt_ada", "cl_riv", []string{"omh:heart-rate:2.0"}, time.Time{}, time.Time{}, expiry),
		grantFor("gr_revoked", "pt_ada", "cl_other", []string{"omh:step-count"}, time.Time{}, time.Time{}, expiry),
		grantFor("gr_late", "pt_ada", "cl_riv", []string{"omh:blood-glucose"}, day(20), day(25), expiry),
	); err != nil {
		t.Fatal(err)
	}
	revokeOf(l, t, "gr_revoked")
	now := t0
	cases := []struct {
		name    string
		req     Request
		permit  bool
		reason  string
		grants  []string
		windows []Window
	}{
		{"schema inside, window inside", Request{"cl_riv", "pt_ada", "omh:blood-glucose:4.0", Window{day(-5), day(5)}, now}, true, "", []string{"gr_glucose"}, []Window{{day(-5), day(5)}}},
		{"versionless grant covers any version", Request{"cl_riv", "pt_ada", "omh:blood-glucose:3.0", Window{day(-5), day(5)}, now}, true, "", []string{"gr_glucose"}, nil},
		{"schema outside the grant", Request{"cl_riv", "pt_ada", "omh:step-count:3.0", Window{}, now}, false, "schema_not_granted", nil, nil},
		{"versioned grant, other version", Request{"cl_riv", "pt_ada", "omh:heart-rate:1.0", Window{}, now}, false, "schema_not_granted", nil, nil},
		{"window partly outside: clipped", Request{"cl_riv", "pt_ada", "omh:blood-glucose:4.0", Window{day(-30), day(5)}, now}, true, "", []string{"gr_glucose"}, []Window{{day(-10), day(5)}}},
		{"open window: clipped to both grants", Request{"cl_riv", "pt_ada", "omh:blood-glucose:4.0", Window{}, now}, true, "", []string{"gr_glucose", "gr_late"}, []Window{{day(-10), day(10)}, {day(20), day(25)}}},
		{"window wholly outside", Request{"cl_riv", "pt_ada", "omh:blood-glucose:4.0", Window{day(11), day(19)}, now}, false, "window_not_granted", nil, nil},
		{"window touching the grant's end (half-open)", Request{"cl_riv", "pt_ada", "omh:blood-glucose:4.0", Window{day(10), day(11)}, now}, false, "window_not_granted", nil, nil},
		{"a moment before expiry", Request{"cl_riv", "pt_ada", "omh:heart-rate:2.0", Window{}, expiry.Add(-time.Nanosecond)}, true, "", []string{"gr_hr"}, nil},
		{"expired, at the exact boundary", Request{"cl_riv", "pt_ada", "omh:heart-rate:2.0", Window{}, expiry}, false, "expired", nil, nil},
		{"revoked", Request{"cl_other", "pt_ada", "omh:step-count:3.0", Window{}, now}, false, "revoked", nil, nil},
		{"another clinician", Request{"cl_nobody", "pt_ada", "omh:blood-glucose:4.0", Window{}, now}, false, "no_grant", nil, nil},
		{"another patient", Request{"cl_riv", "pt_bo", "omh:blood-glucose:4.0", Window{}, now}, false, "no_grant", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := l.Decide(tc.req)
			if d.Permit != tc.permit || d.Reason != tc.reason {
				t.Fatalf("decision %+v, want permit=%v reason=%q", d, tc.permit, tc.reason)
			}
			var ids []string
			for _, g := range d.Grants {
				ids = append(ids, g.ID)
			}
			slices.Sort(ids)
			if fmt.Sprint(ids) != fmt.Sprint(tc.grants) {
				t.Fatalf("grants %v, want %v", ids, tc.grants)
			}
			if tc.windows != nil && fmt.Sprint(d.Windows) != fmt.Sprint(tc.windows) {
				t.Fatalf("windows %v, want %v", d.Windows, tc.windows)
			}
		})
	}
}

func TestRevokeTakesEffectAtOnceAndOnlyOnce(t *testing.T) {
	e := newTestEnv(t)
	l := e.l
	e.append(t, grantFor("gr_1", "pt_a", "cl_b", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry))
	req := Request{"cl_b", "pt_a", "omh:heart-rate:2.0", Window{}, t0}
	if !l.Decide(req).Permit {
		t.Fatal("grant not in force")
	}
	revokeOf(l, t, "gr_1")
	if d := l.Decide(req); d.Permit || d.Reason != "revoked" {
		t.Fatalf("after revoke: %+v", d)
	}
	g, err := l.Grant("gr_1")
	if err != nil {
		t.Fatal(err)
	}
	rev := New(KindRevoke, "pt_a", t0)
	rev.Patient, rev.Revoke = "pt_a", &Revoke{GrantIndex: g.Index, GrantID: "gr_1"}
	n0 := e.size(t)
	if _, err := l.Append(rev); !errors.Is(err, ErrRevoked) {
		t.Fatalf("second revoke: %v", err)
	}
	rev.Revoke.GrantID = "gr_nope"
	if _, err := l.Append(rev); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("revoke of unknown grant: %v", err)
	}
	if n1 := e.size(t); n1 != n0 {
		t.Fatal("a refused revoke was appended")
	}
	if _, err := l.Append(grantFor("gr_1", "pt_a", "cl_b", []string{"x:y"}, time.Time{}, time.Time{}, expiry)); err == nil {
		t.Fatal("grant id reused")
	}
	// The index survives a reopen, and verify agrees with it.
	e.close(t)
	e.open(t)
	if d := e.l.Decide(req); d.Permit {
		t.Fatal("revoke lost across a reopen")
	}
	if _, err := e.l.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// TestIndexTamperAndRebuild re-seals a revoked grant's row as active (as
// someone holding the master could) behind the log's back: verify names
// the grant's entry, and a rebuild restores the truth. storetest.RunLedger
// covers the tampering that needs no key.
func TestIndexTamperAndRebuild(t *testing.T) {
	e := newTestEnv(t)
	e.append(t, grantFor("gr_1", "pt_a", "cl_b", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry))
	e.append(t, grantFor("gr_2", "pt_a", "cl_b", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry))
	revokeOf(e.l, t, "gr_2")
	// Drop the revoke's effect from the stored index: as if a revoked grant
	// were made active again behind the log's back.
	err := e.store.Ledger().Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		g, err := e.l.getGrant(tx, "gr_2")
		if err != nil {
			return err
		}
		g.RevokeIndex, g.RevokedAt = nil, nil
		return e.l.putGrant(tx, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.l.Verify(nil)
	var te *TamperError
	if !errors.As(err, &te) || te.Index != 1 {
		t.Fatalf("verify: %v", err)
	}
	if n, err := e.l.Rebuild(); err != nil || n != 2 {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if _, err := e.l.Verify(nil); err != nil {
		t.Fatalf("after rebuild: %v", err)
	}
	if d := e.l.Decide(Request{"cl_b", "pt_a", "omh:heart-rate:2.0", Window{}, t0}); !d.Permit || len(d.Grants) != 1 || d.Grants[0].ID != "gr_1" {
		t.Fatalf("after rebuild: %+v", d)
	}
}

// BenchmarkDecide decides against an index of 10,000 grants spread over
// 1,000 patients and 100 clinicians.
func BenchmarkDecide(b *testing.B) {
	e := newTestEnv(b)
	r := rand.New(rand.NewPCG(1, 2))
	var batch []Entry
	for i := range 10000 {
		batch = append(batch, grantFor(fmt.Sprintf("gr_%d", i), fmt.Sprintf("pt_%d", r.IntN(1000)), fmt.Sprintf("cl_%d", r.IntN(100)),
			[]string{"omh:blood-glucose", "omh:heart-rate"}, day(-r.IntN(100)), day(r.IntN(100)), expiry))
		if len(batch) == 1000 {
			if _, err := e.l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	reqs := make([]Request, 4096)
	for i := range reqs {
		reqs[i] = Request{fmt.Sprintf("cl_%d", r.IntN(100)), fmt.Sprintf("pt_%d", r.IntN(1000)), "omh:blood-glucose:4.0", Window{day(-30), day(30)}, t0}
	}
	var lat []time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := time.Now()
		e.l.Decide(reqs[i%len(reqs)])
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkAppend appends single entries, each durable (one fsync each).
func BenchmarkAppend(b *testing.B) {
	e := newTestEnv(b)
	i := 0
	for b.Loop() {
		if _, err := e.l.Append(grantEntry(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkVerify replays a log of 100,000 entries (VAULT_BENCH_VERIFY_N to
// change it) with a checkpoint every 1,000 (about one a second at 1,000
// appends a second).
func BenchmarkVerify(b *testing.B) {
	e := newTestEnv(b)
	total := 100000
	if v, err := strconv.Atoi(os.Getenv("VAULT_BENCH_VERIFY_N")); err == nil && v > 0 {
		total = v
	}
	var batch []Entry
	for i := range total {
		batch = append(batch, grantEntry(i))
		if len(batch) == 1000 {
			if _, err := e.l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
			if _, err := e.l.Sign(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		if _, err := e.l.Verify(nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/(b.Elapsed().Seconds()/float64(b.N)), "entries/s")
}

// BenchmarkAppendConcurrent appends from 16 goroutines at once: group
// commit merges them, and every Append still returns only after its fsync.
func BenchmarkAppendConcurrent(b *testing.B) {
	e := newTestEnv(b)
	var next atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.l.Append(grantEntry(int(next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func TestAppendRefusesNonCanonicalBytes(t *testing.T) {
	e := newTestEnv(t)
	g := grantFor("gr_\xff", "pt_a", "cl_b", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry)
	if _, err := e.l.Append(g); err == nil {
		t.Fatal("an entry whose bytes do not parse back was appended")
	}
	if n := e.size(t); n != 0 {
		t.Fatal("something was appended")
	}
}

func keyEntry(kind, clinician, fp, recipient string, activeFrom time.Time) Entry {
	e := New(kind, clinician, t0)
	e.Clinician = clinician
	e.Key = &ClinicianKey{Fingerprint: fp, Recipient: recipient}
	if !activeFrom.IsZero() {
		e.Key.ActiveFrom = activeFrom.UTC().Format(time.RFC3339Nano)
	}
	return e
}

func TestClinicianKeys(t *testing.T) {
	e := newTestEnv(t)
	l := e.l
	if _, err := l.Append(keyEntry(KindClinicianKeyAdd, "cl_b", "fp_1", "age1xyz", t0.Add(24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	ks := l.ClinicianKeys("cl_b")
	if len(ks) != 1 || ks[0].Active(t0) || !ks[0].Active(t0.Add(24*time.Hour)) {
		t.Fatalf("keys %+v: want one key, pending until its delay passes", ks)
	}
	if _, err := l.Append(keyEntry(KindClinicianKeyAdd, "cl_b", "fp_1", "age1xyz", time.Time{})); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if _, err := l.Append(keyEntry(KindClinicianKeyDel, "cl_b", "fp_2", "", time.Time{})); !errors.Is(err, ErrNoKey) {
		t.Fatalf("remove unknown: %v", err)
	}
	if _, err := l.Append(keyEntry(KindClinicianKeyDel, "cl_b", "fp_1", "", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(keyEntry(KindClinicianKeyDel, "cl_b", "fp_1", "", time.Time{})); !errors.Is(err, ErrKeyRemoved) {
		t.Fatalf("remove twice: %v", err)
	}
	if ks := l.ClinicianKeys("cl_b"); len(ks) != 1 || ks[0].Active(t0.Add(48*time.Hour)) {
		t.Fatalf("after remove: %+v", ks)
	}
	// Re-adding a removed key is a new registration.
	if _, err := l.Append(keyEntry(KindClinicianKeyAdd, "cl_b", "fp_1", "age1xyz", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Rebuild(); err != nil || n != 1 {
		t.Fatalf("rebuild: %d %v", n, err)
	}
	e.close(t)
	e.open(t)
	if ks := e.l.ClinicianKeys("cl_b"); len(ks) != 1 || !ks[0].Active(t0) {
		t.Fatalf("after reopen: %+v", ks)
	}
}

// pausedStore is a real store whose next View, once armed, stops at its
// start until released: it holds a RebuiltElsewhere mid-way, so a test
// can decide while it runs.
type pausedStore struct {
	Store
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *pausedStore) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.Store.View(ctx, fn)
}

// TestRebuiltElsewhere: a second ledger on the store (another replica's)
// opened while gr_2 was in force, and not told of its revoke, still
// permits it. Told of a rebuild elsewhere, it denies every decision while
// it replays the log, then decides from the replay: gr_1 in force, gr_2
// revoked. A stored index that does not match the log (a row dropped
// behind the log's back) leaves it untrusted, failing closed, until a
// real rebuild and the next announcement.
func TestRebuiltElsewhere(t *testing.T) {
	e := newTestEnv(t)
	e.append(t, grantFor("gr_1", "pt_a", "cl_b", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry))
	e.append(t, grantFor("gr_2", "pt_a", "cl_c", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry))
	ps := &pausedStore{Store: e.store.Ledger(), entered: make(chan struct{}), release: make(chan struct{})}
	other, err := Open(ps, e.master, Options{Origin: "vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	revokeOf(e.l, t, "gr_2")
	req1 := Request{"cl_b", "pt_a", "omh:heart-rate:2.0", Window{}, t0}
	req2 := Request{"cl_c", "pt_a", "omh:heart-rate:2.0", Window{}, t0}
	if d := other.Decide(req2); !d.Permit {
		t.Fatalf("the stale ledger (a bbolt store is not shared, so it never caught up): %+v; the test shows nothing", d)
	}

	ps.armed.Store(true)
	type result struct {
		rebuilt bool
		err     error
	}
	done := make(chan result)
	go func() {
		r, err := other.RebuiltElsewhere(7)
		done <- result{r, err}
	}()
	<-ps.entered
	for _, r := range []Request{req1, req2} {
		if d := other.Decide(r); d.Permit || d.Reason != "index_untrusted" {
			t.Errorf("decision while the rebuild runs: %+v", d)
		}
	}
	if err := other.IndexError(); !errors.Is(err, errRebuilding) {
		t.Errorf("index error while the rebuild runs: %v", err)
	}
	close(ps.release)
	if r := <-done; !r.rebuilt || r.err != nil {
		t.Fatalf("rebuilt elsewhere: %v %v", r.rebuilt, r.err)
	}
	if d := other.Decide(req1); !d.Permit {
		t.Fatalf("gr_1 after the rebuild: %+v", d)
	}
	if d := other.Decide(req2); d.Permit || d.Reason != "revoked" {
		t.Fatalf("gr_2 after the rebuild: %+v", d)
	}

	// A stored index the log does not make: the replay refuses it, and
	// every decision denies.
	err = e.store.Ledger().Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		return tx.ClearIndex()
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := other.RebuiltElsewhere(8); !r || err == nil {
		t.Fatalf("rebuilt from a stored index that is not the log's: %v %v", r, err)
	}
	if d := other.Decide(req1); d.Permit || d.Reason != "index_untrusted" {
		t.Fatalf("after a failed rebuild: %+v", d)
	}
	if _, err := e.l.Rebuild(); err != nil {
		t.Fatal(err)
	}
	if r, err := other.RebuiltElsewhere(9); !r || err != nil {
		t.Fatalf("after the real rebuild: %v %v", r, err)
	}
	if d := other.Decide(req1); !d.Permit {
		t.Fatalf("gr_1 after the real rebuild: %+v", d)
	}
	if d := other.Decide(req2); d.Permit || d.Reason != "revoked" {
		t.Fatalf("gr_2 after the real rebuild: %+v", d)
	}
}
