package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/mod/sumdb/tlog"
)

// The ledger across replicas: two processes (two pools, two vaults, two
// ledgers) on one database, as two vault replicas behind a load balancer.

var (
	repT0     = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	repExpiry = repT0.Add(30 * 24 * time.Hour)
	repHR     = "omh:heart-rate:2.0"
)

// openReplicas opens n processes on one fresh database, one after the
// other, each with its own clock (nil: the real one).
func openReplicas(t testing.TB, n int, now func() time.Time) []*process {
	t.Helper()
	dsn := pgtest.New(t)
	root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*process, n)
	for i := range ps {
		p := &process{root: root}
		if p.s, err = Open(t.Context(), dsn, Options{AllowUnsafeDurability: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.s.Close() })
		if p.v, err = vault.Open(t.Context(), p.s, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{}); err != nil {
			t.Fatal(err)
		}
		if p.l, err = consent.Open(p.s.Ledger(), p.v.Master(), consent.Options{Origin: "vault.example", Now: now}); err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return ps
}

func repGrant(id, patient, clinician string) consent.Entry {
	e := consent.New(consent.KindGrant, patient, repT0)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &consent.Grant{ID: id, Schemas: []string{"omh:heart-rate"}, Expires: repExpiry.Format(time.RFC3339Nano), Purpose: "TREAT"}
	return e
}

func repAccess(patient, clinician string) (start, end consent.Entry) {
	start = consent.New(consent.KindAccessStart, clinician, repT0)
	start.Patient, start.Clinician = patient, clinician
	start.Access = &consent.Access{Schemas: []string{repHR}, Format: "omh"}
	end = consent.New(consent.KindAccessEnd, clinician, repT0)
	end.Patient, end.Clinician = patient, clinician
	end.Access = &consent.Access{Records: 3}
	return start, end
}

func repRequest(patient, clinician string) consent.Request {
	return consent.Request{Clinician: clinician, Patient: patient, Schema: repHR, Now: repT0}
}

// TestReplicaRevokeThenDecideDenies: once a revoke's Append has returned
// on one replica, a decision on the other is a deny, every time, while
// both replicas keep appending (grants and accesses of other pairs) at the
// same time. Grants, Grant and the export's checked append on the other
// replica see the revoke too. The replicas swap roles each round.
func TestReplicaRevokeThenDecideDenies(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var noise sync.WaitGroup
	var noiseErr atomic.Pointer[error]
	for k, p := range ps {
		noise.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var err error
				if i%2 == 0 {
					_, err = p.l.Append(repGrant(fmt.Sprintf("gr_noise_%d_%d", k, i), fmt.Sprintf("pt_n%d", k), "cl_n"))
				} else {
					s, e := repAccess(fmt.Sprintf("pt_n%d", k), "cl_n")
					_, err = p.l.AppendAccess(nil, s, e)
				}
				if err != nil {
					noiseErr.Store(&err)
					return
				}
			}
		})
	}
	const rounds = 40
	for round := range rounds {
		a, b := ps[round%2].l, ps[1-round%2].l
		id := fmt.Sprintf("gr_%d", round)
		if _, err := a.Append(repGrant(id, "pt_a", "cl_b")); err != nil {
			t.Fatal(err)
		}
		// The grant made on a is in force on b at once.
		if d := b.Decide(repRequest("pt_a", "cl_b")); !d.Permit || len(d.Grants) != 1 || d.Grants[0].ID != id {
			t.Fatalf("round %d: the other replica decides %+v right after the grant", round, d)
		}
		g, err := a.Grant(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Append(consent.NewRevoke("pt_a", g, repT0)); err != nil {
			t.Fatal(err)
		}
		if d := b.Decide(repRequest("pt_a", "cl_b")); d.Permit || d.Reason != "revoked" {
			t.Fatalf("round %d: the other replica decides %+v after the revoke returned", round, d)
		}
		if got, err := b.Grant(id); err != nil || got.RevokeIndex == nil {
			t.Fatalf("round %d: the other replica's Grant: %+v, %v", round, got, err)
		}
		gs, err := b.Grants("pt_a", "cl_b")
		if err != nil || len(gs) != round+1 || gs[0].ID != id || gs[0].RevokeIndex == nil {
			t.Fatalf("round %d: the other replica's Grants: %d grants, newest %+v, %v", round, len(gs), gs, err)
		}
		// An export's checked append on b decides inside b's append
		// lock, and is refused.
		s, e := repAccess("pt_a", "cl_b")
		_, err = b.AppendAccess(func(int64) error {
			if d := b.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
				return fmt.Errorf("denied: %s", d.Reason)
			}
			return nil
		}, s, e)
		if err == nil || err.Error() != "denied: revoked" {
			t.Fatalf("round %d: the other replica's checked append after the revoke: %v", round, err)
		}
	}
	cancel()
	noise.Wait()
	if p := noiseErr.Load(); p != nil {
		t.Fatalf("concurrent appends: %v", *p)
	}
	// Both replicas' indexes equal a replay of the one log.
	for k, p := range ps {
		if err := p.l.IndexError(); err != nil {
			t.Fatalf("replica %d: %v", k, err)
		}
		if _, err := p.l.Verify(nil); err != nil {
			t.Fatalf("replica %d: verify: %v", k, err)
		}
	}
	a, aerr := ps[0].l.Grants("", "cl_n")
	b, berr := ps[1].l.Grants("", "cl_n")
	if aerr != nil || berr != nil {
		t.Fatalf("grants: %v, %v", aerr, berr)
	}
	if len(a) == 0 || !slices.EqualFunc(a, b, func(x, y consent.GrantState) bool { return x.ID == y.ID && x.Index == y.Index }) {
		t.Fatalf("the replicas list %d and %d noise grants, or different ones", len(a), len(b))
	}
}

