package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/keys"
)

// Master key rotation and root change.
//
// RotateMaster adds a new primary to the master keyset and re-wraps every
// patient's key blob under it, online:
//
//  1. One transaction stores the rotated master (wrapped by the root) and a
//     rotation record (meta "rotation": the target key id). The running
//     master switches to the new keyset at once, so every secret sealed from
//     then on (new patients' key blobs, accounts, ledger entries) is under
//     the new primary.
//  2. The blobs are re-wrapped in transactions of rotateBatch patients, each
//     blob a compare-and-swap against what was read, so a concurrent
//     DeletePatient is never undone and a concurrent re-wrap never lost.
//     Passes repeat until one finds every blob under the target.
//  3. The rotation record is cleared.
//
// A rotation cut short between 1 and 3 (a crash, a cancelled context)
// leaves the record; RotateMaster or ResumeRotation then finishes it without
// adding another key. Only the wrapping of each patient's KEK and PRF
// keysets changes, never the keys themselves, so no record is rewritten.

// Several processes on one database (PostgreSQL replicas) each run their
// own copy of the master. On a Backend that is shared that way (it
// implements Replicas) a rotation has two phases, so that no process ever
// meets a secret sealed under a key it has not loaded:
//
//  1. The new key is stored in the keyset, not primary, with a rotation
//     record in phase "announced". Every replica reloads the stored keyset
//     when told it changed (store/postgres: an event, and a read every
//     second) and reports the keys it holds in a heartbeat.
//  2. The rotating process waits until every live replica holds the key
//     (awaitReplicas), then stores the keyset with the new key as primary
//     (the record leaves phase "announced") and adopts it: only now does
//     anything get sealed under the key. The re-wrap follows as above.
//
// One process at a time runs a rotation, a new one or the rest of one a
// crash cut short: it holds Replicas' rotation lock throughout, and
// another that tries meanwhile gets ErrRotationBusy (serve's resume at
// start logs it and leaves the work to the holder). The reload when a
// ciphertext names a key the running keyset lacks (keys.Master's reload,
// set up by reloadMasterWith) stays as a safety net, counted by
// keys.Master.UnknownKeyReloads.

// reloadMasterWith lets the running master reload the stored keyset when
// it meets a key it lacks. It keeps root for that, as a serving vault
// does for rotation; a root changed since (ChangeRoot on another process)
// no longer opens the stored keyset, and the call fails as it would have.
func (v *Vault) reloadMasterWith(root *keys.Root) {
	v.root = root
	v.master.SetReload(func() (*keys.Master, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wrapped, err := v.b.Meta(ctx, MetaMaster)
		if err != nil {
			return nil, err
		}
		if wrapped == nil {
			return nil, errors.New("no master keyset is stored")
		}
		return keys.OpenMaster(wrapped, root)
	})
}

// MetaRotation holds the JSON Rotation while a rotation is unfinished.
const MetaRotation = "rotation"

// PhaseAnnounced is the phase of a rotation whose new key is stored but
// not yet primary (Rotation.Phase).
const PhaseAnnounced = "announced"

// Replicas is what a Backend that several vault processes share offers a
// master key rotation (store/postgres does; bbolt, one process, does not).
type Replicas interface {
	// TryRotationLock takes, without waiting, the lock one process at a
	// time holds while it runs a rotation; ok is false when another holds
	// it. unlock releases it; a process that dies releases it too.
	TryRotationLock(ctx context.Context) (unlock func(), ok bool, err error)
	// ReplicasLacking lists the live processes whose running master keyset
	// lacks key id, as each last reported it.
	ReplicasLacking(ctx context.Context, id uint32) ([]string, error)
}

// RotationAckTimeout bounds how long a rotation waits for the live
// replicas to hold its new key. A replica that stops heartbeating stops
// counting as live well within it (store/postgres.ReplicaStale); one that
// keeps heartbeating without the key cannot open the stored keyset (a
// root changed under it), and promoting would only make it fail.
const RotationAckTimeout = 30 * time.Second

