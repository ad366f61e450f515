package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/mod/sumdb/tlog"
)

type fixture struct {
	srv            *httptest.Server
	metricsSrv     *httptest.Server // the metrics handler, on its own listener as in cmd/vault
	v              *vault.Vault
	ledger         *consent.Ledger
	otherPatient   string
	clinID         string
	store          *boltstore.Store
	ledgerStore    *storetest.FlakyLedger
	patient        vault.User
	device, ptok   string
	clin           string
	expired, other string
}

func newFixture(t testing.TB, cfg api.Config) *fixture {
	t.Helper()
	e := vaulttest.New(t, vaulttest.Options{})
	f := &fixture{v: e.Vault}
	f.patient = e.User(t, vault.RolePatient, "Ada")
	other := e.User(t, vault.RolePatient, "Bo")
	c, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Rivera", Organization: "Riverside"})
	if err != nil {
		t.Fatal(err)
	}
	f.device = e.TokenFor(t, f.patient.ID, vault.TokenDevice, time.Hour)
	f.ptok = e.TokenFor(t, f.patient.ID, vault.TokenPatient, time.Hour)
	f.other = e.TokenFor(t, other.ID, vault.TokenPatient, time.Hour)
	f.clin = e.TokenFor(t, c.ID, vault.TokenClinician, time.Hour)
	f.expired = e.TokenFor(t, f.patient.ID, vault.TokenDevice, time.Nanosecond)
	f.otherPatient, f.clinID = other.ID, c.ID
	f.store, f.ledgerStore = e.Store, &storetest.FlakyLedger{Store: e.Store.Ledger()}
	if f.ledger, err = consent.Open(f.ledgerStore, e.Vault.Master(), consent.Options{Origin: "vault.test"}); err != nil {
		t.Fatal(err)
	}
	cfg.Vault, cfg.Ledger, cfg.Store = e.Vault, f.ledger, e.Store
	s := api.New(cfg)
	f.srv = httptest.NewServer(s.Echo())
	t.Cleanup(f.srv.Close)
	f.metricsSrv = httptest.NewServer(s.Metrics())
	t.Cleanup(f.metricsSrv.Close)
	return f
}

