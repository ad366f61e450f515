package keys

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// Rotation of the master keyset.
//
// The master rotates by adding a new AES-256-GCM primary; every older key
// stays in the keyset, so whatever was sealed before still opens (Tink picks
// the key by the 5-byte output prefix of each ciphertext). A patient's key
// blob is re-wrapped under the new primary with [RewrapPatientKeys]: the KEK
// and PRF keysets inside do not change, so no record has to be rewritten.
// A root change re-wraps only the master ([RewrapMaster]).

// MasterKey describes one key of the master keyset. It holds no key
// material.
type MasterKey struct {
	ID      uint32 `json:"id"`
	Primary bool   `json:"primary"`
	// Status is Tink's key status in lower case: "enabled", "disabled" or
	// "destroyed".
	Status string `json:"status"`
}

// Keys lists the master keyset's keys in keyset order (oldest first).
func (m *Master) Keys() []MasterKey {
	info := m.keys().handle.KeysetInfo()
	out := make([]MasterKey, 0, len(info.GetKeyInfo()))
	for _, k := range info.GetKeyInfo() {
		st := strings.ToLower(strings.TrimPrefix(k.GetStatus().String(), "KEY_STATUS_"))
		out = append(out, MasterKey{ID: k.GetKeyId(), Primary: k.GetKeyId() == info.GetPrimaryKeyId(), Status: st})
	}
	return out
}

// KeyIDs lists the ids of the master keyset's keys, oldest first.
func (m *Master) KeyIDs() []uint32 {
	var ids []uint32
	for _, k := range m.Keys() {
		ids = append(ids, k.ID)
	}
	return ids
}

// HasKey reports whether the keyset holds a key with this id.
func (m *Master) HasKey(id uint32) bool { return slices.Contains(m.KeyIDs(), id) }

// SameKeys reports whether o holds the same key ids, and the same primary,
// as m.
func (m *Master) SameKeys(o *Master) bool {
	a, b := m.KeyIDs(), o.KeyIDs()
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b) && m.PrimaryID() == o.PrimaryID()
}

// Rotate returns a new master holding every key of m plus a fresh
// AES-256-GCM key, which is its primary. m itself is unchanged; store the
// result (wrapped by the root) before handing it to [Master.Adopt].
func (m *Master) Rotate() (*Master, error) {
	next, err := m.AddKey()
	if err != nil {
		return nil, err
	}
	return next.Promote(next.newestID())
}

// AddKey returns a new master holding every key of m plus a fresh
// AES-256-GCM key that is not primary: the first phase of a rotation
// across several processes, which must all hold a key before anything is
// sealed under it. [Master.Promote] makes it primary.
func (m *Master) AddKey() (*Master, error) {
	mgr := keyset.NewManagerFromHandle(m.keys().handle)
	if _, err := mgr.Add(aead.AES256GCMKeyTemplate()); err != nil {
		return nil, fmt.Errorf("rotate master keyset: %v", err)
	}
	h, err := mgr.Handle()
	if err != nil {
		return nil, fmt.Errorf("rotate master keyset: %v", err)
	}
	return masterFromHandle(h)
}

// Promote returns a new master with m's keys and id as its primary. id must
// be m's newest key (the one AddKey added): keysets only move forward
// (Adopt).
func (m *Master) Promote(id uint32) (*Master, error) {
	if id != m.newestID() {
		return nil, fmt.Errorf("key %d is not the master keyset's newest key", id)
	}
	mgr := keyset.NewManagerFromHandle(m.keys().handle)
	if err := mgr.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("rotate master keyset: %v", err)
	}
	h, err := mgr.Handle()
	if err != nil {
		return nil, fmt.Errorf("rotate master keyset: %v", err)
	}
	return masterFromHandle(h)
}

// newestID is the id of the keyset's newest key (keys are kept in the
// order they were added).
func (m *Master) newestID() uint32 {
	ks := m.keys().handle.KeysetInfo().GetKeyInfo()
	return ks[len(ks)-1].GetKeyId()
}

// order places a keyset in the sequence a rotation moves through: more
// keys is newer, and with the same keys a primary added later is newer
// (AddKey, then Promote).
func (k *masterKeys) order() (keys, primary int) {
	info := k.handle.KeysetInfo()
	for i, ki := range info.GetKeyInfo() {
		if ki.GetKeyId() == info.GetPrimaryKeyId() {
			primary = i
		}
	}
	return len(info.GetKeyInfo()), primary
}

// Adopt switches m, atomically, to next's keyset: from then on m encrypts
// under next's primary, for every holder of m. It refuses a keyset that
// lacks any key m has, so adopting can never make a sealed secret
// unreadable. A keyset no newer than m's (the same, or the same keys with
// an earlier primary: a reload that read the store before a promotion
// this process already adopted) is ignored, so the running keyset only
// moves forward whatever order reloads finish in.
func (m *Master) Adopt(next *Master) error {
	_, err := m.adopt(next)
	return err
}

