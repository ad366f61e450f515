package consent

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// ErrBadKeyConfirmation is wrapped by every reason a clinician key's
// passkey confirmation fails.
var ErrBadKeyConfirmation = errors.New("the key's passkey confirmation does not verify")

func badKeyConfirmation(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadKeyConfirmation, fmt.Sprintf(format, args...))
}

// unsignedKeyBytes returns the canonical bytes of a clinician-key-added
// entry without its assertion: what the clinician's passkey signs.
func unsignedKeyBytes(e Entry) ([]byte, error) {
	if e.Kind != KindClinicianKeyAdd || e.Key == nil {
		return nil, errors.New("not a clinician-key-added entry")
	}
	k := *e.Key
	k.Assertion = nil
	e.Key = &k
	return e.Marshal()
}

// KeyChallenge is the WebAuthn challenge a clinician's passkey signs to
// confirm a recipient key: SHA-256(nonce || the clinician-key-added
// entry's canonical bytes without its assertion), exactly as
// GrantChallenge is for a grant. The entry's salt, time, clinician,
// recipient, fingerprint, label and active_from are all in those bytes.
func KeyChallenge(e Entry, nonce []byte) ([]byte, error) {
	b, err := unsignedKeyBytes(e)
	if err != nil {
		return nil, err
	}
	return entryChallenge(b, nonce)
}

// VerifyKeyConfirmation checks a confirmed clinician-key-added entry's
// assertion against the credential's passkey-registered entry, as
// VerifyGrantAssertion does for a grant: the passkey and the key are the
// same clinician's, the credential is the one the passkey entry
// registered, and the assertion (challenge, origin, RP ID, UP and UV
// flags, signature) verifies with that entry's public key. Every failure
// wraps ErrBadKeyConfirmation.
func VerifyKeyConfirmation(key, passkey Entry) error {
	if key.Kind != KindClinicianKeyAdd || key.Key == nil || key.Key.Assertion == nil {
		return badKeyConfirmation("the entry is not a confirmed key")
	}
	a := key.Key.Assertion
	if passkey.Kind != KindPasskey || passkey.Passkey == nil {
		return badKeyConfirmation("entry %d is not a passkey-registered entry", a.PasskeyIndex)
	}
	pk := passkey.Passkey
	if passkey.Clinician == "" || passkey.Clinician != key.Clinician {
		return badKeyConfirmation("the passkey of entry %d is not the clinician's", a.PasskeyIndex)
	}
	if !bytes.Equal(pk.CredentialID, a.CredentialID) {
		return badKeyConfirmation("the credential is not the one entry %d registered", a.PasskeyIndex)
	}
	challenge, err := KeyChallenge(key, a.Nonce)
	if err != nil {
		return badKeyConfirmation("%v", err)
	}
	return checkAssertion(a, challenge, pk, badKeyConfirmation)
}

// checkConfirmedKey verifies a confirmed key about to be stored at index n
// against the passkey entry it names, inside the append's transaction, so
// the ledger never stores a confirmation that verify would refuse.
func (l *Ledger) checkConfirmedKey(tx ledgerstore.ReadTx, n int64, e *Entry) error {
	a := e.Key.Assertion
	if a.PasskeyIndex < 0 || a.PasskeyIndex >= n {
		return badKeyConfirmation("it names passkey entry %d, which is not before it", a.PasskeyIndex)
	}
	pk, err := l.txEntry(tx, a.PasskeyIndex)
	if err != nil {
		return err
	}
	return VerifyKeyConfirmation(*e, pk)
}
