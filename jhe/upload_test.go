package jhe_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

const bgSchema = "omh:blood-glucose:4.0"

// bgPoint is a CGM reading as CommonHealth-style apps send it: an Open
// mHealth point with its own uuid.
func bgPoint(uuid string, at time.Time, value int, unit string) string {
	return fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":%q,"specimen_source":"interstitial fluid"},"effective_time_frame":{"date_time":%q}}}`,
		uuid, at.Format(time.RFC3339), value, unit, at.Format(time.RFC3339))
}

// observationJSON wraps a point as JupyterHealth Exchange takes it: an R5
// Observation with the point base64-encoded (76-column lines, as MIME
// encoders write it) in valueAttachment.
func observationJSON(point, subject string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(point))
	var lines []string
	for len(enc) > 76 {
		lines = append(lines, enc[:76])
		enc = enc[76:]
	}
	lines = append(lines, enc)
	subj := ""
	if subject != "" {
		subj = fmt.Sprintf(`"subject":{"reference":%q},`, subject)
	}
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final",%s"code":{"coding":[{"system":"https://w3id.org/openmhealth","code":"omh:blood-glucose:4.0"}]},"device":{"reference":"Device/70001"},"valueAttachment":{"contentType":"application/json","data":%q}}`,
		subj, strings.Join(lines, "\n"))
}

