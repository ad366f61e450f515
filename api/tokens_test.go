package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// TestTokensAPI: GET /api/v1/tokens lists the caller's own tokens, never a
// secret or hash; DELETE /api/v1/tokens/{id} revokes one, which fails to
// authenticate at once; another user's token id answers 404 and stays
// usable; only patient tokens may do either; the revoke is in the ledger.
func TestTokensAPI(t *testing.T) {
	f := newFixture(t, api.Config{})
	list := func(tok string) api.TokensResponse {
		t.Helper()
		st, b := f.do(t, "GET", "/api/v1/tokens", tok, "", nil)
		if st != http.StatusOK {
			t.Fatalf("GET /tokens: %d %s", st, b)
		}
		var out api.TokensResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{f.device, f.ptok, "hash"} {
			if strings.Contains(string(b), s) {
				t.Fatalf("token list shows %q", s)
			}
		}
		return out
	}
	got := list(f.ptok)
	// device, patient and the expired device token, all the patient's.
	if len(got.Tokens) != 3 {
		t.Fatalf("tokens: %+v", got.Tokens)
	}
	var deviceID, ptokID string
	expired := 0
	for _, tk := range got.Tokens {
		if tk.Expired {
			expired++
			continue
		}
		switch tk.Kind {
		case vault.TokenDevice:
			deviceID = tk.ID
		case vault.TokenPatient:
			ptokID = tk.ID
			if !tk.Current || tk.LastUsed == nil {
				t.Fatalf("the calling token: %+v", tk)
			}
		}
	}
	if deviceID == "" || ptokID == "" || expired != 1 {
		t.Fatalf("tokens: %+v", got.Tokens)
	}
	if o := list(f.other); len(o.Tokens) != 1 || o.Tokens[0].ID == deviceID {
		t.Fatalf("other patient's tokens: %+v", o.Tokens)
	}

	// Who may.
	for _, tok := range []string{f.device, f.clin, ""} {
		if st, _ := f.do(t, "GET", "/api/v1/tokens", tok, "", nil); st != http.StatusForbidden && st != http.StatusUnauthorized {
			t.Errorf("GET /tokens with a non-patient token: %d", st)
		}
		if st, _ := f.do(t, "DELETE", "/api/v1/tokens/"+deviceID, tok, "", nil); st != http.StatusForbidden && st != http.StatusUnauthorized {
			t.Errorf("DELETE /tokens with a non-patient token: %d", st)
		}
	}
	// Another patient cannot revoke it, and learns nothing.
	st, b := f.do(t, "DELETE", "/api/v1/tokens/"+deviceID, f.other, "", nil)
	if st != http.StatusNotFound || errBody(t, b).Code != "no_token" {
		t.Fatalf("another patient's delete: %d %s", st, b)
	}
	st2, b2 := f.do(t, "DELETE", "/api/v1/tokens/nosuchtoken00000", f.other, "", nil)
	if st2 != st || errBody(t, b2) != errBody(t, b) {
		t.Fatalf("missing and foreign tokens answer differently: %s vs %s", b2, b)
	}
	if _, err := f.v.Authenticate(t.Context(), f.device); err != nil {
		t.Fatalf("device token after a foreign delete: %v", err)
	}

	n0, err := f.ledger.Size()
	if err != nil {
		t.Fatal(err)
	}
	if st, b := f.do(t, "DELETE", "/api/v1/tokens/"+deviceID, f.ptok, "", nil); st != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	if _, err := f.v.Authenticate(t.Context(), f.device); err == nil {
		t.Fatal("a revoked token still authenticates")
	}
	if st, _ := f.do(t, "POST", "/api/v1/readings", f.device, "application/json", []byte(batch(1))); st != http.StatusUnauthorized {
		t.Fatalf("upload with a revoked token: %d", st)
	}
	if st, _ := f.do(t, "DELETE", "/api/v1/tokens/"+deviceID, f.ptok, "", nil); st != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", st)
	}
	if len(list(f.ptok).Tokens) != 2 {
		t.Fatal("revoked token still listed")
	}
	e, _, err := f.ledger.Entry(n0)
	if err != nil || e.Kind != consent.KindAdmin || e.Admin.Action != "token-revoke" || e.Actor != f.patient.ID || e.Patient != f.patient.ID || e.Admin.Detail != deviceID {
		t.Fatalf("ledger entry %+v (%v)", e, err)
	}
	// A patient may revoke the very token they call with.
	if st, _ := f.do(t, "DELETE", "/api/v1/tokens/"+ptokID, f.ptok, "", nil); st != http.StatusNoContent {
		t.Fatalf("self-revoke: %d", st)
	}
	if st, _ := f.do(t, "GET", "/api/v1/tokens", f.ptok, "", nil); st != http.StatusUnauthorized {
		t.Fatalf("after self-revoke: %d", st)
	}
	if _, err := f.ledger.Verify(nil); err != nil {
		t.Fatal(err)
	}
}
