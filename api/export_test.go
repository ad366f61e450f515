package api_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type exportEnv struct {
	*fixture
	id      *age.X25519Identity
	idPath  string
	fp      string
	grantID string
}

// newExportEnv: 20 glucose readings every 5 minutes from 2025-02-01T00:00Z,
// a grant to the clinician covering [00:10, 00:50), and the clinician's hub
// key registered (no activation delay).
func newExportEnv(t *testing.T) *exportEnv {
	t.Helper()
	return newExportEnvConfig(t, api.Config{KeyActivationDelay: -1})
}

func newExportEnvConfig(t *testing.T, cfg api.Config) *exportEnv {
	t.Helper()
	f := newFixture(t, cfg)
	if st, b := f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(20))); st != 201 {
		t.Fatalf("ingest: %d %s", st, b)
	}
	id, idPath := f.hubKey(t, f.clin, "hub")
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, DataFrom: "2025-02-01T00:10:00Z", DataTo: "2025-02-01T00:50:00Z",
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb)
	var g api.GrantResponse
	if st != 201 || json.Unmarshal(b, &g) != nil {
		t.Fatalf("grant: %d %s", st, b)
	}
	return &exportEnv{fixture: f, id: id, idPath: idPath, fp: consent.Fingerprint(id.Recipient().String()), grantID: g.ID}
}

func (e *exportEnv) exportURL(patient, query string) string {
	return "/api/v1/patients/" + patient + "/export?" + query
}

// ageDecrypt opens an export with Debian's age CLI.
func ageDecrypt(t *testing.T, idPath string, ct []byte) []byte {
	t.Helper()
	ageBin, err := exec.LookPath("age")
	if err != nil {
		t.Fatal("age not found: install Debian's age (scripts/test does this when run as root)")
	}
	cmd := exec.Command(ageBin, "-d", "-i", idPath)
	cmd.Stdin = bytes.NewReader(ct)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	return out
}

func splitExport(t *testing.T, plain []byte) (export.Manifest, [][]byte, export.Trailer) {
	t.Helper()
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(plain))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if len(lines) < 2 {
		t.Fatalf("export has %d lines", len(lines))
	}
	var m export.Manifest
	var tr export.Trailer
	if err := json.Unmarshal(lines[0], &m); err != nil || m.Manifest != 1 {
		t.Fatalf("manifest %s: %v", lines[0], err)
	}
	if err := json.Unmarshal(lines[len(lines)-1], &tr); err != nil || tr.Trailer != 1 {
		t.Fatalf("trailer %s: %v", lines[len(lines)-1], err)
	}
	if ms := sha256.Sum256(append(bytes.Clone(lines[0]), '\n')); tr.ManifestSHA256 != hex.EncodeToString(ms[:]) {
		t.Fatalf("trailer's manifest hash %s is not the manifest line's", tr.ManifestSHA256)
	}
	return m, lines[1 : len(lines)-1], tr
}

