package softauthn

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

type user struct {
	handle []byte
	creds  []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return "ada" }
func (u *user) WebAuthnDisplayName() string                { return "Ada" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// TestRegisterThenSignIn: go-webauthn, as the vault configures it (user
// verification and a discoverable credential required), takes the
// authenticator's registration, then its sign-in assertion; an assertion
// over another challenge, or after a tampered registration, is refused.
func TestRegisterThenSignIn(t *testing.T) {
	const origin = "http://localhost:8080"
	wa, err := webauthn.New(&webauthn.Config{RPID: "localhost", RPDisplayName: "Vault", RPOrigins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	u := &user{handle: []byte("0123456789abcdef0123456789abcdef")}
	creation, sd, err := wa.BeginRegistration(u,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := json.Marshal(creation)
	if err != nil {
		t.Fatal(err)
	}
	a := New("localhost", origin)
	body, err := a.Attest(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Handle, u.handle) {
		t.Fatalf("the authenticator keeps handle %x, the options gave %x", a.Handle, u.handle)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse registration: %v", err)
	}
	if !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() || parsed.ClientExtensionResults.CredProps == nil || !*parsed.ClientExtensionResults.CredProps.RK {
		t.Fatalf("registration without UV or rk: %+v", parsed.ClientExtensionResults)
	}
	cred, err := wa.CreateCredential(u, *sd, parsed)
	if err != nil {
		t.Fatalf("create credential: %v", err)
	}
	if !bytes.Equal(cred.ID, a.ID) || !bytes.Equal(cred.PublicKey, a.PublicKey()) {
		t.Fatal("the stored credential is not the authenticator's")
	}
	u.creds = []webauthn.Credential{*cred}

	// A wrong challenge in the registration is refused.
	var tampered map[string]any
	if err := json.Unmarshal(opts, &tampered); err != nil {
		t.Fatal(err)
	}
	tampered["publicKey"].(map[string]any)["challenge"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	topts, _ := json.Marshal(tampered)
	tbody, err := New("localhost", origin).Attest(topts)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(tbody))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wa.CreateCredential(u, *sd, tp); err == nil {
		t.Fatal("a registration over another challenge was taken")
	}

	// Sign-in with the discoverable credential.
	login := func(challenge []byte) error {
		_, lsd, err := wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			t.Fatal(err)
		}
		if challenge == nil {
			challenge, err = base64URL(lsd.Challenge)
			if err != nil {
				t.Fatal(err)
			}
		}
		p, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(a.ResponseJSON(a.Sign(challenge, Options{}))))
		if err != nil {
			t.Fatal(err)
		}
		_, err = wa.ValidateDiscoverableLogin(func(_, handle []byte) (webauthn.User, error) { return u, nil }, *lsd, p)
		return err
	}
	if err := login(nil); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if err := login([]byte("another challenge")); err == nil {
		t.Fatal("an assertion over another challenge was taken")
	}
}

func base64URL(s string) ([]byte, error) {
	var b protocol.URLEncodedBase64
	err := b.UnmarshalJSON([]byte(`"` + s + `"`))
	return b, err
}
