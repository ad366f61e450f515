package web

import (
	"bytes"
	"context"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
)

type part struct{ name, value string }

// uploadReq posts a multipart form with its parts in the given order; a
// part named "file" is sent as a file.
func (f *fixture) uploadReq(sess string, parts ...part) *http.Response {
	f.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w interface{ Write([]byte) (int, error) }
		var err error
		if p.name == "file" {
			w, err = mw.CreateFormFile("file", "export.csv")
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			f.t.Fatal(err)
		}
		w.Write([]byte(p.value))
	}
	mw.Close()
	hr := httptest.NewRequest(http.MethodPost, f.base+"/upload", &buf)
	hr.RemoteAddr = "192.0.2.10:1234"
	hr.Header.Set("Content-Type", mw.FormDataContentType())
	hr.Header.Set("Origin", f.base)
	hr.Header.Set("Sec-Fetch-Site", "same-origin")
	if sess != "" {
		hr.AddCookie(&http.Cookie{Name: SessionCookie, Value: sess})
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, hr)
	return w.Result()
}

func (f *fixture) glucoseCount(patient string) int {
	f.t.Helper()
	n := 0
	for _, err := range f.v.Readings(context.Background(), patient, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
		if err != nil {
			f.t.Fatal(err)
		}
		n++
	}
	return n
}

