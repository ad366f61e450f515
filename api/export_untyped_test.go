package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/omh"
)

// untypedExportPoints are readings of schemas without a typed model
// inside the export fixture's grant window: one of no typed schema, an
// IEEE one, and an older version of a typed schema.
var untypedExportPoints = []string{
	`{"header":{"uuid":"0e000000-0000-4000-8000-000000000001","schema_id":{"namespace":"omh","name":"rr-interval","version":"1.0"},"source_creation_date_time":"2025-02-01T00:20:00Z"},"body":{"effective_time_frame":{"date_time":"2025-02-01T00:20:00Z"},"rr_interval":{"unit":"ms","value":812}}}`,
	`{"header":{"uuid":"0e000000-0000-4000-8000-000000000002","schema_id":{"namespace":"ieee","name":"food-entry","version":"0.1"},"source_creation_date_time":"2025-02-01T00:25:00Z"},"body":{"effective_time_frame":{"date_time":"2025-02-01T00:25:00Z"},"food_amount":{"unit":"mL","value":300},"food_name":"lentil soup, \"spicy\"\u2028second line"}}`,
	`{"header":{"uuid":"0e000000-0000-4000-8000-000000000003","schema_id":{"namespace":"omh","name":"blood-glucose","version":"2.0"},"source_creation_date_time":"2025-02-01T00:30:00Z"},"body":{"blood_glucose":{"unit":"mmol/L","value":5.4},"effective_time_frame":{"date_time":"2025-02-01T00:30:00Z"},"specimen_source":"plasma"}}`,
}

// TestExportUntypedReadings: a vault holding readings without a typed
// model exports them end to end in each format, age-encrypted to the hub
// key, decrypted with the age CLI: omh writes the stored points; fhir an
// Observation each, coded with the schema id and carrying the stored
// point in its attachment; csv a row each with the body in the body
// column. The typed blood-glucose 4.0 readings exported beside them keep
// their typed form.
func TestExportUntypedReadings(t *testing.T) {
	e := newExportEnv(t)
	st, b := e.do(t, "POST", "/api/v1/readings", e.device, "", []byte("["+strings.Join(untypedExportPoints, ",")+"]"))
	if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":3,"duplicates":0}` {
		t.Fatalf("ingest: %d %s", st, b)
	}
	schemas := []string{"omh:rr-interval", "ieee:food-entry", "omh:blood-glucose:2.0"}
	gb, _ := json.Marshal(api.GrantRequest{Clinician: e.clinID, Schemas: schemas, DataFrom: "2025-02-01T00:00:00Z", DataTo: "2025-02-02T00:00:00Z",
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	if st, b := e.do(t, "POST", "/api/v1/grants", e.ptok, "", gb); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	// The stored points, as the patient reads them.
	stored := map[string][]byte{}
	for _, p := range untypedExportPoints {
		var h struct {
			Header struct {
				UUID string `json:"uuid"`
			} `json:"header"`
		}
		if err := json.Unmarshal([]byte(p), &h); err != nil {
			t.Fatal(err)
		}
		stored[h.Header.UUID] = nil
	}
	for _, s := range []string{"omh:rr-interval:1.0", "ieee:food-entry:0.1", "omh:blood-glucose:2.0"} {
		st, b := e.do(t, "GET", "/api/v1/readings?schema="+s, e.ptok, "", nil)
		if st != 200 {
			t.Fatalf("get %s: %d %s", s, st, b)
		}
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			p, err := omh.Parse(l)
			if err != nil {
				t.Fatal(err)
			}
			stored[p.UUID] = l
		}
	}
	for id, l := range stored {
		if l == nil {
			t.Fatalf("%s not read back", id)
		}
	}
	q := "schema=" + strings.Join([]string{"omh:rr-interval:1.0", "ieee:food-entry:0.1", "omh:blood-glucose:2.0", "omh:blood-glucose:4.0"}, ",") +
		"&from=2025-02-01T00:10:00Z&to=2025-02-01T00:50:00Z"
	for _, format := range []string{"omh", "fhir", "csv"} {
		t.Run(format, func(t *testing.T) {
			st, ct := e.do(t, "GET", e.exportURL(e.patient.ID, q+"&format="+format), e.clin, "", nil)
			if st != 200 {
				t.Fatalf("export: %d %.300s", st, ct)
			}
			m, data, tr := splitExport(t, ageDecrypt(t, e.idPath, ct))
			if m.Format != format {
				t.Fatalf("manifest format %q", m.Format)
			}
			if format == "csv" {
				data = data[1:] // the header row
			}
			if tr.Records != 8+3 || len(data) != 11 {
				t.Fatalf("%d records, %d lines; want 11 (8 typed, 3 untyped)", tr.Records, len(data))
			}
			found := 0
			for _, l := range data {
				switch format {
				case "omh":
					p, err := omh.Parse(l)
					if err != nil {
						t.Fatal(err)
					}
					if want, ok := stored[p.UUID]; ok {
						found++
						if !bytes.Equal(l, want) {
							t.Errorf("omh line %s, stored %s", l, want)
						}
					}
				case "fhir":
					var o struct {
						ID   string `json:"id"`
						Code struct {
							Coding []struct{ System, Code string }
						} `json:"code"`
						Extension []struct {
							URL             string `json:"url"`
							ValueAttachment struct {
								ContentType string `json:"contentType"`
								Data        string `json:"data"`
							} `json:"valueAttachment"`
						} `json:"extension"`
					}
					if err := json.Unmarshal(l, &o); err != nil {
						t.Fatal(err)
					}
					want, ok := stored[o.ID]
					if !ok {
						if len(o.Extension) != 0 || o.Code.Coding[0].System != "http://loinc.org" {
							t.Errorf("a typed reading in the generic form: %s", l)
						}
						continue
					}
					found++
					p, _ := omh.Parse(want)
					data, err := base64.StdEncoding.DecodeString(o.Extension[0].ValueAttachment.Data)
					if err != nil || !bytes.Equal(data, want) || o.Extension[0].ValueAttachment.ContentType != "application/json" ||
						o.Code.Coding[0].System != omh.CodeSystem || o.Code.Coding[0].Code != p.Schema.String() {
						t.Errorf("fhir line %s does not carry the stored point %s", l, want)
					}
				case "csv":
					rec, err := csv.NewReader(bytes.NewReader(l)).Read()
					if err != nil || len(rec) != 10 {
						t.Fatalf("csv line %q: %v", l, err)
					}
					want, ok := stored[rec[0]]
					if !ok {
						if rec[9] != "" || rec[4] == "" {
							t.Errorf("typed row %q", rec)
						}
						continue
					}
					found++
					var got, wantBody any
					var wp struct {
						Body json.RawMessage `json:"body"`
					}
					if err := json.Unmarshal(want, &wp); err != nil {
						t.Fatal(err)
					}
					if json.Unmarshal([]byte(rec[9]), &got) != nil || json.Unmarshal(wp.Body, &wantBody) != nil || !reflect.DeepEqual(got, wantBody) || rec[4] != "" {
						t.Errorf("csv row %q does not carry the stored body %s", rec, wp.Body)
					}
				}
			}
			if found != 3 {
				t.Fatalf("%d untyped readings in the export, want 3", found)
			}
		})
	}
}
