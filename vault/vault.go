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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
func ReadRootInfo(b Backend) (*RootInfo, error) {
	v, err := b.Meta(MetaRoot)
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
	log    *slog.Logger
	now    func() time.Time

	pkMu sync.Mutex
	pks  map[string]*keys.PatientKeys

	touchMu sync.Mutex
	touched map[string]time.Time

	// keyOpMu serialises the changes of the stored master keyset (a
	// rotation's first step, a root change), and rewrapMu the re-wrap
	// passes.
	keyOpMu, rewrapMu sync.Mutex
}

// Options for Open.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // for tests; time.Now when nil
}

// Open unwraps the master keyset with root, or creates and stores one if
// this is a new vault (info is then stored too). A root that does not open
// an existing master returns keys.ErrWrongRoot and writes nothing.
func Open(b Backend, root *keys.Root, info RootInfo, o Options) (*Vault, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Vault{b: b, log: o.Logger, now: o.Now, pks: map[string]*keys.PatientKeys{}, touched: map[string]time.Time{}}
	wrapped, err := b.Meta(MetaMaster)
	if err != nil {
		return nil, err
	}
	if wrapped != nil {
		stored, err := ReadRootInfo(b)
		if err != nil {
			return nil, err
		}
		if stored != nil && stored.Kind != root.Kind() {
			return nil, fmt.Errorf("this vault's master keyset is wrapped by a %s root, but a %s root was given", stored.Kind, root.Kind())
		}
		if v.master, err = keys.OpenMaster(wrapped, root); err != nil {
			return nil, err
		}
		return v, nil
	}
	if v.master, err = keys.NewMaster(); err != nil {
		return nil, err
	}
	if wrapped, err = v.master.Wrap(root); err != nil {
		return nil, err
	}
	ib, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	if err := b.PutMeta(MetaRoot, ib); err != nil {
		return nil, err
	}
	if err := b.PutMeta(MetaMaster, wrapped); err != nil {
		return nil, err
	}
	return v, nil
}

// Backend is the store under the vault.
func (v *Vault) Backend() Backend { return v.b }

// Master is the unwrapped master keyset, for packages that seal their own
// secrets (the ledger's signing key, for example).
func (v *Vault) Master() *keys.Master { return v.master }

// ErrNoPatient is returned for an unknown patient id.
var ErrNoPatient = errors.New("no such patient")

func (v *Vault) patientKeys(id string) (*keys.PatientKeys, error) {
	v.pkMu.Lock()
	pk := v.pks[id]
	v.pkMu.Unlock()
	if pk != nil {
		return pk, nil
	}
	blob, err := v.b.PatientKeys(id)
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
func (v *Vault) DeletePatient(id string) error {
	if RoleOf(id) != RolePatient {
		return ErrNoPatient
	}
	err := v.b.DeletePatient(id)
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
