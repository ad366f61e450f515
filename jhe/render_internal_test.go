package jhe

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/oauth"
)

// The Bundle as encoding/json wrote it before renderPage appended bytes:
// the reference the appended bytes must equal.
type refLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type refObservation struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Code         struct {
		Coding []coding `json:"coding"`
	} `json:"code"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	EffectiveDateTime string `json:"effectiveDateTime"`
	ValueAttachment   struct {
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
	} `json:"valueAttachment"`
}

type refEntry struct {
	FullURL  string         `json:"fullUrl"`
	Resource refObservation `json:"resource"`
}

type refBundle struct {
	ResourceType string     `json:"resourceType"`
	Type         string     `json:"type"`
	Link         []refLink  `json:"link"`
	Entry        []refEntry `json:"entry"`
}

func refRender(t *testing.T, base, path, rawQuery, patient string, page []fhir.Reading, next string) []byte {
	t.Helper()
	prefix := strings.TrimSuffix(base+strings.TrimPrefix(path, "/jhe"), "/")
	self := base + strings.TrimPrefix(path, "/jhe")
	if rawQuery != "" {
		self += "?" + rawQuery
	}
	b := refBundle{ResourceType: "Bundle", Type: "searchset", Link: []refLink{{"self", self}}, Entry: []refEntry{}}
	for _, rd := range page {
		var o refObservation
		o.ResourceType, o.ID, o.Status = "Observation", rd.ID, "final"
		o.Code.Coding = []coding{{System: omhSystem, Code: rd.Schema}}
		o.Subject.Reference = "Patient/" + oauth.FHIRID(patient)
		o.EffectiveDateTime = rd.Time.UTC().Format(time.RFC3339Nano)
		o.ValueAttachment.ContentType = "application/json"
		o.ValueAttachment.Data = base64.StdEncoding.EncodeToString(rd.JSON)
		b.Entry = append(b.Entry, refEntry{FullURL: prefix + "/" + rd.ID, Resource: o})
	}
	if next != "" {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Fatal(err)
		}
		q.Del(fhir.CursorParam)
		q.Set(fhir.CursorParam, next)
		b.Link = append(b.Link, refLink{"next", prefix + "?" + q.Encode()})
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderPageBytes: the appended Bundle is byte for byte what
// encoding/json gives for the same Bundle, for plain pages and for ids,
// paths, queries and cursors that need escaping.
func TestRenderPageBytes(t *testing.T) {
	point := []byte(`{"header":{"uuid":"6f1c1f4e-9a59-4f4b-9d0b-2f1e3c4d5a6b"},"body":{"blood_glucose":{"value":101,"unit":"mg/dL"}}}`)
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.FixedZone("x", 5*3600))
	plain := []fhir.Reading{
		{ID: "6f1c1f4e-9a59-4f4b-9d0b-2f1e3c4d5a6b", Schema: "omh:blood-glucose:4.0", Time: t0, JSON: point},
		{ID: "s-1", Schema: "omh:heart-rate:2.0", Time: t0.Add(time.Nanosecond), JSON: []byte(`{}`)},
		{ID: "s-2", Schema: "omh:blood-glucose:4.0", Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), JSON: nil},
	}
	odd := []fhir.Reading{
		{ID: "a<b>&c\"d\\e", Schema: "omh:blood-glucose:4.0", Time: t0, JSON: point},
		{ID: "é\u2028\x01", Schema: "omh:blood-glucose:4.0", Time: t0, JSON: point},
		{ID: "bad\xffutf8", Schema: "omh:blood-glucose:4.0", Time: t0, JSON: point},
	}
	tests := []struct {
		name, base, path, query, next string
		page                          []fhir.Reading
	}{
		{"empty", "http://127.0.0.1:8080/jhe", "/jhe/FHIR/R5/Observation", "patient=pt-1&code=x", "", nil},
		{"plain", "http://127.0.0.1:8080/jhe", "/jhe/FHIR/R5/Observation", "patient=pt-1&_count=1000", "c1", plain},
		{"lowercase path, trailing slash", "https://vault.example/jhe", "/jhe/fhir/r5/Observation/", "patient=pt-1", "", plain},
		{"odd ids", "http://127.0.0.1:8080/jhe", "/jhe/FHIR/R5/Observation", "patient=pt-1&code=a%26b<c>", "cur<&>", odd},
		{"odd base", "http://h\u00e9<st>/jhe", "/jhe/FHIR/R5/Observation", "", "", plain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{base: tc.base}
			target := tc.path
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest("GET", target, nil)
			got, err := s.renderPage(r, "p1", tc.page, tc.next)
			if err != nil {
				t.Fatal(err)
			}
			want := refRender(t, tc.base, r.URL.Path, r.URL.RawQuery, "p1", tc.page, tc.next)
			if !bytes.Equal(got, want) {
				t.Fatalf("rendered\n%s\nwant\n%s", got, want)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON")
			}
		})
	}
	// The empty searchset the refusals-free paths answer.
	s := &Server{base: "http://127.0.0.1:8080/jhe"}
	r := httptest.NewRequest("GET", "/jhe/FHIR/R5/Observation?code=nope", nil)
	if got, want := s.bundle(r, 0, "", nil), refRender(t, s.base, r.URL.Path, r.URL.RawQuery, "p1", nil, ""); !bytes.Equal(got, want) {
		t.Fatalf("empty bundle\n%s\nwant\n%s", got, want)
	}
}
