package keys

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/chacha20poly1305"
)

// TagSize is the length of a dedup tag.
const TagSize = 16

const (
	envelopeV1 = 0x01
	envelopeV2 = 0x02
	envelopeV3 = 0x03
	padBlock   = 32
	// padBlockV2 is the padding step of a v2 record's payload (already
	// compressed): small, since a compressed point's length varies by a
	// byte or two with its value, and each byte of padding is paid by
	// every reading.
	padBlockV2 = 8
)

// Envelope versions, as EnvelopeVersion reports them.
const (
	// EnvelopeWrapped (v1) holds a random DEK wrapped under the KEK beside
	// the record sealed under it, its plaintext padded to 32 bytes.
	EnvelopeWrapped = envelopeV1
	// EnvelopeDerived (v2) holds only the record, sealed under a key
	// derived from the patient's key and the record's identity
	// (XChaCha20-Poly1305), its payload padded to 8 bytes.
	EnvelopeDerived = envelopeV2
	// EnvelopeIdentity (v3) is v2 with a nonce prefix made from the
	// record's identity as the caller gives it (SealIdentity) instead of a
	// SHA-256 of the associated data: the same layout, keys and padding.
	EnvelopeIdentity = envelopeV3
)

// IDSize is the length of a record identity for a v3 envelope.
const IDSize = 16

// EnvelopeVersion returns a sealed record's format version (its first
// byte), or 0 for bytes that are no envelope.
func EnvelopeVersion(envelope []byte) int {
	if len(envelope) == 0 || envelope[0] < envelopeV1 || envelope[0] > envelopeV3 {
		return 0
	}
	return int(envelope[0])
}

// ErrDecrypt is returned when a record fails to open: it was changed, moved
// to another record or patient, or its patient's keys were destroyed.
var ErrDecrypt = errors.New("record failed to decrypt: it was altered, moved, or its keys were destroyed")

// PatientKeys is one patient's KEK (a Tink AES-256-GCM keyset that wraps
// per-record DEKs, format 1) and PRF key (a Tink AES-256-CMAC PRF keyset:
// dedup tags, derived uuids, and the record root key from which each
// format 2 and 3 record's key is derived).
type PatientKeys struct {
	kek    tink.AEAD
	kekID  uint32
	prf    *prf.Set
	rec    cipher.AEAD // format 2 and 3 records: XChaCha20-Poly1305 under the record root key
	handle *keyset.Handle
}

type patientBlob struct {
	V   int    `json:"v"`
	KEK []byte `json:"kek"`
	PRF []byte `json:"prf"`
}

func patientAD(patientID, part string) []byte {
	return []byte("jhvault/patient-keys/v1|" + part + "|" + patientID)
}

// NewPatientKeys makes fresh random keys for a patient and returns them with
// their wrapped form, sealed under the master with the patient's id as
// associated data. They are random, never derived, so destroying the wrapped
// blob destroys them.
func NewPatientKeys(m *Master, patientID string) (*PatientKeys, []byte, error) {
	kh, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, nil, err
	}
	ph, err := keyset.NewHandle(prf.AESCMACPRFKeyTemplate())
	if err != nil {
		return nil, nil, err
	}
	// One version of the master wraps both parts, even if it rotates now.
	blob, err := wrapPatientBlob(m.keys().aead, patientID, kh, ph)
	if err != nil {
		return nil, nil, err
	}
	pk, err := newPatientKeys(kh, ph)
	return pk, blob, err
}

// OpenPatientKeys unwraps a patient's key blob.
func OpenPatientKeys(m *Master, patientID string, blob []byte) (*PatientKeys, error) {
	var b patientBlob
	if err := json.Unmarshal(blob, &b); err != nil || b.V != 1 {
		return nil, errors.New("patient key blob is corrupt")
	}
	mk := m.keys()
	kh, ph, err := unwrapPatientBlob(mk.aead, patientID, b)
	if err != nil {
		// Wrapped under a key this process lacks (another rotated the
		// master): reload it and try once more.
		kek, prf, ierr := PatientBlobKeyIDs(blob)
		if ierr != nil || !(m.reloadFor(mk, kek) || m.reloadFor(mk, prf)) {
			return nil, err
		}
		if kh, ph, err = unwrapPatientBlob(m.keys().aead, patientID, b); err != nil {
			return nil, err
		}
	}
	return newPatientKeys(kh, ph)
}