func TestExport(t *testing.T) {
	e := newExportEnv(t)
	// Ask for more than the grant allows: the window is clipped to it.
	st, ct := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0&from=2025-02-01T00:00:00Z&to=2025-02-02T00:00:00Z"), e.clin, "", nil)
	if st != 200 || !bytes.HasPrefix(ct, []byte("age-encryption.org/v1")) {
		t.Fatalf("export: %d %.200s", st, ct)
	}
	if bytes.Contains(ct, []byte("blood_glucose")) {
		t.Fatal("export is not encrypted")
	}
	m, data, tr := splitExport(t, ageDecrypt(t, e.idPath, ct))

	// The data: exactly the readings in [00:10, 00:50), as the patient reads them.
	_, want := e.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0&from=2025-02-01T00:10:00Z&to=2025-02-01T00:50:00Z", e.ptok, "", nil)
	wantLines := bytes.Split(bytes.TrimSpace(want), []byte("\n"))
	if len(data) != 8 || len(wantLines) != 8 {
		t.Fatalf("%d data lines, %d expected lines; want 8 (window clipped to the grant)", len(data), len(wantLines))
	}
	for i := range data {
		if !bytes.Equal(data[i], wantLines[i]) {
			t.Fatalf("line %d differs from the stored reading", i)
		}
	}
	if w := m.Windows["omh:blood-glucose:4.0"]; len(w) != 1 || w[0].From.Format(time.RFC3339) != "2025-02-01T00:10:00Z" || w[0].To.Format(time.RFC3339) != "2025-02-01T00:50:00Z" {
		t.Fatalf("manifest windows %+v", m.Windows)
	}

	// The trailer: count, hash, and a signature by the pinned log key.
	h := sha256.New()
	for _, l := range data {
		h.Write(append(bytes.Clone(l), '\n'))
	}
	if tr.Records != 8 || tr.SHA256 != hex.EncodeToString(h.Sum(nil)) || tr.AccessStart != m.AccessStart {
		t.Fatalf("trailer %+v", tr)
	}
	v, _ := note.NewVerifier(e.ledger.VerifierKey())
	n, err := note.Open([]byte(tr.Signature), note.VerifierList(v))
	if err != nil || n.Text != export.TrailerText(tr.AccessStart, tr.ManifestSHA256, tr.Records, tr.SHA256) {
		t.Fatalf("trailer signature: %v", err)
	}

	// The manifest: a checkpoint by the pinned key, and inclusion proofs of
	// the grant and the access-start against it.
	cp, err := consent.OpenCheckpoint([]byte(m.Checkpoint), e.ledger.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Grants) != 1 || m.Grants[0].ID != e.grantID {
		t.Fatalf("manifest grants %+v", m.Grants)
	}
	for _, idx := range []int64{m.AccessStart, m.Grants[0].Index} {
		p, ok := m.Proofs[fmt.Sprint(idx)]
		if !ok {
			t.Fatalf("no proof for %d", idx)
		}
		var proof tlog.RecordProof
		for _, s := range p.Proof {
			b, _ := base64.StdEncoding.DecodeString(s)
			proof = append(proof, tlog.Hash(b))
		}
		// The leaf is hashed from the entry the manifest carries, and the
		// entry says what was logged.
		raw := m.Entries[fmt.Sprint(idx)]
		leaf := tlog.RecordHash(raw)
		if base64.StdEncoding.EncodeToString(leaf[:]) != p.LeafHash {
			t.Fatalf("entry %d does not hash to the proof's leaf", idx)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, idx, leaf); err != nil {
			t.Fatalf("proof of %d: %v", idx, err)
		}
		var ent consent.Entry
		if err := json.Unmarshal(raw, &ent); err != nil || ent.Patient != e.patient.ID || ent.Clinician != e.clinID {
			t.Fatalf("entry %d: %+v %v", idx, ent, err)
		}
		if want := map[bool]string{true: consent.KindAccessStart, false: consent.KindGrant}[idx == m.AccessStart]; ent.Kind != want {
			t.Fatalf("entry %d is a %s, want %s", idx, ent.Kind, want)
		}
	}

	if mb := e.scrape(t); !bytes.Contains(mb, []byte(`vault_exports_total{format="omh",outcome="complete"} 1`)) || !bytes.Contains(mb, []byte("vault_export_readings_total 8")) {
		t.Errorf("export metrics missing")
	}

	// The patient sees the pull, with its count; the ledger has both ends.
	st, b := e.do(t, "GET", "/api/v1/access-log", e.ptok, "", nil)
	var page api.AccessLogPage
	if st != 200 || json.Unmarshal(b, &page) != nil || page.Next != nil {
		t.Fatalf("access log: %d %s", st, b)
	}
	if log := page.Accesses; len(log) != 1 || log[0].Records != 8 || !log[0].Complete || log[0].ClinicianName != "Dr. Rivera" || log[0].Start != m.AccessStart {
		t.Fatalf("access log: %d %s", st, b)
	}
	if _, err := e.ledger.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

func TestExportPostQuantum(t *testing.T) {
	e := newExportEnv(t)
	pq := hybrid(t)
	kb, _ := json.Marshal(api.KeyRequest{Label: "pq hub", Recipient: pq.Recipient().String()})
	e.do(t, "POST", "/api/v1/clinician/keys", e.clin, "", kb)
	// Two active keys: the recipient must be named.
	if st, b := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose"), e.clin, "", nil); st != 400 || errBody(t, b).Code != "recipient_required" {
		t.Fatalf("two keys, no recipient: %d %s", st, b)
	}
	st, ct := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose&recipient="+consent.Fingerprint(pq.Recipient().String())), e.clin, "", nil)
	if st != 200 {
		t.Fatalf("%d %s", st, ct)
	}
	r, err := age.Decrypt(bytes.NewReader(ct), pq)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	plain.ReadFrom(r)
	if _, data, tr := splitExport(t, plain.Bytes()); len(data) != 8 || tr.Records != 8 {
		t.Fatalf("%d lines", len(data))
	}
	if _, err := age.Decrypt(bytes.NewReader(ct), e.id); err == nil {
		t.Fatal("the X25519 key opened an export made for the post-quantum one")
	}
}

