package consent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	testRPID   = "localhost"
	testOrigin = "http://localhost:8080"
)

func passkeyEntry(user string, a *consenttest.Authenticator) Entry {
	e := New(KindPasskey, user, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e.Patient = user
	e.Passkey = &Passkey{CredentialID: a.ID, PublicKey: a.PublicKey(), RPID: a.RPID, Origin: a.Origin}
	return e
}

func nonce() []byte {
	n := make([]byte, NonceSize)
	rand.Read(n)
	return n
}

// signGrant signs a grant entry with an authenticator, as the web UI's
// ceremony does, naming the passkey entry at pkIndex.
func signGrant(t testing.TB, e Entry, a *consenttest.Authenticator, pkIndex int64, o consenttest.Options) Entry {
	t.Helper()
	n := nonce()
	ch, err := GrantChallenge(e, n)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Sign(ch, o)
	g := *e.Grant
	g.Assertion = &Assertion{CredentialID: a.ID, PasskeyIndex: pkIndex, Nonce: n, AuthenticatorData: s.AuthenticatorData, ClientDataJSON: s.ClientDataJSON, Signature: s.Signature}
	e.Grant = &g
	return e
}

// mutated is a copy of e, made from its canonical bytes, changed by fn:
// the entry a verifier would get after someone altered what was signed.
func mutated(t *testing.T, e Entry, fn func(e *Entry)) Entry {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	fn(&c)
	return c
}

// TestVerifyGrantAssertion checks each claim the assertion makes.
func TestVerifyGrantAssertion(t *testing.T) {
	a := consenttest.New(testRPID, testOrigin)
	pk := passkeyEntry("pt_a", a)
	other := consenttest.New(testRPID, testOrigin)
	honest := signGrant(t, grantEntry(1), a, 0, consenttest.Options{})
	if err := VerifyGrantAssertion(honest, pk); err != nil {
		t.Fatalf("an honest assertion: %v", err)
	}
	mutate := func(fn func(e *Entry)) Entry { return mutated(t, honest, fn) }
	cases := []struct {
		name    string
		grant   Entry
		passkey Entry
		want    string
	}{
		{"webauthn.create", signGrant(t, grantEntry(1), a, 0, consenttest.Options{Type: "webauthn.create"}), pk, "type"},
		{"another origin", signGrant(t, grantEntry(1), a, 0, consenttest.Options{Origin: "https://evil.example"}), pk, "origin"},
		{"another rp id", signGrant(t, grantEntry(1), a, 0, consenttest.Options{RPID: "evil.example"}), pk, "RP ID"},
		{"user not verified", signGrant(t, grantEntry(1), a, 0, consenttest.Options{NoUV: true}), pk, "not verified"},
		{"cross-origin", signGrant(t, grantEntry(1), a, 0, consenttest.Options{CrossOrigin: true}), pk, "cross-origin"},
		{"another authenticator's key", signGrant(t, grantEntry(1), other, 0, consenttest.Options{}), passkeyEntry("pt_a", a), "credential"},
		{"another patient's passkey", honest, passkeyEntry("pt_z", a), "not the patient's"},
		{"not a passkey entry", honest, grantEntry(2), "not a passkey-registered"},
		{"grant body changed", mutate(func(e *Entry) { e.Grant.Expires = "2100-01-01T00:00:00Z" }), pk, "challenge"},
		{"schema added", mutate(func(e *Entry) { e.Grant.Schemas = append(e.Grant.Schemas, "omh:heart-rate") }), pk, "challenge"},
		{"clinician changed", mutate(func(e *Entry) { e.Clinician = "cl_x" }), pk, "challenge"},
		{"salt changed", mutate(func(e *Entry) { e.Salt[0] ^= 1 }), pk, "challenge"},
		{"nonce changed", mutate(func(e *Entry) { e.Grant.Assertion.Nonce[3] ^= 1 }), pk, "challenge"},
		{"short nonce", mutate(func(e *Entry) { e.Grant.Assertion.Nonce = e.Grant.Assertion.Nonce[:8] }), pk, "nonce"},
		{"signature flipped", mutate(func(e *Entry) { e.Grant.Assertion.Signature[10] ^= 1 }), pk, "signature"},
		{"counter changed", mutate(func(e *Entry) { e.Grant.Assertion.AuthenticatorData[36] ^= 1 }), pk, "signature"},
		{"uv flag cleared", mutate(func(e *Entry) { e.Grant.Assertion.AuthenticatorData[32] &^= 0x04 }), pk, "not verified"},
		{"client data changed", mutate(func(e *Entry) {
			e.Grant.Assertion.ClientDataJSON = bytes.Replace(e.Grant.Assertion.ClientDataJSON, []byte(`"crossOrigin":false`), []byte(`"crossOrigin":false `), 1)
		}), pk, "signature"},
		{"client data not json", mutate(func(e *Entry) { e.Grant.Assertion.ClientDataJSON[0] = 'x' }), pk, "not JSON"},
		{"unsigned", grantEntry(1), pk, "not a signed grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyGrantAssertion(tc.grant, tc.passkey)
			if !errors.Is(err, ErrBadAssertion) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadAssertion saying %q", err, tc.want)
			}
		})
	}
}

