// Package vault is the per-patient record store: accounts, API tokens, and
// readings sealed one by one under the key hierarchy of package keys.
//
// A [Vault] sits on a [Backend] (bbolt today, see store/boltstore). It turns
// validated Open mHealth points (package omh) into sealed records: each gets
// a keyed dedup tag of its uuid, a fresh DEK, and associated data binding it
// to (patient, schema, time, uuid tag). Only the patient id, schema and time
// stay in plaintext, because range scans need them.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/internal/pointdict"
	"github.com/jupyterhealth/vault/keys"
)

// Meta keys the vault itself uses.
const (
	MetaRoot   = "root"   // RootInfo JSON: how the master is wrapped
	MetaMaster = "master" // the wrapped master keyset
)

// RootInfo records which kind of root wraps the master, and the Argon2id
// parameters when it is a passphrase.
type RootInfo struct {
	Kind   string             `json:"kind"`
	Argon2 *keys.Argon2Params `json:"argon2,omitempty"`
}

// ReadRootInfo returns the stored root description, or nil for a new vault.
func ReadRootInfo(ctx context.Context, b Backend) (*RootInfo, error) {
	v, err := b.Meta(ctx, MetaRoot)
	if err != nil || v == nil {
		return nil, err
	}
	var ri RootInfo
	if err := json.Unmarshal(v, &ri); err != nil {
		return nil, fmt.Errorf("stored root description is corrupt: %v", err)
	}
	return &ri, nil
}

// Vault is the record store.
type Vault struct {
	b      Backend
	master *keys.Master
	// root wraps the master: kept to reload a keyset another process
	// changed, and to promote a rotation's new key (Replicas).
	root *keys.Root
	log  *slog.Logger
	now  func() time.Time

	pkMu sync.Mutex
	pks  map[string]*keys.PatientKeys

	touchMu sync.Mutex
	touched map[string]time.Time

	// keyOpMu serialises the changes of the stored master keyset (a
	// rotation's first step, a root change), and rewrapMu the re-wrap
	// passes.
	keyOpMu, rewrapMu sync.Mutex

	// dict compresses points for v2 records; writeFormat is the record
	// format new readings are sealed in (RecordFormat, but for tests that
	// make old-format records).
	dict        *pointdict.Dict
	writeFormat int
}

// Options for Open.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // for tests; time.Now when nil
}

// Open unwraps the master keyset with root, or creates and stores one if
// this is a new vault (info is then stored too). A root that does not open
// an existing master returns keys.ErrWrongRoot and writes nothing.
//
// Creation is a compare-and-swap, never a plain write: the new master and
// info are stored together by one SwapMeta that succeeds only while no
// master is stored. Of several processes (or goroutines, or replicas)
// opening an empty store at once, exactly one stores its keyset; the others
// get ErrConflict from the store, read what the winner stored and open
// that, so every one of them seals under the same master.
func Open(ctx context.Context, b Backend, root *keys.Root, info RootInfo, o Options) (*Vault, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	dict, err := pointdict.Load(pointdict.V1)
	if err != nil {
		return nil, err
	}
	v := &Vault{b: b, log: o.Logger, now: o.Now, pks: map[string]*keys.PatientKeys{}, touched: map[string]time.Time{}, dict: dict, writeFormat: RecordFormat}
	// Two rounds suffice: a conflict means another opener stored its
	// master (both keys go in one transaction), which the next read finds.
	for range 3 {
		wrapped, err := b.Meta(ctx, MetaMaster)
		if err != nil {
			return nil, err
		}
		if wrapped != nil {
			if v.master, err = openMaster(ctx, b, wrapped, root); err != nil {
				return nil, err
			}
			v.reloadMasterWith(root)
			return v, nil
		}
		m, err := createMaster(ctx, b, root, info)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v.master = m
		v.reloadMasterWith(root)
		return v, nil
	}
	return nil, errors.New("the vault's master keyset kept changing while it was being created; try again")
}

// openMaster unwraps a stored master with root, refusing a root of another
// kind than the stored description names.
func openMaster(ctx context.Context, b Backend, wrapped []byte, root *keys.Root) (*keys.Master, error) {
	stored, err := ReadRootInfo(ctx, b)
	if err != nil {
		return nil, err
	}
	if stored != nil && stored.Kind != root.Kind() {
		return nil, fmt.Errorf("this vault's master keyset is wrapped by a %s root, but a %s root was given", stored.Kind, root.Kind())
	}
	return keys.OpenMaster(wrapped, root)
}

// createMaster makes a master keyset and stores it, wrapped by root, with
// info, if no master is stored yet: ErrConflict otherwise.
func createMaster(ctx context.Context, b Backend, root *keys.Root, info RootInfo) (*keys.Master, error) {
	// A root description without a master is left by a first start that
	// older versions (two plain writes) cut short: it is replaced, but
	// only if it is still the one read here.
	oldInfo, err := b.Meta(ctx, MetaRoot)
	if err != nil {
		return nil, err
	}
	m, err := keys.NewMaster()
	if err != nil {
		return nil, err
	}
	wrapped, err := m.Wrap(root)
	if err != nil {
		return nil, err
	}
	ib, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	err = b.SwapMeta(ctx, []MetaSwap{{Key: MetaRoot, Old: oldInfo, New: ib}, {Key: MetaMaster, Old: nil, New: wrapped}}, false)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Backend is the store under the vault.
func (v *Vault) Backend() Backend { return v.b }

// Master is the unwrapped master keyset, for packages that seal their own
// secrets (the ledger's signing key, for example).
func (v *Vault) Master() *keys.Master { return v.master }

// ErrNoPatient is returned for an unknown patient id.
var ErrNoPatient = errors.New("no such patient")

func (v *Vault) patientKeys(ctx context.Context, id string) (*keys.PatientKeys, error) {
	v.pkMu.Lock()
	pk := v.pks[id]
	v.pkMu.Unlock()
	if pk != nil {
		return pk, nil
	}
	blob, err := v.b.PatientKeys(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNoPatient
	}
	if err != nil {
		return nil, err
	}
	pk, err = keys.OpenPatientKeys(v.master, id, blob)
	if err != nil {
		return nil, err
	}
	v.pkMu.Lock()
	v.pks[id] = pk
	v.pkMu.Unlock()
	return pk, nil
}

// DeletePatient crypto-shreds a patient: their key blob is destroyed, so
// every record sealed under it is unrecoverable even with the master key,
// and the store is compacted so no free page keeps the blob.
func (v *Vault) DeletePatient(ctx context.Context, id string) error {
	if RoleOf(id) != RolePatient {
		return ErrNoPatient
	}
	err := v.b.DeletePatient(ctx, id)
	// Evict after the delete: an ingest racing it may have cached the keys
	// again, but its insert is refused inside the store's transaction.
	v.pkMu.Lock()
	delete(v.pks, id)
	v.pkMu.Unlock()
	if errors.Is(err, ErrNotFound) {
		return ErrNoPatient
	}
	if err == nil {
		v.log.Info("patient deleted", "patient", id)
	}
	return err
}

// ForgetPatientKeys drops a patient's unwrapped keys from this process's
// cache, for a deletion another process made on a shared database (its
// patient-deleted event): her key row is gone there, so nothing more is
// sealed or opened for her here either, and her key leaves this
// process's memory. It reports whether they were cached.
func (v *Vault) ForgetPatientKeys(id string) bool {
	v.pkMu.Lock()
	defer v.pkMu.Unlock()
	_, held := v.pks[id]
	delete(v.pks, id)
	return held
}