// TestExportAuthorization is the authorization matrix: each case is a 403
// and leaves no access in the log.
func TestExportAuthorization(t *testing.T) {
	e := newExportEnv(t)
	ok := "schema=omh:blood-glucose:4.0"
	// A second clinician with a key of their own but no grant.
	other, err := e.v.CreateUser(t.Context(), vaultNewClinician("Dr. Other"))
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _, err := e.v.MintToken(t.Context(), other.ID, "clinician", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.hubKey(t, otherTok, "hub")
	// An expired grant, appended straight to the ledger (the API refuses a past expiry).
	exp := consent.New(consent.KindGrant, e.otherPatient, time.Now())
	exp.Patient, exp.Clinician = e.otherPatient, e.clinID
	exp.Grant = &consent.Grant{ID: "gr_expired", Schemas: []string{"omh:blood-glucose"}, Expires: time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano), Purpose: "TREAT"}
	if _, err := e.ledger.Append(exp); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, url string
		status           int
		code             string
	}{
		{"another clinician, no grant", otherTok, e.exportURL(e.patient.ID, ok), 403, "no_consent"},
		{"another patient's id (IDOR)", e.clin, e.exportURL(e.otherPatient, ok), 403, "no_consent"},
		{"an unknown patient", e.clin, e.exportURL("pt_aaaaaaaaaaaaaaaa", ok), 403, "no_consent"},
		{"a schema outside the grant", e.clin, e.exportURL(e.patient.ID, "schema=omh:heart-rate:2.0"), 403, "no_consent"},
		{"one schema outside the grant, one inside", e.clin, e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0,omh:heart-rate:2.0"), 403, "no_consent"},
		{"a window outside the grant", e.clin, e.exportURL(e.patient.ID, ok+"&from=2025-03-01T00:00:00Z"), 403, "no_consent"},
		{"a patient token", e.ptok, e.exportURL(e.patient.ID, ok), 403, "wrong_token_type"},
		{"a device token", e.device, e.exportURL(e.patient.ID, ok), 403, "wrong_token_type"},
		{"no schema", e.clin, e.exportURL(e.patient.ID, ""), 400, "bad_schemas"},
		{"an unknown format", e.clin, e.exportURL(e.patient.ID, ok+"&format=xml"), 400, "bad_format"},
		{"a schema fhir cannot carry", e.clin, e.exportURL(e.patient.ID, "schema=omh:physical-activity&format=fhir"), 400, "format_unsupported"},
		{"unknown recipient", e.clin, e.exportURL(e.patient.ID, ok+"&recipient=fp_00"), 400, "bad_recipient"},
	} {
		st, b := e.do(t, "GET", tc.url, tc.token, "", nil)
		if st != tc.status || bytes.Contains(b, []byte("age-encryption")) || errBody(t, b).Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, b, tc.status, tc.code)
		}
	}
	// Expired: the other patient's only grant to this clinician.
	if st, b := e.do(t, "GET", e.exportURL(e.otherPatient, ok), e.clin, "", nil); st != 403 || !strings.Contains(string(b), "expired") {
		t.Errorf("expired grant: %d %s", st, b)
	}
	// Immediately after a revoke.
	if st, _ := e.do(t, "POST", "/api/v1/grants/"+e.grantID+"/revoke", e.ptok, "", nil); st != 200 {
		t.Fatal("revoke failed")
	}
	if st, b := e.do(t, "GET", e.exportURL(e.patient.ID, ok), e.clin, "", nil); st != 403 || !strings.Contains(string(b), "revoked") {
		t.Errorf("after revoke: %d %s", st, b)
	}
	if a := mustAccesses(t, e.ledger, e.patient.ID); len(a) != 0 {
		t.Fatalf("refused exports were logged as accesses: %+v", a)
	}
}

