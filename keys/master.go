package keys

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"

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

// Decrypt opens what Encrypt sealed with the same associated data.
func (m *Master) Decrypt(ciphertext, ad []byte) ([]byte, error) {
	return m.keys().aead.Decrypt(ciphertext, ad)
}
