package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/oauth"
)

// TestDemoJHECredentials: serve --demo writes jhe_url and jhe_token into
// credentials.json, and the stock client's first calls work with them as
// JHE_URL and JHE_TOKEN: Ada is listed, and her glucose comes back as
// base64 OMH points, newest first, with an absolute next link.
func TestDemoJHECredentials(t *testing.T) {
	s := sharedServer(t)
	raw, err := os.ReadFile(filepath.Join(s.data, "demo", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JHEURL   string `json:"jhe_url"`
		JHEToken string `json:"jhe_token"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.JHEURL != strings.TrimSuffix(s.creds.BaseURL, "/")+"/jhe" || c.JHEToken != s.creds.ClinicianToken {
		t.Fatalf("jhe_url %q, jhe_token the clinician token: %v", c.JHEURL, c.JHEToken == s.creds.ClinicianToken)
	}
	// The shared server listens on a free port; its --base-url (what
	// jhe_url and every link derive from) is the default.
	at := s.url + "/jhe"
	var pp struct {
		Count   int `json:"count"`
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if st := getJSON(t, at+"/api/v1/patients", "Bearer "+c.JHEToken, &pp); st != 200 || pp.Count != 1 || pp.Results[0].ID != oauth.FHIRID(s.creds.PatientID) {
		t.Fatalf("patients: %d %+v", st, pp)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ValueAttachment struct{ Data string } `json:"valueAttachment"`
			} `json:"resource"`
		} `json:"entry"`
		Link []struct{ Relation, URL string } `json:"link"`
	}
	q := url.Values{"patient": {pp.Results[0].ID}, "code": {"https://w3id.org/openmhealth|omh:blood-glucose:4.0"}, "_count": {"100"}}
	if st := getJSON(t, at+"/FHIR/R5/Observation?"+q.Encode(), "Bearer "+c.JHEToken, &b); st != 200 || len(b.Entry) != 100 || b.Entry[0].Resource.ValueAttachment.Data == "" {
		t.Fatalf("observations: %d, %d entries", st, len(b.Entry))
	}
	if len(b.Link) != 2 || b.Link[1].Relation != "next" || !strings.HasPrefix(b.Link[1].URL, c.JHEURL+"/FHIR/R5/Observation?") {
		t.Fatalf("links: %+v", b.Link)
	}
}