// TestAppendSignedGrant: a signed grant is stored signed and verifies; the
// ledger refuses one whose assertion does not verify, appending nothing.
func TestAppendSignedGrant(t *testing.T) {
	e := newTestEnv(t)
	a := consenttest.New(testRPID, testOrigin)
	pkIdx := e.append(t, passkeyEntry("pt_a", a))
	e.append(t, grantEntry(0)) // unsigned, as with an API token
	refused := []struct {
		name  string
		entry Entry
	}{
		{"bad signature", func() Entry {
			g := signGrant(t, grantEntry(1), a, pkIdx, consenttest.Options{})
			g.Grant.Assertion.Signature[8] ^= 1
			return g
		}()},
		{"passkey index not a passkey", signGrant(t, grantEntry(1), a, 1, consenttest.Options{})},
		{"passkey index beyond the log", signGrant(t, grantEntry(1), a, 99, consenttest.Options{})},
		{"passkey index negative", signGrant(t, grantEntry(1), a, -1, consenttest.Options{})},
		{"user not verified", signGrant(t, grantEntry(1), a, pkIdx, consenttest.Options{NoUV: true})},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			n0 := e.size(t)
			if _, err := e.l.Append(tc.entry); !errors.Is(err, ErrBadAssertion) {
				t.Fatalf("append: %v, want ErrBadAssertion", err)
			}
			if n1 := e.size(t); n1 != n0 {
				t.Fatalf("size %d after a refused append, was %d", n1, n0)
			}
			if _, err := e.l.Grant("gr_1"); !errors.Is(err, ErrNoGrant) {
				t.Fatal("a refused grant is in the index")
			}
		})
	}
	idx, err := e.l.Append(signGrant(t, grantEntry(1), a, pkIdx, consenttest.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.l.Grant("gr_1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.l.Grant("gr_0")
	if err != nil {
		t.Fatal(err)
	}
	if !g.Signed || u.Signed || g.Index != idx {
		t.Fatalf("signed %v (index %d), unsigned %v", g.Signed, g.Index, u.Signed)
	}
	res, err := e.l.Verify(nil)
	if err != nil || res.SignedGrants != 1 {
		t.Fatalf("verify: %v, %d signed grants", err, res.SignedGrants)
	}
}

// rewriteEntry replaces entry i as someone holding the root key and the
// database file could: the altered entry is re-sealed, every stored hash
// recomputed, the grant index and its digest rebuilt, and the checkpoints
// replaced by a fresh one. Only what needs the patient's passkey is left
// to catch it.
func (e *testEnv) rewriteEntry(t *testing.T, i int64, fn func(*Entry)) {
	t.Helper()
	en, _, err := e.l.Entry(i)
	if err != nil {
		t.Fatal(err)
	}
	fn(&en)
	b, err := en.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.Ledger().Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		sealed, err := e.master.Encrypt(b, entryAD(i))
		if err != nil {
			return err
		}
		if err := tx.PutEntry(i, sealed); err != nil {
			return err
		}
		n, err := tx.Size()
		if err != nil {
			return err
		}
		for j := int64(0); j < n; j++ {
			sealed, err := tx.Entry(j)
			if err != nil {
				return err
			}
			raw, err := e.master.Decrypt(sealed, entryAD(j))
			if err != nil {
				return err
			}
			hs, err := tlog.StoredHashes(j, raw, tx)
			if err != nil {
				return err
			}
			if err := tx.PutHashes(tlog.StoredHashIndex(0, j), hs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoints go: they would name the old root.
	var sizes []int64
	err = e.store.Ledger().View(context.Background(), func(tx ledgerstore.ReadTx) error {
		return tx.Checkpoints(func(size int64, _ []byte) error { sizes = append(sizes, size); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	tamper := e.store.LedgerTamperer()
	for _, size := range sizes {
		if err := tamper.SetRaw("checkpoints", strconv.FormatInt(size, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.l.Rebuild(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Sign(); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyDetectsAlteredSignedGrant: a signed grant altered after it was
// signed, in its assertion or in its body, fails verify, even when
// everything that can be recomputed without the patient's passkey (the
// sealing, the Merkle hashes, the index, the checkpoints) was.
func TestVerifyDetectsAlteredSignedGrant(t *testing.T) {
	cases := []struct {
		name string
		fn   func(e *Entry, other int64)
		want string
	}{
		{"flip a signature byte", func(e *Entry, _ int64) { e.Grant.Assertion.Signature[12] ^= 1 }, "signature"},
		{"flip an authenticator data byte", func(e *Entry, _ int64) { e.Grant.Assertion.AuthenticatorData[35] ^= 1 }, "signature"},
		{"flip a client data byte", func(e *Entry, _ int64) {
			cd := e.Grant.Assertion.ClientDataJSON
			cd[bytes.Index(cd, []byte(`"challenge":"`))+14] ^= 1
		}, "challenge"},
		{"change the nonce", func(e *Entry, _ int64) { e.Grant.Assertion.Nonce[0] ^= 1 }, "challenge"},
		{"extend the expiry", func(e *Entry, _ int64) { e.Grant.Expires = "2100-01-01T00:00:00Z" }, "challenge"},
		{"widen the data window", func(e *Entry, _ int64) { e.Grant.DataFrom = "" }, "challenge"},
		{"add a schema", func(e *Entry, _ int64) { e.Grant.Schemas = append(e.Grant.Schemas, "omh:heart-rate") }, "challenge"},
		{"name another passkey entry", func(e *Entry, other int64) { e.Grant.Assertion.PasskeyIndex = other }, "credential"},
		{"name a later entry", func(e *Entry, _ int64) { e.Grant.Assertion.PasskeyIndex = 5 }, "not a passkey-registered entry before it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			a, b := consenttest.New(testRPID, testOrigin), consenttest.New(testRPID, testOrigin)
			pkA := e.append(t, passkeyEntry("pt_a", a))
			pkB := e.append(t, passkeyEntry("pt_a", b))
			g := grantEntry(1)
			g.Grant.DataFrom = "2025-01-01T00:00:00Z"
			gi := e.append(t, signGrant(t, g, a, pkA, consenttest.Options{}))
			for i := range 3 {
				e.append(t, grantEntry(10+i))
			}
			e.sign(t)
			if _, err := e.l.Verify(nil); err != nil {
				t.Fatalf("untouched: %v", err)
			}
			e.rewriteEntry(t, gi, func(en *Entry) { tc.fn(en, pkB) })
			_, err := e.l.Verify(nil)
			var te *TamperError
			if !errors.As(err, &te) || te.Index != gi || !strings.Contains(te.What, tc.want) {
				t.Fatalf("verify: %v, want a TamperError at %d saying %q", err, gi, tc.want)
			}
		})
	}
	// The rewrite itself leaves an unsigned log verifying: what fails
	// above is the signature check alone.
	t.Run("control", func(t *testing.T) {
		e := newTestEnv(t)
		for i := range 4 {
			e.append(t, grantEntry(i))
		}
		e.rewriteEntry(t, 1, func(en *Entry) { en.Grant.Expires = "2100-01-01T00:00:00Z" })
		if _, err := e.l.Verify(nil); err != nil {
			t.Fatalf("a consistent rewrite of an unsigned grant: %v", err)
		}
	})
}

// TestVerifyRefusesGrantsAfterPasskeyRemoved: once a passkey-removed entry
// names a credential, a grant signed with it later in the log fails verify
// (a server that kept a removed passkey, or forged with one, is caught);
// grants it signed before its removal stay valid.
func TestVerifyRefusesGrantsAfterPasskeyRemoved(t *testing.T) {
	e := newTestEnv(t)
	a := consenttest.New(testRPID, testOrigin)
	pkIdx, err := e.l.Append(passkeyEntry("pt_a", a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Append(signGrant(t, grantEntry(0), a, pkIdx, consenttest.Options{})); err != nil {
		t.Fatal(err)
	}
	rm := New(KindPasskeyRemoved, "pt_a", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	rm.Patient = "pt_a"
	rm.Passkey = &Passkey{CredentialID: a.ID}
	rmIdx, err := e.l.Append(rm)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.l.Verify(nil); err != nil || res.SignedGrants != 1 {
		t.Fatalf("verify with the grant signed before the removal: %v", err)
	}
	late, err := e.l.Append(signGrant(t, grantEntry(1), a, pkIdx, consenttest.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.l.Verify(nil)
	var te *TamperError
	if !errors.As(err, &te) || te.Index != late || !strings.Contains(err.Error(), fmt.Sprintf("removed at entry %d", rmIdx)) {
		t.Fatalf("verify: %v, want a tamper at %d naming the removal at %d", err, late, rmIdx)
	}
}
