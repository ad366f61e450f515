package jhe_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

// bgCode is the client's Code.BLOOD_GLUCOSE as it sends it: system|code,
// URL-encoded.
const bgCode = "https%3A%2F%2Fw3id.org%2Fopenmhealth%7Comh%3Ablood-glucose%3A4.0"

// studyParam is patient._has:Group:member:_id as the client encodes it.
const studyParam = "patient._has%3AGroup%3Amember%3A_id"

// TestContract replays every call of jupyterhealth-client (0.4 and 0.5;
// the research note's table), with the query encoding it sends and only
// an Authorization header, and checks each answer has the fields the
// client and its documented notebooks read.
func TestContract(t *testing.T) {
	f := newFixture(t, 1)
	g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose", "omh:heart-rate"}, time.Time{}, time.Time{}, true)
	pt, gr := oauth.FHIRID(f.patient.ID), oauth.FHIRID(g.ID)
	own := "org-" + strings.TrimPrefix(f.clin.ID, "cl_")

	// get_user
	var prof map[string]any
	f.getJSON(t, "/api/v1/users/profile", f.vc, &prof)
	if prof["id"] != f.clin.ID || prof["firstName"] != "Sofia" || prof["lastName"] != "Rivera" || prof["userType"] != "practitioner" {
		t.Errorf("profile: %v", prof)
	}
	for _, k := range []string{"email", "patient"} {
		if _, ok := prof[k]; !ok {
			t.Errorf("profile has no %s", k)
		}
	}

	// list_patients: a DRF page; each patient with identifiers.
	type patient struct {
		ID          string `json:"id"`
		Identifiers []struct {
			ID, System, Value string
		} `json:"identifiers"`
		NameFamily   string  `json:"nameFamily"`
		NameGiven    string  `json:"nameGiven"`
		TelecomEmail *string `json:"telecomEmail"`
	}
	type patientPage struct {
		Count    int       `json:"count"`
		Next     *string   `json:"next"`
		Previous *string   `json:"previous"`
		Results  []patient `json:"results"`
	}
	for _, q := range []string{"", "?organization_id=0", "?organization_id=" + own, "?study_id=" + gr} {
		var pp patientPage
		f.getJSON(t, "/api/v1/patients"+q, f.vc, &pp)
		if pp.Count != 1 || pp.Next != nil || pp.Previous != nil || len(pp.Results) != 1 {
			t.Fatalf("patients%s: %+v", q, pp)
		}
		p := pp.Results[0]
		if p.ID != pt || len(p.Identifiers) != 1 || p.Identifiers[0].Value != f.patient.ID || p.Identifiers[0].System == "" || p.NameFamily != "Lovelace" || p.NameGiven != "Ada" {
			t.Errorf("patients%s: %+v", q, p)
		}
	}
	for _, q := range []string{"?organization_id=7", "?study_id=gr-nope"} {
		var pp patientPage
		f.getJSON(t, "/api/v1/patients"+q, f.vc, &pp)
		if pp.Count != 0 || pp.Results == nil || len(pp.Results) != 0 {
			t.Errorf("patients%s: %+v", q, pp)
		}
	}

	// get_patient, in both id forms.
	for _, id := range []string{pt, f.patient.ID} {
		var p patient
		f.getJSON(t, "/api/v1/patients/"+id, f.vc, &p)
		if p.ID != pt {
			t.Errorf("patient %s: %+v", id, p)
		}
	}

	// lookup_patient(email=…): a JSON array (always empty: no emails kept).
	st, b := f.get(t, "/api/v1/patients/global_lookup?email=ada%40example.org", f.vc)
	if st != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("global_lookup: %d %s", st, b)
	}

	// get_patient_consents
	var c struct {
		Patient                     patient `json:"patient"`
		ConsolidatedConsentedScopes []struct {
			ID, CodingSystem, CodingCode, Text string
		} `json:"consolidatedConsentedScopes"`
		StudiesPendingConsent []any `json:"studiesPendingConsent"`
		Studies               []struct {
			ID, Name, Description string
			Organization          struct{ ID, Name, Type any }
			DataSources           []any `json:"dataSources"`
			ScopeConsents         []struct {
				Code struct {
					CodingCode, Text string
				} `json:"code"`
				Consented     bool   `json:"consented"`
				ConsentedTime string `json:"consentedTime"`
			} `json:"scopeConsents"`
		} `json:"studies"`
	}
	f.getJSON(t, "/api/v1/patients/"+pt+"/consents", f.vc, &c)
	var codes []string
	for _, cc := range c.ConsolidatedConsentedScopes {
		codes = append(codes, cc.CodingCode)
		if cc.CodingSystem != "https://w3id.org/openmhealth" || cc.Text == "" {
			t.Errorf("scope %+v", cc)
		}
	}
	if c.Patient.ID != pt || !slices.Equal(codes, []string{"omh:blood-glucose:4.0", "omh:heart-rate:2.0"}) || c.StudiesPendingConsent == nil ||
		len(c.Studies) != 1 || c.Studies[0].ID != gr || c.Studies[0].DataSources == nil || len(c.Studies[0].ScopeConsents) != 2 {
		t.Fatalf("consents: %+v", c)
	}
	for _, sc := range c.Studies[0].ScopeConsents {
		if !sc.Consented || sc.ConsentedTime == "" || sc.Code.Text == "" {
			t.Errorf("scope consent %+v", sc)
		}
	}

	// list_studies, get_study
	type studyT struct {
		ID, Name, Description string
		Organization          struct {
			ID   any
			Name string
			Type string
		}
	}
	for _, q := range []string{"", "?organization_id=" + own} {
		var sp struct {
			Count   int      `json:"count"`
			Next    *string  `json:"next"`
			Results []studyT `json:"results"`
		}
		f.getJSON(t, "/api/v1/studies"+q, f.vc, &sp)
		if sp.Count != 1 || len(sp.Results) != 1 || sp.Results[0].ID != gr || !strings.Contains(sp.Results[0].Name, "Ada Lovelace") || sp.Results[0].Organization.Name == "" {
			t.Errorf("studies%s: %+v", q, sp)
		}
	}
	var one studyT
	f.getJSON(t, "/api/v1/studies/"+gr, f.vc, &one)
	if one.ID != gr || !strings.Contains(one.Description, g.ID) {
		t.Errorf("study: %+v", one)
	}

	// list_organizations, get_organization
	var op struct {
		Count   int `json:"count"`
		Results []struct {
			ID     any    `json:"id"`
			Name   string `json:"name"`
			Type   string `json:"type"`
			PartOf any    `json:"partOf"`
		} `json:"results"`
	}
	f.getJSON(t, "/api/v1/organizations", f.vc, &op)
	if op.Count != 2 || op.Results[0].ID != float64(0) || op.Results[0].Type != "root" || op.Results[1].ID != own || op.Results[1].PartOf != float64(0) {
		t.Errorf("organizations: %+v", op)
	}
	for _, id := range []string{"0", own} {
		var o map[string]any
		f.getJSON(t, "/api/v1/organizations/"+id, f.vc, &o)
		if o["name"] == "" || o["type"] == "" {
			t.Errorf("organization %s: %v", id, o)
		}
	}

	// list_data_sources: an empty page.
	st, b = f.get(t, "/api/v1/data_sources", f.vc)
	if st != 200 || !bytes.Contains(b, []byte(`"results":[]`)) || !bytes.Contains(b, []byte(`"count":0`)) {
		t.Errorf("data_sources: %d %s", st, b)
	}

	// list_observations by patient, by study, and both, upper- and
	// lowercase paths.
	for _, q := range []string{
		"/FHIR/R5/Observation?patient=" + pt + "&code=" + bgCode + "&_count=1000",
		"/FHIR/R5/Observation?" + studyParam + "=" + gr + "&code=" + bgCode + "&_count=1000",
		"/FHIR/R5/Observation?" + studyParam + "=" + gr + "&patient=" + pt + "&code=" + bgCode + "&_count=1000",
		"/fhir/r5/Observation?patient=" + pt + "&code=" + bgCode + "&_count=1000",
	} {
		st, b := f.get(t, q, f.vc)
		if st != 200 {
			t.Fatalf("%s: %d %s", q, st, b)
		}
		obs, next := searchset(t, b)
		if len(obs) != 288 || next != "" {
			t.Fatalf("%s: %d observations, next %q", q, len(obs), next)
		}
		o := obs[0]
		if o.ResourceType != "Observation" || o.ID == "" || len(o.Code.Coding) != 1 || o.Code.Coding[0].Code != "omh:blood-glucose:4.0" ||
			o.Code.Coding[0].System != "https://w3id.org/openmhealth" || !strings.Contains(o.ValueAttachment.ContentType, "json") || o.Subject.Reference != "Patient/"+pt {
			t.Fatalf("%s: observation %+v", q, o)
		}
		var point struct {
			Header map[string]any `json:"header"`
			Body   map[string]any `json:"body"`
		}
		raw, err := base64.StdEncoding.DecodeString(o.ValueAttachment.Data)
		if err != nil || json.Unmarshal(raw, &point) != nil || point.Header["uuid"] == nil || point.Body["blood_glucose"] == nil {
			t.Fatalf("%s: valueAttachment.data %v %.200s", q, err, raw)
		}
	}
	// No code: every schema granted (288 CGM + 24 heart rate).
	st, b = f.get(t, "/FHIR/R5/Observation?patient="+pt+"&_count=1000", f.vc)
	if obs, _ := searchset(t, b); st != 200 || len(obs) != 312 {
		t.Errorf("without code: %d, %d observations", st, len(obs))
	}

	// get_fhir_capability_statement / list_fhir_resource_types (0.5): open.
	var cs struct {
		ResourceType string
		Rest         []struct {
			Resource []struct{ Type string }
		}
	}
	f.getJSON(t, "/FHIR/R5/metadata", "", &cs)
	if cs.ResourceType != "CapabilityStatement" || len(cs.Rest) != 1 || cs.Rest[0].Resource[0].Type != "Observation" {
		t.Errorf("metadata: %+v", cs)
	}
}

