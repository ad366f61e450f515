package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWebMounted: serve puts the web UI beside the API on one listener,
// with its security headers; the demo's invite links open the enrolment
// page; vault admin invite makes a working link through the socket.
func TestWebMounted(t *testing.T) {
	s := sharedServer(t)
	resp, err := http.Get(s.url + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("/signin: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if st, _ := httpDo(t, "GET", s.url+"/healthz", "", "", nil); st != 200 {
		t.Fatalf("/healthz behind the mux: %d", st)
	}
	if s.creds.PatientInvite == "" || s.creds.ClinicianInvite == "" {
		t.Fatalf("the demo wrote no invite links: %+v", s.creds)
	}
	link, errs, err := runVault(t, 30*time.Second, "admin", "invite", "--data", s.data, "--user", s.creds.PatientID)
	if err != nil || !strings.Contains(link, "/enrol/vi_") {
		t.Fatalf("admin invite: %v %q %s", err, link, errs)
	}
	for _, l := range []string{s.creds.PatientInvite, link} {
		path := l[strings.Index(l, "/enrol/"):]
		if st, b := httpDo(t, "GET", s.url+path, "", "", nil); st != 200 || !strings.Contains(string(b), "passkey") {
			t.Fatalf("invite page %s: %d", path, st)
		}
	}
	if st, _ := httpDo(t, "GET", s.url+"/enrol/vi_not-a-real-invite", "", "", nil); st < 400 {
		t.Fatalf("a made-up invite: %d", st)
	}
}

// TestWebPagesInLatencyHistogram: the web UI's requests are in the same
// latency histogram as the API's, under the route "web".
func TestWebPagesInLatencyHistogram(t *testing.T) {
	s := sharedServer(t)
	httpDo(t, "GET", s.url+"/signin", "", "", nil)
	_, b := httpDo(t, "GET", s.metricsURL+"/metrics", "", "", nil)
	if !strings.Contains(string(b), `vault_http_request_duration_seconds_count{method="GET",route="web",status="2xx"}`) {
		t.Fatal("no web pages in the latency histogram")
	}
}