// x25519 makes an age identity.
func x25519(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hybrid makes a post-quantum age identity.
func hybrid(t testing.TB) *age.HybridIdentity {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hubKey makes an age identity, writes it where the age CLI reads it, and
// registers its recipient as the clinician's hub key (tok's).
func (f *fixture) hubKey(t *testing.T, tok, label string) (*age.X25519Identity, string) {
	t.Helper()
	id := x25519(t)
	path := filepath.Join(t.TempDir(), "hub.agekey")
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := json.Marshal(api.KeyRequest{Label: label, Recipient: id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	if st, b := f.do(t, "POST", "/api/v1/clinician/keys", tok, "", kb); st != 201 {
		t.Fatalf("key: %d %s", st, b)
	}
	return id, path
}

func (f *fixture) do(t *testing.T, method, path, token, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// scrape reads the metrics from their own listener.
func (f *fixture) scrape(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(f.metricsSrv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return b
}

func (f *fixture) stored(t *testing.T) int {
	t.Helper()
	n := 0
	for _, err := range f.v.Readings(context.Background(), f.patient.ID, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func point(i int, unit string) string {
	ts := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339)
	return fmt.Sprintf(`{"header":{"uuid":"6a1e0d52-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q},"body":{"blood_glucose":{"value":%d,"unit":%q},"effective_time_frame":{"date_time":%q}}}`, i, ts, 90+i, unit, ts)
}

func batch(n int) string {
	var ps []string
	for i := range n {
		ps = append(ps, point(i, "mg/dL"))
	}
	return "[" + strings.Join(ps, ",") + "]"
}

func errBody(t *testing.T, b []byte) api.ErrorBody {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("error body %s: want {code, message}", b)
	}
	return e
}

func TestIngestRejects(t *testing.T) {
	f := newFixture(t, api.Config{MaxBodyBytes: 64 << 10, MaxBatch: 50})
	bad := func(i int, body string) string {
		ps := []string{point(100, "mg/dL"), point(101, "mg/dL"), body}
		_ = i
		return "[" + strings.Join(ps, ",") + "]"
	}
	noTime := strings.Replace(point(1, "mg/dL"), `,"effective_time_frame":{"date_time":"2025-02-01T00:05:00Z"}`, "", 1)
	cases := []struct {
		name, token, ctype, body string
		status                   int
		code                     string
		index                    int // -1: none
	}{
		{"malformed JSON", f.device, "application/json", `{"header":`, 400, "malformed_json", 0},
		{"malformed JSON in array", f.device, "application/json", `[` + point(1, "mg/dL") + `,{"header":]`, 400, "malformed_json", 1},
		{"malformed NDJSON line", f.device, "application/x-ndjson", point(1, "mg/dL") + "\n{nope}\n", 400, "malformed_json", 1},
		{"unknown schema", f.device, "", bad(2, strings.Replace(point(1, "mg/dL"), `"name":"blood-glucose"`, `"name":"blood-sugar"`, 1)), 400, "unknown_schema", 2},
		{"wrong schema for body", f.device, "", bad(2, strings.Replace(point(1, "mg/dL"), `"name":"blood-glucose","version":"4.0"`, `"name":"heart-rate","version":"2.0"`, 1)), 400, "", 2},
		{"missing time frame", f.device, "", bad(2, noTime), 400, "missing_time_frame", 2},
		{"bad unit", f.device, "", bad(2, point(1, "furlongs")), 400, "bad_unit", 2},
		{"empty body", f.device, "", "  ", 400, "empty_batch", -1},
		{"oversized body", f.device, "", `[` + strings.Repeat(" ", 70<<10) + `]`, 413, "body_too_large", -1},
		{"batch over the limit", f.device, "", batch(51), 413, "batch_too_large", -1},
		{"clinician token", f.clin, "", batch(1), 403, "wrong_token_type", -1},
		{"expired token", f.expired, "", batch(1), 401, "token_expired", -1},
		{"invalid token", f.device + "x", "", batch(1), 401, "invalid_token", -1},
		{"no token", "", "", batch(1), 401, "missing_token", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, b := f.do(t, "POST", "/api/v1/readings", tc.token, tc.ctype, []byte(tc.body))
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, b)
			}
			e := errBody(t, b)
			if tc.code != "" && e.Code != tc.code {
				t.Fatalf("code %q, want %q (%s)", e.Code, tc.code, e.Message)
			}
			if tc.index >= 0 && (e.Index == nil || *e.Index != tc.index) {
				t.Fatalf("index %v, want %d", e.Index, tc.index)
			}
			if n := f.stored(t); n != 0 {
				t.Fatalf("%d readings stored after a refused batch", n)
			}
		})
	}
}

func TestIngestAcceptsAndDedups(t *testing.T) {
	f := newFixture(t, api.Config{})
	forms := []struct{ ctype, body string }{
		{"application/json", point(0, "mg/dL")},
		{"application/json", batch(300)},
		{"application/x-ndjson", strings.ReplaceAll(strings.Trim(batch(300), "[]"), "},{\"header\"", "}\n{\"header\"")},
	}
	st, b := f.do(t, "POST", "/api/v1/readings", f.device, forms[0].ctype, []byte(forms[0].body))
	if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":1,"duplicates":0}` {
		t.Fatalf("single: %d %s", st, b)
	}
	st, b = f.do(t, "POST", "/api/v1/readings", f.ptok, forms[1].ctype, []byte(forms[1].body))
	if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":299,"duplicates":1}` {
		t.Fatalf("array: %d %s", st, b)
	}
	st, b = f.do(t, "POST", "/api/v1/readings", f.device, forms[2].ctype, []byte(forms[2].body))
	if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":0,"duplicates":300}` {
		t.Fatalf("ndjson re-post: %d %s", st, b)
	}
	if n := f.stored(t); n != 300 {
		t.Fatalf("stored %d, want 300", n)
	}
}