func (m *Master) adopt(next *Master) (bool, error) {
	nk := next.keys()
	have := next.KeyIDs()
	for {
		cur := m.keys()
		for _, ki := range cur.handle.KeysetInfo().GetKeyInfo() {
			if !slices.Contains(have, ki.GetKeyId()) {
				return false, fmt.Errorf("the new master keyset lacks key %d of the current one", ki.GetKeyId())
			}
		}
		nn, np := nk.order()
		cn, cp := cur.order()
		if nn < cn || (nn == cn && np <= cp) {
			return false, nil
		}
		if m.cur.CompareAndSwap(cur, nk) {
			return true, nil
		}
	}
}

// RewrapMaster opens a stored master keyset with oldRoot and wraps it again
// under newRoot. The keyset itself is unchanged. It returns
// ErrWrongRoot when oldRoot does not open wrapped.
func RewrapMaster(wrapped []byte, oldRoot, newRoot *Root) ([]byte, *Master, error) {
	m, err := OpenMaster(wrapped, oldRoot)
	if err != nil {
		return nil, nil, err
	}
	out, err := m.Wrap(newRoot)
	if err != nil {
		return nil, nil, err
	}
	// Never hand back a wrapping that does not open.
	check, err := OpenMaster(out, newRoot)
	if err != nil || !check.SameKeys(m) {
		return nil, nil, errors.New("the master keyset wrapped under the new root does not open")
	}
	return out, m, nil
}

// ErrBlobKeyID means a wrapped keyset does not name the master key that
// wrapped it (it is corrupt, or was wrapped by a key without a Tink prefix).
var ErrBlobKeyID = errors.New("patient key blob does not name the master key that wrapped it")

// tinkStartByte starts the 5-byte output prefix of a TINK-prefixed
// ciphertext; the key id follows, big-endian.
const tinkStartByte = 0x01

// wrappedKeyID reads the master key id from a keyset written by
// keyset.Handle.WriteWithAssociatedData: an EncryptedKeyset proto whose
// encrypted_keyset is a Tink ciphertext starting with the output prefix.
func wrappedKeyID(wrapped []byte) (uint32, error) {
	ek, err := keyset.NewBinaryReader(bytes.NewReader(wrapped)).ReadEncrypted()
	if err != nil {
		return 0, ErrBlobKeyID
	}
	return ciphertextKeyID(ek)
}

func ciphertextKeyID(ek *tinkpb.EncryptedKeyset) (uint32, error) {
	ct := ek.GetEncryptedKeyset()
	if len(ct) < 5 || ct[0] != tinkStartByte {
		return 0, ErrBlobKeyID
	}
	return binary.BigEndian.Uint32(ct[1:5]), nil
}

func parsePatientBlob(blob []byte) (patientBlob, error) {
	var b patientBlob
	if err := json.Unmarshal(blob, &b); err != nil || b.V != 1 {
		return b, errors.New("patient key blob is corrupt")
	}
	return b, nil
}

// PatientBlobKeyIDs reports which master keys wrapped a patient's key blob:
// kek for the KEK keyset, prf for the dedup PRF keyset. Both are read from
// the Tink output prefix of the wrapped keysets, without any key; they are
// equal for every blob this package writes.
func PatientBlobKeyIDs(blob []byte) (kek, prf uint32, err error) {
	b, err := parsePatientBlob(blob)
	if err != nil {
		return 0, 0, err
	}
	if kek, err = wrappedKeyID(b.KEK); err != nil {
		return 0, 0, err
	}
	if prf, err = wrappedKeyID(b.PRF); err != nil {
		return 0, 0, err
	}
	return kek, prf, nil
}

// RewrapPatientKeys opens a patient's key blob with m (under whichever of
// its keys wrapped it) and wraps both keysets again under m's primary, with
// the same associated data. The KEK and PRF keys are unchanged, so every
// record sealed under them still opens. It returns the new blob and the id of
// the master key that wraps it (m's primary at that moment).
func RewrapPatientKeys(m *Master, patientID string, blob []byte) ([]byte, uint32, error) {
	b, err := parsePatientBlob(blob)
	if err != nil {
		return nil, 0, err
	}
	mk := m.keys() // one version of the master for both parts
	kh, ph, err := unwrapPatientBlob(mk.aead, patientID, b)
	if err != nil {
		return nil, 0, err
	}
	out, err := wrapPatientBlob(mk.aead, patientID, kh, ph)
	if err != nil {
		return nil, 0, fmt.Errorf("re-wrap patient keys: %v", err)
	}
	return out, mk.handle.KeysetInfo().GetPrimaryKeyId(), nil
}
