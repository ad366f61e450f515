package vault_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// allBlobs returns every stored patient key blob by patient id.
func allBlobs(t *testing.T, b vault.Backend) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	after := ""
	for {
		page, err := b.PatientKeyBlobs(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, p := range page {
			out[p.PatientID] = p.Blob
		}
		after = page[len(page)-1].PatientID
	}
}

// underTarget counts the blobs wrapped (both parts) by master key id.
func underTarget(t *testing.T, b vault.Backend, id uint32) (under, all int) {
	t.Helper()
	for pid, blob := range allBlobs(t, b) {
		kek, prf, err := keys.PatientBlobKeyIDs(blob)
		if err != nil {
			t.Fatalf("%s: %v", pid, err)
		}
		if kek == id && prf == id {
			under++
		}
		all++
	}
	return under, all
}

// ingestN stores n glucose readings for a patient with uuids from first.
func (e *env) ingestN(t *testing.T, pid string, first, n int) {
	t.Helper()
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var raws [][]byte
	for i := first; i < first+n; i++ {
		raws = append(raws, glucose(uuidN(i), base.Add(time.Duration(i)*time.Minute), float64(70+i%100), "rot"))
	}
	res, err := e.v.Ingest(context.Background(), pid, parse(t, raws...))
	if err != nil || res.Accepted != n {
		t.Fatalf("ingest %s: %+v, %v", pid, res, err)
	}
}

// uuidsOf reads a patient's readings and returns their uuids, sorted.
func uuidsOf(t *testing.T, v *vault.Vault, pid string) []string {
	t.Helper()
	got, err := readAll(t, v, pid, bg)
	if err != nil {
		t.Fatalf("read %s: %v", pid, err)
	}
	var out []string
	for _, r := range got {
		out = append(out, extractUUID(r.JSON))
	}
	slices.Sort(out)
	return out
}

func wantUUIDs(first, n int) []string {
	var out []string
	for i := first; i < first+n; i++ {
		out = append(out, uuidN(i))
	}
	slices.Sort(out)
	return out
}

func (e *env) patients(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		ids = append(ids, e.patient(t).ID)
	}
	return ids
}