func TestGetReadings(t *testing.T) {
	f := newFixture(t, api.Config{})
	f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(20)))
	st, b := f.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0&from=2025-02-01T00:10:00Z&to=2025-02-01T00:30:00Z", f.ptok, "", nil)
	if st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4 ([00:10, 00:30) every 5 min)", len(lines))
	}
	for _, l := range lines {
		if !json.Valid(l) {
			t.Fatalf("invalid line %s", l)
		}
	}
	// An older version that ingest normalises reads as its canonical one.
	if st, b := f.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:3.0&from=2025-02-01T00:10:00Z&to=2025-02-01T00:30:00Z", f.ptok, "", nil); st != 200 || bytes.Count(b, []byte("\n")) != 4 {
		t.Fatalf("schema 3.0: %d %s", st, b)
	}
	if st, b := f.do(t, "GET", "/api/v1/readings", f.other, "", nil); st != 200 || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("another patient sees data: %d %s", st, b)
	}
	for _, tc := range []struct {
		q, token string
		status   int
		code     string
	}{
		{"", f.device, 403, "wrong_token_type"},
		{"", f.clin, 403, "wrong_token_type"},
		{"?schema=omh:nope:1.0", f.ptok, 400, "unknown_schema"},
		{"?from=yesterday", f.ptok, 400, "bad_time"},
		{"?to=0001-01-01T00:00:00Z", f.ptok, 400, "bad_time"},
		{"?from=2025-02-02T00:00:00Z&to=2025-02-01T00:00:00Z", f.ptok, 400, "bad_window"},
	} {
		st, b := f.do(t, "GET", "/api/v1/readings"+tc.q, tc.token, "", nil)
		if st != tc.status || errBody(t, b).Code != tc.code {
			t.Errorf("GET %s: %d %s, want %d %s", tc.q, st, b, tc.status, tc.code)
		}
	}
}

func TestClinicianDirectory(t *testing.T) {
	f := newFixture(t, api.Config{})
	st, b := f.do(t, "GET", "/api/v1/clinicians", f.ptok, "", nil)
	if st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("%s", b)
	}
	for k := range rows[0] {
		if k != "id" && k != "name" && k != "organization" {
			t.Errorf("directory exposes %q", k)
		}
	}
	if st, _ := f.do(t, "GET", "/api/v1/clinicians", f.device, "", nil); st != 403 {
		t.Fatalf("device token read the directory: %d", st)
	}
}