// rotationAckPoll is how often the wait asks which replicas lack the key.
const rotationAckPoll = 50 * time.Millisecond

// rotateBatch is how many patient blobs one re-wrap transaction swaps.
const rotateBatch = 100

// maxRewrapPasses bounds the passes over the blobs: a pass only repeats
// when blobs changed under it.
const maxRewrapPasses = 8

// Errors of key rotation and root change.
var (
	// ErrConflict is returned by a Backend's SwapMeta when a value changed
	// since it was read.
	ErrConflict = errors.New("the value changed concurrently")
	// ErrScrubPending is wrapped by a Backend's SwapMeta (and so by
	// ChangeRoot) when the swap is stored but the replaced values are not
	// yet scrubbed from free space; the store finishes that at its next
	// Open.
	ErrScrubPending = errors.New("the change is stored, but the old values are not yet scrubbed from the database file; the next start finishes it")
	// ErrNoRotation is returned by ResumeRotation when none is pending.
	ErrNoRotation = errors.New("no master key rotation is in progress")
	// ErrRotationBusy is returned by RotateMaster and ResumeRotation, having
	// done nothing, when another process sharing the database is running
	// a rotation.
	ErrRotationBusy = errors.New("another vault process is running a master key rotation; 'vault keys status' shows its progress")
	// errMasterDiffers means the stored master keyset is not the one this
	// vault is running with (another process changed it).
	errMasterDiffers = errors.New("the stored master keyset is not the one this vault runs with; restart the vault and try again")
)

// PatientKeyBlob is one stored patient key blob.
type PatientKeyBlob struct {
	PatientID string
	Blob      []byte
}

// KeySwap is one compare-and-swap of a patient key blob (SwapPatientKeys).
type KeySwap struct {
	PatientID string
	Old, New  []byte
	// Swapped is set by SwapPatientKeys: true when the blob was Old and is
	// now New.
	Swapped bool
}

// MetaSwap is one compare-and-swap of a meta key (SwapMeta). A nil Old
// means the key must be absent; a nil New deletes it.
type MetaSwap struct {
	Key      string
	Old, New []byte
}

// Rotation is the record of an unfinished master key rotation.
type Rotation struct {
	Target   uint32    `json:"target"`   // the new primary master key id
	Previous uint32    `json:"previous"` // the primary before
	Started  time.Time `json:"started"`
	// Phase is PhaseAnnounced while Target is stored but not yet primary
	// (a rotation on a shared Backend, waiting for every replica to hold
	// it); empty once it is primary and the blobs are being re-wrapped.
	Phase string `json:"phase,omitempty"`
}

// RotateResult is what RotateMaster or ResumeRotation did.
type RotateResult struct {
	Previous uint32    `json:"previous"` // primary before the rotation
	Target   uint32    `json:"target"`   // the new primary
	Started  time.Time `json:"started"`
	// Resumed is true when an unfinished rotation was continued (no key
	// was added by this call).
	Resumed bool `json:"resumed"`
	// Rewrapped counts the blobs this call re-wrapped.
	Rewrapped int `json:"rewrapped"`
	// Patients counts the patient key blobs, all under Target, at the end.
	Patients int `json:"patients"`
}

// PendingRotation returns the unfinished rotation, or nil.
func (v *Vault) PendingRotation(ctx context.Context) (*Rotation, error) {
	r, _, err := v.pendingRotation(ctx)
	return r, err
}

func (v *Vault) pendingRotation(ctx context.Context) (*Rotation, []byte, error) {
	raw, err := v.b.Meta(ctx, MetaRotation)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	var r Rotation
	if err := json.Unmarshal(raw, &r); err != nil || r.Target == 0 {
		return nil, nil, errors.New("stored rotation record is corrupt")
	}
	return &r, raw, nil
}

