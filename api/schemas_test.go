package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/api"
)

// clientCodes are the schemas jupyterhealth-client's Code enum names, each
// with a valid body of a point. Two of them (sleep-stage-summary,
// food-entry) have no typed model in the vault: their bodies are checked
// against the official schema and stored in canonical form.
var clientCodes = []struct{ schema, body string }{
	{"omh:blood-glucose:4.0", `{"blood_glucose":{"value":112,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2026-03-01T07:00:00Z"}}`},
	{"omh:blood-pressure:4.0", `{"systolic_blood_pressure":{"value":121,"unit":"mmHg"},"diastolic_blood_pressure":{"value":79,"unit":"mmHg"},"effective_time_frame":{"date_time":"2026-03-01T07:05:00Z"}}`},
	{"omh:heart-rate:2.0", `{"heart_rate":{"value":64,"unit":"beats/min"},"effective_time_frame":{"date_time":"2026-03-01T07:10:00Z"}}`},
	{"ieee:sleep-stage-summary:1.0", `{"sleep_stage_summary":{"total_sleep_time":{"value":412,"unit":"min"}},"effective_time_frame":{"time_interval":{"start_date_time":"2026-03-01T00:00:00Z","end_date_time":"2026-03-01T07:00:00Z"}}}`},
	{"ieee:food-entry:0.1", `{"meal":"lunch","food_name":"lentil soup","food_amount":{"value":300,"unit":"mL"},"effective_time_frame":{"date_time":"2026-03-01T12:30:00Z"}}`},
}

func clientPoint(i int, schema, body string) string {
	ns, rest, _ := strings.Cut(schema, ":")
	name, version, _ := strings.Cut(rest, ":")
	return fmt.Sprintf(`{"header":{"uuid":"5c0de000-0000-4000-8000-%012d","schema_id":{"namespace":%q,"name":%q,"version":%q},"source_creation_date_time":"2026-03-01T13:00:00Z"},"body":%s}`,
		i, ns, name, version, body)
}

// TestClientSchemasThroughTheAPI: each schema jupyterhealth-client names is
// accepted by POST /api/v1/readings, stored on the real file, read back by
// GET /api/v1/readings with its body intact, and a re-sent copy is a
// duplicate; an invalid body of a schema without a typed model is refused
// with the member named and nothing stored.
func TestClientSchemasThroughTheAPI(t *testing.T) {
	f := newFixture(t, api.Config{})
	for i, c := range clientCodes {
		t.Run(c.schema, func(t *testing.T) {
			p := clientPoint(i, c.schema, c.body)
			st, b := f.do(t, "POST", "/api/v1/readings", f.device, "application/json", []byte(p))
			if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":1,"duplicates":0}` {
				t.Fatalf("post: %d %s", st, b)
			}
			st, b = f.do(t, "POST", "/api/v1/readings", f.device, "application/json", []byte(p))
			if st != 201 || string(bytes.TrimSpace(b)) != `{"accepted":0,"duplicates":1}` {
				t.Fatalf("re-post: %d %s, want a duplicate", st, b)
			}
			q := url.Values{"schema": {c.schema}, "from": {"2026-02-28T00:00:00Z"}, "to": {"2026-03-02T00:00:00Z"}}
			st, b = f.do(t, "GET", "/api/v1/readings?"+q.Encode(), f.ptok, "", nil)
			if st != 200 {
				t.Fatalf("get: %d %s", st, b)
			}
			var got []struct {
				Body json.RawMessage `json:"body"`
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			var pts []json.RawMessage
			if err := dec.Decode(&pts); err != nil {
				// NDJSON answer: one point a line.
				pts = nil
				for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
					pts = append(pts, line)
				}
			}
			for _, raw := range pts {
				var r struct {
					Body json.RawMessage `json:"body"`
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatalf("get: %v in %.200s", err, raw)
				}
				got = append(got, r)
			}
			if len(got) != 1 {
				t.Fatalf("get: %d points, want 1: %.300s", len(got), b)
			}
			var want, have any
			if err := json.Unmarshal([]byte(c.body), &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(got[0].Body, &have); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(want) != fmt.Sprint(have) {
				t.Fatalf("body read back %s, sent %s", got[0].Body, c.body)
			}
		})
	}
	before := f.stored(t)
	bad := clientPoint(99, "ieee:food-entry:0.1", `{"food_name":"lentil soup","effective_time_frame":{"date_time":"2026-03-01T12:30:00Z"}}`)
	st, b := f.do(t, "POST", "/api/v1/readings", f.device, "application/json", []byte("["+bad+","+clientPoint(98, clientCodes[0].schema, clientCodes[0].body)+"]"))
	if st != 400 || !strings.Contains(string(b), "food_amount") {
		t.Fatalf("an invalid food entry: %d %s, want 400 naming food_amount", st, b)
	}
	if n := f.stored(t); n != before {
		t.Fatalf("a refused batch stored %d readings", n-before)
	}
}
