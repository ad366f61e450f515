package keys

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrWrongRoot means the root key or passphrase does not open the master
// keyset stored in this vault.
var ErrWrongRoot = errors.New("the root key or passphrase does not open this vault's master keyset")

var masterAD = []byte("jhvault/master-keyset/v1")

// Master is the vault's master keyset: a Tink AEAD keyset that rotates by
// adding a new primary.
type Master struct {
	handle *keyset.Handle
	aead   tink.AEAD
}

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
	return &Master{handle: h, aead: a}, nil
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
	if err := m.handle.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), root.aead, masterAD); err != nil {
		return nil, fmt.Errorf("wrap master keyset: %v", err)
	}
	return buf.Bytes(), nil
}

// PrimaryID is the Tink key id of the current primary master key.
func (m *Master) PrimaryID() uint32 { return m.handle.KeysetInfo().GetPrimaryKeyId() }

// Encrypt seals a small secret. The associated data must name what the
// secret belongs to (for example "user|pt_…"), so it can't be swapped.
func (m *Master) Encrypt(plaintext, ad []byte) ([]byte, error) { return m.aead.Encrypt(plaintext, ad) }

// Decrypt opens what Encrypt sealed with the same associated data.
func (m *Master) Decrypt(ciphertext, ad []byte) ([]byte, error) {
	return m.aead.Decrypt(ciphertext, ad)
}