// TestErrors: every refusal is JSON with a detail (the client prints it)
// and a stable code.
func TestErrors(t *testing.T) {
	f := newFixture(t, 0)
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, true)
	pt := oauth.FHIRID(f.patient.ID)
	pp := f.env.Token(t, f.patient.ID, "patient")
	for _, tc := range []struct {
		path, token string
		status      int
		code        string
	}{
		{"/api/v1/patients", "", 401, "missing_token"},
		{"/api/v1/patients", "vc_" + strings.Repeat("a", 60), 401, "invalid_token"},
		{"/api/v1/patients", pp, 403, "wrong_token_type"},
		{"/api/v1/patients/pt-nosuch", f.vc, 403, "no_grant"},
		{"/api/v1/patients/" + oauth.FHIRID(f.other.ID), f.vc, 403, "no_grant"},
		{"/api/v1/patients/cl-x", f.vc, 404, "not_found"},
		{"/api/v1/patients?page=2", f.vc, 404, "bad_page"},
		{"/api/v1/patients?page_size=1001", f.vc, 400, "bad_page_size"},
		{"/api/v1/patients?patient_identifier_value=x", f.vc, 400, "unknown_parameter"},
		{"/api/v1/studies/gr-nosuch", f.vc, 404, "not_found"},
		{"/api/v1/organizations/9", f.vc, 404, "not_found"},
		{"/api/v1/observations", f.vc, 404, "not_found"},
		{"/FHIR/R5/Observation?code=" + bgCode, f.vc, 400, "patient_required"},
		{"/FHIR/R5/Observation?patient=" + pt + "&_count=1001", f.vc, 400, "bad_search"},
		{"/FHIR/R5/Observation?patient=" + pt + "&date=ge2026", f.vc, 400, "unknown_parameter"},
		{"/FHIR/R5/Observation?patient=" + pt + "&_cursor=forged", f.vc, 400, "bad_cursor"},
		{"/FHIR/R5/Observation?patient=" + pt + "&code=" + url.QueryEscape("https://w3id.org/openmhealth|omh:heart-rate:2.0"), f.vc, 403, "schema_not_granted"},
		{"/FHIR/R5/Observation?" + studyParam + "=gr-nosuch", f.vc, 403, "no_grant"},
		{"/FHIR/R5/Observation?patient=" + pt + "&code=" + url.QueryEscape("https://w3id.org/openmhealth|ieee:food-entry:0.1"), f.vc, 403, "schema_not_granted"},
		{"/FHIR/R5/Patient", f.vc, 404, "not_found"},
	} {
		st, b := f.get(t, tc.path, tc.token)
		d, code := detail(t, b)
		if st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.path, st, code, d, tc.status, tc.code)
		}
	}
	// Only uploads take a POST (TestUploadRefusals): a POST anywhere else
	// is refused with a detail.
	resp, err := http.Post(f.jhe+"/api/v1/patients", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := detail(t, b); resp.StatusCode != 405 || code != "read_only" {
		t.Errorf("POST: %d %s", resp.StatusCode, code)
	}
}