func batchJSON(resources ...string) string {
	entries := make([]string, len(resources))
	for i, r := range resources {
		entries[i] = `{"resource":` + r + `,"request":{"method":"POST","url":"Observation"}}`
	}
	return `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Join(entries, ",") + `]}`
}

// post sends body to u (a path under JHE_URL, or an absolute URL).
func (f *fixture) post(t testing.TB, u, token, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = f.jhe + u
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	return send(t, req)
}

// stored is the patient's glucose readings in the vault, uuid to
// canonical JSON.
func (f *fixture) stored(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for r, err := range f.v.Readings(context.Background(), f.patient.ID, bgSchema, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		p, err := omh.Parse(r.JSON)
		if err != nil {
			t.Fatal(err)
		}
		out[p.UUID] = r.JSON
	}
	return out
}

type created struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Code         struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"code"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
}

type batchResponse struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Response struct {
			Status   string `json:"status"`
			Location string `json:"location"`
			Outcome  *struct {
				ResourceType string `json:"resourceType"`
				Issue        []struct{ Severity, Code, Diagnostics string }
			} `json:"outcome"`
		} `json:"response"`
		Resource created `json:"resource"`
	} `json:"entry"`
}

// TestUploadObservation: one Observation with the base64 OMH point is
// stored once, exactly as the native API stores it (the same point sent
// to POST /api/v1/readings afterwards is a duplicate there), and sent
// again is 409 duplicate with nothing changed; a device's token and the
// lowercase path work too.
func TestUploadObservation(t *testing.T) {
	f := newFixture(t, 0)
	vp := f.env.Token(t, f.patient.ID, vault.TokenPatient)
	vd := f.env.Token(t, f.patient.ID, vault.TokenDevice)
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	const id = "3f0e2a4c-6b8d-4e1f-9a2b-5c7d8e9f0a1b"
	point := bgPoint(id, at, 112, "mg/dL")
	obs := observationJSON(point, "Patient/"+oauth.FHIRID(f.patient.ID))

	st, h, b := f.post(t, "/FHIR/R5/Observation", vp, "application/fhir+json", []byte(obs))
	if st != http.StatusCreated {
		t.Fatalf("POST Observation: %d %s", st, b)
	}
	var c created
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.ResourceType != "Observation" || c.ID != id || len(c.Code.Coding) != 1 || c.Code.Coding[0].Code != bgSchema ||
		c.Subject.Reference != "Patient/"+oauth.FHIRID(f.patient.ID) || h.Get("Location") != f.jhe+"/FHIR/R5/Observation/"+id {
		t.Errorf("created: %+v, Location %q", c, h.Get("Location"))
	}
	got := f.stored(t)
	want, err := omh.Parse([]byte(point))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[id], want.AppendJSON(nil)) {
		t.Fatalf("stored %d readings; %s, want %s", len(got), got[id], want.AppendJSON(nil))
	}

	// Re-sent, by the patient or her device, on either path: a duplicate.
	for _, c := range []struct{ path, token string }{{"/FHIR/R5/Observation", vp}, {"/fhir/r5/Observation", vd}, {"/FHIR/R5/Observation/", vd}} {
		st, _, b := f.post(t, c.path, c.token, "application/json", []byte(obs))
		if _, code := detail(t, b); st != http.StatusConflict || code != "duplicate" {
			t.Errorf("re-sent to %s: %d %s", c.path, st, b)
		}
	}
	// The native API derives and dedups the same way: the same point is a
	// duplicate there.
	st, _, b = f.post(t, f.srv.URL+"/api/v1/readings", vd, "application/json", []byte(point))
	var res vault.IngestResult
	if err := json.Unmarshal(b, &res); err != nil || st != http.StatusCreated || res.Accepted != 0 || res.Duplicates != 1 {
		t.Errorf("native re-send: %d %s", st, b)
	}
	if got := f.stored(t); len(got) != 1 {
		t.Errorf("after the re-sends: %d readings", len(got))
	}

	// A new reading from the device, no subject: stored, and read back
	// through the surface's own search by the clinician.
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, true)
	second := bgPoint("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", at.Add(5*time.Minute), 118, "mg/dL")
	if st, _, b := f.post(t, "/fhir/r5/Observation", vd, "application/json", []byte(observationJSON(second, ""))); st != http.StatusCreated {
		t.Fatalf("device upload: %d %s", st, b)
	}
	st, b = f.get(t, "/FHIR/R5/Observation?patient="+oauth.FHIRID(f.patient.ID)+"&code="+bgCode+"&_count=1000", f.vc)
	if st != 200 {
		t.Fatalf("search: %d %s", st, b)
	}
	entries, _ := searchset(t, b)
	if len(entries) != 2 {
		t.Fatalf("search found %d, want 2", len(entries))
	}
	for _, e := range entries {
		raw, err := base64.StdEncoding.DecodeString(e.ValueAttachment.Data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := omh.Parse(raw)
		if err != nil || !bytes.Equal(raw, f.stored(t)[p.UUID]) {
			t.Errorf("read back %s: %v", raw, err)
		}
	}
}

// TestUploadBundle: a batch Bundle answers a batch-response, entry by
// entry 201 Created or 409 Conflict (stored before); one bad entry
// refuses the whole Bundle, naming the entry and field, and nothing of it
// is stored, as the native API's batches.
func TestUploadBundle(t *testing.T) {
	f := newFixture(t, 0)
	vd := f.env.Token(t, f.patient.ID, vault.TokenDevice)
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	ids := []string{"0a000000-0000-4000-8000-000000000001", "0a000000-0000-4000-8000-000000000002", "0a000000-0000-4000-8000-000000000003"}
	var obs []string
	for i, id := range ids {
		obs = append(obs, observationJSON(bgPoint(id, at.Add(time.Duration(i)*5*time.Minute), 100+i, "mg/dL"), ""))
	}
	if st, _, b := f.post(t, "/FHIR/R5/Observation", vd, "application/json", []byte(obs[0])); st != http.StatusCreated {
		t.Fatalf("first: %d %s", st, b)
	}

	for _, path := range []string{"/FHIR/R5", "/FHIR/R5/"} {
		st, _, b := f.post(t, path, vd, "application/fhir+json", []byte(batchJSON(obs...)))
		if st != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, st, b)
		}
		var br batchResponse
		if err := json.Unmarshal(b, &br); err != nil {
			t.Fatal(err)
		}
		if br.ResourceType != "Bundle" || br.Type != "batch-response" || len(br.Entry) != 3 {
			t.Fatalf("POST %s: %s", path, b)
		}
		for i, e := range br.Entry {
			wantStatus := "201 Created"
			if i == 0 || path == "/FHIR/R5/" { // the first was stored before; the second post repeats all
				wantStatus = "409 Conflict"
			}
			if e.Response.Status != wantStatus || e.Resource.ID != ids[i] {
				t.Errorf("POST %s entry %d: %+v", path, i, e)
			}
			if wantStatus == "201 Created" && e.Response.Location != "Observation/"+ids[i] {
				t.Errorf("entry %d location %q", i, e.Response.Location)
			}
			if wantStatus == "409 Conflict" && (e.Response.Outcome == nil || e.Response.Outcome.ResourceType != "OperationOutcome" || len(e.Response.Outcome.Issue) != 1 || e.Response.Outcome.Issue[0].Code != "duplicate") {
				t.Errorf("entry %d outcome: %+v", i, e.Response.Outcome)
			}
		}
	}
	if got := f.stored(t); len(got) != 3 {
		t.Fatalf("stored %d, want 3", len(got))
	}

	// One bad point among good new ones: nothing of the Bundle is stored.
	good1 := observationJSON(bgPoint("0b000000-0000-4000-8000-000000000001", at.Add(time.Hour), 120, "mg/dL"), "")
	bad := observationJSON(bgPoint("0b000000-0000-4000-8000-000000000002", at.Add(time.Hour+5*time.Minute), 120, "furlongs"), "")
	good2 := observationJSON(bgPoint("0b000000-0000-4000-8000-000000000003", at.Add(time.Hour+10*time.Minute), 125, "mg/dL"), "")
	st, _, b := f.post(t, "/FHIR/R5", vd, "application/json", []byte(batchJSON(good1, bad, good2)))
	var e struct {
		Detail, Code, Field string
		Index               *int
	}
	if err := json.Unmarshal(b, &e); err != nil || st != http.StatusBadRequest || e.Index == nil || *e.Index != 1 || e.Field == "" || e.Detail == "" || e.Code != "bad_unit" {
		t.Fatalf("bad entry: %d %s", st, b)
	}
	if strings.Contains(string(b), "furlongs") {
		t.Errorf("the refusal repeats the value sent: %s", b)
	}
	if got := f.stored(t); len(got) != 3 {
		t.Errorf("after the refused Bundle: %d readings, want 3", len(got))
	}
}

// TestUploadRefusals: wrong token kinds, bad wrappers and the limits
// (body size and batch size, the native API's) are refused with their
// codes, and nothing is stored by any of them.
func TestUploadRefusals(t *testing.T) {
	f := newFixture(t, 0)
	vp := f.env.Token(t, f.patient.ID, vault.TokenPatient)
	vdOther := f.env.Token(t, f.other.ID, vault.TokenDevice)
	expired := f.env.TokenFor(t, f.patient.ID, vault.TokenDevice, time.Nanosecond)
	hub := f.oauthToken(t, f.clin.ID, "openid fhirUser user/Observation.rs", oauth.Approval{})
	app := f.oauthToken(t, f.patient.ID, "openid patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:blood-glucose"}})
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	point := func(i int) string {
		return bgPoint(fmt.Sprintf("0c000000-0000-4000-8000-%012d", i), at.Add(time.Duration(i)*time.Minute), 100, "mg/dL")
	}
	obs := observationJSON(point(0), "")
	six := make([]string, testMaxBatch+1)
	for i := range six {
		six[i] = observationJSON(point(i), "")
	}
	wrap := func(s string) string { return strings.Replace(obs, `"application/json"`, s, 1) }
	enc := base64.StdEncoding.EncodeToString([]byte(point(0)))
	big := strings.Replace(obs, `"status":"final"`, `"status":"final","note":[{"text":"`+strings.Repeat("x", testMaxBody)+`"}]`, 1)

	cases := []struct {
		name, path, token, body string
		status                  int
		code                    string
	}{
		{"no token", "/FHIR/R5/Observation", "", obs, 401, "missing_token"},
		{"unknown token", "/FHIR/R5/Observation", "vd_" + strings.Repeat("a", 43), obs, 401, "invalid_token"},
		{"expired token", "/FHIR/R5/Observation", expired, obs, 401, "token_expired"},
		{"clinician vc_ token", "/FHIR/R5/Observation", f.vc, obs, 403, "wrong_token_type"},
		{"clinician OAuth token", "/FHIR/R5/Observation", hub, obs, 403, "wrong_token_type"},
		{"patient app OAuth token", "/FHIR/R5", app, batchJSON(obs), 403, "wrong_token_type"},
		{"another patient's subject", "/FHIR/R5/Observation", vp, observationJSON(point(0), "Patient/"+oauth.FHIRID(f.other.ID)), 403, "wrong_patient"},
		{"another patient's device naming her", "/FHIR/R5/Observation", vdOther, observationJSON(point(0), "Patient/"+oauth.FHIRID(f.patient.ID)), 403, "wrong_patient"},
		{"not JSON", "/FHIR/R5/Observation", vp, "{", 400, "malformed_json"},
		{"not an Observation", "/FHIR/R5/Observation", vp, strings.Replace(obs, `"Observation"`, `"Patient"`, 1), 400, "not_observation"},
		{"no attachment", "/FHIR/R5/Observation", vp, `{"resourceType":"Observation","status":"final"}`, 400, "missing_attachment"},
		{"attachment not JSON", "/FHIR/R5/Observation", vp, wrap(`"text/plain"`), 400, "attachment_not_json"},
		{"bad base64", "/FHIR/R5/Observation", vp, strings.Replace(obs, enc[:20], "!!!!"+enc[4:20], 1), 400, "bad_base64"},
		{"base64 of no JSON", "/FHIR/R5/Observation", vp, `{"resourceType":"Observation","valueAttachment":{"contentType":"application/json","data":"` + base64.StdEncoding.EncodeToString([]byte("hello")) + `"}}`, 400, "malformed_json"},
		{"invalid point", "/FHIR/R5/Observation", vp, observationJSON(strings.Replace(point(0), `"mg/dL"`, `"furlongs"`, 1), ""), 400, "bad_unit"},
		{"transaction Bundle", "/FHIR/R5", vp, strings.Replace(batchJSON(obs), `"batch"`, `"transaction"`, 1), 400, "bad_bundle"},
		{"Observation to the Bundle path", "/FHIR/R5", vp, obs, 400, "bad_bundle"},
		{"empty Bundle", "/FHIR/R5", vp, `{"resourceType":"Bundle","type":"batch","entry":[]}`, 400, "empty_batch"},
		{"PUT entry", "/FHIR/R5", vp, strings.Replace(batchJSON(obs), `"POST"`, `"PUT"`, 1), 400, "bad_entry"},
		{"batch over the limit", "/FHIR/R5", vp, batchJSON(six...), 413, "batch_too_large"},
		{"body over the limit", "/FHIR/R5/Observation", vp, big, 413, "body_too_large"},
		{"metadata is read-only", "/FHIR/R5/metadata", vp, obs, 405, "read_only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _, b := f.post(t, c.path, c.token, "application/json", []byte(c.body))
			_, code := detail(t, b)
			if st != c.status || (c.code != "" && code != c.code) {
				t.Errorf("%d %s, want %d %s", st, b, c.status, c.code)
			}
		})
	}
	if got := f.stored(t); len(got) != 0 {
		t.Errorf("refused uploads stored %d readings", len(got))
	}
	// The batch limit is the count of Observations: the largest allowed
	// batch is stored whole.
	if st, _, b := f.post(t, "/FHIR/R5", vp, "application/json", []byte(batchJSON(six[:testMaxBatch]...))); st != 200 {
		t.Fatalf("a batch of %d: %d %s", testMaxBatch, st, b)
	}
	if got := f.stored(t); len(got) != testMaxBatch {
		t.Errorf("stored %d, want %d", len(got), testMaxBatch)
	}
}
