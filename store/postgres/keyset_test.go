package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

// join makes p a replica as serve does: a heartbeat, and the events
// watched so that a master-changed event reloads the keyset at once. It
// runs until the test ends.
func join(t *testing.T, p *process, name string) *Replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	after, err := p.s.LastEvent(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r, err := p.s.JoinReplicas(ctx, name, p.v.Master(), func(err error) { t.Errorf("replica %s: %v", name, err) })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		p.s.WatchEvents(ctx, after, func(e Event) {
			if e.Kind == EventMasterChanged {
				r.Kick()
			}
		}, func(err error) { t.Errorf("replica %s events: %v", name, err) })
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func rotPatient(t *testing.T, v *vault.Vault, name string) vault.User {
	t.Helper()
	u, err := v.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: name, TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRotationTwoPhase: a master key rotation on replica a while b
// ingests and reads. a, b and c are replicas (heartbeats, events); d is a
// process on the same database that is not (as a replica before this
// change was). The rotation stores the new key not primary, waits until
// a, b and c hold it, then promotes it. Afterwards b and c open an
// account, a re-wrapped patient key blob and a ledger entry sealed under
// the new key without ever reloading for an unknown key
// (UnknownKeyReloads 0), and end sealing under the new primary; d, outside
// the first phase, opens them only through that safety net, which counts
// it: the test's control that the count can move.
func TestRotationTwoPhase(t *testing.T) {
	ps := openReplicas(t, 4, nil)
	a, b, c, d := ps[0], ps[1], ps[2], ps[3]
	for i, p := range ps[:3] {
		join(t, p, fmt.Sprintf("replica-%c", 'a'+i))
	}
	at := time.Date(2025, 5, 5, 5, 5, 0, 0, time.UTC)
	point := func(i int) []*omh.Point {
		return []*omh.Point{glucosePoint(t, fmt.Sprintf("7e2a0c1d-0000-4000-8000-%012d", i), at.Add(time.Duration(i)*time.Minute), 100, "rot")}
	}
	early := rotPatient(t, a.v, "Early Patient")
	if _, err := a.v.Ingest(t.Context(), early.ID, point(0)); err != nil {
		t.Fatal(err)
	}
	before := a.v.Master().PrimaryID()

	mine := rotPatient(t, b.v, "Busy Patient")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var busyErr atomic.Pointer[error]
	var rounds atomic.Int64
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
			rounds.Add(1)
		}
	})
	res, err := a.v.RotateMaster(t.Context(), a.root, nil)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if p := busyErr.Load(); p != nil {
		t.Fatalf("replica b during the rotation: %v", *p)
	}
	if res.Target == before || res.Patients != 2 || res.Resumed {
		t.Fatalf("rotation %+v", res)
	}
	if rounds.Load() == 0 {
		t.Fatal("b did no work during the rotation: the test tested nothing")
	}

	late := rotPatient(t, a.v, "Late Patient")
	if _, err := a.l.Append(repGrant("gr_late", late.ID, "cl_b")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*process{b, c, d} {
		if got, err := readAllPG(p.v, early.ID); err != nil || len(got) != 1 {
			t.Fatalf("the re-wrapped patient: %d readings, %v", len(got), err)
		}
		if got, err := p.v.User(t.Context(), late.ID); err != nil || got.Name != "Late Patient" {
			t.Fatalf("an account sealed under the new key: %+v, %v", got, err)
		}
		if dec := p.l.Decide(repRequest(late.ID, "cl_b")); !dec.Permit {
			t.Fatalf("a decision on an entry sealed under the new key: %+v", dec)
		}
	}
	for i, p := range ps[:3] {
		if n := p.v.Master().UnknownKeyReloads(); n != 0 {
			t.Fatalf("replica %c reloaded for an unknown key %d times: it met the new key before it held it", 'a'+i, n)
		}
	}
	if n := d.v.Master().UnknownKeyReloads(); n == 0 {
		t.Fatal("d, no replica, opened what was sealed under the new key without the safety net")
	}
	// The promotion reaches b and c by its event (a bound for a lost
	// watcher, not a timing check).
	for _, p := range []*process{b, c} {
		for deadline := time.Now().Add(30 * time.Second); p.v.Master().PrimaryID() != res.Target; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a replica still seals under key %d, not the new primary %d", p.v.Master().PrimaryID(), res.Target)
			}
		}
	}
	if p, err := a.v.PendingRotation(t.Context()); err != nil || p != nil {
		t.Fatalf("pending rotation after it finished: %+v, %v", p, err)
	}
}

