package fhir_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
)

// ingestUntyped stores, from f.start, n hourly ieee:food-entry:0.1
// readings, n/10 ieee:sleep-stage-summary:1.0 nights and 3 readings of
// omh:blood-glucose:2.0 (an older version, stored without a typed model).
func (f *fixture) ingestUntyped(t *testing.T, n int) {
	t.Helper()
	var pts []*omh.Point
	for i := range n {
		at := f.start.Add(time.Duration(i)*time.Hour + 30*time.Minute).Format(time.RFC3339)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"food-entry","version":"0.1"},"source_creation_date_time":%q},"body":{"food_name":"soup %d","food_amount":{"value":%d,"unit":"mL"},"effective_time_frame":{"date_time":%q}}}`,
			uuidOf("food", i), at, i, 100+i, at)))
	}
	for i := range n / 10 {
		night := f.start.Add(time.Duration(i) * 24 * time.Hour)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"sleep-stage-summary","version":"1.0"},"source_creation_date_time":%q},"body":{"sleep_stage_summary":{"total_sleep_time":{"value":%d,"unit":"min"}},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`,
			uuidOf("sleep", i), night.Format(time.RFC3339), 400+i, night.Format(time.RFC3339), night.Add(7*time.Hour).Format(time.RFC3339))))
	}
	for i := range 3 {
		at := f.start.Add(time.Duration(i)*time.Hour + 10*time.Minute).Format(time.RFC3339)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"blood-glucose","version":"2.0"},"source_creation_date_time":%q},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`,
			uuidOf("bg2", i), at, 90+i, at)))
	}
	if _, err := f.v.Ingest(t.Context(), f.patient.ID, pts); err != nil {
		t.Fatal(err)
	}
}

// untypedObs checks one Observation of a schema without a typed model:
// coded with the schema id alone, the stored point base64 in the R5
// valueAttachment extension, valid R4. It returns the decoded point.
func untypedObs(t *testing.T, u *jsonformat.Unmarshaller, res json.RawMessage, schema string) map[string]any {
	t.Helper()
	var o struct {
		ResourceType string
		ID           string
		Code         struct {
			Coding []struct{ System, Code string }
		}
		Category  []any
		Extension []struct {
			URL             string
			ValueAttachment struct{ ContentType, Data string }
		}
		ValueQuantity any
	}
	if err := json.Unmarshal(res, &o); err != nil {
		t.Fatal(err)
	}
	if o.ResourceType != "Observation" || len(o.Code.Coding) != 1 || o.Code.Coding[0].System != omh.CodeSystem || o.Code.Coding[0].Code != schema ||
		o.Category != nil || o.ValueQuantity != nil || len(o.Extension) != 1 ||
		o.Extension[0].URL != "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value" || o.Extension[0].ValueAttachment.ContentType != "application/json" {
		t.Fatalf("not the generic Observation of %s: %s", schema, res)
	}
	raw, err := base64.StdEncoding.DecodeString(o.Extension[0].ValueAttachment.Data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := omh.Parse(raw)
	if err != nil || p.Schema.String() != schema || string(p.AppendJSON(nil)) != string(raw) {
		t.Fatalf("the attachment is not the stored %s point: %v %s", schema, err, raw)
	}
	if _, err := u.UnmarshalR4(res); err != nil {
		t.Fatalf("not valid R4: %v\n%s", err, res)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUntypedSchemaSearch: readings of schemas the vault stores without
// a typed model are served as the export writes them, through the same
// consent, paging and access log as typed ones. A search by the schema's
// OMH code (any spelling) pages through all of them; an unfiltered search
// and a mixed LOINC-and-OMH search include them; a category search does
// not (they have none); each one reads back by its id; a grant that does
// not cover the schema is 403 schema_not_granted (and an unfiltered
// search of hers leaves them out); a granular scope does not reach them
// (403 scope), a whole Observation scope in v1 form does; every page is logged with the schema; a revoke between
// two pages stops the second.
func TestUntypedSchemaSearch(t *testing.T) {
	f := newFixture(t, 1) // 288 CGM readings, 24 heart rates
	f.ingestUntyped(t, 30)
	g := f.grant(t, f.patient.ID, f.clin.ID, []string{"omh:blood-glucose", "ieee:food-entry"}, time.Time{}, true)
	f.grant(t, f.patient.ID, f.otherClin.ID, []string{"omh:heart-rate"}, time.Time{}, true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	pt := oauth.FHIRID(f.patient.ID)
	q := "/Observation?patient=" + pt
	food := "https://w3id.org/openmhealth|ieee:food-entry:0.1"

	// Every food entry, across pages of 7, once each, oldest first.
	seen := map[string]bool{}
	next, pages := q+"&_sort=date&_count=7&code="+url.QueryEscape(food), 0
	for next != "" {
		st, _, b := f.get(t, next, tok)
		if st != 200 {
			t.Fatalf("page %d: %d %s", pages, st, b)
		}
		bd := decodeBundle(t, b)
		for _, e := range bd.Entry {
			m := untypedObs(t, u, e.Resource, "ieee:food-entry:0.1")
			name := m["body"].(map[string]any)["food_name"].(string)
			if seen[name] {
				t.Fatalf("%s twice", name)
			}
			seen[name] = true
			if len(seen) == 1 && name != "soup 0" {
				t.Errorf("first reading %s, want soup 0", name)
			}
			// It reads back by its id, the same resource.
			st, _, one := f.get(t, e.FullURL, tok)
			if st != 200 || string(one) != string(e.Resource) {
				t.Fatalf("read %s: %d %s\nsearch gave %s", e.FullURL, st, one, e.Resource)
			}
		}
		next = bd.next()
		pages++
	}
	if len(seen) != 30 || pages != 5 {
		t.Fatalf("%d food entries in %d pages, want 30 in 5", len(seen), pages)
	}

	count := func(t *testing.T, tok, query string) (int, map[string]int) {
		t.Helper()
		st, _, b := f.get(t, q+"&_count=1000"+query, tok)
		if st != 200 {
			t.Fatalf("%s: %d %s", query, st, b)
		}
		by := map[string]int{}
		bd := decodeBundle(t, b)
		for _, e := range bd.Entry {
			var o struct {
				Code struct{ Coding []struct{ Code string } }
			}
			if err := json.Unmarshal(e.Resource, &o); err != nil {
				t.Fatal(err)
			}
			by[o.Code.Coding[0].Code]++
		}
		return len(bd.Entry), by
	}
	for _, tc := range []struct {
		query string
		want  map[string]int
	}{
		{"&code=ieee:food-entry", map[string]int{"ieee:food-entry:0.1": 30}},
		{"&code=" + url.QueryEscape("https://w3id.org/openmhealth|omh:blood-glucose:2.0"), map[string]int{"omh:blood-glucose:2.0": 3}},
		{"&code=" + url.QueryEscape("https://w3id.org/openmhealth|omh:blood-glucose:4.0"), map[string]int{"2339-0": 288}},
		{"", map[string]int{"2339-0": 288, "ieee:food-entry:0.1": 30, "omh:blood-glucose:2.0": 3}},
		{"&code=" + url.QueryEscape("http://loinc.org|2339-0,"+food), map[string]int{"2339-0": 288, "ieee:food-entry:0.1": 30}},
		{"&category=laboratory", map[string]int{"2339-0": 288}},
		{"&code=omh:no-such-schema:1.0", map[string]int{}},
	} {
		if _, by := count(t, tok, tc.query); fmt.Sprint(by) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %v, want %v", tc.query, by, tc.want)
		}
	}

	// What the grants do not cover, and what a granular scope does not reach.
	other, _ := f.token(t, f.otherClin.ID, "user/*.rs", oauth.Approval{})
	narrow, _ := f.token(t, f.clin.ID, "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", oauth.Approval{})
	for _, tc := range []struct {
		tok, code, want string
	}{
		{tok, "ieee:sleep-stage-summary:1.0", "schema_not_granted"},
		{other, food, "schema_not_granted"},
		{narrow, food, "scope"},
	} {
		st, _, b := f.get(t, q+"&code="+url.QueryEscape(tc.code), tc.tok)
		if st != 403 || outcomeCode(t, b) != tc.want {
			t.Errorf("%s: %d %s, want 403 %s", tc.code, st, b, tc.want)
		}
	}
	whole, _ := f.token(t, f.clin.ID, "user/Observation.read", oauth.Approval{})
	if _, by := count(t, whole, "&code=ieee:food-entry:0.1"); fmt.Sprint(by) != fmt.Sprint(map[string]int{"ieee:food-entry:0.1": 30}) {
		t.Errorf("user/Observation.read: %v", by)
	}
	if _, by := count(t, other, ""); fmt.Sprint(by) != fmt.Sprint(map[string]int{"8867-4": 24}) {
		t.Errorf("unfiltered, heart rate only granted: %v", by)
	}
	if _, by := count(t, narrow, ""); fmt.Sprint(by) != fmt.Sprint(map[string]int{"2339-0": 288}) {
		t.Errorf("unfiltered, laboratory scope: %v", by)
	}

	// Every page is in her log, with the schema; then a revoke between
	// two pages stops the second.
	logged := f.fhirReadsLogged(t, f.clin.ID, "ieee:food-entry:0.1")
	if want := 5 + 30 + 1 + 2 + 1; logged != want { // the pages, the reads by id, code=ieee:food-entry, unfiltered and mixed, user/Observation.read
		t.Errorf("%d accesses with ieee:food-entry:0.1 logged, want %d", logged, want)
	}
	f.revokeBetweenPages(t, q+"&_count=10&code="+url.QueryEscape(food), tok, g)

	st, _, b := f.get(t, "/metadata", "")
	if st != 200 || strings.Contains(string(b), "schema_not_served") || !strings.Contains(string(b), "ieee:food-entry:0.1") {
		t.Errorf("metadata: %d, says nothing of the schemas without a typed model: %s", st, b)
	}
}

// TestUntimedSchemaSearch: readings of a schema that defines no
// effective_time_frame (ieee:survey:1.0) are filed by the header's
// creation time, and that time decides everything a time decides: the
// grant's data window clips them by it, a date search selects by it, and
// each generic Observation's effectiveDateTime is it. They read back by
// id, and each read is in the patient's log with the schema.
func TestUntimedSchemaSearch(t *testing.T) {
	f := newFixture(t, 1)
	var pts []*omh.Point
	var times []string
	for i := range 3 {
		at := f.start.Add(time.Duration(i+1) * time.Hour).Format(time.RFC3339)
		times = append(times, at)
		pts = append(pts, parsePoint(t, fmt.Sprintf(`{"header":{"uuid":%q,"schema_id":{"namespace":"ieee","name":"survey","version":"1.0"},"source_creation_date_time":%q},"body":{"items":[{"question":{"text":"Mood %d?"},"answers":[{"value":%d}]}],"delivery_details":{"end_status":"completed"}}}`,
			uuidOf("survey", i), at, i, i)))
	}
	if _, err := f.v.Ingest(t.Context(), f.patient.ID, pts); err != nil {
		t.Fatal(err)
	}
	// The grant's data starts between the first and the second survey.
	f.grant(t, f.patient.ID, f.clin.ID, []string{"ieee:survey"}, f.start.Add(90*time.Minute), true)
	tok, _ := f.token(t, f.clin.ID, "user/*.rs", oauth.Approval{})
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	q := "/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&_sort=date&code=" + url.QueryEscape("https://w3id.org/openmhealth|ieee:survey:1.0")
	search := func(t *testing.T, query string) []string {
		t.Helper()
		st, _, b := f.get(t, q+query, tok)
		if st != 200 {
			t.Fatalf("%s: %d %s", query, st, b)
		}
		var got []string
		for _, e := range decodeBundle(t, b).Entry {
			untypedObs(t, u, e.Resource, "ieee:survey:1.0")
			var o struct{ EffectiveDateTime string }
			if err := json.Unmarshal(e.Resource, &o); err != nil {
				t.Fatal(err)
			}
			got = append(got, o.EffectiveDateTime)
			if st, _, one := f.get(t, e.FullURL, tok); st != 200 || string(one) != string(e.Resource) {
				t.Fatalf("read %s: %d %s", e.FullURL, st, one)
			}
		}
		return got
	}
	if got := search(t, ""); !slices.Equal(got, times[1:]) {
		t.Errorf("in the grant's window: %v, want %v", got, times[1:])
	}
	if got := search(t, "&date=ge"+url.QueryEscape(f.start.Add(150*time.Minute).Format(time.RFC3339))); !slices.Equal(got, times[2:]) {
		t.Errorf("date=ge: %v, want %v", got, times[2:])
	}
	logged := f.fhirReadsLogged(t, f.clin.ID, "ieee:survey:1.0")
	if want := 2 + 3; logged != want { // two searches, three reads by id
		t.Errorf("%d accesses with ieee:survey:1.0 logged, want %d", logged, want)
	}
}
