// Package softauthn is a software WebAuthn authenticator: it makes a
// P-256 passkey, answers a registration with a "none" attestation, and
// signs assertions the way a browser and an authenticator together do.
// Tests use it (as consent/consenttest) to check the grant signatures and
// the sign-in without a browser, and 'vault bench load --attack' to enrol
// and sign in an honest user over HTTP while an attacker floods the server.
//
// It holds its key in memory and claims user verification unasked: it is
// a client for tests and benches, never a credential anyone relies on.
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Authenticator holds one discoverable P-256 credential.
type Authenticator struct {
	RPID   string
	Origin string
	ID     []byte // the credential id
	Handle []byte // the user handle
	Count  uint32 // the signature counter, incremented by each assertion
	key    *ecdsa.PrivateKey
}

// New makes an authenticator with a fresh credential for an RP ID and
// origin.
func New(rpID, origin string) *Authenticator {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	h := make([]byte, 32)
	rand.Read(h)
	return &Authenticator{RPID: rpID, Origin: origin, ID: id, Handle: h, key: k}
}

// PublicKey is the credential's COSE public key (ES256).
func (a *Authenticator) PublicKey() []byte {
	pub, err := a.key.PublicKey.ECDH()
	if err != nil {
		panic(err)
	}
	raw := pub.Bytes() // 0x04 || x || y
	b, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256), XCoord: raw[1:33], YCoord: raw[33:],
	})
	if err != nil {
		panic(err)
	}
	return b
}

// Options change what an assertion claims; the zero value is an honest
// assertion with the user present and verified.
type Options struct {
	Type        string // clientDataJSON type; default webauthn.get
	Origin      string // default the authenticator's origin
	RPID        string // for the rpIdHash; default the authenticator's RP ID
	NoUV        bool   // clear the user-verified flag
	CrossOrigin bool
}

// Assertion is what navigator.credentials.get returns, as bytes.
type Assertion struct {
	AuthenticatorData []byte
	ClientDataJSON    []byte
	Signature         []byte
}

// Sign makes an assertion over a challenge.
func (a *Authenticator) Sign(challenge []byte, o Options) Assertion {
	if o.Type == "" {
		o.Type = string(protocol.AssertCeremony)
	}
	if o.Origin == "" {
		o.Origin = a.Origin
	}
	if o.RPID == "" {
		o.RPID = a.RPID
	}
	cd, _ := json.Marshal(map[string]any{
		"type": o.Type, "challenge": base64.RawURLEncoding.EncodeToString(challenge),
		"origin": o.Origin, "crossOrigin": o.CrossOrigin,
	})
	a.Count++
	rp := sha256.Sum256([]byte(o.RPID))
	flags := byte(protocol.FlagUserPresent | protocol.FlagUserVerified)
	if o.NoUV {
		flags = byte(protocol.FlagUserPresent)
	}
	ad := binary.BigEndian.AppendUint32(append(rp[:], flags), a.Count)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(slices.Concat(ad, cdHash[:]))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		panic(err)
	}
	return Assertion{AuthenticatorData: ad, ClientDataJSON: cd, Signature: sig}
}

// Attest makes the credential for a registration (navigator.credentials
// .create): the vault's creation options are parsed for the challenge and
// the user handle, which the authenticator keeps for its assertions, and
// the answer is the JSON body a page's script posts, with a "none"
// attestation, the user present and verified, and a discoverable
// credential (credProps rk, when the options ask for credProps).
func (a *Authenticator) Attest(creationOptions []byte) ([]byte, error) {
	var opts struct {
		PublicKey struct {
			Challenge protocol.URLEncodedBase64 `json:"challenge"`
			User      struct {
				ID protocol.URLEncodedBase64 `json:"id"`
			} `json:"user"`
			Extensions map[string]any `json:"extensions"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(creationOptions, &opts); err != nil {
		return nil, fmt.Errorf("creation options: %v", err)
	}
	if len(opts.PublicKey.Challenge) == 0 || len(opts.PublicKey.User.ID) == 0 {
		return nil, errors.New("creation options: no challenge or no user id")
	}
	a.Handle = opts.PublicKey.User.ID
	cd, err := json.Marshal(map[string]any{
		"type": string(protocol.CreateCeremony), "challenge": base64.RawURLEncoding.EncodeToString(opts.PublicKey.Challenge),
		"origin": a.Origin, "crossOrigin": false,
	})
	if err != nil {
		return nil, err
	}
	rp := sha256.Sum256([]byte(a.RPID))
	ad := append(rp[:], byte(protocol.FlagUserPresent|protocol.FlagUserVerified|protocol.FlagAttestedCredentialData))
	ad = binary.BigEndian.AppendUint32(ad, a.Count)
	ad = append(ad, make([]byte, 16)...) // AAGUID: none
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(a.ID)))
	ad = append(append(ad, a.ID...), a.PublicKey()...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		return nil, err
	}
	ext := map[string]any{}
	if _, ok := opts.PublicKey.Extensions["credProps"]; ok {
		ext["credProps"] = map[string]any{"rk": true}
	}
	id := base64.RawURLEncoding.EncodeToString(a.ID)
	return json.Marshal(map[string]any{
		"id": id, "rawId": id, "type": "public-key",
		"clientExtensionResults": ext,
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
			"attestationObject": base64.RawURLEncoding.EncodeToString(att),
			"transports":        []string{"internal"},
		},
	})
}

// ResponseJSON is the JSON body a page's script posts for an assertion
// (PublicKeyCredential with base64url members), as go-webauthn parses it.
func (a *Authenticator) ResponseJSON(s Assertion) []byte {
	id := base64.RawURLEncoding.EncodeToString(a.ID)
	b, _ := json.Marshal(map[string]any{
		"id": id, "rawId": id, "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(s.ClientDataJSON),
			"authenticatorData": base64.RawURLEncoding.EncodeToString(s.AuthenticatorData),
			"signature":         base64.RawURLEncoding.EncodeToString(s.Signature),
			"userHandle":        base64.RawURLEncoding.EncodeToString(a.Handle),
		},
	})
	return b
}
