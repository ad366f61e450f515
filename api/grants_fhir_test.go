package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
)

// TestGrantFHIRField: POST /api/v1/grants takes "fhir" (may the clinician
// also read through the FHIR API); true is stored in the ledger's grant
// entry (so a signature covers it), shown on the grant and in the list;
// absent or false is no, and the entry says nothing; any other JSON type
// is 400 malformed_json and appends nothing.
func TestGrantFHIRField(t *testing.T) {
	f := newFixture(t, api.Config{})
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		name   string
		fhir   string // the member as written, "" for none
		status int
		want   bool
	}{
		{"true", `,"fhir":true`, 201, true},
		{"false", `,"fhir":false`, 201, false},
		{"absent", ``, 201, false},
		{"a string", `,"fhir":"yes"`, 400, false},
		{"a number", `,"fhir":1`, 400, false},
		{"null", `,"fhir":null`, 201, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			size, err := f.ledger.Size()
			if err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT"%s}`, f.clinID, expires, c.fhir)
			st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "application/json", []byte(body))
			if st != c.status {
				t.Fatalf("status %d, want %d: %s", st, c.status, b)
			}
			if c.status != 201 {
				var e struct{ Code string }
				if json.Unmarshal(b, &e) != nil || e.Code != "malformed_json" {
					t.Fatalf("error %s, want malformed_json", b)
				}
				if n, err := f.ledger.Size(); err != nil || n != size {
					t.Fatalf("a refused grant appended: size %d, was %d (%v)", n, size, err)
				}
				return
			}
			var g api.GrantResponse
			if err := json.Unmarshal(b, &g); err != nil || g.FHIR != c.want {
				t.Fatalf("response fhir %v, want %v (%v): %s", g.FHIR, c.want, err, b)
			}
			st, b = f.do(t, "GET", "/api/v1/grants", f.ptok, "", nil)
			var list []api.GrantResponse
			if st != 200 || json.Unmarshal(b, &list) != nil {
				t.Fatalf("list: %d %s", st, b)
			}
			found := false
			for _, l := range list {
				if l.ID == g.ID {
					found = true
					if l.FHIR != c.want {
						t.Errorf("listed with fhir %v, want %v", l.FHIR, c.want)
					}
				}
			}
			if !found {
				t.Fatal("the grant is not listed")
			}
			st, b = f.do(t, "GET", "/api/v1/grants/"+g.ID, f.ptok, "", nil)
			var one api.GrantResponse
			if st != 200 || json.Unmarshal(b, &one) != nil || one.FHIR != c.want {
				t.Fatalf("GET grant: %d fhir %v, want %v: %s", st, one.FHIR, c.want, b)
			}
			st2, err := f.ledger.Grant(g.ID)
			if err != nil || st2.FHIR != c.want {
				t.Fatalf("ledger grant fhir %v, want %v (%v)", st2.FHIR, c.want, err)
			}
			e, raw, err := f.ledger.Entry(st2.Index)
			if err != nil || e.Kind != consent.KindGrant {
				t.Fatalf("entry %d: %v %v", st2.Index, e.Kind, err)
			}
			if has := strings.Contains(string(raw), `"fhir":true`); has != c.want {
				t.Errorf("stored entry has fhir %v, want %v: %s", has, c.want, raw)
			}
		})
	}
}
