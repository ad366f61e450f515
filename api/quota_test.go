package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/vault"
)

// untilRefused repeats a request with tok until it is refused with 429,
// at most limit times, and returns how many were answered first. The 429 must
// be ledger_quota with a Retry-After of 1 to 60 seconds. ok are the other
// statuses a request may get.
func (e *exportEnv) untilRefused(t *testing.T, limit int, method, path, tok string, body func() []byte, ok ...int) int {
	t.Helper()
	for i := range limit {
		var rd io.Reader = http.NoBody
		if body != nil {
			rd = bytes.NewReader(body())
		}
		req, err := http.NewRequest(method, e.srv.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 429 {
			ra := resp.Header.Get("Retry-After")
			if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > 60 {
				t.Fatalf("%s %s over the quota: Retry-After %q, want 1 to 60 s", method, path, ra)
			}
			if code := errBody(t, b).Code; code != "ledger_quota" {
				t.Fatalf("after %d: 429 %s, want ledger_quota", i, code)
			}
			return i
		}
		if resp.StatusCode >= 300 && !slices.Contains(ok, resp.StatusCode) {
			t.Fatalf("%s %s, request %d: %d %s", method, path, i, resp.StatusCode, b)
		}
	}
	t.Fatalf("%d requests to %s %s and no 429: no quota", limit, method, path)
	return 0
}

// TestLedgerQuotas: calls that append to the ledger have a per-token
// quota, answered 429 ledger_quota with Retry-After; another token is
// unaffected, and a revoke is never limited (issue 12, finding 5).
func TestLedgerQuotas(t *testing.T) {
	// One grant (the patient token) and one key (the clinician's) made; the
	// per-grant export limit (exportlimit.go) is lifted, so the per-token
	// quota is what the exports below meet.
	e := newExportEnvConfig(t, api.Config{KeyActivationDelay: -1, ExportBurstPerGrant: 1 << 20})
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	grantBody := func() []byte {
		b, err := json.Marshal(api.GrantRequest{Clinician: e.clinID, Schemas: []string{"omh:blood-glucose"}, DataFrom: "2025-01-01T00:00:00Z", ExpiresAt: exp, Purpose: "TREAT"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Grants: a burst of 30 per token (one went on the setup).
	n := e.untilRefused(t, 300, "POST", "/api/v1/grants", e.ptok, grantBody)
	if n+1 < api.DefaultLedgerWritesPerMinute {
		t.Fatalf("%d grants before the quota, want %d", n+1, api.DefaultLedgerWritesPerMinute)
	}
	// A revoke goes through at once, with the same token.
	if st, b := e.do(t, "POST", "/api/v1/grants/"+e.grantID+"/revoke", e.ptok, "", nil); st != 200 {
		t.Fatalf("revoke over the quota: %d %s", st, b)
	}
	// Another token of the same patient has its own quota.
	ptok2, _, err := e.v.MintToken(t.Context(), e.patient.ID, vault.TokenPatient, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st, b := e.do(t, "POST", "/api/v1/grants", ptok2, "application/json", grantBody()); st != 201 {
		t.Fatalf("another token's grant: %d %s", st, b)
	}

	// Exports: a burst of 60 per token, a bucket of their own.
	url := e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0&from=2025-02-01T00:00:00Z&to=2025-02-02T00:00:00Z")
	if n = e.untilRefused(t, 200, "GET", url, e.clin, nil); n < api.DefaultExportsPerMinute {
		t.Fatalf("%d exports before the quota, want %d", n, api.DefaultExportsPerMinute)
	}
	clin2, _, err := e.v.MintToken(t.Context(), e.clinID, vault.TokenClinician, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st, b := e.do(t, "GET", url, clin2, "", nil); st != 200 {
		t.Fatalf("another token's export: %d %.200s", st, b)
	}

	// Key changes share the ledger-write quota: adding (one went on the
	// setup; past 10 keys the answer is 409 too_many_keys, and it counts)
	// and removing (a key that isn't there is 404, and counts).
	keyBody := func() []byte {
		kb, err := json.Marshal(api.KeyRequest{Label: "hub", Recipient: x25519(t).Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		return kb
	}
	if n = e.untilRefused(t, 300, "POST", "/api/v1/clinician/keys", e.clin, keyBody, 409); n+1 < api.DefaultLedgerWritesPerMinute {
		t.Fatalf("%d key additions before the quota, want %d", n+1, api.DefaultLedgerWritesPerMinute)
	}
	gone := "/api/v1/clinician/keys/" + strings.Repeat("0", len(e.fp))
	if n = e.untilRefused(t, 300, "DELETE", gone, clin2, nil, 404); n < api.DefaultLedgerWritesPerMinute {
		t.Fatalf("%d key removals before the quota, want %d", n, api.DefaultLedgerWritesPerMinute)
	}
}

// TestLedgerQuotaPerUser: minting more tokens does not buy more ledger
// writes than UserQuotaFactor tokens' worth; the user's tokens share a
// bucket of that size as well as having their own.
func TestLedgerQuotaPerUser(t *testing.T) {
	e := newExportEnvConfig(t, api.Config{KeyActivationDelay: -1, ExportBurstPerGrant: 1 << 20})
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body, err := json.Marshal(api.GrantRequest{Clinician: e.clinID, Schemas: []string{"omh:blood-glucose"}, DataFrom: "2025-01-01T00:00:00Z", ExpiresAt: exp, Purpose: "TREAT"})
	if err != nil {
		t.Fatal(err)
	}
	// Twice as many tokens as the factor: without the user's bucket they
	// would make 2*factor*30 grants before a refusal.
	toks := []string{e.ptok}
	for range 2*api.UserQuotaFactor - 1 {
		tok, _, err := e.v.MintToken(t.Context(), e.patient.ID, vault.TokenPatient, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	userQuota := api.UserQuotaFactor * api.DefaultLedgerWritesPerMinute
	made := 1 // the setup's grant, charged to e.ptok and to the user
	start := time.Now()
	for i := 0; ; i++ {
		if i > 2*userQuota {
			t.Fatalf("%d grants from %d tokens and no refusal: no per-user quota", made, len(toks))
		}
		st, b := e.do(t, "POST", "/api/v1/grants", toks[i%len(toks)], "application/json", body)
		if st == 429 {
			if code := errBody(t, b).Code; code != "ledger_quota" {
				t.Fatalf("429 %s, want ledger_quota", code)
			}
			break
		}
		if st != 201 {
			t.Fatalf("grant %d: %d %s", i, st, b)
		}
		made++
	}
	// The user's bucket refills at userQuota a minute while the loop runs
	// (the setup's grant was made before start: one more minute's worth
	// of a second, at most).
	refill := int(time.Since(start).Minutes()*float64(userQuota)) + 2
	if made < userQuota || made > userQuota+refill {
		t.Fatalf("%d grants from %d tokens before the refusal, want the user's quota of %d (+%d refilled)", made, len(toks), userQuota, refill)
	}
	// The other tokens are refused too: it is the user's bucket that is empty.
	if st, b := e.do(t, "POST", "/api/v1/grants", toks[len(toks)-1], "application/json", body); st != 429 {
		t.Fatalf("another token of the same user after the user's quota: %d %s", st, b)
	}
	// A revoke still goes through.
	if st, b := e.do(t, "POST", "/api/v1/grants/"+e.grantID+"/revoke", e.ptok, "", nil); st != 200 {
		t.Fatalf("revoke over the quota: %d %s", st, b)
	}
}
