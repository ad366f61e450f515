package fhir

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// renderBodies are bodies of every schema the API serves, with the
// members that change the mapping (units, specimens, supplemental
// oxygen, provenance, extras); TIME and VALUE are replaced by the
// variants below.
var renderBodies = []struct{ schema, header, body string }{
	{"blood-glucose:4.0", `"modality":"sensed"`, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mmol/L"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"specimen_source":"capillary blood","effective_time_frame":{"date_time":"TIME"},"temporal_relationship_to_meal":"fasting"`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mmol/L"},"effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mmol/L"},"specimen_source":"capillary blood","effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"specimen_source":"urine","effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", `"external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"Acme \"G7\""}]`, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"TIME"}`},
	{"blood-glucose:4.0", ``, `"blood_glucose":{"value":VALUE,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"time_interval":{"start_date_time":"TIME","duration":{"value":5,"unit":"min"}}}`},
	{"heart-rate:2.0", `"external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Watch"}]`, `"heart_rate":{"value":VALUE,"unit":"beats/min"},"effective_time_frame":{"date_time":"TIME"}`},
	{"heart-rate:2.0", ``, `"heart_rate":{"value":VALUE,"unit":"beats/min"},"effective_time_frame":{"date_time":"TIME"},"temporal_relationship_to_physical_activity":"at rest","x_note":{"value":1}`},
	{"respiratory-rate:2.0", ``, `"respiratory_rate":{"value":VALUE,"unit":"breaths/min"},"effective_time_frame":{"date_time":"TIME"}`},
	{"body-temperature:4.0", ``, `"body_temperature":{"value":VALUE,"unit":"C"},"effective_time_frame":{"date_time":"TIME"}`},
	{"body-temperature:4.0", ``, `"body_temperature":{"value":VALUE,"unit":"K"},"effective_time_frame":{"date_time":"TIME"},"measurement_location":"oral"`},
	{"body-weight:2.0", ``, `"body_weight":{"value":VALUE,"unit":"kg"},"effective_time_frame":{"date_time":"TIME"}`},
	{"body-weight:2.0", ``, `"body_weight":{"value":VALUE,"unit":"oz"},"effective_time_frame":{"date_time":"TIME"}`},
	{"oxygen-saturation:2.0", ``, `"oxygen_saturation":{"value":VALUE,"unit":"%"},"effective_time_frame":{"date_time":"TIME"}`},
	{"oxygen-saturation:2.0", ``, `"oxygen_saturation":{"value":VALUE,"unit":"%"},"supplemental_oxygen_flow_rate":{"value":2,"unit":"L/min"},"effective_time_frame":{"date_time":"TIME"}`},
	{"blood-pressure:3.1", ``, `"systolic_blood_pressure":{"value":VALUE,"unit":"mmHg"},"diastolic_blood_pressure":{"value":80,"unit":"mmHg"},"effective_time_frame":{"date_time":"TIME"}`},
	{"step-count:3.0", ``, `"step_count":{"value":VALUE,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"TIME","end_date_time":"2030-01-01T00:00:00Z"}}`},
	{"sleep-episode:1.1", ``, `"total_sleep_time":{"value":VALUE,"unit":"min"},"effective_time_frame":{"time_interval":{"start_date_time":"TIME","end_date_time":"2030-01-01T00:00:00Z"}}`},
}

// The times and values each body is tried with: offsets at and past
// R4's 14 hours, fractions, a leap second, the year's edges; integral,
// fractional, tiny, huge and negative numbers.
var (
	renderTimes = []string{"2026-03-04T05:06:07Z", "2026-03-04T05:06:07.123456789Z", "2026-03-04T05:06:07+02:00", "2026-03-04T05:06:07.5-07:00",
		"2026-03-04T05:06:07+14:00", "2026-03-04T05:06:07-14:00", "2026-03-04T05:06:07+14:30", "2026-03-04T05:06:07-23:59", "2016-12-31T23:59:60Z",
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2026-03-04T05:06:07.1Z"}
	renderValues = []string{"101", "0", "5.5", "99.99", "0.000001", "1e-7", "123456789", "1e21", "12345678901234567890123", "-3", "37.2", "100", "72.25"}
)

// TestRenderMatchesExport: the page renderer writes, for every reading,
// exactly what the export's mapping writes (bytes and codes), whether it
// used a template or not; and for the common shapes it does use one.
func TestRenderMatchesExport(t *testing.T) {
	ow, err := export.NewObservationWriter("pt_abc")
	if err != nil {
		t.Fatal(err)
	}
	templated := 0
	for _, rb := range renderBodies {
		t.Run(rb.schema+" "+rb.body[:min(40, len(rb.body))], func(t *testing.T) {
			rd, err := newRenderer("pt_abc")
			if err != nil {
				t.Fatal(err)
			}
			name, version, _ := strings.Cut(rb.schema, ":")
			n := 0
			for i, tm := range renderTimes {
				for j, v := range renderValues {
					// A UUID, a source's own id (kept as x_vault.source_id), or none.
					id := [3]string{fmt.Sprintf(`"uuid":"%08x-0000-4000-8000-%012x",`, i, j), fmt.Sprintf(`"uuid":"dev-%d-%d",`, i, j), ``}[(i+j)%3]
					hdr := fmt.Sprintf(`%s"schema_id":{"namespace":"omh","name":%q,"version":%q},"source_creation_date_time":%q`, id, name, version, renderTimes[(i+j)%len(renderTimes)])
					if rb.header != "" {
						hdr += "," + rb.header
					}
					body := strings.NewReplacer("TIME", tm, "VALUE", v).Replace(rb.body)
					p, err := omh.Parse([]byte(`{"header":{` + hdr + `},"body":{` + body + `}}`))
					if err != nil {
						continue // not a valid reading of this schema: nothing to render
					}
					point := p.AppendJSON(nil)
					oid := fmt.Sprintf("abc-xx-%d-%d", i, j)
					want, wantCodes, werr := ow.Append([]byte("prefix"), oid, point)
					got, gotCodes, gerr := rd.appendObservation([]byte("prefix"), oid, point)
					if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) || !slices.Equal(gotCodes.LOINC, wantCodes.LOINC) || gotCodes.Category != wantCodes.Category {
						t.Fatalf("reading %s\n got %s %v %v\nwant %s %v %v", point, got, gotCodes, gerr, want, wantCodes, werr)
					}
					n++
				}
			}
			if n < 20 {
				t.Fatalf("only %d valid readings: the bodies are wrong", n)
			}
			for _, tp := range rd.templates {
				if tp != nil {
					templated++
				}
			}
		})
	}
	if templated < 30 {
		t.Errorf("%d templates made: the fast path is not taken", templated)
	}
}