// storedRoot returns the stored root description, refusing a root of
// another kind than it names, as Open does.
func (v *Vault) storedRoot(ctx context.Context, root *keys.Root) ([]byte, error) {
	raw, err := v.b.Meta(ctx, MetaRoot)
	if err != nil {
		return nil, err
	}
	stored, err := ReadRootInfo(ctx, v.b)
	if err != nil {
		return nil, err
	}
	if stored != nil && stored.Kind != root.Kind() {
		return nil, fmt.Errorf("this vault's master keyset is wrapped by a %s root, but a %s root was given", stored.Kind, root.Kind())
	}
	return raw, nil
}

// openStoredMaster unwraps the stored master with root and checks that it
// is the keyset this vault runs with.
func (v *Vault) openStoredMaster(ctx context.Context, root *keys.Root) (wrapped []byte, m *keys.Master, err error) {
	if root == nil {
		return nil, nil, errors.New("no root key given")
	}
	if _, err := v.storedRoot(ctx, root); err != nil {
		return nil, nil, err
	}
	wrapped, err = v.b.Meta(ctx, MetaMaster)
	if err != nil {
		return nil, nil, err
	}
	if wrapped == nil {
		return nil, nil, errors.New("the vault has no master keyset")
	}
	if m, err = keys.OpenMaster(wrapped, root); err != nil {
		return nil, nil, err
	}
	if !m.SameKeys(v.master) {
		// Another process changed it and this one has not reloaded yet.
		if _, err := v.master.Reload(); err != nil || !m.SameKeys(v.master) {
			return nil, nil, errMasterDiffers
		}
	}
	return wrapped, m, nil
}

// rotationLock takes the shared Backend's rotation lock (ErrRotationBusy
// when another process holds it); a no-op on a Backend of one process.
func (v *Vault) rotationLock(ctx context.Context) (unlock func(), err error) {
	reps, ok := v.b.(Replicas)
	if !ok {
		return func() {}, nil
	}
	unlock, ok, err = reps.TryRotationLock(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrRotationBusy
	}
	return unlock, nil
}

// RotateMaster adds a new primary key to the master keyset and re-wraps
// every patient's key blob under it, while the vault keeps serving. root
// must be the root that wraps the stored master (keys.ErrWrongRoot
// otherwise, with nothing written). The vault keeps the root it was
// opened with to reload a keyset another process rotated
// (reloadMasterWith) and to promote a key announced by a rotation that
// was cut short.
//
// On a Backend that implements Replicas the rotation runs in two phases
// (above) and holds the rotation lock throughout: ErrRotationBusy, with
// nothing done, when another process holds it.
//
// If a rotation is unfinished, RotateMaster finishes that one instead
// (Resumed is true) and adds no key. A cancelled ctx stops it between
// batches; what is done stays done, and the next RotateMaster or
// ResumeRotation finishes the rest. progress, when set, is called from this
// goroutine with the blobs under the new key and the blobs in all.
func (v *Vault) RotateMaster(ctx context.Context, root *keys.Root, progress func(done, total int)) (RotateResult, error) {
	unlock, err := v.rotationLock(ctx)
	if err != nil {
		return RotateResult{}, err
	}
	defer unlock()
	v.keyOpMu.Lock()
	stored, cur, err := v.openStoredMaster(ctx, root)
	if err != nil {
		v.keyOpMu.Unlock()
		return RotateResult{}, err
	}
	rot, raw, err := v.pendingRotation(ctx)
	if err != nil || rot != nil {
		v.keyOpMu.Unlock()
		if err != nil {
			return RotateResult{}, err
		}
		return v.finishRotation(ctx, rot, raw, true, progress)
	}
	// On a shared Backend the new key is added first, not primary, and
	// promoted once every replica holds it (finishRotation); with one
	// process it is primary at once.
	_, shared := v.b.(Replicas)
	var next *keys.Master
	rot = &Rotation{Previous: cur.PrimaryID(), Started: v.now().UTC()}
	if shared {
		next, err = cur.AddKey()
		rot.Phase = PhaseAnnounced
	} else {
		next, err = cur.Rotate()
	}
	if err != nil {
		v.keyOpMu.Unlock()
		return RotateResult{}, err
	}
	ids := next.KeyIDs()
	rot.Target = ids[len(ids)-1]
	wrapped, err := next.Wrap(root)
	if err != nil {
		v.keyOpMu.Unlock()
		return RotateResult{}, err
	}
	if raw, err = json.Marshal(rot); err != nil {
		v.keyOpMu.Unlock()
		return RotateResult{}, err
	}
	err = v.b.SwapMeta(ctx, []MetaSwap{{Key: MetaMaster, Old: stored, New: wrapped}, {Key: MetaRotation, New: raw}}, false)
	if errors.Is(err, ErrConflict) {
		err = errors.New("the master keyset changed while the rotation began; nothing was changed, try again")
	}
	if err == nil {
		// Stored first, then switched: a crash in between leaves a stored
		// rotation that the next start resumes.
		err = v.master.Adopt(next)
	}
	v.keyOpMu.Unlock()
	if err != nil {
		return RotateResult{}, err
	}
	v.log.Info("master key rotation started", "target_key", rot.Target, "previous_key", rot.Previous, "phase", rot.Phase)
	return v.finishRotation(ctx, rot, raw, false, progress)
}