// TestReplicaSeesGrantsKeysAccesses: what one replica appends (clinician
// grants, app grants, access pages) the other lists and decides on, and a
// revoke appended on the second of a grant made on the first takes effect
// on both.
func TestReplicaSeesGrantsKeysAccesses(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	a, b := ps[0].l, ps[1].l
	if _, err := a.Append(repGrant("gr_1", "pt_a", "cl_b"), repGrant("gr_2", "pt_a", "cl_c")); err != nil {
		t.Fatal(err)
	}
	app, err := consent.NewAppGrant("pt_a", consent.AppGrantRequest{App: "app.one", Schemas: []string{"omh:heart-rate"}, ExpiresAt: repExpiry.Format(time.RFC3339)}, repT0)
	if err != nil {
		t.Fatal(err)
	}
	appAt, err := a.Append(app)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for range 5 {
		s, e := repAccess("pt_a", "cl_b")
		at, err := a.AppendAccess(nil, s, e)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, at)
	}
	if gs, err := b.Grants("pt_a", ""); err != nil || len(gs) != 2 || gs[0].ID != "gr_2" || gs[1].ID != "gr_1" {
		t.Fatalf("the other replica lists %+v", gs)
	}
	if gs, err := b.AppGrants("pt_a"); err != nil || len(gs) != 1 || gs[0].Index != appAt {
		t.Fatalf("the other replica lists app grants %+v", gs)
	}
	if !b.AppGrantActive(app.Grant.ID, "pt_a", "app.one", repT0) {
		t.Fatal("the app grant made on one replica is not active on the other")
	}
	page, more, err := b.AccessPage("pt_a", 0, 3)
	if err != nil || !more || len(page) != 3 || page[0].Start != starts[4] || page[2].Start != starts[2] || page[0].End == nil || page[0].Records != 3 {
		t.Fatalf("the other replica's access page: %+v, more %v, %v", page, more, err)
	}
	page, more, err = b.AccessPage("pt_a", page[2].Start, 3)
	if err != nil || more || len(page) != 2 || page[1].Start != starts[0] {
		t.Fatalf("the other replica's second access page: %+v, more %v, %v", page, more, err)
	}

	// A revoke on b of a grant a made; a and b both deny.
	g, err := b.Grant("gr_1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(consent.NewRevoke("pt_a", g, repT0)); err != nil {
		t.Fatal(err)
	}
	for k, l := range []*consent.Ledger{a, b} {
		if d := l.Decide(repRequest("pt_a", "cl_b")); d.Permit || d.Reason != "revoked" {
			t.Fatalf("replica %d decides %+v after the revoke on b", k, d)
		}
		if d := l.Decide(repRequest("pt_a", "cl_c")); !d.Permit {
			t.Fatalf("replica %d denies the unrevoked grant: %+v", k, d)
		}
	}
	// A second revoke of it, from a, is refused by the log itself.
	if _, err := a.Append(consent.NewRevoke("pt_a", g, repT0)); err == nil {
		t.Fatal("a grant revoked on one replica was revoked again on the other")
	}
}