// TestExportFailsClosed: when the access-start cannot be logged, not one
// data byte goes out.
func TestExportFailsClosed(t *testing.T) {
	e := newExportEnv(t)
	e.ledgerStore.FailWrites.Store(true)
	e.ledgerStore.FailReads.Store(true)
	st, b := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0"), e.clin, "", nil)
	e.ledgerStore.FailWrites.Store(false)
	e.ledgerStore.FailReads.Store(false)
	if st != 503 || errBody(t, b).Code != "access_log_unavailable" || bytes.Contains(b, []byte("age-encryption")) || bytes.Contains(b, []byte("blood")) {
		t.Fatalf("ledger down: %d %s", st, b)
	}
	if a := mustAccesses(t, e.ledger, e.patient.ID); len(a) != 0 {
		t.Fatalf("accesses %+v", a)
	}
	// And with the ledger back, the export works.
	if st, _ := e.do(t, "GET", e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0"), e.clin, "", nil); st != 200 {
		t.Fatalf("after recovery: %d", st)
	}
}

func vaultNewClinician(name string) vault.NewUser {
	return vault.NewUser{Role: vault.RoleClinician, Name: name}
}

// TestExportFormats pulls the same window as fhir and as csv: one line per
// reading after the csv header, the header inside the trailer's hash but
// not its count, and the values those of the stored points.
func TestExportFormats(t *testing.T) {
	e := newExportEnv(t)
	q := "schema=omh:blood-glucose:4.0&from=2025-02-01T00:00:00Z&to=2025-02-02T00:00:00Z"
	_, want := e.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0&from=2025-02-01T00:10:00Z&to=2025-02-01T00:50:00Z", e.ptok, "", nil)
	var stored []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(want), []byte("\n")) {
		var p map[string]any
		json.Unmarshal(l, &p)
		stored = append(stored, p)
	}
	value := func(p map[string]any) float64 {
		return p["body"].(map[string]any)["blood_glucose"].(map[string]any)["value"].(float64)
	}
	for _, format := range []string{"fhir", "csv"} {
		st, ct := e.do(t, "GET", e.exportURL(e.patient.ID, q+"&format="+format), e.clin, "", nil)
		if st != 200 {
			t.Fatalf("%s export: %d %.200s", format, st, ct)
		}
		m, data, tr := splitExport(t, ageDecrypt(t, e.idPath, ct))
		h := sha256.New()
		for _, l := range data {
			h.Write(append(bytes.Clone(l), '\n'))
		}
		if m.Format != format || tr.SHA256 != hex.EncodeToString(h.Sum(nil)) || tr.Records != 8 {
			t.Fatalf("%s: manifest format %q, trailer %+v", format, m.Format, tr)
		}
		switch format {
		case "fhir":
			if len(data) != 8 {
				t.Fatalf("fhir: %d lines, want 8 Observations", len(data))
			}
			for i, l := range data {
				var o struct {
					ResourceType string
					Subject      struct{ Reference string }
					Code         struct {
						Coding []struct{ System, Code string }
					}
					ValueQuantity struct {
						Value float64
						Code  string
					}
				}
				if err := json.Unmarshal(l, &o); err != nil || o.ResourceType != "Observation" || o.Subject.Reference != "Patient/"+strings.ReplaceAll(e.patient.ID, "_", "-") {
					t.Fatalf("fhir line %d: %s (%v)", i, l, err)
				}
				if len(o.Code.Coding) == 0 || o.Code.Coding[0].System != "http://loinc.org" || o.ValueQuantity.Value != value(stored[i]) || o.ValueQuantity.Code != "mg/dL" {
					t.Fatalf("fhir line %d does not carry the stored reading: %s", i, l)
				}
			}
		case "csv":
			rows, err := csv.NewReader(bytes.NewReader(bytes.Join(data, []byte("\n")))).ReadAll()
			if err != nil || len(rows) != 9 || strings.Join(rows[0], ",") != "uuid,schema,time,end_time,value,unit,value2,unit2,source,body" {
				t.Fatalf("csv: %d rows %v: %v", len(rows), rows, err)
			}
			for i, r := range rows[1:] {
				if v, _ := strconv.ParseFloat(r[4], 64); v != value(stored[i]) || r[5] != "mg/dL" || r[1] != "omh:blood-glucose:4.0" {
					t.Fatalf("csv row %d does not carry the stored reading: %v", i, r)
				}
			}
		}
	}
}