// awaitReplicas waits until every live process sharing the Backend holds
// master key id, at most RotationAckTimeout.
func (v *Vault) awaitReplicas(ctx context.Context, reps Replicas, id uint32) error {
	start := time.Now()
	for {
		lacking, err := reps.ReplicasLacking(ctx, id)
		if err != nil {
			return err
		}
		if len(lacking) == 0 {
			v.log.Info("every live replica holds the new master key", "key", id, "waited_ms", time.Since(start).Milliseconds())
			return nil
		}
		if time.Since(start) > RotationAckTimeout {
			return fmt.Errorf("replicas %s are running but have not loaded the new master key %d in %v (see their logs: can their root open the stored keyset?); the key is stored but nothing is sealed under it yet: run 'vault keys rotate' again to finish", strings.Join(lacking, ", "), id, RotationAckTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rotationAckPoll):
		}
	}
}

// promote is a shared Backend's second phase: once every live replica
// holds the rotation's new key, the keyset with it as primary and the
// record out of PhaseAnnounced are stored together, and this process
// seals under it from then on.
func (v *Vault) promote(ctx context.Context, rot *Rotation, raw []byte) (*Rotation, []byte, error) {
	if reps, ok := v.b.(Replicas); ok {
		if err := v.awaitReplicas(ctx, reps, rot.Target); err != nil {
			return nil, nil, err
		}
	}
	v.keyOpMu.Lock()
	defer v.keyOpMu.Unlock()
	stored, cur, err := v.openStoredMaster(ctx, v.root)
	if err != nil {
		return nil, nil, err
	}
	next, err := cur.Promote(rot.Target)
	if err != nil {
		return nil, nil, err
	}
	wrapped, err := next.Wrap(v.root)
	if err != nil {
		return nil, nil, err
	}
	pr := *rot
	pr.Phase = ""
	praw, err := json.Marshal(&pr)
	if err != nil {
		return nil, nil, err
	}
	err = v.b.SwapMeta(ctx, []MetaSwap{{Key: MetaMaster, Old: stored, New: wrapped}, {Key: MetaRotation, Old: raw, New: praw}}, false)
	if errors.Is(err, ErrConflict) {
		return nil, nil, errors.New("the master keyset changed while the new key was being promoted; nothing was changed, run 'vault keys rotate' again")
	}
	if err == nil {
		err = v.master.Adopt(next)
	}
	if err != nil {
		return nil, nil, err
	}
	v.log.Info("master key promoted", "key", rot.Target)
	return &pr, praw, nil
}

