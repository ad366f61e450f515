package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// NonceSize is the length of the server nonce a grant's challenge mixes in.
const NonceSize = 32

// Assertion is a patient's WebAuthn assertion over a grant, as the grant
// entry stores it. Its challenge is GrantChallenge(entry, Nonce): the
// SHA-256 of the nonce and the entry's canonical bytes without the
// assertion. Anyone holding the entry and the credential's
// passkey-registered entry can check it (VerifyGrantAssertion); no server
// table is needed.
type Assertion struct {
	CredentialID []byte `json:"credential_id"`
	// PasskeyIndex is the ledger index of the credential's
	// passkey-registered entry, which holds its COSE public key.
	PasskeyIndex      int64  `json:"passkey_index"`
	Nonce             []byte `json:"nonce"` // NonceSize random bytes from the server
	AuthenticatorData []byte `json:"authenticator_data"`
	ClientDataJSON    []byte `json:"client_data_json"`
	Signature         []byte `json:"signature"`
}

// ErrBadAssertion is wrapped by every reason a grant's assertion fails.
var ErrBadAssertion = errors.New("the grant's passkey assertion does not verify")

func badAssertion(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAssertion, fmt.Sprintf(format, args...))
}

// unsignedBytes returns the canonical bytes of a grant entry without its
// assertion: what the patient's passkey signs.
func unsignedBytes(e Entry) ([]byte, error) {
	if e.Kind != KindGrant || e.Grant == nil {
		return nil, errors.New("not a grant entry")
	}
	g := *e.Grant
	g.Assertion = nil
	e.Grant = &g
	return e.Marshal()
}

// entryChallenge is SHA-256(nonce || b), the challenge a passkey signs over
// an entry's canonical bytes b without its assertion.
func entryChallenge(b, nonce []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("the nonce must be %d bytes", NonceSize)
	}
	h := sha256.New()
	h.Write(nonce)
	h.Write(b)
	return h.Sum(nil), nil
}

// GrantChallenge is the WebAuthn challenge a patient's passkey signs to
// make a grant: SHA-256(nonce || the entry's canonical bytes without its
// assertion). The entry's salt, time, parties, grant id and scope are all
// in those bytes, so the signature covers exactly this grant; the nonce is
// the server's, fresh for each ceremony.
func GrantChallenge(e Entry, nonce []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("the nonce must be %d bytes", NonceSize)
	}
	b, err := unsignedBytes(e)
	if err != nil {
		return nil, err
	}
	return entryChallenge(b, nonce)
}

// VerifyGrantAssertion checks a signed grant entry's assertion against
// the credential's passkey-registered entry: the credential and the
// patient are the passkey's; clientDataJSON is a webauthn.get for the
// recomputed challenge, from the passkey's origin, not cross-origin;
// authenticatorData is for the passkey's RP ID, with the user present and
// verified; and the signature over authenticatorData || SHA-256(clientDataJSON)
// verifies with the passkey's COSE public key. Every failure wraps
// ErrBadAssertion.
func VerifyGrantAssertion(grant, passkey Entry) error {
	if grant.Kind != KindGrant || grant.Grant == nil || grant.Grant.Assertion == nil {
		return badAssertion("the entry is not a signed grant")
	}
	a := grant.Grant.Assertion
	if passkey.Kind != KindPasskey || passkey.Passkey == nil {
		return badAssertion("entry %d is not a passkey-registered entry", a.PasskeyIndex)
	}
	pk := passkey.Passkey
	if passkey.Patient == "" || passkey.Patient != grant.Patient {
		return badAssertion("the passkey of entry %d is not the patient's", a.PasskeyIndex)
	}
	if !bytes.Equal(pk.CredentialID, a.CredentialID) {
		return badAssertion("the credential is not the one entry %d registered", a.PasskeyIndex)
	}
	challenge, err := GrantChallenge(grant, a.Nonce)
	if err != nil {
		return badAssertion("%v", err)
	}
	return checkAssertion(a, challenge, pk, badAssertion)
}

// checkAssertion checks a stored assertion against its challenge and the
// passkey-registered entry's key, RP ID and origin: clientDataJSON is a
// webauthn.get for the challenge, from the passkey's origin, not
// cross-origin; authenticatorData is for the passkey's RP ID, with the user
// present and verified; and the signature over authenticatorData ||
// SHA-256(clientDataJSON) verifies with the passkey's COSE public key. bad
// makes each failure's error.
func checkAssertion(a *Assertion, challenge []byte, pk *Passkey, bad func(string, ...any) error) error {
	var cd protocol.CollectedClientData
	if err := json.Unmarshal(a.ClientDataJSON, &cd); err != nil {
		return bad("clientDataJSON is not JSON")
	}
	switch {
	case cd.Type != protocol.AssertCeremony:
		return bad("clientDataJSON's type is %q, not webauthn.get", cd.Type)
	case cd.Challenge != base64.RawURLEncoding.EncodeToString(challenge):
		return bad("clientDataJSON's challenge is not the entry's")
	case cd.Origin != pk.Origin:
		return bad("clientDataJSON's origin is not the passkey's")
	case cd.CrossOrigin || cd.TopOrigin != "":
		return bad("the assertion was made cross-origin")
	}

	var ad protocol.AuthenticatorData
	if err := ad.Unmarshal(a.AuthenticatorData); err != nil {
		return bad("authenticatorData does not parse")
	}
	rpIDHash := sha256.Sum256([]byte(pk.RPID))
	switch {
	case !bytes.Equal(ad.RPIDHash, rpIDHash[:]):
		return bad("authenticatorData is for another RP ID")
	case !ad.Flags.HasUserPresent():
		return bad("the user was not present")
	case !ad.Flags.HasUserVerified():
		return bad("the user was not verified")
	}

	key, err := webauthncose.ParsePublicKey(pk.PublicKey)
	if err != nil {
		return bad("the passkey's public key does not parse")
	}
	cdHash := sha256.Sum256(a.ClientDataJSON)
	ok, err := webauthncose.VerifySignature(key, slices.Concat(a.AuthenticatorData, cdHash[:]), a.Signature)
	if err != nil || !ok {
		return bad("the signature does not verify with the passkey's public key")
	}
	return nil
}

// checkSignedGrant verifies a signed grant about to be stored at index n
// against the passkey entry it names, read inside the append's
// transaction: the ledger never stores a signed grant that verify would
// refuse.
func (l *Ledger) checkSignedGrant(tx ledgerstore.ReadTx, n int64, e *Entry) error {
	a := e.Grant.Assertion
	if a.PasskeyIndex < 0 || a.PasskeyIndex >= n {
		return badAssertion("it names passkey entry %d, which is not before it", a.PasskeyIndex)
	}
	pk, err := l.txEntry(tx, a.PasskeyIndex)
	if err != nil {
		return err
	}
	return VerifyGrantAssertion(*e, pk)
}

// txEntry reads and parses entry i inside a transaction.
func (l *Ledger) txEntry(tx ledgerstore.ReadTx, i int64) (Entry, error) {
	sealed, err := tx.Entry(i)
	if err != nil {
		return Entry{}, err
	}
	if sealed == nil {
		return Entry{}, fmt.Errorf("entry %d is missing", i)
	}
	b, err := l.sealer.Decrypt(sealed, entryAD(i))
	if err != nil {
		return Entry{}, fmt.Errorf("entry %d does not decrypt", i)
	}
	return Parse(b)
}