// wrapPatientBlob seals a patient's two keysets under one master primitive.
func wrapPatientBlob(master tink.AEAD, patientID string, kh, ph *keyset.Handle) ([]byte, error) {
	var kb, pb bytes.Buffer
	if err := kh.WriteWithAssociatedData(keyset.NewBinaryWriter(&kb), master, patientAD(patientID, "kek")); err != nil {
		return nil, err
	}
	if err := ph.WriteWithAssociatedData(keyset.NewBinaryWriter(&pb), master, patientAD(patientID, "prf")); err != nil {
		return nil, err
	}
	return json.Marshal(patientBlob{V: 1, KEK: kb.Bytes(), PRF: pb.Bytes()})
}

// unwrapPatientBlob opens a parsed blob's two keysets.
func unwrapPatientBlob(master tink.AEAD, patientID string, b patientBlob) (kh, ph *keyset.Handle, err error) {
	kh, err = keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(b.KEK)), master, patientAD(patientID, "kek"))
	if err != nil {
		return nil, nil, fmt.Errorf("patient KEK does not open: %w", ErrDecrypt)
	}
	ph, err = keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(b.PRF)), master, patientAD(patientID, "prf"))
	if err != nil {
		return nil, nil, fmt.Errorf("patient dedup key does not open: %w", ErrDecrypt)
	}
	return kh, ph, nil
}

func newPatientKeys(kh, ph *keyset.Handle) (*PatientKeys, error) {
	kek, err := aead.New(kh)
	if err != nil {
		return nil, err
	}
	ps, err := prf.NewPRFSet(ph)
	if err != nil {
		return nil, err
	}
	rec, err := newRecordAEAD(ps)
	if err != nil {
		return nil, err
	}
	return &PatientKeys{kek: kek, kekID: kh.KeysetInfo().GetPrimaryKeyId(), prf: ps, rec: rec, handle: kh}, nil
}

// Seal encrypts one record under a fresh DEK (ChaCha20-Poly1305, whose key
// setup is cheap enough to pay per record) and wraps the DEK under the KEK.
// Both bind ad. The plaintext is padded to a multiple of 32 bytes so a
// ciphertext's length tells little about the value inside.
//
// Layout: 0x01 | len(wrapped DEK) | wrapped DEK (Tink: key id prefix, nonce,
// ciphertext, tag) | record (nonce, ciphertext, tag).
func (pk *PatientKeys) Seal(plaintext, ad []byte) ([]byte, error) {
	var dek [chacha20poly1305.KeySize]byte
	rand.Read(dek[:])
	wrapped, err := pk.kek.Encrypt(dek[:], ad)
	if err != nil {
		return nil, err
	}
	if len(wrapped) > 255 {
		return nil, errors.New("wrapped DEK too long")
	}
	g, err := chacha20poly1305.New(dek[:])
	if err != nil {
		return nil, err
	}
	padded := paddedLen(len(plaintext))
	// One buffer holds the envelope; the record is sealed in place.
	out := make([]byte, 0, 2+len(wrapped)+chacha20poly1305.NonceSize+padded+chacha20poly1305.Overhead)
	out = append(out, envelopeV1, byte(len(wrapped)))
	out = append(out, wrapped...)
	nonce := out[len(out) : len(out)+chacha20poly1305.NonceSize]
	rand.Read(nonce)
	out = out[:len(out)+len(nonce)]
	start := len(out)
	out = append(out, plaintext...)
	out = append(out, 0x80)
	out = out[:start+padded] // capacity was made for it; the rest is zero
	clear(out[start+len(plaintext)+1:])
	return g.Seal(out[:start], nonce, out[start:], ad), nil
}

// Open decrypts what Seal made with the same ad. envelope is left as it was.
func (pk *PatientKeys) Open(envelope, ad []byte) ([]byte, error) {
	return pk.OpenInPlace(bytes.Clone(envelope), ad)
}

// SealDerived seals one record payload (format v2) under a key of its
// own, derived from the patient's record root key and ad (the record's
// identity: patient, schema, time and dedup tag); ad is the associated
// data as well. Nothing is wrapped or stored beside it: the key is derived
// again to open it. The payload is padded to a multiple of 8 bytes. The
// sealed record is appended to dst.
//
// The AEAD is XChaCha20-Poly1305 (x/crypto) under the patient's record
// root key R, with the 24-byte nonce SHA-256(ad)[:16] ‖ 8 random bytes.
// XChaCha20 encrypts under the subkey HChaCha20(R, nonce[:16]), so each
// record identity has its own key; only the 8 random bytes are stored.
//
// Layout: 0x02 | random nonce part (8) | ciphertext | tag (16).
func (pk *PatientKeys) SealDerived(dst, payload, ad []byte) ([]byte, error) {
	var nonce [chacha20poly1305.NonceSizeX]byte
	recordNonce(&nonce, ad)
	return pk.sealXNonce(dst, envelopeV2, payload, ad, &nonce), nil
}

