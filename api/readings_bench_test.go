package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
)

// BenchmarkDayRead is the load benchmark's "read": a patient's GET
// /api/v1/readings of one day (288 CGM readings) with no schema named, so
// every schema she has readings of is read, over HTTP on loopback into a
// real bbolt vault. It is what the vault does per accepted schema that the
// patient has no readings of that this measures beside the day's reads.
func BenchmarkDayRead(b *testing.B) {
	f := newFixture(b, api.Config{KeyActivationDelay: -1})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for j := range 288 {
		ts := base.Add(time.Duration(j) * 5 * time.Minute).Format(time.RFC3339)
		lines = append(lines, fmt.Sprintf(`{"header":{"uuid":"6a1e0d52-0000-4000-8000-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, j, ts, 70+j%150, ts))
	}
	doB(b, f, "POST", "/api/v1/readings", f.device, strings.Join(lines, "\n"))
	url := f.srv.URL + "/api/v1/readings?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+f.ptok)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || strings.Count(string(body), "\n") != 288 {
			b.Fatalf("read: %d %v, %d lines", resp.StatusCode, err, strings.Count(string(body), "\n"))
		}
	}
}