// TestPaging: a day of CGM in pages of 100, newest first, through the
// absolute next links the client follows: every reading once, each the
// vault's own canonical point; an empty page still has entry and link.
func TestPaging(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose", "omh:heart-rate", "omh:step-count"}, time.Time{}, time.Time{}, true)
	pt := oauth.FHIRID(f.patient.ID)
	want := f.storedNewestFirst(t, f.patient.ID, "omh:blood-glucose:4.0")
	obs, nexts := f.allPages(t, "/FHIR/R5/Observation?patient="+pt+"&code="+bgCode+"&_count=100", f.vc)
	for _, next := range nexts {
		if !strings.HasPrefix(next, f.jhe+"/FHIR/R5/Observation?") {
			t.Fatalf("next link not absolute under JHE_URL: %s", next)
		}
	}
	if pages := len(nexts) + 1; pages != 3 || len(obs) != len(want) {
		t.Fatalf("%d pages, %d readings; want 3 pages, %d", pages, len(obs), len(want))
	}
	sameReadings(t, obs, want)
	// Empty pages: a schema granted with no readings, a code the vault
	// does not store, another system. (The client's ieee: members are
	// served as any other: TestUntypedSchemaReads.)
	for _, c := range []string{"omh:step-count:2.0", "omh:heart-rate-variability:1.0", "omh:blood-glucose:9.9"} {
		st, b := f.get(t, "/FHIR/R5/Observation?patient="+pt+"&code="+url.QueryEscape("https://w3id.org/openmhealth|"+c)+"&_count=1000", f.vc)
		obs, next := searchset(t, b)
		if st != 200 || len(obs) != 0 || next != "" {
			t.Errorf("%s: %d, %d observations, next %q", c, st, len(obs), next)
		}
	}
	st, b := f.get(t, "/FHIR/R5/Observation?patient="+pt+"&code="+url.QueryEscape("http://loinc.org|8867-4"), f.vc)
	if obs, _ := searchset(t, b); st != 200 || len(obs) != 0 {
		t.Errorf("a LOINC code: %d, %d observations", st, len(obs))
	}
	// API lists page too: two patients, a page each.
	f.grant(t, f.other.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, true)
	var ids []string
	next := f.jhe + "/api/v1/patients?page_size=1"
	for next != "" {
		var pp struct {
			Count   int     `json:"count"`
			Next    *string `json:"next"`
			Results []struct {
				ID string `json:"id"`
			} `json:"results"`
		}
		f.getJSON(t, next, f.vc, &pp)
		if pp.Count != 2 || len(pp.Results) != 1 {
			t.Fatalf("%s: %+v", next, pp)
		}
		ids = append(ids, pp.Results[0].ID)
		next = ""
		if pp.Next != nil {
			next = *pp.Next
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("patients paged: %v", ids)
	}
}

// TestConsent: the ledger decides every read, as on the FHIR API.
func TestConsent(t *testing.T) {
	f := newFixture(t, 2)
	pt := oauth.FHIRID(f.patient.ID)
	bg := "/FHIR/R5/Observation?patient=" + pt + "&code=" + bgCode + "&_count=100"
	patients := func(t *testing.T) int {
		t.Helper()
		var pp struct {
			Count int `json:"count"`
		}
		f.getJSON(t, "/api/v1/patients", f.vc, &pp)
		return pp.Count
	}

	t.Run("no grant", func(t *testing.T) {
		st, b := f.get(t, bg, f.vc)
		if _, code := detail(t, b); patients(t) != 0 || st != 403 || code != "no_grant" {
			t.Errorf("no grant: %d patients; observations %d %s", patients(t), st, code)
		}
	})

	t.Run("grant without FHIR reads", func(t *testing.T) {
		g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, false)
		defer f.revoke(t, g)
		st, b := f.get(t, bg, f.vc)
		if _, code := detail(t, b); patients(t) != 0 || st != 403 || code != "fhir_not_granted" {
			t.Errorf("export-only grant: %d patients; observations %d %s", patients(t), st, code)
		}
		st, b = f.get(t, "/api/v1/studies", f.vc)
		if st != 200 || !bytes.Contains(b, []byte(`"count":0`)) {
			t.Errorf("studies under an export-only grant: %d %s", st, b)
		}
	})

	t.Run("window clipped and logged", func(t *testing.T) {
		from, to := f.start.Add(12*time.Hour), f.start.Add(18*time.Hour)
		g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, from, to, true)
		defer f.revoke(t, g)
		before, _, err := f.ledger.AccessPage(f.patient.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, q := range []string{bg, "/FHIR/R5/Observation?" + studyParam + "=" + oauth.FHIRID(g.ID) + "&_count=100"} {
			next := q
			for next != "" {
				st, b := f.get(t, next, f.vc)
				if st != 200 {
					t.Fatalf("%d %s", st, b)
				}
				var obs []observation
				obs, next = searchset(t, b)
				for _, o := range obs {
					var p struct {
						Body struct {
							EffectiveTimeFrame struct {
								DateTime time.Time `json:"date_time"`
							} `json:"effective_time_frame"`
						} `json:"body"`
					}
					raw, _ := base64.StdEncoding.DecodeString(o.ValueAttachment.Data)
					if err := json.Unmarshal(raw, &p); err != nil {
						t.Fatal(err)
					}
					if at := p.Body.EffectiveTimeFrame.DateTime; at.Before(from) || !at.Before(to) {
						t.Fatalf("reading at %s outside the grant's window", at)
					}
				}
				n += len(obs)
			}
		}
		if n != 2*72 {
			t.Errorf("%d readings in the window twice, want %d", n, 2*72)
		}
		after, _, err := f.ledger.AccessPage(f.patient.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		added := after[:len(after)-len(before)]
		if len(added) != 2 {
			t.Fatalf("%d accesses logged, want 2 (one per page)", len(added))
		}
		for _, a := range added {
			if a.Format != "jhe" || a.Clinician != f.clin.ID || a.End == nil || a.Records != 72 || !slices.Equal(a.Grants, []string{g.ID}) {
				t.Errorf("access %+v", a)
			}
		}
	})

	t.Run("revoke between pages", func(t *testing.T) {
		g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, true)
		st, b := f.get(t, bg, f.vc)
		_, next := searchset(t, b)
		if st != 200 || next == "" {
			t.Fatalf("first page: %d, next %q", st, next)
		}
		f.revoke(t, g)
		st, b = f.get(t, next, f.vc)
		if d, code := detail(t, b); st != 403 || code != "revoked" {
			t.Errorf("the page after the revoke: %d %s %s", st, code, d)
		}
	})

	t.Run("access log unavailable", func(t *testing.T) {
		g := f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, true)
		defer f.revoke(t, g)
		f.store.FailWrites.Store(true)
		st, b := f.get(t, bg, f.vc)
		f.store.FailWrites.Store(false)
		if _, code := detail(t, b); st != 503 || code != "access_log_unavailable" || bytes.Contains(b, []byte("valueAttachment")) {
			t.Errorf("with the log failing: %d %.200s", st, b)
		}
	})
}