// TestReplicasLacking: the rotation waits for the live replicas whose
// heartbeat lacks the key, and for no other: not one that holds it, nor
// one whose last heartbeat is older than ReplicaStale (stopped).
func TestReplicasLacking(t *testing.T) {
	dsn := pgtest.New(t)
	s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, h := range []struct {
		id   string
		keys []uint32
	}{{"holds", []uint32{1, 7}}, {"lacks", []uint32{1}}, {"stopped", []uint32{1}}} {
		if err := s.Heartbeat(t.Context(), h.id, h.keys, 1); err != nil {
			t.Fatal(err)
		}
	}
	c := pgtest.Connect(t, dsn)
	if _, err := c.Exec(t.Context(), "UPDATE vault_replicas SET seen = now() - make_interval(secs => $1) WHERE id = 'stopped'", (ReplicaStale + time.Second).Seconds()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  uint32
		want []string
	}{{7, []string{"lacks"}}, {1, nil}, {9, []string{"holds", "lacks"}}} {
		got, err := s.ReplicasLacking(t.Context(), tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("lacking key %d: %v, want %v", tc.key, got, tc.want)
		}
	}
}

// TestRotationResumedOnce: a rotation cut short after its first phase (the
// new key stored, not primary: the rotating process stopped while a live
// replica lacked the key) is resumed by two replicas at once, as two
// starting on the database do. One takes the rotation lock, promotes the
// key and re-wraps every blob; the other is refused with ErrRotationBusy
// having re-wrapped nothing, so the work is done once. The holder is held
// inside its re-wrap until the other has answered, so the race is decided
// by the lock, not by timing.
func TestRotationResumedOnce(t *testing.T) {
	ps := openReplicas(t, 3, nil)
	a, b, c := ps[0], ps[1], ps[2]
	const patients = 150
	for i := range patients {
		rotPatient(t, a.v, fmt.Sprintf("Patient %d", i))
	}
	// A replica that runs but never loads the new key keeps the rotation
	// in its first phase; a's rotation is stopped there.
	old := a.v.Master().KeyIDs()
	if err := a.s.Heartbeat(t.Context(), "stuck", old, old[0]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := a.v.RotateMaster(ctx, a.root, nil)
		errc <- err
	}()
	var rot *vault.Rotation
	for deadline := time.Now().Add(30 * time.Second); rot == nil; time.Sleep(10 * time.Millisecond) {
		var err error
		if rot, err = b.v.PendingRotation(t.Context()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation never stored its first phase")
		}
	}
	if rot.Phase != vault.PhaseAnnounced {
		t.Fatalf("the rotation's record while a replica lacks the key: %+v", rot)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("the rotation stopped in its first phase: %v", err)
	}
	if p := a.v.Master().PrimaryID(); p == rot.Target {
		t.Fatal("the new key was promoted while a live replica lacked it")
	}
	c2 := pgtest.Connect(t, a.s.pool.Config().ConnString())
	if _, err := c2.Exec(t.Context(), "DELETE FROM vault_replicas WHERE id = 'stuck'"); err != nil {
		t.Fatal(err)
	}

	type result struct {
		name string
		res  vault.RotateResult
		err  error
	}
	release := make(chan struct{})
	var inside atomic.Int32
	results := make(chan result, 2)
	for _, p := range []struct {
		name string
		p    *process
	}{{"b", b}, {"c", c}} {
		go func() {
			res, err := p.p.v.ResumeRotation(t.Context(), func(done, total int) {
				if inside.Add(1) == 1 {
					<-release
				}
			})
			results <- result{p.name, res, err}
		}()
	}
	first := <-results
	if !errors.Is(first.err, vault.ErrRotationBusy) || first.res.Rewrapped != 0 {
		t.Fatalf("the replica without the lock (%s): %+v, %v; want ErrRotationBusy and nothing re-wrapped", first.name, first.res, first.err)
	}
	close(release)
	second := <-results
	if second.err != nil || second.res.Rewrapped != patients || second.res.Target != rot.Target || !second.res.Resumed {
		t.Fatalf("the replica with the lock (%s): %+v, %v; want all %d re-wrapped", second.name, second.res, second.err, patients)
	}
	ks, err := b.v.KeyStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ks.Rotation != nil || ks.Primary != rot.Target || ks.Patients != patients {
		t.Fatalf("key status after the resume: %+v", ks)
	}
	for _, k := range ks.Keys {
		if want := map[bool]int{true: patients, false: 0}[k.ID == rot.Target]; k.PatientBlobs != want {
			t.Fatalf("key %d wraps %d blobs, want %d", k.ID, k.PatientBlobs, want)
		}
	}
	// A resume with nothing pending does no work either.
	if _, err := c.v.ResumeRotation(t.Context(), nil); !errors.Is(err, vault.ErrNoRotation) {
		t.Fatalf("a resume after the rotation finished: %v", err)
	}
}