// checkpointLog reads every stored checkpoint, in size order.
func checkpointLog(t *testing.T, s *Store) (sizes []int64, notes [][]byte) {
	t.Helper()
	err := s.Ledger().View(t.Context(), func(tx ledgerstore.ReadTx) error {
		return tx.Checkpoints(func(size int64, signed []byte) error {
			sizes, notes = append(sizes, size), append(notes, bytes.Clone(signed))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes, notes
}

// TestReplicaCheckpointLog: two replicas append and sign at the same time
// (Sign, which stores, and CheckpointCovering, which does not); the stored
// checkpoints form one log: each verifies under the one log key, names the
// size it is stored under and that tree's root, and each later one is
// consistent with each earlier one.
func TestReplicaCheckpointLog(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for k, p := range ps {
		wg.Go(func() {
			for i := range 60 {
				if _, err := p.l.Append(repGrant(fmt.Sprintf("gr_%d_%d", k, i), "pt_a", "cl_b")); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 40 {
				if i%3 == 2 {
					n, err := p.l.Size()
					if err == nil {
						_, _, err = p.l.CheckpointCovering(n)
					}
					if err != nil {
						errs <- err
						return
					}
					continue
				}
				if _, err := p.l.Sign(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := ps[1].l.Sign(); err != nil {
		t.Fatal(err)
	}
	vkey := ps[0].l.VerifierKey()
	sizes, notes := checkpointLog(t, ps[0].s)
	if len(sizes) < 2 || sizes[len(sizes)-1] != 120 {
		t.Fatalf("stored checkpoint sizes %v; want several, the last of 120 entries", sizes)
	}
	roots := make([]tlog.Hash, len(sizes))
	for i, n := range sizes {
		c, err := consent.OpenCheckpoint(notes[i], vkey)
		if err != nil {
			t.Fatalf("checkpoint %d: %v", n, err)
		}
		h, err := ps[i%2].l.TreeHash(n)
		if err != nil {
			t.Fatal(err)
		}
		if c.Size != n || c.Hash != h {
			t.Fatalf("checkpoint stored under size %d says size %d, root %x; the tree's root is %x", n, c.Size, c.Hash, h)
		}
		roots[i] = c.Hash
	}
	for j := range sizes {
		for i := range j {
			if sizes[i] == 0 {
				continue
			}
			p, err := ps[j%2].l.ProveConsistency(sizes[i], sizes[j])
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, sizes[j], roots[j], sizes[i], roots[i]); err != nil {
				t.Fatalf("checkpoint %d is not consistent with checkpoint %d: %v", sizes[j], sizes[i], err)
			}
		}
	}
	// One key, one note per size: both replicas sign the whole log the
	// same way.
	a, err := ps[0].l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, notes[len(notes)-1]) {
		t.Fatal("the replicas sign the same tree differently")
	}
}

// TestReplicaScheduledSigningSkips: Run's scheduled store (SignIfDue) on a
// replica skips while another replica has stored a checkpoint within the
// last interval, and takes over when that one stops storing. The clock is
// the test's, so no step depends on timing.
func TestReplicaScheduledSigningSkips(t *testing.T) {
	var clock atomic.Int64
	clock.Store(repT0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	tick := func() { clock.Add(int64(consent.SignInterval)) }
	ps := openReplicas(t, 2, now)
	a, b := ps[0].l, ps[1].l
	stored := func() []int64 {
		sizes, _ := checkpointLog(t, ps[0].s)
		return sizes
	}
	appendOn := func(l *consent.Ledger, id string) {
		t.Helper()
		if _, err := l.Append(repGrant(id, "pt_a", "cl_b")); err != nil {
			t.Fatal(err)
		}
	}
	due := func(l *consent.Ledger) {
		t.Helper()
		if err := l.SignIfDue(); err != nil {
			t.Fatal(err)
		}
	}

	appendOn(a, "gr_1")
	due(a)
	if got := stored(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("after a's scheduled signing: %v", got)
	}
	appendOn(b, "gr_2")
	due(b) // a stored one this interval: b skips
	if got := stored(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("b stored while a signs on schedule: %v", got)
	}
	tick()
	due(a) // a signs the whole log, b's entry too
	if got := stored(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after a's second scheduled signing: %v", got)
	}
	due(b)
	if got := stored(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("b stored while a signs on schedule: %v", got)
	}
	// a stops. b sees no new checkpoint in the next interval, and signs.
	appendOn(b, "gr_3")
	tick()
	due(b)
	if got := stored(); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("b did not take over when a stopped: %v", got)
	}
}

// BenchmarkReplicaDecide is the cost a decision pays on PostgreSQL to stay
// in step with other replicas: "current" when nothing was appended
// elsewhere (one read of the log's size), "behind-1" when the other
// replica appended one grant since (that read, plus reading, opening and
// applying the entry; the append itself is outside the timer). Figures
// are in docs/scaling.md.
func BenchmarkReplicaDecide(b *testing.B) {
	b.Run("current", func(b *testing.B) {
		ps := openBenchReplicas(b)
		if _, err := ps[0].l.Append(repGrant("gr_0", "pt_a", "cl_b")); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if d := ps[1].l.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
				b.Fatal(d)
			}
		}
	})
	b.Run("behind-1", func(b *testing.B) {
		ps := openBenchReplicas(b)
		if _, err := ps[0].l.Append(repGrant("gr_0", "pt_a", "cl_b")); err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			if _, err := ps[0].l.Append(repGrant(fmt.Sprintf("gr_%d", i), "pt_a", "cl_c")); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if d := ps[1].l.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
				b.Fatal(d)
			}
		}
	})
}

func openBenchReplicas(b *testing.B) []*process { return openReplicas(b, 2, nil) }

// TestReplicaDecisionFailsClosed: a replica that cannot learn the log's
// size (its database connection gone) denies, rather than deciding from
// the index it holds, which may miss a revoke made elsewhere.
func TestReplicaDecisionFailsClosed(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	a, b := ps[0].l, ps[1].l
	if _, err := a.Append(repGrant("gr_1", "pt_a", "cl_b")); err != nil {
		t.Fatal(err)
	}
	if d := b.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
		t.Fatalf("before: %+v", d)
	}
	if err := ps[1].s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := b.Decide(repRequest("pt_a", "cl_b")); d.Permit || d.Reason != "index_untrusted" {
		t.Fatalf("with its database gone, the replica decides %+v", d)
	}
	if gs, err := b.Grants("pt_a", ""); err == nil || gs != nil {
		t.Fatalf("with its database gone, the replica lists %+v, %v", gs, err)
	}
	if gs, err := b.AppGrants("pt_a"); err == nil || gs != nil {
		t.Fatalf("with its database gone, the replica lists app grants %+v, %v", gs, err)
	}
	// Not ErrNoGrant: whether it exists is not known, and the API must
	// not answer 404 (the crash torture's revoke of a grant it was told
	// of, while the database restarted, got a 404 before).
	if _, err := b.Grant("gr_1"); err == nil || errors.Is(err, consent.ErrNoGrant) {
		t.Fatalf("with its database gone, the replica's Grant: %v", err)
	}
	if b.AppGrantActive("gr_1", "pt_a", "app", repT0) {
		t.Fatal("with its database gone, an app grant is active")
	}
	// The index was not marked untrusted: the other replica, and this
	// one's state, are unharmed.
	if err := b.IndexError(); err != nil {
		t.Fatalf("a lost connection marked the index untrusted: %v", err)
	}
	if d := a.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
		t.Fatalf("the other replica: %+v", d)
	}
}

// TestReplicaKeyRotation: a master key rotation on one replica while the
// other reads and writes causes no decrypt failure on the other. The other
// meets the new key in an account, a patient's key blob (re-wrapped by the
// rotation) and a ledger entry, each made or re-wrapped by the first after
// the rotation, reloads the stored keyset and opens them; from then on it
// seals under the new primary too.
func TestReplicaKeyRotation(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	a, b := ps[0], ps[1]
	at := time.Date(2025, 5, 5, 5, 5, 0, 0, time.UTC)
	point := func(i int) []*omh.Point {
		return []*omh.Point{glucosePoint(t, fmt.Sprintf("7e2a0c1d-0000-4000-8000-%012d", i), at.Add(time.Duration(i)*time.Minute), 100, "rot")}
	}
	patient := func(v *vault.Vault, name string) vault.User {
		t.Helper()
		u, err := v.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: name, TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// Made on a before the rotation, never opened on b until after it.
	early := patient(a.v, "Early Patient")
	if _, err := a.v.Ingest(t.Context(), early.ID, point(0)); err != nil {
		t.Fatal(err)
	}
	before := a.v.Master().PrimaryID()

	// b works throughout: its own patient, ingest and read back.
	mine := patient(b.v, "Busy Patient")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var busyErr atomic.Pointer[error]
	wg.Go(func() {
		for i := 1; ctx.Err() == nil; i++ {
			if _, err := b.v.Ingest(t.Context(), mine.ID, point(i)); err != nil {
				busyErr.Store(&err)
				return
			}
			if _, err := readAllPG(b.v, mine.ID); err != nil {
				busyErr.Store(&err)
				return
			}
			if _, err := b.v.User(t.Context(), early.ID); err != nil {
				busyErr.Store(&err)
				return
			}
		}
	})
	res, err := a.v.RotateMaster(t.Context(), a.root, nil)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if p := busyErr.Load(); p != nil {
		t.Fatalf("the other replica during the rotation: %v", *p)
	}
	if res.Target == before || res.Patients != 2 {
		t.Fatalf("rotation %+v", res)
	}

	// After it, on b: the early patient's re-wrapped key blob, an account
	// a sealed under the new key, a ledger entry a sealed under it.
	if got, err := readAllPG(b.v, early.ID); err != nil || len(got) != 1 {
		t.Fatalf("the other replica reads the re-wrapped patient: %d readings, %v", len(got), err)
	}
	late := patient(a.v, "Late Patient")
	if got, err := b.v.User(t.Context(), late.ID); err != nil || got.Name != "Late Patient" {
		t.Fatalf("the other replica reads an account sealed under the new key: %+v, %v", got, err)
	}
	if _, err := b.v.Ingest(t.Context(), late.ID, point(10_000)); err != nil {
		t.Fatal(err)
	}
	if got, err := readAllPG(a.v, late.ID); err != nil || len(got) != 1 {
		t.Fatalf("a reads what b stored: %d readings, %v", len(got), err)
	}
	if _, err := a.l.Append(repGrant("gr_late", late.ID, "cl_b")); err != nil {
		t.Fatal(err)
	}
	if d := b.l.Decide(repRequest(late.ID, "cl_b")); !d.Permit {
		t.Fatalf("the other replica decides %+v on an entry sealed under the new key", d)
	}
	if got := b.v.Master().PrimaryID(); got != res.Target {
		t.Fatalf("the other replica seals under key %d, not the new primary %d", got, res.Target)
	}
	for k, p := range ps {
		if _, err := p.l.Verify(nil); err != nil {
			t.Fatalf("replica %d: verify: %v", k, err)
		}
	}
}

// TestDecideInsideAppendNeedsNoConnection: an export's consent decision
// runs inside the ledger's append transaction, which holds a connection
// and the cross-process append lock. It once read the ledger's size on a
// second connection from the pool; under load every other connection was
// held by transactions waiting for that lock, and a replica hung for good
// (seen in 'vault bench load --database': the server no longer answered,
// nor stopped on SIGTERM). With a pool of one connection the same wait is
// certain. The decision must come back, and permit, without one.
func TestDecideInsideAppendNeedsNoConnection(t *testing.T) {
	dsn := pgtest.New(t)
	root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	v, err := vault.Open(t.Context(), s, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := consent.Open(s.Ledger(), v.Master(), consent.Options{Origin: "vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// (The grant's append decides inside its transaction too.)
		if _, err := l.Append(repGrant("gr_1", "pt_a", "cl_b")); err != nil {
			done <- err
			return
		}
		start, end := repAccess("pt_a", "cl_b")
		_, err := l.AppendAccess(func(int64) error {
			if d := l.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
				return fmt.Errorf("denied: %s", d.Reason)
			}
			return nil
		}, start, end)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		// Not a timing assertion: a minute is the deadlock's sign. A
		// panic, not t.Fatal: the stuck goroutine holds the pool's one
		// connection, and the cleanup's Close would wait for it forever;
		// the panic ends the run with every goroutine's stack.
		panic("the decision inside the append waited a minute for a second connection: deadlock")
	}
	// And outside an append a decision reads the size again: a grant
	// another process appends is seen.
	if d := l.Decide(repRequest("pt_a", "cl_b")); !d.Permit {
		t.Fatalf("after: %+v", d)
	}
}
