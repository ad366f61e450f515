package keys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrWrongRoot means the root key or passphrase does not open the master
// keyset stored in this vault.
var ErrWrongRoot = errors.New("the root key or passphrase does not open this vault's master keyset")

var masterAD = []byte("jhvault/master-keyset/v1")

// Master is the vault's master keyset: a Tink AEAD keyset that rotates by
// adding a new primary. Its keyset can be switched atomically while it is in
// use ([Master.Adopt]), so every holder of the same *Master (the vault, the
// consent ledger) moves to a new primary at once.
type Master struct {
	cur atomic.Pointer[masterKeys]

	reloadMu sync.Mutex
	reload   func() (*Master, error) // SetReload
	missed   time.Time               // when a reload last failed to find a key
	// unknownKey counts the reloads a ciphertext under a key m lacked
	// caused (UnknownKeyReloads).
	unknownKey atomic.Uint64
}

// reloadPause is how long after a reload that did not find a key no other
// is tried, so ciphertexts naming keys that exist nowhere cost one read
// of the store a second, not one each.
const reloadPause = time.Second

// SetReload gives m a way to read the keyset as stored now. With several
// vault processes on one database, another may rotate the master: a
// ciphertext (or a patient key blob) under a key id m does not hold then
// makes m call reload once, adopt the stored keyset if it holds that key
// and every key m holds, and try again, instead of failing. The vault sets
// it (vault.Open); without it a key m lacks fails as before.
func (m *Master) SetReload(reload func() (*Master, error)) {
	m.reloadMu.Lock()
	m.reload = reload
	m.reloadMu.Unlock()
}

// reloadFor reloads the stored keyset when id names a key that k (the
// version a failed call used) lacks, and reports whether the keyset
// running now holds id. Reloads are serialised; one that another caller
// already made is not repeated.
func (m *Master) reloadFor(k *masterKeys, id uint32) bool {
	if k.has(id) {
		return false // not a rotation: the key was there and did not open it
	}
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if m.keys().has(id) {
		return true
	}
	if m.reload == nil || time.Since(m.missed) < reloadPause {
		return false
	}
	m.unknownKey.Add(1)
	next, err := m.reload()
	if err != nil || !next.keys().has(id) {
		m.missed = time.Now()
		return false
	}
	if _, err := m.adopt(next); err != nil {
		m.missed = time.Now()
		return false
	}
	return true
}

// UnknownKeyReloads counts the reloads of the stored keyset that meeting
// a key m lacked caused (the safety net of SetReload). With the two-phase
// rotation of several replicas (vault.RotateMaster) every replica holds a
// new key before anything is sealed under it, so on a healthy deployment
// this stays 0; the vault reports it as a metric.
func (m *Master) UnknownKeyReloads() uint64 { return m.unknownKey.Load() }

// Reload reads the stored keyset (SetReload's function) and adopts it
// when it is newer than the running one (Adopt), whether or not any
// ciphertext needs it: a replica calls it when told the stored keyset
// changed, and every second. It reports whether the running keyset
// changed. Reloads are serialised with those of the safety net. Without
// a reload function it does nothing.
func (m *Master) Reload() (bool, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if m.reload == nil {
		return false, nil
	}
	next, err := m.reload()
	if err != nil {
		return false, err
	}
	return m.adopt(next)
}

func (k *masterKeys) has(id uint32) bool {
	for _, ki := range k.handle.KeysetInfo().GetKeyInfo() {
		if ki.GetKeyId() == id {
			return true
		}
	}
	return false
}

// masterKeys is one immutable version of the keyset with its primitive.
type masterKeys struct {
	handle *keyset.Handle
	aead   tink.AEAD
}

func (m *Master) keys() *masterKeys { return m.cur.Load() }

// NewMaster makes a master keyset with one AES-256-GCM key.
func NewMaster() (*Master, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, err
	}
	return masterFromHandle(h)
}

func masterFromHandle(h *keyset.Handle) (*Master, error) {
	a, err := aead.New(h)
	if err != nil {
		return nil, err
	}
	m := &Master{}
	m.cur.Store(&masterKeys{handle: h, aead: a})
	return m, nil
}

// OpenMaster unwraps a stored master keyset with the root key.
func OpenMaster(wrapped []byte, root *Root) (*Master, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), root.aead, masterAD)
	if err != nil {
		return nil, ErrWrongRoot
	}
	return masterFromHandle(h)
}

// Wrap encrypts the master keyset under root for storage.
func (m *Master) Wrap(root *Root) ([]byte, error) {
	var buf bytes.Buffer
	if err := m.keys().handle.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), root.aead, masterAD); err != nil {
		return nil, fmt.Errorf("wrap master keyset: %v", err)
	}
	return buf.Bytes(), nil
}

// PrimaryID is the Tink key id of the current primary master key.
func (m *Master) PrimaryID() uint32 { return m.keys().handle.KeysetInfo().GetPrimaryKeyId() }

// Encrypt seals a small secret. The associated data must name what the
// secret belongs to (for example "user|pt_…"), so it can't be swapped.
func (m *Master) Encrypt(plaintext, ad []byte) ([]byte, error) {
	return m.keys().aead.Encrypt(plaintext, ad)
}

// Decrypt opens what Encrypt sealed with the same associated data. A
// ciphertext under a key m lacks first reloads the keyset (SetReload).
func (m *Master) Decrypt(ciphertext, ad []byte) ([]byte, error) {
	k := m.keys()
	pt, err := k.aead.Decrypt(ciphertext, ad)
	if err == nil || len(ciphertext) < 5 || ciphertext[0] != tinkStartByte {
		return pt, err
	}
	if !m.reloadFor(k, binary.BigEndian.Uint32(ciphertext[1:5])) {
		return nil, err
	}
	return m.keys().aead.Decrypt(ciphertext, ad)
}