func TestAuthFailureRateLimit(t *testing.T) {
	f := newFixture(t, api.Config{AuthFailuresPerMinute: 5})
	// Valid tokens cost nothing, and the scheme is case-insensitive.
	for i := range 20 {
		if st, b := f.do(t, "GET", "/api/v1/clinicians", f.ptok, "", nil); st != 200 {
			t.Fatalf("valid request %d: %d %s", i, st, b)
		}
	}
	req, err := http.NewRequest("GET", f.srv.URL+"/api/v1/clinicians", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "bearer "+f.ptok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("lower-case bearer: %v %v", resp.StatusCode, err)
	}
	for i := range 5 {
		if st, _ := f.do(t, "GET", "/api/v1/clinicians", "vp_bogus", "", nil); st != 401 {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	st, b := f.do(t, "GET", "/api/v1/clinicians", "vp_bogus", "", nil)
	if st != 429 || errBody(t, b).Code != "too_many_auth_failures" {
		t.Fatalf("after 5 failures: %d %s", st, b)
	}
}

// statusOf sends one request and returns its status and Retry-After.
func (f *fixture) statusOf(t *testing.T, method, path, token string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestValidTokensNeverRefused: a valid token is never refused for what
// other requests from its address do, however many are in flight at once
// and however many bad tokens the address sent (issue 12, finding 4).
func TestValidTokensNeverRefused(t *testing.T) {
	f := newFixture(t, api.Config{}) // the default: 20 failures a minute
	const n = 100
	// A hub's notebooks, each with its own token, all behind one address.
	// A token's first use records its last use, one write each, so the
	// requests queue on the database's single writer while they are
	// checked: all are in flight at once.
	toks := make([]string, n)
	for i := range toks {
		secret, _, err := f.v.MintToken(t.Context(), f.patient.ID, vault.TokenPatient, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = secret
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	codes := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			req, err := http.NewRequest("GET", f.srv.URL+"/api/v1/clinicians", nil)
			if err != nil {
				codes <- -1
				return
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			<-start
			resp, err := client.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[200] != n {
		t.Fatalf("%d concurrent requests with valid tokens from one address: %v, want all 200", n, got)
	}

	// 25 bad tokens from the address: 20 answer 401, the rest 429 with
	// Retry-After; a valid token still passes, a bad one still doesn't.
	bad := "vp_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43)
	got = map[int]int{}
	for range 25 {
		st, ra := f.statusOf(t, "GET", "/api/v1/clinicians", bad, nil)
		if st == 429 && ra == "" {
			t.Fatal("429 without Retry-After")
		}
		got[st]++
	}
	if got[401] != api.DefaultAuthFailuresPerMinute || got[429] != 25-api.DefaultAuthFailuresPerMinute {
		t.Fatalf("25 bad tokens: %v, want %d × 401 then 429", got, api.DefaultAuthFailuresPerMinute)
	}
	for _, tok := range []string{f.ptok, f.clin} {
		if st, _ := f.statusOf(t, "GET", "/api/v1/clinicians", tok, nil); st != 200 {
			t.Fatalf("a valid token after 25 bad ones from its address: %d", st)
		}
	}
	if st, ra := f.statusOf(t, "GET", "/api/v1/clinicians", bad, nil); st != 429 || ra == "" {
		t.Fatalf("a bad token after 25: %d (Retry-After %q), want 429", st, ra)
	}
	if st, _ := f.statusOf(t, "GET", "/api/v1/clinicians", f.expired, nil); st != 429 {
		t.Fatalf("an expired token after 25 bad ones: %d, want 429", st)
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when the TCP
// peer is a trusted proxy; otherwise the peer is the client.
func TestTrustedProxies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		// what the second client address's first bad token gets: its own
		// budget (401) when XFF is believed, the shared one (429) when not
		want int
	}{
		{"no trusted proxies", nil, 429},
		{"an untrusted peer", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, 429},
		{"a trusted peer", loopback, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, api.Config{AuthFailuresPerMinute: 3, TrustedProxies: tc.trusted})
			a := map[string]string{"X-Forwarded-For": "198.51.100.1"}
			for i := range 3 {
				if st, _ := f.statusOf(t, "GET", "/api/v1/clinicians", "vp_bogus", a); st != 401 {
					t.Fatalf("bad token %d: %d", i, st)
				}
			}
			if st, _ := f.statusOf(t, "GET", "/api/v1/clinicians", "vp_bogus", a); st != 429 {
				t.Fatalf("fourth bad token: %d, want 429", st)
			}
			b := map[string]string{"X-Forwarded-For": "198.51.100.2"}
			if st, _ := f.statusOf(t, "GET", "/api/v1/clinicians", "vp_bogus", b); st != tc.want {
				t.Fatalf("another forwarded address: %d, want %d", st, tc.want)
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t, api.Config{})
	if st, b := f.do(t, "GET", "/healthz", "", "", nil); st != 200 || !bytes.Contains(b, []byte(`"ok"`)) {
		t.Fatalf("healthz %d %s", st, b)
	}
	f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(3)))
	b := f.scrape(t)
	if !bytes.Contains(b, []byte(`vault_ingest_readings_total{outcome="accepted"} 3`)) {
		t.Fatalf("metrics: %s", b)
	}
	if st, b := f.do(t, "GET", "/nope", "", "", nil); st != 404 || errBody(t, b).Code != "not_found" {
		t.Fatalf("404: %d %s", st, b)
	}
	// The API's own handler does not serve the metrics: they have their
	// own listener.
	if st, _ := f.do(t, "GET", "/metrics", "", "", nil); st != 404 {
		t.Fatalf("the API serves /metrics: %d", st)
	}
	// The gauges an admin alerts on: ledger size, database size, and the
	// last backup (none yet, then one).
	for _, want := range []string{"vault_ledger_entries 0", "vault_db_size_bytes ", "vault_last_backup_timestamp_seconds 0"} {
		if !bytes.Contains(b, []byte("\n"+want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if _, err := f.store.Backup(io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	b = f.scrape(t)
	if bytes.Contains(b, []byte("\nvault_last_backup_timestamp_seconds 0")) || !bytes.Contains(b, []byte("\nvault_last_backup_timestamp_seconds 1.")) {
		t.Errorf("the last backup is not in the metrics")
	}
}

// TestLedgerPrivacy: checkpoints and proofs are public and hold hashes
// only; an entry's content goes only to the parties it names.
func TestLedgerPrivacy(t *testing.T) {
	f := newFixture(t, api.Config{})
	mine := consent.NewAdmin("user-add", f.patient.ID, "patient", time.Now())
	theirs := consent.NewAdmin("user-add", f.otherPatient, "patient", time.Now())
	if _, err := f.ledger.Append(mine, theirs); err != nil {
		t.Fatal(err)
	}

	st, cp := f.do(t, "GET", "/api/v1/ledger/checkpoint", "", "", nil)
	if st != 200 {
		t.Fatalf("checkpoint: %d %s", st, cp)
	}
	c, err := consent.OpenCheckpoint(cp, f.ledger.VerifierKey())
	if err != nil || c.Size != 2 {
		t.Fatalf("checkpoint %+v: %v", c, err)
	}

	st, b := f.do(t, "GET", "/api/v1/ledger/proof?index=1&size=2", "", "", nil)
	var pr api.ProofResponse
	if st != 200 || json.Unmarshal(b, &pr) != nil {
		t.Fatalf("proof: %d %s", st, b)
	}
	if bytes.Contains(b, []byte(f.otherPatient)) || bytes.Contains(b, []byte("user-add")) {
		t.Fatal("a proof reveals entry content")
	}
	var proof tlog.RecordProof
	for _, p := range pr.Proof {
		h, _ := base64.StdEncoding.DecodeString(p)
		proof = append(proof, tlog.Hash(h))
	}
	leaf, _ := base64.StdEncoding.DecodeString(pr.LeafHash)
	if err := tlog.CheckRecord(proof, 2, c.Hash, 1, tlog.Hash(leaf)); err != nil {
		t.Fatalf("served proof does not verify against the signed checkpoint: %v", err)
	}
	if st, b := f.do(t, "GET", "/api/v1/ledger/proof?from=1&size=2", "", "", nil); st != 200 || !bytes.Contains(b, []byte(`"consistency"`)) {
		t.Fatalf("consistency proof: %d %s", st, b)
	}
	for _, q := range []string{"?index=2&size=2", "?size=2", "?index=0&from=1&size=2", "?index=-1&size=1", "?index=0&size=99"} {
		if st, b := f.do(t, "GET", "/api/v1/ledger/proof"+q, "", "", nil); st != 400 || errBody(t, b).Code != "bad_parameter" {
			t.Errorf("proof%s: %d %s", q, st, b)
		}
	}

	// The patient reads their own entry, with bytes that hash to the leaf.
	st, b = f.do(t, "GET", "/api/v1/ledger/entries/0", f.ptok, "", nil)
	var er api.EntryResponse
	if st != 200 || json.Unmarshal(b, &er) != nil {
		t.Fatalf("own entry: %d %s", st, b)
	}
	if lh := tlog.RecordHash(er.Entry); b64(lh) != er.LeafHash {
		t.Fatal("served entry does not hash to its leaf")
	}
	// Not another patient's, not as an outsider; a missing index looks the same.
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/ledger/entries/1", f.ptok, 404},
		{"/api/v1/ledger/entries/99", f.ptok, 404},
		{"/api/v1/ledger/entries/0", f.clin, 404},
		{"/api/v1/ledger/entries/0", "", 401},
		{"/api/v1/ledger/entries/0", f.device, 403},
	} {
		st, b := f.do(t, "GET", tc.path, tc.token, "", nil)
		if st != tc.status || bytes.Contains(b, []byte("user-add")) {
			t.Errorf("%s: %d %s, want %d", tc.path, st, b, tc.status)
		}
	}
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func TestGrants(t *testing.T) {
	f := newFixture(t, api.Config{})
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	body := func(mod func(r *api.GrantRequest)) []byte {
		r := api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose", "omh:heart-rate:2.0"}, DataFrom: "2025-01-01T00:00:00Z", ExpiresAt: exp, Purpose: "TREAT"}
		if mod != nil {
			mod(&r)
		}
		b, _ := json.Marshal(r)
		return b
	}
	for _, tc := range []struct {
		name string
		mod  func(r *api.GrantRequest)
		code string
	}{
		{"unknown clinician", func(r *api.GrantRequest) { r.Clinician = "cl_aaaaaaaaaaaaaaaa" }, "unknown_clinician"},
		{"a patient as grantee", func(r *api.GrantRequest) { r.Clinician = f.patient.ID }, "unknown_clinician"},
		{"no schemas", func(r *api.GrantRequest) { r.Schemas = nil }, "bad_schemas"},
		{"unknown schema", func(r *api.GrantRequest) { r.Schemas = []string{"omh:blood-sugar"} }, "unknown_schema"},
		{"bad window", func(r *api.GrantRequest) { r.DataTo = "2024-01-01T00:00:00Z" }, "bad_window"},
		{"no expiry", func(r *api.GrantRequest) { r.ExpiresAt = "" }, "bad_time"},
		{"past expiry", func(r *api.GrantRequest) { r.ExpiresAt = "2020-01-01T00:00:00Z" }, "bad_expiry"},
		{"expiry too far", func(r *api.GrantRequest) { r.ExpiresAt = "2099-01-01T00:00:00Z" }, "bad_expiry"},
		{"bad purpose", func(r *api.GrantRequest) { r.Purpose = "FUN" }, "bad_purpose"},
	} {
		st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "application/json", body(tc.mod))
		if st != 400 || errBody(t, b).Code != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, st, b, tc.code)
		}
	}
	if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "application/json", []byte(`{"clinician":"x","extra":1}`)); st != 400 || errBody(t, b).Code != "malformed_json" {
		t.Errorf("unknown field: %d %s", st, b)
	}
	if st, _ := f.do(t, "POST", "/api/v1/grants", f.clin, "application/json", body(nil)); st != 403 {
		t.Errorf("clinician made a grant: %d", st)
	}
	if n, _ := f.ledger.Size(); n != 0 {
		t.Fatalf("%d ledger entries after refused grants", n)
	}

	st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "application/json", body(nil))
	var g api.GrantResponse
	if st != 201 || json.Unmarshal(b, &g) != nil || g.Status != "active" || !strings.HasPrefix(g.ID, "gr_") || g.Signed {
		t.Fatalf("grant: %d %s", st, b)
	}
	if fmt.Sprint(g.Schemas) != "[omh:blood-glucose omh:heart-rate:2.0]" {
		t.Fatalf("schemas %v", g.Schemas)
	}
	// The clinician sees the patient; another patient does not see the grant.
	if st, b := f.do(t, "GET", "/api/v1/clinician/patients", f.clin, "", nil); st != 200 || !bytes.Contains(b, []byte(f.patient.ID)) || !bytes.Contains(b, []byte(g.ID)) {
		t.Fatalf("clinician patients: %d %s", st, b)
	}
	if st, _ := f.do(t, "GET", "/api/v1/grants/"+g.ID, f.other, "", nil); st != 404 {
		t.Fatalf("another patient read the grant: %d", st)
	}
	if st, b := f.do(t, "GET", "/api/v1/grants", f.other, "", nil); st != 200 || string(bytes.TrimSpace(b)) != "[]" {
		t.Fatalf("another patient's list: %d %s", st, b)
	}
	st, b = f.do(t, "GET", "/api/v1/grants/"+g.ID+"?format=fhir", f.clin, "", nil)
	var fc map[string]any
	if st != 200 || json.Unmarshal(b, &fc) != nil || fc["resourceType"] != "Consent" || fc["status"] != "active" {
		t.Fatalf("fhir: %d %s", st, b)
	}
	d := f.ledger.Decide(consent.Request{Clinician: f.clinID, Patient: f.patient.ID, Schema: "omh:blood-glucose:4.0", Now: time.Now()})
	if !d.Permit {
		t.Fatalf("decision after grant: %+v", d)
	}

	// Revoke: at once, once, by the patient only.
	if st, _ := f.do(t, "POST", "/api/v1/grants/"+g.ID+"/revoke", f.other, "", nil); st != 404 {
		t.Fatalf("another patient revoked: %d", st)
	}
	if st, b := f.do(t, "POST", "/api/v1/grants/"+g.ID+"/revoke", f.ptok, "", nil); st != 200 || !bytes.Contains(b, []byte(`"status":"revoked"`)) {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if d := f.ledger.Decide(consent.Request{Clinician: f.clinID, Patient: f.patient.ID, Schema: "omh:blood-glucose:4.0", Now: time.Now()}); d.Permit {
		t.Fatal("permit after revoke")
	}
	if st, b := f.do(t, "POST", "/api/v1/grants/"+g.ID+"/revoke", f.ptok, "", nil); st != 409 || errBody(t, b).Code != "already_revoked" {
		t.Fatalf("second revoke: %d %s", st, b)
	}
	if st, b := f.do(t, "GET", "/api/v1/clinician/patients", f.clin, "", nil); st != 200 || bytes.Contains(b, []byte(f.patient.ID)) {
		t.Fatalf("clinician still lists the patient after revoke: %s", b)
	}
	if _, err := f.ledger.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// TestDeletePatientEndsGrants: a deleted patient's grants are revoked in
// the ledger before the crypto-shred.
func TestDeletePatientEndsGrants(t *testing.T) {
	f := newFixture(t, api.Config{})
	exp := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", []byte(`{"clinician":"`+f.clinID+`","schemas":["omh:heart-rate"],"expires_at":"`+exp+`","purpose":"TREAT"}`))
	if st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	admin := api.LocalAdmin{Vault: f.v, Ledger: f.ledger, Log: slog.New(slog.DiscardHandler)}
	if err := admin.DeleteUser(t.Context(), f.patient.ID); err != nil {
		t.Fatal(err)
	}
	gs, err := f.ledger.Grants(f.patient.ID, "")
	if err != nil || len(gs) != 1 || gs[0].RevokeIndex == nil {
		t.Fatalf("grants after delete: %+v", gs)
	}
	if d := f.ledger.Decide(consent.Request{Clinician: f.clinID, Patient: f.patient.ID, Schema: "omh:heart-rate:2.0", Now: time.Now()}); d.Permit {
		t.Fatal("permit for a deleted patient")
	}
	if _, err := f.ledger.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

func TestClinicianKeys(t *testing.T) {
	x, pq := x25519(t), hybrid(t)
	add := func(f *fixture, label, recipient string) (int, []byte) {
		b, _ := json.Marshal(api.KeyRequest{Label: label, Recipient: recipient})
		return f.do(t, "POST", "/api/v1/clinician/keys", f.clin, "application/json", b)
	}
	t.Run("token-added keys wait out the delay", func(t *testing.T) {
		f := newFixture(t, api.Config{}) // default delay: 24h
		st, b := add(f, "hub", x.Recipient().String())
		var k api.KeyResponse
		if st != 201 || json.Unmarshal(b, &k) != nil || k.Status != "pending" || k.Fingerprint != consent.Fingerprint(x.Recipient().String()) {
			t.Fatalf("add: %d %s", st, b)
		}
		if d := time.Until(k.ActiveFrom); d < 23*time.Hour || d > 25*time.Hour {
			t.Fatalf("active from %v: want about 24h from now", k.ActiveFrom)
		}
		if k.Active(time.Now()) {
			t.Fatal("a key added with a token is usable at once")
		}
		// The patient who granted access sees the new key, pending, with
		// the time it becomes usable, on her grant.
		gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:heart-rate"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
		if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb); st != 201 {
			t.Fatalf("grant: %d %s", st, b)
		}
		st, b = f.do(t, "GET", "/api/v1/grants", f.ptok, "", nil)
		var gs []api.GrantResponse
		if st != 200 || json.Unmarshal(b, &gs) != nil || len(gs) != 1 || len(gs[0].ClinicianKeys) != 1 {
			t.Fatalf("patient's grants: %d %s", st, b)
		}
		if pk := gs[0].ClinicianKeys[0]; pk.Fingerprint != k.Fingerprint || pk.Status != "pending" || !pk.ActiveFrom.Equal(k.ActiveFrom) {
			t.Fatalf("patient sees the key as %+v, want %+v", pk, k)
		}
	})
	t.Run("register, list, remove", func(t *testing.T) {
		f := newFixture(t, api.Config{KeyActivationDelay: -1})
		if st, b := add(f, "hub", x.Recipient().String()); st != 201 || !bytes.Contains(b, []byte(`"status":"active"`)) {
			t.Fatalf("add: %d %s", st, b)
		}
		if st, b := add(f, "pq hub", pq.Recipient().String()); st != 201 || !bytes.Contains(b, []byte("age1pq1")) {
			t.Fatalf("add pq: %d %s", st, b)
		}
		for _, tc := range []struct {
			label, recipient string
			status           int
			code             string
		}{
			{"hub", "age1notakey", 400, "bad_recipient"},
			{"hub", "ssh-ed25519 AAAA", 400, "bad_recipient"},
			{"", x.Recipient().String(), 400, "bad_label"},
			{"again", x.Recipient().String(), 409, "key_exists"},
		} {
			if st, b := add(f, tc.label, tc.recipient); st != tc.status || errBody(t, b).Code != tc.code {
				t.Errorf("add %q %q: %d %s", tc.label, tc.recipient, st, b)
			}
		}
		b, _ := json.Marshal(api.KeyRequest{Label: "x", Recipient: x.Recipient().String()})
		if st, _ := f.do(t, "POST", "/api/v1/clinician/keys", f.ptok, "", b); st != 403 {
			t.Fatalf("patient token added a clinician key: %d", st)
		}
		st, body := f.do(t, "GET", "/api/v1/clinician/keys", f.clin, "", nil)
		var ks []api.KeyResponse
		if st != 200 || json.Unmarshal(body, &ks) != nil || len(ks) != 2 {
			t.Fatalf("list: %d %s", st, body)
		}
		fp := consent.Fingerprint(x.Recipient().String())
		if st, _ := f.do(t, "DELETE", "/api/v1/clinician/keys/"+fp, f.clin, "", nil); st != 204 {
			t.Fatalf("remove: %d", st)
		}
		if st, b := f.do(t, "DELETE", "/api/v1/clinician/keys/"+fp, f.clin, "", nil); st != 404 || errBody(t, b).Code != "no_key" {
			t.Fatalf("remove twice: %d %s", st, b)
		}
		// Key transparency: each add and remove is a ledger entry the
		// clinician can read.
		if n, _ := f.ledger.Size(); n != 3 {
			t.Fatalf("%d ledger entries, want 3", n)
		}
		if st, b := f.do(t, "GET", "/api/v1/ledger/entries/2", f.clin, "", nil); st != 200 {
			t.Fatalf("clinician reads their key entry: %d %s", st, b)
		}
		if _, err := f.ledger.Verify(nil); err != nil {
			t.Fatal(err)
		}
	})
}