// SealIdentity seals one record payload (format v3) as SealDerived does,
// except for the nonce's first 16 bytes, which make the record's subkey:
// they are id, the record's identity as the caller encodes it, where v2
// hashed ad. id must differ between any two records of the patient whose
// ad differs (the caller's encoding is injective on the identities it
// stores, or collides only with negligible chance); ad is authenticated
// as for v2. Sealing one id twice is allowed, as it is for v2: the two
// seals share a subkey and are kept apart by the nonce's 8 random bytes.
//
// Layout: 0x03 | random nonce part (8) | ciphertext | tag (16).
func (pk *PatientKeys) SealIdentity(dst, payload, ad []byte, id [IDSize]byte) ([]byte, error) {
	var nonce [chacha20poly1305.NonceSizeX]byte
	copy(nonce[:derivedNoncePrefix], id[:])
	return pk.sealXNonce(dst, envelopeV3, payload, ad, &nonce), nil
}

// sealXNonce seals a v2 or v3 record under nonce, whose identity prefix
// is set; it fills the random rest.
func (pk *PatientKeys) sealXNonce(dst []byte, version byte, payload, ad []byte, nonce *[chacha20poly1305.NonceSizeX]byte) []byte {
	padded := (len(payload)/padBlockV2 + 1) * padBlockV2
	need := 1 + derivedNonceRand + padded + chacha20poly1305.Overhead
	if cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	rand.Read(nonce[derivedNoncePrefix:])
	out := append(dst, version)
	out = append(out, nonce[derivedNoncePrefix:]...)
	start := len(out)
	out = append(out, payload...)
	out = append(out, 0x80)
	out = out[:start+padded]
	clear(out[start+len(payload)+1:])
	return pk.rec.Seal(out[:start], nonce[:], out[start:], ad)
}

// The v2 and v3 nonce: a prefix derived from the record's identity, which
// makes the record's subkey, and a random rest, which is stored.
const (
	derivedNoncePrefix = 16
	derivedNonceRand   = chacha20poly1305.NonceSizeX - derivedNoncePrefix
)

// recordNonce sets the nonce's identity prefix: SHA-256(ad)[:16].
func recordNonce(nonce *[chacha20poly1305.NonceSizeX]byte, ad []byte) {
	h := sha256.Sum256(ad)
	copy(nonce[:derivedNoncePrefix], h[:derivedNoncePrefix])
}

// recordRootLabel prefixes the PRF inputs of the record root key, a
// domain apart from the PRF's other uses: dedup tags ("uuid|…") and
// derived uuids ("derive-uuid|…").
const recordRootLabel = "record-root/v2|"

// newRecordAEAD derives the patient's record root key, two AES-CMAC PRF
// outputs of her PRF key, and returns its XChaCha20-Poly1305 AEAD.
func newRecordAEAD(ps *prf.Set) (cipher.AEAD, error) {
	a, err := ps.ComputePrimaryPRF([]byte(recordRootLabel+"0"), 16)
	if err != nil {
		return nil, err
	}
	b, err := ps.ComputePrimaryPRF([]byte(recordRootLabel+"1"), 16)
	if err != nil {
		return nil, err
	}
	key := append(a, b...)
	g, err := chacha20poly1305.NewX(key)
	clear(key)
	return g, err
}

// OpenInPlace is Open without a copy: the record is decrypted in place, so
// envelope is overwritten (its record part zeroed when the record fails to
// open) and the plaintext returned shares its memory. It is for a caller that owns envelope, such as a scan
// that copied it out of a read transaction.
//
// It opens versions 1 and 2: for a v1 envelope it returns the record's
// plaintext, for a v2 one the payload SealDerived sealed
// (EnvelopeVersion tells them apart). A v3 envelope needs its identity:
// OpenInPlaceID.
func (pk *PatientKeys) OpenInPlace(envelope, ad []byte) ([]byte, error) {
	return pk.OpenInPlaceScratch(envelope, ad, new(OpenScratch))
}

// OpenScratch is working space for OpenInPlaceScratch. One goroutine
// that opens many records reuses one, so opening a v2 record allocates
// nothing (the AEAD's nonce would otherwise escape to the heap, one
// allocation per record).
type OpenScratch struct {
	nonce [chacha20poly1305.NonceSizeX]byte
}