// TestRenderUsesTemplates: a page of one shape asks the mapping twice
// (the first reading and the probe), however long it is.
func TestRenderUsesTemplates(t *testing.T) {
	rd, err := newRenderer("pt_abc")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		p, err := omh.Parse(fmt.Appendf(nil, `{"header":{"uuid":"00000000-0000-4000-8000-%012x","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2026-01-01T00:00:00Z"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"date_time":"2026-01-01T%02d:%02d:00Z"}}}`, i, 40+i%300, i/60%24, i%60))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := rd.appendObservation(nil, "x", p.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rd.templates) != 1 || rd.probes != 1 {
		t.Fatalf("%d shapes, %d probes; want 1 and 1", len(rd.templates), rd.probes)
	}
	for _, tp := range rd.templates {
		if tp == nil {
			t.Fatal("no template for CGM readings")
		}
	}
}

// TestSchemaTableMatchesExport: the search's table (schemaTable, its
// codes taken from export.FHIRSchemas) says what the export's mapping
// really writes: every Observation of every kind of reading above has the
// table's category and only the table's LOINC codes, and every code and
// schema in the table is written for some reading.
func TestSchemaTableMatchesExport(t *testing.T) {
	ow, err := export.NewObservationWriter("pt_abc")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]map[string]bool{}
	for _, rb := range renderBodies {
		name, version, _ := strings.Cut(rb.schema, ":")
		i := schemaByName("omh:" + name)
		if i < 0 {
			t.Fatalf("omh:%s is not in the table", name)
		}
		if seen[i] == nil {
			seen[i] = map[string]bool{}
		}
		for _, v := range []string{"101", "5.5"} {
			body := strings.NewReplacer("TIME", "2026-03-04T05:06:07Z", "VALUE", v).Replace(rb.body)
			p, err := omh.Parse([]byte(`{"header":{"schema_id":{"namespace":"omh","name":"` + name + `","version":"` + version + `"},"source_creation_date_time":"2026-03-04T05:06:07Z"},"body":{` + body + `}}`))
			if err != nil {
				continue
			}
			_, codes, err := ow.Append(nil, "x", p.AppendJSON(nil))
			if err != nil {
				t.Fatalf("%s: %v", rb.schema, err)
			}
			if codes.Category != schemaTable[i].category {
				t.Errorf("%s: category %q, the table says %q", rb.schema, codes.Category, schemaTable[i].category)
			}
			for _, c := range codes.LOINC {
				if !slices.Contains(schemaTable[i].codes, c) {
					t.Errorf("%s: LOINC %s is not in the table %v", rb.schema, c, schemaTable[i].codes)
				}
				seen[i][c] = true
			}
			seen[i][""] = true
		}
	}
	for i, s := range schemaTable {
		if !s.typed {
			continue // TestUntypedSchemaTable
		}
		if !seen[i][""] {
			t.Errorf("%s: no reading rendered", s.name)
		}
		for _, c := range s.codes {
			if !seen[i][c] {
				t.Errorf("%s: the table lists %s, which no reading was coded with", s.name, c)
			}
		}
	}
}

// TestUntypedSchemaTable: every schema the vault stores without a typed
// model is in the table once, under the id it is stored under, with no
// category or LOINC code (its Observations are coded with the schema id
// alone), and a short code that keeps its Observation ids within R4's 64
// characters and parses back to it.
func TestUntypedSchemaTable(t *testing.T) {
	n := 0
	for _, id := range omh.Accepted() {
		if omh.Typed(id) {
			continue
		}
		n++
		i := schemaByStored(id.String())
		if i < 0 {
			t.Errorf("%s is not in the table", id)
			continue
		}
		s := schemaTable[i]
		if s.typed || s.name != id.String() || s.category != "" || len(s.codes) != 0 {
			t.Errorf("%s: %+v", id, s)
		}
		if j := schemaByShort(s.short); j != i || len(s.short) != 5 || s.short[0] != 'x' {
			t.Errorf("%s: short code %q (found at %d)", id, s.short, j)
		}
		k := key{t: vault.MaxTime.UnixNano() - 1, schema: i}
		for b := range k.tag {
			k.tag[b] = 0xff
		}
		obs := obsID("pt_"+strings.Repeat("z", 16), k)
		if len(obs) > 64 {
			t.Errorf("%s: Observation id %s is %d characters", id, obs, len(obs))
		}
		if _, back, ok := parseObsID(obs); !ok || back != k {
			t.Errorf("%s: %s does not parse back", id, obs)
		}
	}
	if n == 0 || len(schemaTable) != len(export.FHIRSchemas())+n {
		t.Errorf("%d untyped schemas, a table of %d", n, len(schemaTable))
	}
}
