package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/carereport"
)

// The care-team report app (package carereport) across replicas, through
// the three-replica harness (replicas_test.go): its OAuth secret is the
// same on every replica, kept sealed in its registration, so one replica
// starting does not break another's sign-ins; and its launches and
// sessions travel in sealed cookies, so the launch, the callback (the
// code exchange with the secret) and the report may each be served by a
// different replica.

// hop is one answer the browser got, with where it was sent next.
type hop struct {
	status   int
	body     []byte
	replica  string
	location string
}

// send makes one request as the browser: its cookies, same-origin, no
// redirect followed; a form body when form is not nil.
func (b *browser) send(method, target string, form url.Values) hop {
	b.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = b.origin + target
	}
	if !strings.HasPrefix(target, b.origin+"/") {
		b.t.Fatalf("the browser was sent off the vault's origin, to %s", target)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.origin)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return hop{status: resp.StatusCode, body: rb, replica: resp.Header.Get("X-Test-Replica"), location: resp.Header.Get("Location")}
}

var (
	continueLink = regexp.MustCompile(`<a id="continue" href="([^"]+)"`)
	allowID      = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)"`)
	csrfMeta     = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
	agpReadings  = regexp.MustCompile(`<span id="agp-readings">(\d+)</span>`)
	appErrorCode = regexp.MustCompile(`id="error" data-code="([^"]*)"`)
)

// careSignIn is one care report sign-in the way a clinician's browser
// makes it: "Open in app" on the patient's page, the app's launch, the
// vault's authorize endpoint and consent page (allowed, the first time;
// remembered after), the callback where the app exchanges the code with
// its secret, and the report page. It returns the hops by what they were:
// launch, callback and report.
type careSignIn struct {
	launch, callback, report hop
}

func (s careSignIn) failure() string {
	for _, h := range []hop{s.launch, s.callback, s.report} {
		if m := appErrorCode.FindSubmatch(h.body); m != nil {
			return string(m[1])
		}
	}
	return ""
}

func careReportSignIn(t *testing.T, b *browser, patient, client string) careSignIn {
	t.Helper()
	var s careSignIn
	open := b.send("POST", "/patients/"+patient+"/launch", url.Values{"client": {client}, "csrf": {b.csrf}})
	m := continueLink.FindSubmatch(open.body)
	if open.status != 200 || m == nil {
		t.Fatalf("Open in app: %d %.300s", open.status, open.body)
	}
	next := html.UnescapeString(string(m[1]))
	if u, err := url.Parse(next); err != nil || u.Path != carereport.Path+"launch" || u.Query().Get("launch") == "" {
		t.Fatalf("the vault opened the app at %s", next)
	}
	// Follow the redirects; answer the consent page once.
	for range 10 {
		h := b.send("GET", next, nil)
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		switch u.Path {
		case carereport.Path + "launch":
			s.launch = h
		case carereport.Path + "callback":
			s.callback = h
		case carereport.Path:
			s.report = h
			return s
		}
		switch {
		case h.status == http.StatusFound || h.status == http.StatusSeeOther:
			next = h.location
		case h.status == 200 && u.Path == "/oauth/authorize":
			id := allowID.FindSubmatch(h.body)
			if id == nil {
				t.Fatalf("the consent page has no request id: %.500s", h.body)
			}
			allow := b.send("POST", "/oauth/authorize/allow", url.Values{"id": {string(id[1])}, "csrf": {b.csrf}})
			back := continueLink.FindSubmatch(allow.body)
			if allow.status != 200 || back == nil {
				t.Fatalf("allow: %d %.300s", allow.status, allow.body)
			}
			next = html.UnescapeString(string(back[1]))
		default:
			return s // the app's or the vault's refusal
		}
	}
	t.Fatalf("the sign-in did not reach the report: %v", s)
	return s
}

// careReportFixture is three replicas started at once on an empty
// database, a patient with glucose of the last day who granted it (FHIR
// reads allowed) to a clinician, the clinician signed in through the
// proxy with a passkey, and the care report app's client id.
type careReportFixture struct {
	rs              *replicaSet
	b               *browser
	patient, client string
	readings        int
}