// OpenInPlaceScratch is OpenInPlace with the caller's working space s,
// which it may not share with another goroutine during the call.
func (pk *PatientKeys) OpenInPlaceScratch(envelope, ad []byte, s *OpenScratch) ([]byte, error) {
	if len(envelope) > 0 && envelope[0] == envelopeV2 {
		recordNonce(&s.nonce, ad)
		return pk.openXNonce(envelope, ad, &s.nonce)
	}
	if len(envelope) < 2 || envelope[0] != envelopeV1 {
		return nil, ErrDecrypt
	}
	n := int(envelope[1])
	rest := envelope[2:]
	if len(rest) < n+chacha20poly1305.NonceSize+chacha20poly1305.Overhead {
		return nil, ErrDecrypt
	}
	dek, err := pk.kek.Decrypt(rest[:n], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	g, err := chacha20poly1305.New(dek)
	if err != nil {
		return nil, ErrDecrypt
	}
	rec := rest[n:]
	ct := rec[chacha20poly1305.NonceSize:]
	padded, err := g.Open(ct[:0], rec[:chacha20poly1305.NonceSize], ct, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, ok := unpad(padded)
	if !ok {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// OpenInPlaceID opens an envelope of any version in place, as
// OpenInPlaceScratch does; id is the record's identity, which a v3
// envelope's key is made from (SealIdentity) and the other versions
// ignore.
func (pk *PatientKeys) OpenInPlaceID(envelope, ad []byte, id [IDSize]byte, s *OpenScratch) ([]byte, error) {
	if len(envelope) > 0 && envelope[0] == envelopeV3 {
		copy(s.nonce[:derivedNoncePrefix], id[:])
		return pk.openXNonce(envelope, ad, &s.nonce)
	}
	return pk.OpenInPlaceScratch(envelope, ad, s)
}

// openXNonce opens a v2 or v3 envelope with nonce, whose identity prefix
// is set.
func (pk *PatientKeys) openXNonce(envelope, ad []byte, nonce *[chacha20poly1305.NonceSizeX]byte) ([]byte, error) {
	rec := envelope[1:]
	if len(rec) < derivedNonceRand+padBlockV2+chacha20poly1305.Overhead {
		return nil, ErrDecrypt
	}
	copy(nonce[derivedNoncePrefix:], rec[:derivedNonceRand])
	ct := rec[derivedNonceRand:]
	padded, err := pk.rec.Open(ct[:0], nonce[:], ct, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, ok := unpad(padded)
	if !ok {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// EnvelopeKeyID reports the Tink id of the KEK key that wrapped an
// envelope's DEK, read from the Tink output prefix. A v2 or v3 envelope
// wraps no key: false.
func EnvelopeKeyID(envelope []byte) (uint32, bool) {
	if len(envelope) < 7 || envelope[0] != envelopeV1 || envelope[2] != 0x01 {
		return 0, false
	}
	return binary.BigEndian.Uint32(envelope[3:7]), true
}

// KEKID is the Tink id of the patient's primary KEK key.
func (pk *PatientKeys) KEKID() uint32 { return pk.kekID }

// Tag is the keyed dedup tag of a data point's uuid.
func (pk *PatientKeys) Tag(uuid string) ([TagSize]byte, error) {
	var t [TagSize]byte
	out, err := pk.prf.ComputePrimaryPRF(append([]byte("uuid|"), uuid...), TagSize)
	if err != nil {
		return t, err
	}
	copy(t[:], out)
	return t, nil
}

// DeriveUUID makes a deterministic uuid (RFC 9562 version 8) for a point
// that arrived without one, keyed under the patient's dedup key so the uuid
// reveals nothing about the values it was derived from.
func (pk *PatientKeys) DeriveUUID(content []byte) (string, error) {
	b, err := pk.prf.ComputePrimaryPRF(append([]byte("derive-uuid|"), content...), 16)
	if err != nil {
		return "", err
	}
	b[6] = (b[6] & 0x0f) | 0x80 // version 8
	b[8] = (b[8] & 0x3f) | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:]), nil
}

// paddedLen is the length of n bytes after padding.
func paddedLen(n int) int { return (n/padBlock + 1) * padBlock }

// unpad strips the ISO/IEC 7816-4 padding Seal added.
func unpad(p []byte) ([]byte, bool) {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case 0:
			continue
		case 0x80:
			return p[:i], true
		default:
			return nil, false
		}
	}
	return nil, false
}