// TestExportWaitsForKeyActivation: a key just added with a clinician token
// receives nothing until its activation delay has passed, whether it is
// the default or named; after the delay the same request succeeds.
func TestExportWaitsForKeyActivation(t *testing.T) {
	const delay = 2 * time.Second // long enough that the refusals below land inside it
	f := newFixture(t, api.Config{KeyActivationDelay: delay})
	if st, b := f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(5))); st != 201 {
		t.Fatalf("ingest: %d %s", st, b)
	}
	id := x25519(t)
	kb, _ := json.Marshal(api.KeyRequest{Label: "new hub", Recipient: id.Recipient().String()})
	st, b := f.do(t, "POST", "/api/v1/clinician/keys", f.clin, "", kb)
	var k api.KeyResponse
	if st != 201 || json.Unmarshal(b, &k) != nil || k.Status != "pending" {
		t.Fatalf("key: %d %s", st, b)
	}
	gb, _ := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	url := "/api/v1/patients/" + f.patient.ID + "/export?schema=omh:blood-glucose:4.0"
	for _, tc := range []struct {
		name, url string
		status    int
		code      string
	}{
		{"the only key, pending", url, 409, "no_active_key"},
		{"the pending key by fingerprint", url + "&recipient=" + k.Fingerprint, 400, "bad_recipient"},
	} {
		st, b := f.do(t, "GET", tc.url, f.clin, "", nil)
		if st != tc.status || bytes.Contains(b, []byte("age-encryption")) || errBody(t, b).Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, b, tc.status, tc.code)
		}
	}
	if a := mustAccesses(t, f.ledger, f.patient.ID); len(a) != 0 {
		t.Fatalf("refused exports were logged as accesses: %+v", a)
	}
	time.Sleep(time.Until(k.ActiveFrom) + 50*time.Millisecond)
	st, ct := f.do(t, "GET", url, f.clin, "", nil)
	if st != 200 || !bytes.HasPrefix(ct, []byte("age-encryption.org/v1")) {
		t.Fatalf("after the delay: %d %.200s", st, ct)
	}
	if _, err := age.Decrypt(bytes.NewReader(ct), id); err != nil {
		t.Fatalf("the export is not for the activated key: %v", err)
	}
}

// TestExportsShareCleanBuffers: a server's exports take their line buffers
// from one pool (export.Pool), so a short export after a long one gets
// the long one's buffers. Decrypted with the age CLI, each short export
// holds exactly its own readings, and each long one all of its own, with
// trailers that match; over several turns, so buffers are handed on.
func TestExportsShareCleanBuffers(t *testing.T) {
	f := newFixture(t, api.Config{KeyActivationDelay: -1, ExportsPerMinute: 1 << 20, ExportBurstPerGrant: 1 << 30})
	const n = 1000 // about 280 KB of data lines: every buffer of an export used
	if st, b := f.do(t, "POST", "/api/v1/readings", f.device, "", []byte(batch(n))); st != 201 {
		t.Fatalf("ingest: %d %s", st, b)
	}
	_, idPath := f.hubKey(t, f.clin, "hub")
	gb, err := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	if err != nil {
		t.Fatal(err)
	}
	if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	const hour = "&from=2025-02-01T00:00:00Z&to=2025-02-01T01:00:00Z"
	read := func(query string) [][]byte {
		st, b := f.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0"+query, f.ptok, "", nil)
		if st != 200 {
			t.Fatalf("readings: %d %s", st, b)
		}
		return bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	}
	wantAll, wantHour := read(""), read(hour)
	if len(wantAll) != n || len(wantHour) != 12 {
		t.Fatalf("the patient reads %d and %d readings, want %d and 12", len(wantAll), len(wantHour), n)
	}
	check := func(name, query string, want [][]byte) {
		t.Helper()
		st, ct := f.do(t, "GET", "/api/v1/patients/"+f.patient.ID+"/export?schema=omh:blood-glucose:4.0"+query, f.clin, "", nil)
		if st != 200 {
			t.Fatalf("%s export: %d %.200s", name, st, ct)
		}
		_, data, tr := splitExport(t, ageDecrypt(t, idPath, ct))
		if len(data) != len(want) || tr.Records != int64(len(want)) {
			t.Fatalf("%s export: %d data lines, trailer says %d, want %d", name, len(data), tr.Records, len(want))
		}
		h := sha256.New()
		for i := range data {
			if !bytes.Equal(data[i], want[i]) {
				t.Fatalf("%s export: line %d is not the stored reading", name, i)
			}
			h.Write(append(bytes.Clone(data[i]), '\n'))
		}
		if tr.SHA256 != hex.EncodeToString(h.Sum(nil)) {
			t.Fatalf("%s export: the trailer's hash is not the data's", name)
		}
	}
	for range 4 {
		check("long", "", wantAll)
		check("short", hour, wantHour)
	}
}