func dexcomCSV(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ingest", "cgmcsv", "testdata", "dexcom_mgdl.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpload: the upload form imports a file through the importer (the
// result per type and the rows left out), names the line of a malformed
// file, stores nothing without the CSRF token, and leaves nothing in the
// spool.
func TestUpload(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	sess, csrf := f.signIn(f.patient.ID)
	csv := dexcomCSV(t)

	r := f.uploadReq(sess, part{"csrf", csrf}, part{"format", ""}, part{"date_order", ""}, part{"file", csv})
	b := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(b, "Dexcom Clarity CSV export") || !strings.Contains(b, "Insulin") || !strings.Contains(b, "Blood glucose") {
		t.Fatalf("upload: %d\n%s", r.StatusCode, b)
	}
	n := f.glucoseCount(f.patient.ID)
	if n == 0 || !strings.Contains(b, "Imported ") {
		t.Fatalf("%d readings stored", n)
	}
	// Again: everything is a duplicate.
	r = f.uploadReq(sess, part{"csrf", csrf}, part{"format", "dexcom-clarity"}, part{"file", csv})
	if b := body(t, r); r.StatusCode != 200 || !strings.Contains(b, "Imported 0 new readings") || f.glucoseCount(f.patient.ID) != n {
		t.Fatalf("second upload: %d\n%s", r.StatusCode, b)
	}

	g := newFixture(t, fixtureOpts{cfgTweak: func(c *Config) { c.MaxUploadBytes = 1000 }})
	gs, gcsrf := g.signIn(g.patient.ID)
	gc, gccsrf := g.signIn(g.clin.ID)
	_, otherCSRF := g.signIn(g.other.ID)
	bad := strings.Replace(csv, "2024-03-10T00:02:13,EGV,,,,iOS G6,108", "2024-03-10T00:02:13,EGV,,,,iOS G6,abc", 1)
	cases := []struct {
		name   string
		sess   string
		parts  []part
		status int
		says   string
	}{
		{"no csrf", gs, []part{{"format", ""}, {"file", csv[:900]}}, 403, "could not be verified"},
		{"wrong csrf", gs, []part{{"csrf", "nope"}, {"file", csv[:900]}}, 403, "could not be verified"},
		{"another session's csrf", gs, []part{{"csrf", otherCSRF}, {"file", csv[:900]}}, 403, "could not be verified"},
		{"csrf after the file", gs, []part{{"file", csv[:900]}, {"csrf", gcsrf}}, 403, "could not be verified"},
		{"signed out", "", []part{{"csrf", gcsrf}, {"file", csv[:900]}}, 401, "session has ended"},
		{"clinician", gc, []part{{"csrf", gccsrf}, {"file", csv[:900]}}, 404, "not yours"},
		{"too large", gs, []part{{"csrf", gcsrf}, {"file", csv}}, 413, "larger than the upload limit of 1000 bytes"},
		{"no file", gs, []part{{"csrf", gcsrf}, {"format", ""}}, 400, "Choose a file"},
		{"empty file", gs, []part{{"csrf", gcsrf}, {"file", ""}}, 400, "empty"},
		{"unrecognised", gs, []part{{"csrf", gcsrf}, {"file", "hello,world\n1,2\n"}}, 400, "not recognised"},
		{"unknown format", gs, []part{{"csrf", gcsrf}, {"format", "word"}, {"file", "x"}}, 400, "Choose a format"},
		{"bad date order", gs, []part{{"csrf", gcsrf}, {"date_order", "sideways"}, {"file", csv[:900]}}, 400, "date order"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := g.uploadReq(tc.sess, tc.parts...)
			if b := body(t, r); r.StatusCode != tc.status || !strings.Contains(b, tc.says) {
				t.Fatalf("%d, want %d saying %q:\n%s", r.StatusCode, tc.status, tc.says, b)
			}
			if n := g.glucoseCount(g.patient.ID); n != 0 {
				t.Fatalf("%d readings stored", n)
			}
		})
	}
	t.Run("malformed file names the line", func(t *testing.T) {
		r := f.uploadReq(sess, part{"csrf", csrf}, part{"file", strings.ReplaceAll(bad, "2024-03-", "2024-04-")})
		if b := body(t, r); r.StatusCode != 400 || !strings.Contains(b, "Line 14") || !strings.Contains(b, "Nothing was imported") {
			t.Fatalf("%d:\n%s", r.StatusCode, b)
		}
		if f.glucoseCount(f.patient.ID) != n {
			t.Fatal("a malformed file stored readings")
		}
	})
	for _, fx := range []*fixture{f, g} {
		if left, err := os.ReadDir(fx.srv.spoolDir); err != nil || len(left) != 0 {
			t.Fatalf("spool holds %d files", len(left))
		}
	}
}

// TestAccessLogPage: the patient sees every export of her data (who, when,
// what, how many records), and nobody else's.
func TestAccessLogPage(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[0]
	f.access(f.patient.ID, g, 4032, false)
	f.access(f.patient.ID, g, 17, true)
	f.grant(f.other.ID, f.clin.ID)
	f.access(f.other.ID, f.grants(f.other.ID)[0], 999, false)
	sess, _ := f.signIn(f.patient.ID)
	r := f.do(req{path: "/access-log", cookie: sess})
	b := body(t, r)
	for _, want := range []string{clinicianName, "4032", "complete", "17 sent", "cut short", "Blood glucose", "OMH", g.ID} {
		if !strings.Contains(b, want) {
			t.Fatalf("access log lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "999") {
		t.Fatal("another patient's export is listed")
	}
	o, _ := f.signIn(f.other.ID)
	if b := body(t, f.do(req{path: "/access-log", cookie: o})); strings.Contains(b, "4032") || !strings.Contains(b, "999") {
		t.Fatal("the other patient's log is wrong")
	}
}

// TestAccessLogPaged: past MaxAccessLogRows exports, the page says older
// ones exist and links to them; following the links shows every export
// exactly once, newest first.
func TestAccessLogPaged(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.grant(f.patient.ID, f.clin.ID)
	g := f.grants(f.patient.ID)[0]
	var batch []consent.Entry
	for range MaxAccessLogRows + 20 {
		a := consent.New(consent.KindAccessStart, g.Clinician, time.Now())
		a.Patient, a.Clinician = f.patient.ID, g.Clinician
		a.Access = &consent.Access{Grants: []string{g.ID}, Schemas: []string{"omh:blood-glucose:4.0"}, Format: "omh", Recipient: "fp_0123"}
		batch = append(batch, a)
	}
	first, err := f.led.Append(batch...)
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := f.signIn(f.patient.ID)
	starts := regexp.MustCompile(`start #(\d+)`)
	older := regexp.MustCompile(`<a href="(/access-log\?before=\d+)" rel="next">Older exports</a>`)
	var got []string
	path := "/access-log"
	for pages := 1; ; pages++ {
		if pages > 3 {
			t.Fatal("the older links do not end")
		}
		r := f.do(req{path: path, cookie: sess})
		b := body(t, r)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d", path, r.StatusCode)
		}
		for _, m := range starts.FindAllStringSubmatch(b, -1) {
			got = append(got, m[1])
		}
		m := older.FindStringSubmatch(b)
		if pages == 1 && (m == nil || len(got) != MaxAccessLogRows) {
			t.Fatalf("first page: %d rows, older link %v", len(got), m)
		}
		if m == nil {
			if !strings.Contains(b, `href="/access-log">Newest exports`) {
				t.Fatal("an older page has no link back to the newest")
			}
			break
		}
		path = html.UnescapeString(m[1])
	}
	var want []string
	for i := first + int64(len(batch)) - 1; i >= first; i-- {
		want = append(want, strconv.FormatInt(i, 10))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the pages show %d exports, want %d, each once, newest first", len(got), len(want))
	}
	if r := f.do(req{path: "/access-log?before=x", cookie: sess}); r.StatusCode != 400 || !strings.Contains(body(t, r), "not valid") {
		t.Fatalf("a bad cursor: %d", r.StatusCode)
	}
}

// access logs an export as api.getExport does: an access-start naming the
// covering grant, then an access-end with the count.
func (f *fixture) access(patient string, g consent.GrantState, records int64, incomplete bool) {
	f.t.Helper()
	now := time.Now()
	start := consent.New(consent.KindAccessStart, g.Clinician, now)
	start.Patient, start.Clinician = patient, g.Clinician
	start.Access = &consent.Access{Grants: []string{g.ID}, Schemas: []string{"omh:blood-glucose:4.0"}, Format: "omh", Recipient: "fp_0123",
		From: now.Add(-14 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)}
	si, err := f.led.Append(start)
	if err != nil {
		f.t.Fatal(err)
	}
	end := consent.New(consent.KindAccessEnd, g.Clinician, now)
	end.Patient, end.Clinician = patient, g.Clinician
	end.Access = &consent.Access{Start: &si, Records: records, ContentHash: make([]byte, 32), Incomplete: incomplete}
	if _, err := f.led.Append(end); err != nil {
		f.t.Fatal(err)
	}
}
