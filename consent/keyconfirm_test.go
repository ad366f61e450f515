package consent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/consenttest"
)

const testRecipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

func clinicianPassconfirmableKey(user string, a *consenttest.Authenticator) Entry {
	e := New(KindPasskey, user, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e.Clinician = user
	e.Passkey = &Passkey{CredentialID: a.ID, PublicKey: a.PublicKey(), RPID: a.RPID, Origin: a.Origin}
	return e
}

func confirmableKey(clinician, recipient string) Entry {
	now := time.Now()
	e := New(KindClinicianKeyAdd, clinician, now)
	e.Clinician = clinician
	e.Key = &ClinicianKey{Fingerprint: Fingerprint(recipient), Recipient: recipient, Label: "hub", ActiveFrom: e.Time}
	return e
}

// confirmKey signs a key entry with an authenticator, as the web UI's key
// ceremony does.
func confirmKey(t testing.TB, e Entry, a *consenttest.Authenticator, pkIndex int64, o consenttest.Options) Entry {
	t.Helper()
	n := nonce()
	ch, err := KeyChallenge(e, n)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Sign(ch, o)
	k := *e.Key
	k.Assertion = &Assertion{CredentialID: a.ID, PasskeyIndex: pkIndex, Nonce: n, AuthenticatorData: s.AuthenticatorData, ClientDataJSON: s.ClientDataJSON, Signature: s.Signature}
	e.Key = &k
	return e
}

func TestVerifyKeyConfirmation(t *testing.T) {
	a := consenttest.New(testRPID, testOrigin)
	pk := clinicianPassconfirmableKey("cl_a", a)
	honest := confirmKey(t, confirmableKey("cl_a", testRecipient), a, 0, consenttest.Options{})
	if err := VerifyKeyConfirmation(honest, pk); err != nil {
		t.Fatalf("an honest confirmation: %v", err)
	}
	mutate := func(fn func(e *Entry)) Entry { return mutated(t, honest, fn) }
	// A grant's challenge over the same bytes is not a key's: the
	// challenges differ in what they hash.
	if gc, err := GrantChallenge(honest, honest.Key.Assertion.Nonce); err == nil || gc != nil {
		t.Fatal("GrantChallenge accepted a key entry")
	}
	cases := []struct {
		name    string
		key     Entry
		passkey Entry
		want    string
	}{
		{"recipient swapped", mutate(func(e *Entry) { e.Key.Recipient = "age1other" }), pk, "challenge"},
		{"active_from moved", mutate(func(e *Entry) { e.Key.ActiveFrom = "2020-01-01T00:00:00Z" }), pk, "challenge"},
		{"signature flipped", mutate(func(e *Entry) { e.Key.Assertion.Signature[10] ^= 1 }), pk, "signature"},
		{"uv cleared", confirmKey(t, confirmableKey("cl_a", testRecipient), a, 0, consenttest.Options{NoUV: true}), pk, "not verified"},
		{"another origin", confirmKey(t, confirmableKey("cl_a", testRecipient), a, 0, consenttest.Options{Origin: "https://evil.example"}), pk, "origin"},
		{"a patient's passkey", honest, passkeyEntry("cl_a", a), "not the clinician's"},
		{"another clinician's passkey", honest, clinicianPassconfirmableKey("cl_b", a), "not the clinician's"},
		{"unconfirmed", confirmableKey("cl_a", testRecipient), pk, "not a confirmed key"},
		{"not a passkey entry", honest, confirmableKey("cl_a", testRecipient), "not a passkey-registered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyKeyConfirmation(tc.key, tc.passkey)
			if !errors.Is(err, ErrBadKeyConfirmation) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadKeyConfirmation saying %q", err, tc.want)
			}
		})
	}
}

// TestAppendConfirmedKey: a confirmed key is stored confirmed, active from
// its entry's time, and verifies; the ledger refuses a confirmation that
// does not verify, appending nothing; an altered confirmation fails verify.
func TestAppendConfirmedKey(t *testing.T) {
	e := newTestEnv(t)
	a := consenttest.New(testRPID, testOrigin)
	pkIdx := e.append(t, clinicianPassconfirmableKey("cl_a", a))
	patientPk := e.append(t, passkeyEntry("pt_a", a))
	for _, tc := range []struct {
		name  string
		entry Entry
	}{
		{"bad signature", func() Entry {
			k := confirmKey(t, confirmableKey("cl_a", testRecipient), a, pkIdx, consenttest.Options{})
			k.Key.Assertion.Signature[8] ^= 1
			return k
		}()},
		{"a patient's passkey entry", confirmKey(t, confirmableKey("cl_a", testRecipient), a, patientPk, consenttest.Options{})},
		{"passkey index beyond the log", confirmKey(t, confirmableKey("cl_a", testRecipient), a, 99, consenttest.Options{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n0 := e.size(t)
			if _, err := e.l.Append(tc.entry); !errors.Is(err, ErrBadKeyConfirmation) {
				t.Fatalf("append: %v, want ErrBadKeyConfirmation", err)
			}
			if n1 := e.size(t); n1 != n0 || len(e.l.ClinicianKeys("cl_a")) != 0 {
				t.Fatal("a refused confirmation changed the ledger")
			}
		})
	}
	ki, err := e.l.Append(confirmKey(t, confirmableKey("cl_a", testRecipient), a, pkIdx, consenttest.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ks := e.l.ClinicianKeys("cl_a")
	if len(ks) != 1 || !ks[0].Confirmed || !ks[0].Active(ks[0].Added) {
		t.Fatalf("keys %+v", ks)
	}
	e.sign(t)
	res, err := e.l.Verify(nil)
	if err != nil || res.ConfirmedKeys != 1 {
		t.Fatalf("verify: %v, %d confirmed keys", err, res.ConfirmedKeys)
	}
	// Tampered afterwards, with everything recomputable recomputed: the
	// recipient redirected, or the confirmation's signature altered.
	for _, tc := range []struct {
		name string
		fn   func(*Entry)
		want string
	}{
		{"redirect the recipient", func(en *Entry) {
			r := "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"
			en.Key.Recipient, en.Key.Fingerprint = r, Fingerprint(r)
		}, "challenge"},
		{"flip the signature", func(en *Entry) { en.Key.Assertion.Signature[5] ^= 1 }, "signature"},
		{"flip the uv flag", func(en *Entry) { en.Key.Assertion.AuthenticatorData[32] &^= 0x04 }, "not verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			pk := e.append(t, clinicianPassconfirmableKey("cl_a", a))
			ki := e.append(t, confirmKey(t, confirmableKey("cl_a", testRecipient), a, pk, consenttest.Options{}))
			e.rewriteEntry(t, ki, tc.fn)
			_, err := e.l.Verify(nil)
			var te *TamperError
			if !errors.As(err, &te) || te.Index != ki || !strings.Contains(te.What, tc.want) || !strings.Contains(te.What, "confirmation") {
				t.Fatalf("verify: %v, want a TamperError at %d saying %q", err, ki, tc.want)
			}
		})
	}
	_ = ki
}
