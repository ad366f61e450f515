package api_test

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/consenttest"
)

// signedEnv is newExportEnv's setup on a server configured by cfg: 20
// glucose readings, the clinician's hub key, and an unsigned grant made
// with the patient's API token.
func signedEnv(t *testing.T, cfg api.Config) *exportEnv {
	t.Helper()
	cfg.KeyActivationDelay = -1
	f := newFixture(t, cfg)
	if st, b := f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(20))); st != 201 {
		t.Fatalf("ingest: %d %s", st, b)
	}
	id, idPath := f.hubKey(t, f.clin, "hub")
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"},
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb)
	var g api.GrantResponse
	if st != 201 || json.Unmarshal(b, &g) != nil || g.Signed {
		t.Fatalf("grant: %d %s", st, b)
	}
	return &exportEnv{fixture: f, id: id, idPath: idPath, fp: consent.Fingerprint(id.Recipient().String()), grantID: g.ID}
}

// signedGrant appends a grant signed with a passkey, as the web UI makes
// one: the passkey's ledger entry, then the grant with the assertion over
// its challenge.
func (e *exportEnv) signedGrant(t *testing.T) string {
	t.Helper()
	a := consenttest.New("localhost", "http://localhost:8080")
	pk := consent.New(consent.KindPasskey, e.patient.ID, time.Now())
	pk.Patient = e.patient.ID
	pk.Passkey = &consent.Passkey{CredentialID: a.ID, PublicKey: a.PublicKey(), RPID: a.RPID, Origin: a.Origin}
	pkIdx, err := e.ledger.Append(pk)
	if err != nil {
		t.Fatal(err)
	}
	g, err := consent.NewGrant(e.patient.ID, consent.GrantRequest{Clinician: e.clinID, Schemas: []string{"omh:blood-glucose"},
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"}, func(string) bool { return true }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, consent.NonceSize)
	rand.Read(nonce)
	ch, err := consent.GrantChallenge(g, nonce)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Sign(ch, consenttest.Options{})
	g.Grant.Assertion = &consent.Assertion{CredentialID: a.ID, PasskeyIndex: pkIdx, Nonce: nonce,
		AuthenticatorData: s.AuthenticatorData, ClientDataJSON: s.ClientDataJSON, Signature: s.Signature}
	if _, err := e.ledger.Append(g); err != nil {
		t.Fatal(err)
	}
	return g.Grant.ID
}

// TestExportSignedGrants: the manifest says whether each covering grant
// was signed; with RequireSignedGrants an export covered only by unsigned
// grants is 403 unsigned_grant, and a signed grant alone covers it.
func TestExportSignedGrants(t *testing.T) {
	const q = "schema=omh:blood-glucose:4.0"
	manifestGrants := func(t *testing.T, e *exportEnv) map[string]bool {
		t.Helper()
		st, ct := e.do(t, "GET", e.exportURL(e.patient.ID, q), e.clin, "", nil)
		if st != 200 {
			t.Fatalf("export: %d %s", st, ct)
		}
		m, _, _ := splitExport(t, ageDecrypt(t, e.idPath, ct))
		out := map[string]bool{}
		for _, g := range m.Grants {
			out[g.ID] = g.Signed
		}
		return out
	}

	t.Run("default: both count, each marked", func(t *testing.T) {
		e := signedEnv(t, api.Config{})
		if got := manifestGrants(t, e); len(got) != 1 || got[e.grantID] {
			t.Fatalf("manifest grants %v, want %s unsigned", got, e.grantID)
		}
		signed := e.signedGrant(t)
		got := manifestGrants(t, e)
		if len(got) != 2 || got[e.grantID] || !got[signed] {
			t.Fatalf("manifest grants %v, want %s unsigned and %s signed", got, e.grantID, signed)
		}
		// The grants endpoint says so too.
		_, b := e.do(t, "GET", "/api/v1/grants/"+signed, e.ptok, "", nil)
		var g api.GrantResponse
		if json.Unmarshal(b, &g) != nil || !g.Signed {
			t.Fatalf("grant %s", b)
		}
	})

	t.Run("required: unsigned alone is refused", func(t *testing.T) {
		e := signedEnv(t, api.Config{RequireSignedGrants: true})
		st, b := e.do(t, "GET", e.exportURL(e.patient.ID, q), e.clin, "", nil)
		if st != 403 {
			t.Fatalf("export on an unsigned grant: %d %s", st, b)
		}
		eb := errBody(t, b)
		if eb.Code != "unsigned_grant" || !strings.Contains(eb.Message, "passkey") || !strings.Contains(eb.Message, "consent page") {
			t.Fatalf("error %+v", eb)
		}
		// No access was logged for the refusal.
		if n := len(mustAccesses(t, e.ledger, e.patient.ID)); n != 0 {
			t.Fatalf("%d accesses logged", n)
		}
		// Other refusals keep their own reasons.
		st, b = e.do(t, "GET", e.exportURL(e.otherPatient, q), e.clin, "", nil)
		if st != 403 || errBody(t, b).Code != "no_consent" {
			t.Fatalf("another patient: %d %s", st, b)
		}
		signed := e.signedGrant(t)
		got := manifestGrants(t, e)
		if len(got) != 1 || !got[signed] {
			t.Fatalf("manifest grants %v, want only the signed %s", got, signed)
		}
		// Revoking the signed grant leaves only the unsigned one: refused.
		if st, b := e.do(t, "POST", "/api/v1/grants/"+signed+"/revoke", e.ptok, "", nil); st != 200 {
			t.Fatalf("revoke: %d %s", st, b)
		}
		if st, b := e.do(t, "GET", e.exportURL(e.patient.ID, q), e.clin, "", nil); st != 403 || errBody(t, b).Code != "unsigned_grant" {
			t.Fatalf("after revoking the signed grant: %d %s", st, b)
		}
	})
}
