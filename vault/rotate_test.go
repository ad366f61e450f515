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
)

// allBlobs returns every stored patient key blob by patient id.
func allBlobs(t *testing.T, b vault.Backend) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	after := ""
	for {
		page, err := b.PatientKeyBlobs(t.Context(), after, 1000)
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
	res, err := e.Vault.Ingest(context.Background(), pid, parse(t, raws...))
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
	blobs := make([]vault.PatientKeyBlob, n)
	for i := range ids {
		ids[i] = vault.NewID("pt_")
		_, blob, err := keys.NewPatientKeys(e.Vault.Master(), ids[i])
		if err != nil {
			t.Fatal(err)
		}
		blobs[i] = vault.PatientKeyBlob{PatientID: ids[i], Blob: blob}
	}
	if err := e.Store.RecordTamperer().PutPatientKeys(t.Context(), blobs); err != nil {
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
	clin, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Rotate"})
	if err != nil {
		t.Fatal(err)
	}
	led, err := consent.Open(e.Store.Ledger(), e.Vault.Master(), consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(consent.NewAdmin("user-add", clin.ID, "clinician", e.now)); err != nil {
		t.Fatal(err)
	}
	// Reopen, so no patient keys are cached: reads after the rotation
	// must open the re-wrapped blobs with the switched master.
	e.Reopen(t)
	led, err = consent.Open(e.Store.Ledger(), e.Vault.Master(), consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	master := e.Vault.Master()
	old := master.PrimaryID()
	if ks, err := e.Vault.KeyStatus(t.Context()); err != nil || ks.Root != "key-file" || ks.Primary != old || blobsOf(ks, old) != 3 || ks.Rotation != nil {
		t.Fatalf("status before = %+v, %v", ks, err)
	}

	var calls [][2]int
	res, err := e.Vault.RotateMaster(context.Background(), e.Root, func(done, total int) { calls = append(calls, [2]int{done, total}) })
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
	if u, all := underTarget(t, e.Store, res.Target); u != 3 || all != 3 {
		t.Fatalf("%d of %d blobs under the new key", u, all)
	}
	if r, err := e.Vault.PendingRotation(t.Context()); err != nil || r != nil {
		t.Fatalf("rotation record left: %+v, %v", r, err)
	}

	check := func(t *testing.T) {
		t.Helper()
		for i, pid := range pids {
			want := slices.Sorted(slices.Values(append(wantUUIDs(i*1000, 50), wantUUIDs(i*1000+500, 10)...)))
			if got := uuidsOf(t, e.Vault, pid); !slices.Equal(got, want) {
				t.Fatalf("%s: %d readings, want the 60 stored", pid, len(got))
			}
		}
		if u, err := e.Vault.User(t.Context(), clin.ID); err != nil || u.Name != "Dr. Rotate" {
			t.Fatalf("account sealed before the rotation: %v", err)
		}
	}
	// New readings for old patients, a new patient and a new account.
	for i, pid := range pids {
		e.ingestN(t, pid, i*1000+500, 10)
	}
	fresh := e.patient(t)
	e.ingestN(t, fresh.ID, 9000, 20)
	if kek, prf, err := keys.PatientBlobKeyIDs(allBlobs(t, e.Store)[fresh.ID]); err != nil || kek != res.Target || prf != res.Target {
		t.Fatalf("a new patient's keys are wrapped by %d/%d (%v), not the new primary", kek, prf, err)
	}
	if raw, err := e.Store.User(t.Context(), fresh.ID); err != nil || tinkPrefix(raw) != res.Target {
		t.Fatal("a new account is not sealed under the new primary")
	}
	if raw, err := e.Store.User(t.Context(), clin.ID); err != nil || tinkPrefix(raw) != old {
		t.Fatal("test is broken: the old account should still be under the old key")
	}
	if _, err := led.Append(consent.NewAdmin("key-rotate", "", fmt.Sprintf("target %d previous %d", res.Target, res.Previous), e.now)); err != nil {
		t.Fatal(err)
	}
	check(t)
	ks, err := e.Vault.KeyStatus(t.Context())
	if err != nil || ks.Primary != res.Target || blobsOf(ks, old) != 0 || blobsOf(ks, res.Target) != 4 || ks.Patients != 4 || ks.Unknown != 0 || ks.Rotation != nil {
		t.Fatalf("status after = %+v, %v", ks, err)
	}

	e.Reopen(t)
	check(t)
	if got := uuidsOf(t, e.Vault, fresh.ID); !slices.Equal(got, wantUUIDs(9000, 20)) {
		t.Fatalf("new patient after reopen: %d readings", len(got))
	}
	led, err = consent.Open(e.Store.Ledger(), e.Vault.Master(), consent.Options{})
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
	err = e.Store.Ledger().View(t.Context(), func(tx ledgerstore.ReadTx) error {
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
	res2, err := e.Vault.RotateMaster(context.Background(), e.Root, nil)
	if err != nil || res2.Previous != res.Target || res2.Rewrapped != 4 {
		t.Fatalf("second rotation: %+v, %v", res2, err)
	}
	if ids := e.Vault.Master().KeyIDs(); len(ids) != 3 {
		t.Fatalf("keys after two rotations: %v", ids)
	}
	check(t)
	e.Reopen(t)
	check(t)
}

// TestRotateDuringIngest rotates while four goroutines ingest (one also
// adds patients): every acknowledged reading reads back, before and after
// reopening, and every key blob ends under the new primary.
func TestRotateDuringIngest(t *testing.T) {
	e := newEnv(t)
	pids := append(e.patients(t, 4), e.bulkPatients(t, 236)...) // three re-wrap batches
	old := e.Vault.Master().PrimaryID()

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
					u, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: vault.RolePatient, Name: "Late Patient"})
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
				res, err := e.Vault.Ingest(context.Background(), pid, pts)
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
	res, err := e.Vault.RotateMaster(context.Background(), e.Root, func(done, total int) {
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
			if got := uuidsOf(t, e.Vault, pid); !slices.Equal(got, want) {
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
	ks, err := e.Vault.KeyStatus(t.Context())
	if err != nil || ks.Rotation != nil || ks.Unknown != 0 || ks.Patients != len(pids)+len(added) {
		t.Fatalf("status = %+v, %v", ks, err)
	}
	if n := blobsOf(ks, old); n > 1 {
		t.Fatalf("%d blobs left under the old key", n)
	}
	e.Reopen(t)
	check()
}

// failSwaps fails SwapPatientKeys from its (after+1)th call on, as a crash
// mid-rotation would leave things.
type failSwaps struct {
	vault.Backend
	after int
	calls int
}

func (f *failSwaps) SwapPatientKeys(ctx context.Context, s []vault.KeySwap) error {
	f.calls++
	if f.calls > f.after {
		return errors.New("injected failure")
	}
	return f.Backend.SwapPatientKeys(ctx, s)
}

func TestRotateInterruptedResumes(t *testing.T) {
	for _, how := range []string{"cancelled", "failed write"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			pids := e.bulkPatients(t, 250)
			e.ingestN(t, pids[0], 0, 5)
			e.ingestN(t, pids[len(pids)-1], 100, 5)
			old := e.Vault.Master().PrimaryID()
			if _, err := e.Vault.ResumeRotation(context.Background(), nil); !errors.Is(err, vault.ErrNoRotation) {
				t.Fatalf("resume with nothing pending: %v", err)
			}

			var err error
			running := e.Vault
			switch how {
			case "cancelled":
				ctx, cancel := context.WithCancel(context.Background())
				_, err = e.Vault.RotateMaster(ctx, e.Root, func(done, total int) {
					if done >= 100 {
						cancel()
					}
				})
				cancel()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled rotation: %v", err)
				}
			case "failed write":
				v2, oerr := vault.Open(t.Context(), &failSwaps{Backend: e.Store, after: 1}, e.Root, vault.RootInfo{Kind: e.Root.Kind()}, vault.Options{})
				if oerr != nil {
					t.Fatal(oerr)
				}
				running = v2
				_, err = v2.RotateMaster(context.Background(), e.Root, nil)
				if err == nil || !strings.Contains(err.Error(), "injected failure") {
					t.Fatalf("failing rotation: %v", err)
				}
			}
			ks, err := running.KeyStatus(t.Context())
			if err != nil || ks.Rotation == nil {
				t.Fatalf("status after the interruption = %+v, %v", ks, err)
			}
			target := ks.Rotation.Target
			if ks.Rotation.Previous != old || ks.Rotation.Done != 100 || ks.Rotation.Total != 250 || len(ks.Keys) != 2 {
				t.Fatalf("interrupted rotation status = %+v (keys %v)", ks.Rotation, keyIDs(ks))
			}

			// The process dies; the vault is opened again from the file.
			e.Reopen(t)
			rot, err := e.Vault.PendingRotation(t.Context())
			if err != nil || rot == nil || rot.Target != target || e.Vault.Master().PrimaryID() != target {
				t.Fatalf("pending after reopen: %+v, %v", rot, err)
			}
			// Both halves read meanwhile, and a new patient gets the new key.
			if got := uuidsOf(t, e.Vault, pids[0]); len(got) != 5 {
				t.Fatalf("re-wrapped patient reads %d", len(got))
			}
			if got := uuidsOf(t, e.Vault, pids[len(pids)-1]); len(got) != 5 {
				t.Fatalf("not yet re-wrapped patient reads %d", len(got))
			}
			late := e.patient(t)

			var res vault.RotateResult
			if how == "cancelled" {
				res, err = e.Vault.RotateMaster(context.Background(), e.Root, nil)
			} else {
				res, err = e.Vault.ResumeRotation(context.Background(), nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Resumed || res.Target != target || res.Previous != old || res.Rewrapped != 150 || res.Patients != 251 {
				t.Fatalf("resumed = %+v", res)
			}
			if ids := e.Vault.Master().KeyIDs(); !slices.Equal(ids, []uint32{old, target}) {
				t.Fatalf("keys after resuming = %v, want [%d %d] (no extra key)", ids, old, target)
			}
			if u, all := underTarget(t, e.Store, target); u != 251 || all != 251 {
				t.Fatalf("%d of %d blobs under the target", u, all)
			}
			if _, ok := allBlobs(t, e.Store)[late.ID]; !ok {
				t.Fatal("the patient added mid-rotation lost its keys")
			}
			e.Reopen(t)
			if r, err := e.Vault.PendingRotation(t.Context()); err != nil || r != nil {
				t.Fatalf("rotation record survives its end: %+v, %v", r, err)
			}
			if got := uuidsOf(t, e.Vault, pids[len(pids)-1]); len(got) != 5 {
				t.Fatalf("after resuming, a patient reads %d", len(got))
			}
			if ks, err := e.Vault.KeyStatus(t.Context()); err != nil || len(ks.Keys) != 2 || blobsOf(ks, target) != 251 || blobsOf(ks, old) != 0 {
				t.Fatalf("final status = %+v, %v", ks, err)
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

func (d *deleteBeforeSwap) SwapPatientKeys(ctx context.Context, s []vault.KeySwap) error {
	var err error
	d.once.Do(func() {
		for _, id := range d.victims {
			if err = d.Backend.DeletePatient(ctx, id); err != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return d.Backend.SwapPatientKeys(ctx, s)
}

func TestRotateConcurrentDelete(t *testing.T) {
	checkGone := func(t *testing.T, e *env, ids []string) {
		t.Helper()
		for _, id := range ids {
			if _, err := e.Store.PatientKeys(t.Context(), id); !errors.Is(err, vault.ErrNotFound) {
				t.Fatalf("%s: key blob came back: %v", id, err)
			}
			if _, err := e.Vault.User(t.Context(), id); !errors.Is(err, vault.ErrNoUser) {
				t.Fatalf("%s: account came back: %v", id, err)
			}
			if _, err := readAll(t, e.Vault, id, bg); !errors.Is(err, vault.ErrNoPatient) {
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
		d := &deleteBeforeSwap{Backend: e.Store, victims: victims}
		v2, err := vault.Open(t.Context(), d, e.Root, vault.RootInfo{Kind: e.Root.Kind()}, vault.Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := v2.RotateMaster(context.Background(), e.Root, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rewrapped != 27 || res.Patients != 27 {
			t.Fatalf("result = %+v, want 27 re-wrapped", res)
		}
		e.Reopen(t)
		checkGone(t, e, victims)
		for _, pid := range pids[1:29] {
			if pid == pids[17] {
				continue
			}
			if got := uuidsOf(t, e.Vault, pid); len(got) != 3 {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
		if u, all := underTarget(t, e.Store, res.Target); u != 27 || all != 27 {
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
				if err := e.Vault.DeletePatient(t.Context(), id); err != nil {
					delErr <- err
					return
				}
			}
			delErr <- nil
		})
		res, err := e.Vault.RotateMaster(context.Background(), e.Root, func(done, total int) {
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
		e.Reopen(t)
		checkGone(t, e, victims)
		want := len(pids) - len(victims)
		if u, all := underTarget(t, e.Store, res.Target); u != want || all != want {
			t.Fatalf("%d of %d under the target, want %d", u, all, want)
		}
		for _, pid := range pids[1:10] {
			if got := uuidsOf(t, e.Vault, pid); len(got) != 3 {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
	})
}

// keyFile makes another root key file beside the vault's.
func keyFile(t *testing.T, e *env, name string) *keys.Root {
	t.Helper()
	r, err := keys.CreateKeyFile(filepath.Join(e.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// storedMaster is the stored (wrapped) master keyset.
func storedMaster(t *testing.T, e *env) []byte {
	t.Helper()
	m, err := e.Store.Meta(t.Context(), vault.MetaMaster)
	if err != nil || m == nil {
		t.Fatalf("stored master = %d bytes, %v", len(m), err)
	}
	return m
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
			if got := uuidsOf(t, e.Vault, pid); !slices.Equal(got, wantUUIDs(i*100, 20)) {
				t.Fatalf("%s reads %d", pid, len(got))
			}
		}
	}
	fileBytes := func() []byte {
		b, err := os.ReadFile(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("refusals write nothing", func(t *testing.T) {
		wrong := keyFile(t, e, "wrong.key")
		next := keyFile(t, e, "unused.key")
		before := fileBytes()
		if err := e.Vault.ChangeRoot(t.Context(), wrong, next, vault.RootInfo{Kind: "key-file"}); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("wrong current root: %v", err)
		}
		if err := e.Vault.ChangeRoot(t.Context(), e.Root, next, vault.RootInfo{Kind: "passphrase"}); err == nil {
			t.Fatal("a description of another kind was accepted")
		}
		p := keys.InsecureTestArgon2Params()
		pr, err := keys.RootFromPassphrase([]byte("x"), p)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Vault.ChangeRoot(t.Context(), e.Root, pr, vault.RootInfo{Kind: "passphrase"}); err == nil {
			t.Fatal("a passphrase root without Argon2id parameters was accepted")
		}
		if err := e.Vault.ChangeRoot(t.Context(), pr, next, vault.RootInfo{Kind: "key-file"}); err == nil || !strings.Contains(err.Error(), "key-file root") {
			t.Fatalf("current root of the wrong kind: %v", err)
		}
		if !bytes.Equal(before, fileBytes()) {
			t.Fatal("a refused root change wrote to the file")
		}
	})

	t.Run("key file to key file", func(t *testing.T) {
		blobs := allBlobs(t, e.Store)
		oldWrapped := storedMaster(t, e)
		oldRoot := e.Root
		newRoot, err := keys.CreateKeyFile(filepath.Join(e.Dir, "new.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Vault.ChangeRoot(t.Context(), oldRoot, newRoot, vault.RootInfo{Kind: "key-file"}); err != nil {
			t.Fatal(err)
		}
		if after := allBlobs(t, e.Store); len(after) != len(blobs) {
			t.Fatal("patient blobs changed")
		} else {
			for id, b := range blobs {
				if !bytes.Equal(after[id], b) {
					t.Fatalf("%s: key blob changed by a root change", id)
				}
			}
		}
		check(t) // the running vault carries on
		if _, err := e.Vault.RotateMaster(context.Background(), oldRoot, nil); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("rotation with the retired root: %v", err)
		}
		e.Close(t)
		if bytes.Contains(fileBytes(), oldWrapped) {
			t.Fatal("the master wrapped under the old root is still in the file")
		}
		if err := openWith(t, e, oldRoot); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("old root after the change: %v", err)
		}
		e.Root = newRoot
		e.Open(t)
		check(t)
		if ks, err := e.Vault.KeyStatus(t.Context()); err != nil || ks.Root != "key-file" {
			t.Fatalf("status: %+v, %v", ks, err)
		}
	})

	t.Run("key file to passphrase", func(t *testing.T) {
		blobs := allBlobs(t, e.Store)
		oldWrapped := storedMaster(t, e)
		oldRoot := e.Root
		params := keys.InsecureTestArgon2Params()
		pass := []byte("correct horse battery staple CANARY")
		pr, err := keys.RootFromPassphrase(pass, params)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Vault.ChangeRoot(t.Context(), oldRoot, pr, vault.RootInfo{Kind: "passphrase", Argon2: &params}); err != nil {
			t.Fatal(err)
		}
		for id, b := range allBlobs(t, e.Store) {
			if !bytes.Equal(blobs[id], b) {
				t.Fatalf("%s: key blob changed by a root change", id)
			}
		}
		// A rotation with the new root works while running.
		res, err := e.Vault.RotateMaster(context.Background(), pr, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Close(t)
		file := fileBytes()
		if bytes.Contains(file, oldWrapped) || bytes.Contains(file, pass) {
			t.Fatal("the old wrapping or the passphrase is in the file")
		}
		if err := openWith(t, e, oldRoot); err == nil || !strings.Contains(err.Error(), "passphrase root") {
			t.Fatalf("old key file after the change: %v", err)
		}
		// Derive the root as a start does: from the stored parameters.
		st, err := boltstore.Open(e.Path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := vault.ReadRootInfo(t.Context(), st)
		if cerr := st.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil || info.Kind != "passphrase" || info.Argon2 == nil {
			t.Fatalf("stored root info = %+v, %v", info, err)
		}
		wrongPass, err := keys.RootFromPassphrase([]byte("wrong"), *info.Argon2)
		if err != nil {
			t.Fatal(err)
		}
		if err := openWith(t, e, wrongPass); !errors.Is(err, keys.ErrWrongRoot) {
			t.Fatalf("wrong passphrase: %v", err)
		}
		e.Root, err = keys.RootFromPassphrase(pass, *info.Argon2)
		if err != nil {
			t.Fatal(err)
		}
		e.Open(t)
		check(t)
		if ks, err := e.Vault.KeyStatus(t.Context()); err != nil || ks.Root != "passphrase" || ks.Primary != res.Target || len(ks.Keys) != 2 {
			t.Fatalf("status: %+v, %v", ks, err)
		}
	})
}