// bulkPatients stores key blobs for n new patient ids in one transaction,
// as CreateUser would (without accounts): a test needs hundreds of patients
// to span several re-wrap batches, and one fsync'd CreateUser each is slow.
func (e *env) bulkPatients(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	blobs := make([][]byte, n)
	for i := range ids {
		ids[i] = vault.NewID("pt_")
		var err error
		if _, blobs[i], err = keys.NewPatientKeys(e.v.Master(), ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	err := e.store.DB(func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			for i, id := range ids {
				if err := tx.Bucket([]byte("pkeys")).Put([]byte(id), blobs[i]); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func keyIDs(ks vault.KeyStatus) []uint32 {
	var ids []uint32
	for _, k := range ks.Keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func blobsOf(ks vault.KeyStatus, id uint32) int {
	for _, k := range ks.Keys {
		if k.ID == id {
			return k.PatientBlobs
		}
	}
	return -1
}

func tinkPrefix(b []byte) uint32 {
	if len(b) < 5 || b[0] != 1 {
		return 0
	}
	return binary.BigEndian.Uint32(b[1:5])
}

// TestRotateOldAndNewRecords: records, accounts and ledger entries sealed
// before a rotation open after it, and so do those sealed after, before and
// after reopening; new secrets are sealed under the new primary.
func TestRotateOldAndNewRecords(t *testing.T) {
	e := newEnv(t)
	pids := e.patients(t, 3)
	for i, pid := range pids {
		e.ingestN(t, pid, i*1000, 50)
	}
	clin, err := e.v.CreateUser(vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Rotate"})
	if err != nil {
		t.Fatal(err)
	}
	led, err := consent.Open(e.store.Ledger(), e.v.Master(), consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(consent.NewAdmin("user-add", clin.ID, "clinician", e.now)); err != nil {
		t.Fatal(err)
	}
	// Reopen, so no patient keys are cached: reads after the rotation
	// must open the re-wrapped blobs with the switched master.
	e.close(t)
	e.open(t)
	led, err = consent.Open(e.store.Ledger(), e.v.Master(), consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	master := e.v.Master()
	old := master.PrimaryID()
	if ks, err := e.v.KeyStatus(); err != nil || ks.Root != "key-file" || ks.Primary != old || blobsOf(ks, old) != 3 || ks.Rotation != nil {
		t.Fatalf("status before = %+v, %v", ks, err)
	}

	var calls [][2]int
	res, err := e.v.RotateMaster(context.Background(), e.root, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.Previous != old || res.Target == old || res.Rewrapped != 3 || res.Patients != 3 {
		t.Fatalf("result = %+v", res)
	}
	if len(calls) == 0 || calls[0] != [2]int{0, 3} || calls[len(calls)-1] != [2]int{3, 3} {
		t.Fatalf("progress calls = %v", calls)
	}
	// Every holder of the master (the ledger too) switched.
	if master.PrimaryID() != res.Target || !slices.Equal(master.KeyIDs(), []uint32{old, res.Target}) {
		t.Fatalf("running master: primary %d keys %v", master.PrimaryID(), master.KeyIDs())
	}
	if u, all := underTarget(t, e.store, res.Target); u != 3 || all != 3 {
		t.Fatalf("%d of %d blobs under the new key", u, all)
	}
	if r, _ := e.v.PendingRotation(); r != nil {
		t.Fatalf("rotation record left: %+v", r)
	}

	check := func(t *testing.T) {
		t.Helper()
		for i, pid := range pids {
			want := slices.Sorted(slices.Values(append(wantUUIDs(i*1000, 50), wantUUIDs(i*1000+500, 10)...)))
			if got := uuidsOf(t, e.v, pid); !slices.Equal(got, want) {
				t.Fatalf("%s: %d readings, want the 60 stored", pid, len(got))
			}
		}
		if u, err := e.v.User(clin.ID); err != nil || u.Name != "Dr. Rotate" {
			t.Fatalf("account sealed before the rotation: %v", err)
		}
	}
	// New readings for old patients, a new patient and a new account.
	for i, pid := range pids {
		e.ingestN(t, pid, i*1000+500, 10)
	}
	fresh := e.patient(t)
	e.ingestN(t, fresh.ID, 9000, 20)
	if kek, prf, _ := keys.PatientBlobKeyIDs(allBlobs(t, e.store)[fresh.ID]); kek != res.Target || prf != res.Target {
		t.Fatalf("a new patient's keys are wrapped by %d/%d, not the new primary", kek, prf)
	}
	if raw, _ := e.store.User(fresh.ID); tinkPrefix(raw) != res.Target {
		t.Fatal("a new account is not sealed under the new primary")
	}
	if raw, _ := e.store.User(clin.ID); tinkPrefix(raw) != old {
		t.Fatal("test is broken: the old account should still be under the old key")
	}
	if _, err := led.Append(consent.NewAdmin("key-rotate", "", fmt.Sprintf("target %d previous %d", res.Target, res.Previous), e.now)); err != nil {
		t.Fatal(err)
	}
	check(t)
	ks, err := e.v.KeyStatus()
	if err != nil || ks.Primary != res.Target || blobsOf(ks, old) != 0 || blobsOf(ks, res.Target) != 4 || ks.Patients != 4 || ks.Unknown != 0 || ks.Rotation != nil {
		t.Fatalf("status after = %+v, %v", ks, err)
	}

	e.close(t)
	e.open(t)
	check(t)
	if got := uuidsOf(t, e.v, fresh.ID); !slices.Equal(got, wantUUIDs(9000, 20)) {
		t.Fatalf("new patient after reopen: %d readings", len(got))
	}
	led, err = consent.Open(e.store.Ledger(), e.v.Master(), consent.Options{})
	if err != nil {
		t.Fatalf("ledger after rotation and reopen: %v", err)
	}
	if vr, err := led.Verify(nil); err != nil || vr.Size != 2 {
		t.Fatalf("ledger verify: %+v, %v", vr, err)
	}
	for i := range int64(2) {
		if _, _, err := led.Entry(i); err != nil {
			t.Fatalf("ledger entry %d: %v", i, err)
		}
	}
	var sealed []byte
	err = e.store.Ledger().View(context.Background(), func(tx ledgerstore.ReadTx) error {
		v, err := tx.Entry(1)
		sealed = bytes.Clone(v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tinkPrefix(sealed) != res.Target {
		t.Fatal("a ledger entry appended after the rotation is not sealed under the new primary")
	}

	// A second rotation adds a third key; everything still opens.
	res2, err := e.v.RotateMaster(context.Background(), e.root, nil)
	if err != nil || res2.Previous != res.Target || res2.Rewrapped != 4 {
		t.Fatalf("second rotation: %+v, %v", res2, err)
	}
	if ids := e.v.Master().KeyIDs(); len(ids) != 3 {
		t.Fatalf("keys after two rotations: %v", ids)
	}
	check(t)
	e.close(t)
	e.open(t)
	check(t)
}

// TestRotateDuringIngest rotates while four goroutines ingest (one also
// adds patients): every acknowledged reading reads back, before and after
// reopening, and every key blob ends under the new primary.
func TestRotateDuringIngest(t *testing.T) {
	e := newEnv(t)
	pids := append(e.patients(t, 4), e.bulkPatients(t, 236)...) // three re-wrap batches
	old := e.v.Master().PrimaryID()

	var (
		mu    sync.Mutex
		acked = map[string][]string{} // patient -> acknowledged uuids
		added []string                // patients made during the test
	)
	var ops atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pid := pids[(w+4*i)%len(pids)]
				if w == 0 && i%5 == 0 {
					u, err := e.v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "Late Patient"})
					if err != nil {
						errs <- err
						return
					}
					pid = u.ID
					mu.Lock()
					added = append(added, pid)
					mu.Unlock()
				}
				var raws [][]byte
				var ids []string
				for j := range 4 {
					n := w*1_000_000 + i*10 + j
					raws = append(raws, glucose(uuidN(n), base.Add(time.Duration(n)*time.Second), 100, "ingest"))
					ids = append(ids, uuidN(n))
				}
				pts := parse(t, raws...)
				res, err := e.v.Ingest(context.Background(), pid, pts)
				if err != nil {
					errs <- fmt.Errorf("ingest during rotation: %w", err)
					return
				}
				if res.Accepted != 4 {
					errs <- fmt.Errorf("accepted %d of 4", res.Accepted)
					return
				}
				mu.Lock()
				acked[pid] = append(acked[pid], ids...)
				mu.Unlock()
				ops.Add(1)
			}
		})
	}
	for ops.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	// Between re-wrap batches, wait for ingest to make progress, so the
	// two really interleave.
	before := ops.Load()
	res, err := e.v.RotateMaster(context.Background(), e.root, func(done, total int) {
		if done > 0 && done < total {
			seen := ops.Load()
			for ops.Load() < seen+2 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	after := ops.Load()
	if after-before < 4 {
		t.Fatalf("only %d ingest calls during the rotation", after-before)
	}
	for ops.Load() < after+20 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if res.Target == old || res.Resumed {
		t.Fatalf("result = %+v", res)
	}
	t.Logf("rotation: %+v; %d ingest calls (%d during the rotation), %d patients added", res, ops.Load(), after-before, len(added))

	check := func() {
		t.Helper()
		total := 0
		for pid, ids := range acked {
			want := slices.Clone(ids)
			slices.Sort(want)
			if got := uuidsOf(t, e.v, pid); !slices.Equal(got, want) {
				t.Fatalf("%s: read %d readings, %d acknowledged", pid, len(got), len(want))
			}
			total += len(ids)
		}
		if total == 0 {
			t.Fatal("nothing was ingested")
		}
	}
	check()
	// A patient added during the rotation may have been wrapped under the
	// old primary just before the switch and stored after the last pass;
	// it still opens. Everything else is under the new key.
	ks, err := e.v.KeyStatus()
	if err != nil || ks.Rotation != nil || ks.Unknown != 0 || ks.Patients != len(pids)+len(added) {
		t.Fatalf("status = %+v, %v", ks, err)
	}
	if n := blobsOf(ks, old); n > 1 {
		t.Fatalf("%d blobs left under the old key", n)
	}
	e.close(t)
	e.open(t)
	check()
}

// failSwaps fails SwapPatientKeys from its (after+1)th call on, as a crash
// mid-rotation would leave things.
type failSwaps struct {
	vault.Backend
	after int
	calls int
}

func (f *failSwaps) SwapPatientKeys(s []vault.KeySwap) error {
	f.calls++
	if f.calls > f.after {
		return errors.New("injected failure")
	}
	return f.Backend.SwapPatientKeys(s)
}

func TestRotateInterruptedResumes(t *testing.T) {
	for _, how := range []string{"cancelled", "failed write"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			pids := e.bulkPatients(t, 250)
			e.ingestN(t, pids[0], 0, 5)
			e.ingestN(t, pids[len(pids)-1], 100, 5)
			old := e.v.Master().PrimaryID()
			if _, err := e.v.ResumeRotation(context.Background(), nil); !errors.Is(err, vault.ErrNoRotation) {
				t.Fatalf("resume with nothing pending: %v", err)
			}

			var err error
			running := e.v
			switch how {
			case "cancelled":
				ctx, cancel := context.WithCancel(context.Background())
				_, err = e.v.RotateMaster(ctx, e.root, func(done, total int) {
					if done >= 100 {
						cancel()
					}
				})
				cancel()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled rotation: %v", err)
				}
			case "failed write":
				v2, oerr := vault.Open(&failSwaps{Backend: e.store, after: 1}, e.root, vault.RootInfo{Kind: e.root.Kind()}, vault.Options{})
				if oerr != nil {
					t.Fatal(oerr)
				}
				running = v2
				_, err = v2.RotateMaster(context.Background(), e.root, nil)
				if err == nil || !strings.Contains(err.Error(), "injected failure") {
					t.Fatalf("failing rotation: %v", err)
				}
			}
			ks, err := running.KeyStatus()
			if err != nil || ks.Rotation == nil {
				t.Fatalf("status after the interruption = %+v, %v", ks, err)
			}
			target := ks.Rotation.Target
			if ks.Rotation.Previous != old || ks.Rotation.Done != 100 || ks.Rotation.Total != 250 || len(ks.Keys) != 2 {
				t.Fatalf("interrupted rotation status = %+v (keys %v)", ks.Rotation, keyIDs(ks))
			}

			// The process dies; the vault is opened again from the file.
			e.close(t)
			e.open(t)
			rot, err := e.v.PendingRotation()
			if err != nil || rot == nil || rot.Target != target || e.v.Master().PrimaryID() != target {
				t.Fatalf("pending after reopen: %+v, %v", rot, err)
			}
			// Both halves read meanwhile, and a new patient gets the new key.
			if got := uuidsOf(t, e.v, pids[0]); len(got) != 5 {
				t.Fatalf("re-wrapped patient reads %d", len(got))
			}
			if got := uuidsOf(t, e.v, pids[len(pids)-1]); len(got) != 5 {
				t.Fatalf("not yet re-wrapped patient reads %d", len(got))
			}
			late := e.patient(t)

			var res vault.RotateResult
			if how == "cancelled" {
				res, err = e.v.RotateMaster(context.Background(), e.root, nil)
			} else {
				res, err = e.v.ResumeRotation(context.Background(), nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Resumed || res.Target != target || res.Previous != old || res.Rewrapped != 150 || res.Patients != 251 {
				t.Fatalf("resumed = %+v", res)
			}
			if ids := e.v.Master().KeyIDs(); !slices.Equal(ids, []uint32{old, target}) {
				t.Fatalf("keys after resuming = %v, want [%d %d] (no extra key)", ids, old, target)
			}
			if u, all := underTarget(t, e.store, target); u != 251 || all != 251 {
				t.Fatalf("%d of %d blobs under the target", u, all)
			}
			if _, ok := allBlobs(t, e.store)[late.ID]; !ok {
				t.Fatal("the patient added mid-rotation lost its keys")
			}
			e.close(t)
			e.open(t)
			if r, _ := e.v.PendingRotation(); r != nil {
				t.Fatal("rotation record survives its end")
			}
			if got := uuidsOf(t, e.v, pids[len(pids)-1]); len(got) != 5 {
				t.Fatalf("after resuming, a patient reads %d", len(got))
			}
			if ks, _ := e.v.KeyStatus(); len(ks.Keys) != 2 || blobsOf(ks, target) != 251 || blobsOf(ks, old) != 0 {
				t.Fatalf("final status = %+v", ks)
			}
		})
	}
}

// deleteBeforeSwap deletes patients between the rotation's read of their
// blobs and its compare-and-swap: the race a concurrent DeletePatient runs.
type deleteBeforeSwap struct {
	vault.Backend
	victims []string
	once    sync.Once
}

func (d *deleteBeforeSwap) SwapPatientKeys(s []vault.KeySwap) error {
	var err error
	d.once.Do(func() {
		for _, id := range d.victims {
			if err = d.Backend.DeletePatient(id); err != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return d.Backend.SwapPatientKeys(s)
}

func TestRotateConcurrentDelete(t *testing.T) {
	checkGone := func(t *testing.T, e *env, ids []string) {
		t.Helper()
		for _, id := range ids {
			if _, err := e.store.PatientKeys(id); !errors.Is(err, vault.ErrNotFound) {
				t.Fatalf("%s: key blob came back: %v", id, err)
			}
			if _, err := e.v.User(id); !errors.Is(err, vault.ErrNoUser) {
				t.Fatalf("%s: account came back: %v", id, err)
			}
			if _, err := readAll(t, e.v, id, bg); !errors.Is(err, vault.ErrNoPatient) {
				t.Fatalf("%s: read after delete: %v", id, err)
			}
		}
	}
	t.Run("between read and swap", func(t *testing.T) {
		e := newEnv(t)
		pids := e.patients(t, 30)
		for _, pid := range pids {
			e.ingestN(t, pid, 0, 3)
		}
		victims := []string{pids[0], pids[17], pids[29]}
		d := &deleteBeforeSwap{Backend: e.store, victims: victims}
		v2, err := vault.Open(d, e.root, vault.RootInfo{Kind: e.root.Kind()}, vault.Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := v2.RotateMaster(context.Background(), e.root, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rewrapped != 27 || res.Patients != 27 {
			t.Fatalf("result = %+v, want 27 re-wrapped", res)
		}
		e.close(t)
		e.open(t)
		checkGone(t, e, victims)
		for _, pid := range pids[1:29] {
			if pid == pids[17] {
				continue
			}
			if got := uuidsOf(t, e.v, pid); len(got) != 3 {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
		if u, all := underTarget(t, e.store, res.Target); u != 27 || all != 27 {
			t.Fatalf("%d of %d under the target", u, all)
		}
	})
	t.Run("concurrent goroutine", func(t *testing.T) {
		e := newEnv(t)
		pids := e.bulkPatients(t, 210)
		victims := e.patients(t, 10)
		pids = append(pids, victims...)
		for _, pid := range pids[:10] {
			e.ingestN(t, pid, 0, 3)
		}
		for _, pid := range victims {
			e.ingestN(t, pid, 0, 3)
		}
		started := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		delErr := make(chan error, 1)
		wg.Go(func() {
			<-started
			for _, id := range victims {
				if err := e.v.DeletePatient(id); err != nil {
					delErr <- err
					return
				}
			}
			delErr <- nil
		})
		res, err := e.v.RotateMaster(context.Background(), e.root, func(done, total int) {
			once.Do(func() { close(started) })
		})
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if err := <-delErr; err != nil {
			t.Fatal(err)
		}
		checkGone(t, e, victims)
		e.close(t)
		e.open(t)
		checkGone(t, e, victims)
		want := len(pids) - len(victims)
		if u, all := underTarget(t, e.store, res.Target); u != want || all != want {
			t.Fatalf("%d of %d under the target, want %d", u, all, want)
		}
		for _, pid := range pids[1:10] {
			if got := uuidsOf(t, e.v, pid); len(got) != 3 {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
	})
}

func TestChangeRoot(t *testing.T) {
	e := newEnv(t)
	pids := e.patients(t, 3)
	for i, pid := range pids {
		e.ingestN(t, pid, i*100, 20)
	}
	check := func(t *testing.T) {
		t.Helper()
		for i, pid := range pids {
			if got := uuidsOf(t, e.v, pid); !slices.Equal(got, wantUUIDs(i*100, 20)) {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
	}
	fileBytes := func() []byte {
		b, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// openWith opens the file with a root and reports the error.
	openWith := func(r *keys.Root) error {
		st, err := boltstore.Open(e.path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = vault.Open(st, r, vault.RootInfo{Kind: r.Kind()}, vault.Options{})
		return err
	}

	t.Run("refusals write nothing", func(t *testing.T) {
		wrong, _ := keys.CreateKeyFile(filepath.Join(e.dir, "wrong.key"))
		next, _ := keys.CreateKeyFile(filepath.Join(e.dir, "unused.key"))
		before := fileBytes()
		if err := e.v.ChangeRoot(wrong, next, vault.RootInfo{Kind: "key-file"}); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("wrong current root: %v", err)
		}
		if err := e.v.ChangeRoot(e.root, next, vault.RootInfo{Kind: "passphrase"}); err == nil {
			t.Fatal("a description of another kind was accepted")
		}
		p := keys.InsecureTestArgon2Params()
		pr, _ := keys.RootFromPassphrase([]byte("x"), p)
		if err := e.v.ChangeRoot(e.root, pr, vault.RootInfo{Kind: "passphrase"}); err == nil {
			t.Fatal("a passphrase root without Argon2id parameters was accepted")
		}
		if err := e.v.ChangeRoot(pr, next, vault.RootInfo{Kind: "key-file"}); err == nil || !strings.Contains(err.Error(), "key-file root") {
			t.Fatalf("current root of the wrong kind: %v", err)
		}
		if !bytes.Equal(before, fileBytes()) {
			t.Fatal("a refused root change wrote to the file")
		}
	})

	t.Run("key file to key file", func(t *testing.T) {
		blobs := allBlobs(t, e.store)
		oldWrapped, _ := e.store.Meta(vault.MetaMaster)
		oldRoot := e.root
		newRoot, err := keys.CreateKeyFile(filepath.Join(e.dir, "new.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.v.ChangeRoot(oldRoot, newRoot, vault.RootInfo{Kind: "key-file"}); err != nil {
			t.Fatal(err)
		}
		if after := allBlobs(t, e.store); len(after) != len(blobs) {
			t.Fatal("patient blobs changed")
		} else {
			for id, b := range blobs {
				if !bytes.Equal(after[id], b) {
					t.Fatalf("%s: key blob changed by a root change", id)
				}
			}
		}
		check(t) // the running vault carries on
		if _, err := e.v.RotateMaster(context.Background(), oldRoot, nil); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("rotation with the retired root: %v", err)
		}
		e.close(t)
		if bytes.Contains(fileBytes(), oldWrapped) {
			t.Fatal("the master wrapped under the old root is still in the file")
		}
		if err := openWith(oldRoot); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("old root after the change: %v", err)
		}
		e.root = newRoot
		e.open(t)
		check(t)
		if ks, err := e.v.KeyStatus(); err != nil || ks.Root != "key-file" {
			t.Fatalf("status: %+v, %v", ks, err)
		}
	})

	t.Run("key file to passphrase", func(t *testing.T) {
		blobs := allBlobs(t, e.store)
		oldWrapped, _ := e.store.Meta(vault.MetaMaster)
		oldRoot := e.root
		params := keys.InsecureTestArgon2Params()
		pass := []byte("correct horse battery staple CANARY")
		pr, err := keys.RootFromPassphrase(pass, params)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.v.ChangeRoot(oldRoot, pr, vault.RootInfo{Kind: "passphrase", Argon2: &params}); err != nil {
			t.Fatal(err)
		}
		for id, b := range allBlobs(t, e.store) {
			if !bytes.Equal(blobs[id], b) {
				t.Fatalf("%s: key blob changed by a root change", id)
			}
		}
		// A rotation with the new root works while running.
		res, err := e.v.RotateMaster(context.Background(), pr, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.close(t)
		file := fileBytes()
		if bytes.Contains(file, oldWrapped) || bytes.Contains(file, pass) {
			t.Fatal("the old wrapping or the passphrase is in the file")
		}
		if err := openWith(oldRoot); err == nil || !strings.Contains(err.Error(), "passphrase root") {
			t.Fatalf("old key file after the change: %v", err)
		}
		// Derive the root as a start does: from the stored parameters.
		st, err := boltstore.Open(e.path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := vault.ReadRootInfo(st)
		st.Close()
		if err != nil || info.Kind != "passphrase" || info.Argon2 == nil {
			t.Fatalf("stored root info = %+v, %v", info, err)
		}
		wrongPass, _ := keys.RootFromPassphrase([]byte("wrong"), *info.Argon2)
		if err := openWith(wrongPass); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("wrong passphrase: %v", err)
		}
		e.root, err = keys.RootFromPassphrase(pass, *info.Argon2)
		if err != nil {
			t.Fatal(err)
		}
		e.open(t)
		check(t)
		if ks, err := e.v.KeyStatus(); err != nil || ks.Root != "passphrase" || ks.Primary != res.Target || len(ks.Keys) != 2 {
			t.Fatalf("status: %+v, %v", ks, err)
		}
	})
}
