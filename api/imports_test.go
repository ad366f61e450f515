package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/ingest/formats"
)

func importFixture(t *testing.T, maxBytes int64) (*fixture, string) {
	t.Helper()
	spool := t.TempDir()
	return newFixture(t, api.Config{Importers: formats.New(), SpoolDir: spool, MaxImportBytes: maxBytes}), spool
}

func dexcomFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ingest", "cgmcsv", "testdata", "dexcom_mgdl.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importResult(t *testing.T, st int, b []byte) api.ImportResponse {
	t.Helper()
	var r api.ImportResponse
	if st != 201 || json.Unmarshal(b, &r) != nil {
		t.Fatalf("import: %d %s", st, b)
	}
	return r
}

// TestImport: a Dexcom Clarity CSV, raw and recognised by its header, then
// again as a multipart upload with the format named: the second stores
// nothing new. Skipped rows are counted by type, and no name from the file
// is repeated back.
func TestImport(t *testing.T) {
	f, _ := importFixture(t, 0)
	file := dexcomFile(t)
	st, b := f.do(t, "POST", "/api/v1/imports", f.device, "text/csv", file)
	r := importResult(t, st, b)
	if r.Format != "dexcom-clarity" || r.Accepted == 0 || r.Duplicates != 0 || !r.Complete || r.Transactions != 1 || r.Skipped == 0 {
		t.Fatalf("first import: %+v", r)
	}
	if c := r.BySchema["omh:blood-glucose:4.0"]; c.Accepted != r.Accepted {
		t.Fatalf("by schema: %+v", r.BySchema)
	}
	_, body := f.do(t, "POST", "/api/v1/imports", f.device, "text/csv", file)
	if bytes.Contains(body, []byte("Jane")) || bytes.Contains(body, []byte("Placeholder")) {
		t.Fatal("the answer repeats a name from the file")
	}

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("note", "ignored")
	fw, err := mw.CreateFormFile("file", "clarity.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(file); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	st, b = f.do(t, "POST", "/api/v1/imports?format=dexcom-clarity", f.ptok, mw.FormDataContentType(), form.Bytes())
	again := importResult(t, st, b)
	if again.Accepted != 0 || again.Duplicates != r.Accepted {
		t.Fatalf("re-import: %+v (first %+v)", again, r)
	}
	st, b = f.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0", f.ptok, "", nil)
	if n := bytes.Count(b, []byte("\n")); st != 200 || n != r.Accepted {
		t.Fatalf("%d readings stored, want %d", n, r.Accepted)
	}
}

func TestImportRefusals(t *testing.T) {
	f, spool := importFixture(t, 4096)
	file := dexcomFile(t)
	// A bad value on one row: refused whole, naming the line and column.
	lines := strings.Split(string(file), "\n")
	for i, l := range lines {
		if strings.Contains(l, ",EGV,,") {
			cols := strings.Split(l, ",")
			cols[7] = "12x" // Glucose Value (mg/dL)
			lines[i] = strings.Join(cols, ",")
			break
		}
	}
	bad := []byte(strings.Join(lines, "\n"))
	for _, tc := range []struct {
		name, token, query, ctype string
		body                      []byte
		status                    int
		code                      string
	}{
		{"a malformed row", f.device, "?format=dexcom-clarity", "text/csv", bad, 400, "bad_value"},
		{"an unknown format name", f.device, "?format=xlsx", "text/csv", file, 400, "bad_format"},
		{"an unrecognised file", f.device, "", "text/plain", []byte("hello,world\n1,2\n"), 400, "unknown_format"},
		{"an empty file", f.device, "", "text/csv", nil, 400, "empty_file"},
		{"a multipart form without a file", f.device, "", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n"), 400, "no_file"},
		{"a clinician token", f.clin, "", "text/csv", file, 403, "wrong_token_type"},
		{"too large", f.device, "", "text/csv", bytes.Repeat([]byte("x"), 5000), 413, "body_too_large"},
		{"a bad date order", f.device, "?date_order=year-first", "text/csv", file, 400, "bad_date_order"},
	} {
		st, b := f.do(t, "POST", "/api/v1/imports"+tc.query, tc.token, tc.ctype, tc.body)
		if st != tc.status || errBody(t, b).Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, b, tc.status, tc.code)
		}
		if tc.code == "bad_value" && !strings.Contains(errBody(t, b).Message, "line ") {
			t.Errorf("%s: the message does not name the line: %s", tc.name, b)
		}
		if bytes.Contains(b, []byte("12x")) {
			t.Errorf("%s: the answer repeats the bad value", tc.name)
		}
	}
	st, b := f.do(t, "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0", f.ptok, "", nil)
	if st != 200 || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("refused imports stored readings: %s", b)
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Fatalf("the spool directory keeps %d files", len(ents))
	}
}

// TestImportAppleZip: an iPhone's export.zip, recognised by its first
// bytes and read at random through the encrypted spool (a zip's directory
// is at its end), imports; the same file again stores nothing new.
func TestImportAppleZip(t *testing.T) {
	f, _ := importFixture(t, 0)
	x, err := os.ReadFile(filepath.Join("..", "ingest", "apple", "testdata", "export_small.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, err := zw.Create("apple_health_export/export.xml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(x); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	st, b := f.do(t, "POST", "/api/v1/imports", f.ptok, "application/zip", zb.Bytes())
	r := importResult(t, st, b)
	if r.Format != "apple-health" || r.Accepted == 0 || !r.Complete || len(r.BySchema) < 3 {
		t.Fatalf("apple import: %+v", r)
	}
	st, b = f.do(t, "POST", "/api/v1/imports?format=apple-health", f.ptok, "application/zip", zb.Bytes())
	if again := importResult(t, st, b); again.Accepted != 0 || again.Duplicates != r.Accepted {
		t.Fatalf("re-import: %+v", again)
	}
}
