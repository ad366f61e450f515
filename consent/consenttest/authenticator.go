// Package consenttest is a software WebAuthn authenticator for tests: it
// makes a P-256 passkey and signs assertions the way a browser and an
// authenticator together do, so the grant signature checks can be tested
// without a browser. It is for tests only.
package consenttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
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