// ResumeRotation finishes an unfinished master key rotation (after a crash
// or a cancelled RotateMaster). It takes no root: the rotated master is
// already stored, and a key still in PhaseAnnounced is promoted with the
// root the vault was opened with. It returns ErrNoRotation when none is
// pending, and ErrRotationBusy, having done nothing, while another
// process sharing the Backend runs a rotation.
func (v *Vault) ResumeRotation(ctx context.Context, progress func(done, total int)) (RotateResult, error) {
	unlock, err := v.rotationLock(ctx)
	if err != nil {
		return RotateResult{}, err
	}
	defer unlock()
	rot, raw, err := v.pendingRotation(ctx)
	if err != nil {
		return RotateResult{}, err
	}
	if rot == nil {
		return RotateResult{}, ErrNoRotation
	}
	return v.finishRotation(ctx, rot, raw, true, progress)
}

// rewrapState counts a rotation's progress.
type rewrapState struct {
	target      uint32
	done, total int
	rewrapped   int
	progress    func(done, total int)
	needed      int // per pass: blobs found not under the target
}

func (st *rewrapState) report() {
	st.total = max(st.total, st.done)
	if st.progress != nil {
		st.progress(st.done, st.total)
	}
}

func (v *Vault) finishRotation(ctx context.Context, rot *Rotation, raw []byte, resumed bool, progress func(done, total int)) (RotateResult, error) {
	v.rewrapMu.Lock()
	defer v.rewrapMu.Unlock()
	res := RotateResult{Previous: rot.Previous, Target: rot.Target, Started: rot.Started, Resumed: resumed}
	// Another call may have finished this rotation while this one waited:
	// then the passes below only confirm it. One may even have started
	// the next.
	if _, now, err := v.pendingRotation(ctx); err != nil {
		return res, err
	} else if now != nil && !bytes.Equal(now, raw) {
		return res, errors.New("another master key rotation began meanwhile; it is in progress")
	} else if now == nil && v.master.PrimaryID() != rot.Target {
		return res, nil // finished, and a later rotation too
	}
	if rot.Phase == PhaseAnnounced {
		var err error
		if rot, raw, err = v.promote(ctx, rot, raw); err != nil {
			return res, err
		}
	}
	if v.master.PrimaryID() != rot.Target {
		// Promoted by another process this one has not heard from yet.
		v.master.Reload() //nolint:errcheck // the check below says what matters
	}
	if p := v.master.PrimaryID(); p != rot.Target {
		return res, fmt.Errorf("the running master keyset's primary is key %d, not the rotation's target %d; restart the vault to resume the rotation", p, rot.Target)
	}
	st := &rewrapState{target: rot.Target, progress: progress}
	// A first pass only counts, so progress has a total.
	if err := v.pageBlobs(ctx, func(page []PatientKeyBlob) error {
		for _, p := range page {
			st.total++
			if underKey(p.Blob, rot.Target) {
				st.done++
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	st.report()
	for pass := 0; ; pass++ {
		if pass == maxRewrapPasses {
			return res, errors.New("patient key blobs kept changing during the rotation; run it again to finish")
		}
		st.needed = 0
		seen := 0
		err := v.pageBlobs(ctx, func(page []PatientKeyBlob) error {
			seen += len(page)
			return v.rewrapPage(ctx, page, st)
		})
		res.Rewrapped = st.rewrapped
		if err != nil {
			return res, err
		}
		if st.needed == 0 {
			// A whole pass found every blob under the target. A patient
			// whose keys were made with the old primary just before the
			// switch, and stored after this pass read its id, keeps the
			// old wrapping; the old key stays in the keyset, so it opens,
			// and KeyStatus counts it.
			res.Patients = seen
			st.done, st.total = seen, seen
			st.report()
			break
		}
	}
	err := v.b.SwapMeta(ctx, []MetaSwap{{Key: MetaRotation, Old: raw}}, false)
	if errors.Is(err, ErrConflict) {
		// Another call finished (or restarted) it meanwhile.
		if now, _, rerr := v.pendingRotation(ctx); rerr == nil && now == nil {
			err = nil
		}
	}
	if err != nil {
		return res, err
	}
	v.log.Info("master key rotation finished", "target_key", rot.Target, "rewrapped", res.Rewrapped, "patients", res.Patients, "resumed", resumed)
	return res, nil
}

// underKey reports whether both parts of a blob are wrapped by key id.
func underKey(blob []byte, id uint32) bool {
	kek, prf, err := keys.PatientBlobKeyIDs(blob)
	return err == nil && kek == id && prf == id
}

// pageBlobs calls fn with every page of patient key blobs, checking ctx
// before each.
func (v *Vault) pageBlobs(ctx context.Context, fn func([]PatientKeyBlob) error) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := v.b.PatientKeyBlobs(ctx, after, rotateBatch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		after = page[len(page)-1].PatientID
	}
}

// rewrapPage re-wraps the page's blobs that are not under the target, in
// one compare-and-swap transaction.
func (v *Vault) rewrapPage(ctx context.Context, page []PatientKeyBlob, st *rewrapState) error {
	var swaps []KeySwap
	for _, p := range page {
		if underKey(p.Blob, st.target) {
			continue
		}
		st.needed++
		nb, by, err := keys.RewrapPatientKeys(v.master, p.PatientID, p.Blob)
		if err != nil {
			return fmt.Errorf("patient %s: %w", p.PatientID, err)
		}
		if by != st.target {
			return fmt.Errorf("the running master keyset's primary changed to key %d during the rotation to %d", by, st.target)
		}
		swaps = append(swaps, KeySwap{PatientID: p.PatientID, Old: p.Blob, New: nb})
	}
	if len(swaps) == 0 {
		return nil
	}
	if err := v.b.SwapPatientKeys(ctx, swaps); err != nil {
		return err
	}
	// A blob not swapped was deleted or changed meanwhile: the next pass
	// sees which.
	for _, s := range swaps {
		if s.Swapped {
			st.done++
			st.rewrapped++
		}
	}
	st.report()
	return nil
}

// KeyStatus describes the key hierarchy: the root's kind, the master keys,
// how many patient key blobs each wraps, and an unfinished rotation. It
// holds ids and counts only.
type KeyStatus struct {
	Root     string            `json:"root"` // "key-file" or "passphrase"
	Primary  uint32            `json:"primary"`
	Keys     []MasterKeyStatus `json:"keys"`
	Patients int               `json:"patients"` // patient key blobs
	// Unknown counts blobs whose wrapping key id cannot be read or is not
	// in the keyset: they do not open.
	Unknown  int             `json:"unknown,omitempty"`
	Rotation *RotationStatus `json:"rotation,omitempty"`
}

// MasterKeyStatus is one master key and how many patient key blobs it
// wraps. A key that wraps none is only still needed for the secrets sealed
// directly under the master (accounts, ledger entries).
type MasterKeyStatus struct {
	keys.MasterKey
	PatientBlobs int `json:"patient_blobs"`
}

// RotationStatus is an unfinished rotation and how far it got.
type RotationStatus struct {
	Rotation
	Done  int `json:"done"`  // blobs under the target
	Total int `json:"total"` // blobs in all
}

// KeyStatus reports the state of the keys. It reads every patient key blob
// (a page at a time), so it costs about a millisecond per thousand patients.
func (v *Vault) KeyStatus(ctx context.Context) (KeyStatus, error) {
	var ks KeyStatus
	info, err := ReadRootInfo(ctx, v.b)
	if err != nil {
		return ks, err
	}
	if info != nil {
		ks.Root = info.Kind
	}
	// Another process may have changed the keyset since this one last
	// read it (a replica reloads every second): report the stored one.
	v.master.Reload() //nolint:errcheck // a failed reload reports the running keyset
	mk := v.master.Keys()
	counts := make(map[uint32]int, len(mk))
	for _, k := range mk {
		counts[k.ID] = 0
		if k.Primary {
			ks.Primary = k.ID
		}
	}
	rot, _, err := v.pendingRotation(ctx)
	if err != nil {
		return ks, err
	}
	if rot != nil {
		ks.Rotation = &RotationStatus{Rotation: *rot}
	}
	err = v.pageBlobs(ctx, func(page []PatientKeyBlob) error {
		for _, p := range page {
			ks.Patients++
			kek, prf, err := keys.PatientBlobKeyIDs(p.Blob)
			_, okK := counts[kek]
			_, okP := counts[prf]
			if err != nil || !okK || !okP {
				ks.Unknown++
				continue
			}
			counts[kek]++
			if prf != kek {
				counts[prf]++
			}
			if rot != nil && kek == rot.Target && prf == rot.Target {
				ks.Rotation.Done++
			}
		}
		return nil
	})
	if err != nil {
		return ks, err
	}
	if rot != nil {
		ks.Rotation.Total = ks.Patients
	}
	for _, k := range mk {
		ks.Keys = append(ks.Keys, MasterKeyStatus{MasterKey: k, PatientBlobs: counts[k.ID]})
	}
	return ks, nil
}

// ChangeRoot re-wraps the master keyset under a new root (another key file,
// or a passphrase) and stores newInfo, describing it, in the same
// transaction. Patient key blobs and everything else stay as they are.
// oldRoot must open the stored master (keys.ErrWrongRoot otherwise, with
// nothing written): whoever changes the root must hold the current one.
// For a passphrase root, newInfo.Argon2 must be the parameters newRoot was
// derived with.
//
// The master wrapped under the old root is scrubbed from the database
// file, so the old root opens nothing in it afterwards (backups taken
// before still hold it). If that scrub is cut short, the new root is in
// place and the error wraps ErrScrubPending: the store finishes the scrub
// at its next start.
func (v *Vault) ChangeRoot(ctx context.Context, oldRoot, newRoot *keys.Root, newInfo RootInfo) error {
	if newRoot == nil {
		return errors.New("no new root key given")
	}
	if newInfo.Kind != newRoot.Kind() {
		return fmt.Errorf("the new root is a %s, but its description says %q", newRoot.Kind(), newInfo.Kind)
	}
	switch {
	case newInfo.Kind == "passphrase" && newInfo.Argon2 == nil:
		return errors.New("a passphrase root needs its Argon2id parameters")
	case newInfo.Kind != "passphrase" && newInfo.Argon2 != nil:
		return fmt.Errorf("a %s root has no Argon2id parameters", newInfo.Kind)
	}
	ib, err := json.Marshal(newInfo)
	if err != nil {
		return err
	}
	v.keyOpMu.Lock()
	defer v.keyOpMu.Unlock()
	if oldRoot == nil {
		return errors.New("no current root key given")
	}
	storedInfo, err := v.storedRoot(ctx, oldRoot)
	if err != nil {
		return err
	}
	stored, err := v.b.Meta(ctx, MetaMaster)
	if err != nil {
		return err
	}
	if stored == nil {
		return errors.New("the vault has no master keyset")
	}
	wrapped, m, err := keys.RewrapMaster(stored, oldRoot, newRoot)
	if err != nil {
		return err
	}
	if !m.SameKeys(v.master) {
		return errMasterDiffers
	}
	err = v.b.SwapMeta(ctx, []MetaSwap{{Key: MetaMaster, Old: stored, New: wrapped}, {Key: MetaRoot, Old: storedInfo, New: ib}}, true)
	if errors.Is(err, ErrConflict) {
		return errors.New("the master keyset changed while the root was being changed; nothing was changed, try again")
	}
	if err != nil && !errors.Is(err, ErrScrubPending) {
		return err
	}
	v.log.Info("root changed", "from", oldRoot.Kind(), "to", newRoot.Kind())
	return err
}