func newCareReportFixture(t *testing.T) *careReportFixture {
	t.Helper()
	rs := startReplicas(t, 3)
	f := &careReportFixture{rs: rs, readings: 100}
	f.patient = rs.admin(t, 0, "admin", "user", "add", "--role", "patient", "--name", "Care Patient")
	cl := rs.admin(t, 1, "admin", "user", "add", "--role", "clinician", "--name", "Dr. Care", "--org", "Lab")
	dev := rs.admin(t, 2, "admin", "token", "--user", f.patient, "--kind", "device")
	ptok := rs.admin(t, 0, "admin", "token", "--user", f.patient, "--kind", "patient")
	var pts bytes.Buffer
	start := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Minute)
	for i := range f.readings {
		fmt.Fprintf(&pts, `{"header":{"uuid":"4e9a1ca0-0000-4000-8c00-%012d","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`+"\n",
			i, 80+i%120, start.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339))
	}
	if st, body := httpDo(t, "POST", rs.direct(2)+"/api/v1/readings", dev, "application/x-ndjson", pts.Bytes()); st != 201 {
		t.Fatalf("upload: %d %s", st, body)
	}
	grant := fmt.Sprintf(`{"clinician":%q,"schemas":["omh:blood-glucose"],"expires_at":%q,"purpose":"TREAT","fhir":true}`, cl, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
	if st, body := httpDo(t, "POST", rs.direct(1)+"/api/v1/grants", ptok, "application/json", []byte(grant)); st != 201 {
		t.Fatalf("grant: %d %s", st, body)
	}
	f.client = careReportClient(t, rs)

	f.b = &browser{t: t, origin: rs.base, cookies: map[string]string{}}
	f.b.enrol(rs.admin(t, 2, "admin", "invite", "--user", cl))
	page := f.b.send("GET", "/patients/"+f.patient, nil)
	m := csrfMeta.FindSubmatch(page.body)
	if page.status != 200 || m == nil || !bytes.Contains(page.body, []byte(f.client)) {
		t.Fatalf("the clinician's page of the patient, with Open in app for %s: %d %.300s", f.client, page.status, page.body)
	}
	f.b.csrf = string(m[1])
	return f
}