// TestTokens: a clinician's OAuth access token (as a JupyterHub holds
// one) and her vc_ token both read; other tokens do not, and an OAuth
// token reads no schema its scopes leave out.
func TestTokens(t *testing.T) {
	f := newFixture(t, 1)
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose", "omh:heart-rate"}, time.Time{}, time.Time{}, true)
	pt := oauth.FHIRID(f.patient.ID)
	bg := "/FHIR/R5/Observation?patient=" + pt + "&code=" + bgCode + "&_count=1000"
	hub := f.oauthToken(t, f.clin.ID, "openid fhirUser user/Observation.rs", oauth.Approval{})
	for name, tok := range map[string]string{"oauth": hub, "vc": f.vc} {
		st, b := f.get(t, bg, tok)
		if obs, _ := searchset(t, b); st != 200 || len(obs) != 288 {
			t.Errorf("%s token: %d, %d observations", name, st, len(obs))
		}
		var pp struct{ Count int }
		f.getJSON(t, "/api/v1/patients", tok, &pp)
		if pp.Count != 1 {
			t.Errorf("%s token: %d patients", name, pp.Count)
		}
	}
	// Narrow scopes bound the read: heart rate only.
	hr := f.oauthToken(t, f.clin.ID, "openid user/Observation.rs?code=http://loinc.org|8867-4", oauth.Approval{})
	st, b := f.get(t, bg, hr)
	if _, code := detail(t, b); st != 403 || code != "scope" {
		t.Errorf("a heart-rate-only token reading glucose: %d %s", st, code)
	}
	// A patient's app token is not a clinician's.
	app := f.oauthToken(t, f.patient.ID, "openid patient/Observation.rs", oauth.Approval{GrantID: "app", Schemas: []string{"omh:blood-glucose"}})
	st, b = f.get(t, bg, app)
	if _, code := detail(t, b); st != 403 || code != "wrong_token_type" {
		t.Errorf("a patient app's token: %d %s", st, code)
	}
	// A device token is no clinician's either.
	dev := f.env.Token(t, f.patient.ID, "device")
	st, b = f.get(t, bg, dev)
	if _, code := detail(t, b); st != 403 || code != "wrong_token_type" {
		t.Errorf("a device token: %d %s", st, code)
	}
	// A cursor is bound to the sign-in: another token cannot follow it.
	st, b = f.get(t, "/FHIR/R5/Observation?patient="+pt+"&code="+bgCode+"&_count=10", f.vc)
	_, next := searchset(t, b)
	if st != 200 || next == "" {
		t.Fatal("no next page")
	}
	st, b = f.get(t, next, hub)
	if _, code := detail(t, b); st != 400 || code != "bad_cursor" {
		t.Errorf("another token's cursor: %d %s", st, code)
	}
}
