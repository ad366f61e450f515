// Package consenttest is the software WebAuthn authenticator for tests,
// under the name the tests have always used: it is internal/softauthn,
// which the load bench also signs in with.
package consenttest

import "github.com/jupyterhealth/vault/internal/softauthn"

type (
	// Authenticator is [softauthn.Authenticator].
	Authenticator = softauthn.Authenticator
	// Options is [softauthn.Options].
	Options = softauthn.Options
	// Assertion is [softauthn.Assertion].
	Assertion = softauthn.Assertion
)

// New is [softauthn.New].
func New(rpID, origin string) *Authenticator { return softauthn.New(rpID, origin) }