// careReportClient is the id of the one care report registration; the
// test fails if there is none or more than one.
func careReportClient(t *testing.T, rs *replicaSet) string {
	t.Helper()
	var ids []string
	for l := range strings.Lines(rs.admin(t, 0, "admin", "client", "list", "--json")) {
		var c struct {
			ID      string `json:"client_id"`
			Name    string `json:"name"`
			Builtin bool   `json:"builtin"`
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("client list line %q: %v", l, err)
		}
		if c.Name == carereport.Name {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("care report registrations: %q, want one", ids)
	}
	return ids[0]
}

// routeApp sends the app's paths to chosen replicas (-1: round robin),
// and the vault's own part of an EHR launch (the launch id made by "Open
// in app", checked by the authorize endpoint and spent by the approval)
// to replica ehr: launch ids are kept per process (oauth/launch.go; see
// docs/scaling.md). Everything else (the web pages, the token endpoint the
// app calls, the FHIR reads) goes round robin.
func (rs *replicaSet) routeApp(ehr, launch, callback, report int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.route = func(path string) int {
		switch {
		case path == carereport.Path+"launch":
			return launch
		case path == carereport.Path+"callback":
			return callback
		case path == carereport.Path:
			return report
		case strings.HasSuffix(path, "/launch") && strings.HasPrefix(path, "/patients/"),
			path == "/fhir/auth/authorize", strings.HasPrefix(path, "/oauth/authorize"):
			return ehr
		}
		return -1
	}
}

// checkReport fails the test unless the sign-in reached the report, with
// every reading of the last day, and the launch, callback and report were
// served by the replicas named.
func (f *careReportFixture) checkReport(t *testing.T, what string, s careSignIn, launch, callback, report int) {
	t.Helper()
	if s.report.status != 200 {
		t.Fatalf("%s: the care report sign-in failed (%q): launch %d on replica %s, callback %d on replica %s, report %d on replica %s: %.400s",
			what, s.failure(), s.launch.status, s.launch.replica, s.callback.status, s.callback.replica, s.report.status, s.report.replica, appError(s))
	}
	m := agpReadings.FindSubmatch(s.report.body)
	if m == nil || string(m[1]) != strconv.Itoa(f.readings) || !bytes.Contains(s.report.body, []byte("Care Patient")) {
		t.Fatalf("%s: the report: %.600s", what, s.report.body)
	}
	got := []string{s.launch.replica, s.callback.replica, s.report.replica}
	if want := []string{strconv.Itoa(launch), strconv.Itoa(callback), strconv.Itoa(report)}; !slices.Equal(got, want) {
		t.Fatalf("%s: launch, callback and report served by replicas %q, want %q", what, got, want)
	}
	t.Logf("%s: launch on replica %s, callback and code exchange on %s, report from %s", what, got[0], got[1], got[2])
}

// TestReplicasCareReportAfterRestart: three replicas started at once make
// one care report registration. A clinician signs in to the app through
// replica 0 (its launch, code exchange and report there); then replica 1
// restarts, and replica 2 restarts; a new sign-in through replica 0 (the
// vault's launch id made and spent on replica 1, then 2), which
// did not restart, still works: its secret is the one every replica reads
// from the shared registration, which the restarts left as it was (same
// id). On a vault that gave the registration a new secret at every start,
// the exchange on replica 0 fails (exchange_failed).
func TestReplicasCareReportAfterRestart(t *testing.T) {
	f := newCareReportFixture(t)
	f.rs.routeApp(1, 0, 0, 0)
	f.checkReport(t, "before the restarts", careReportSignIn(t, f.b, f.patient, f.client), 0, 0, 0)
	for _, i := range []int{1, 2} {
		f.rs.kill(t, i)
		f.rs.restart(t, i)
		if id := careReportClient(t, f.rs); id != f.client {
			t.Fatalf("replica %d's restart changed the registration: %s, was %s", i, id, f.client)
		}
		delete(f.b.cookies, "care_report_session") // a new sign-in, not the session
		f.checkReport(t, fmt.Sprintf("after replica %d restarted", i), careReportSignIn(t, f.b, f.patient, f.client), 0, 0, 0)
	}
	// And through the restarted ones.
	f.rs.routeApp(0, 2, 1, 2)
	delete(f.b.cookies, "care_report_session")
	f.checkReport(t, "through the restarted replicas", careReportSignIn(t, f.b, f.patient, f.client), 2, 1, 2)
}

// TestReplicasCareReportAcrossReplicas: the app's launch on one replica,
// the callback (the code exchange, with the app's secret) on another and
// the report on the third, in each order of the three; the session made by
// one replica's callback is good on the others, and a launch cookie from
// one replica's launch is good at another's callback.
func TestReplicasCareReportAcrossReplicas(t *testing.T) {
	f := newCareReportFixture(t)
	for _, order := range [][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}} {
		f.rs.routeApp(order[2], order[0], order[1], order[2])
		delete(f.b.cookies, "care_report_session")
		f.checkReport(t, fmt.Sprintf("order %v", order), careReportSignIn(t, f.b, f.patient, f.client), order[0], order[1], order[2])
		// The session, on every replica.
		for i := range f.rs.reps {
			f.rs.routeApp(-1, -1, -1, i)
			h := f.b.send("GET", carereport.Path, nil)
			if m := agpReadings.FindSubmatch(h.body); h.status != 200 || h.replica != strconv.Itoa(i) || m == nil {
				t.Fatalf("order %v: the session on replica %d: %d from %s: %.300s", order, i, h.status, h.replica, h.body)
			}
		}
	}
}

// appError is the app's error message in a failed sign-in, if any.
func appError(s careSignIn) string {
	re := regexp.MustCompile(`(?s)id="error" data-code="[^"]*">(.*?)</p>`)
	for _, h := range []hop{s.launch, s.callback, s.report} {
		if m := re.FindSubmatch(h.body); m != nil {
			return html.UnescapeString(string(m[1]))
		}
	}
	return ""
}
