package web

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// multipartBody is the upload form (csrf, then file) as bytes, with its
// content type.
func multipartBody(t *testing.T, csrf, file string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("csrf", csrf); err != nil {
		t.Fatal(err)
	}
	w, err := mw.CreateFormFile("file", "export.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(file)); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// slowUpload opens POST /upload on a raw connection with the session's
// cookie and CSRF token, sends the headers and the body up to the file's
// first bytes at once, then one byte every 50 ms. The returned finish stops
// the trickle and sends the rest at once.
func (f *fixture) slowUpload(t *testing.T, sess, csrf, file string) (net.Conn, func()) {
	t.Helper()
	b, ctype := multipartBody(t, csrf, file)
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nSec-Fetch-Site: same-origin\r\nCookie: %s=%s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		strings.TrimPrefix(f.base, "http://"), f.base, SessionCookie, sess, ctype, len(b))
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte(file[:20])) + 10 // into the file part
	if _, err := conn.Write(b[:at]); err != nil {
		t.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan int)
	go func() {
		i := at
		defer func() { stopped <- i }()
		for i < len(b)-1 {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write(b[i : i+1]); err != nil {
				return
			}
			i++
		}
	}()
	var done bool
	finish := func() {
		if done {
			return
		}
		done = true
		close(stop)
		i := <-stopped
		if _, err := conn.Write(b[i:]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if !done {
			done = true
			close(stop)
			<-stopped
		}
	})
	return conn, finish
}

// answer reads the answer on conn, failing the test if none arrives
// within a generous bound.
func answer(t *testing.T, conn net.Conn, wait time.Duration) (int, string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("no answer within %s", wait)
	}
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// postUpload posts the upload form over the loopback listener and fails
// the test if no answer arrives within a generous bound.
func (f *fixture) postUpload(t *testing.T, sess, csrf, file string) (int, string) {
	t.Helper()
	b, ctype := multipartBody(t, csrf, file)
	req, err := http.NewRequest(http.MethodPost, f.base+"/upload", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Origin", f.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: sess})
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /upload got no answer: %v", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(rb)
}

// TestSlowUploadStallsNoOtherPatient: while patient A trickles an upload
// (holding her one upload slot), her second upload is refused at once
// with 429 busy, and patient B's upload is imported meanwhile; A's slow
// upload is imported once it arrives whole.
func TestSlowUploadStallsNoOtherPatient(t *testing.T) {
	f := newFixture(t, fixtureOpts{listen: true, cfgTweak: func(c *Config) { c.UploadGrace = 10 * time.Minute }})
	csv := dexcomCSV(t)
	aSess, aCSRF := f.signIn(f.patient.ID)
	bSess, bCSRF := f.signIn(f.other.ID)

	slow, finish := f.slowUpload(t, aSess, aCSRF, csv)
	// Wait until the handler holds A's slot (it has read the CSRF part).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if !f.srv.uploadPer.TryAcquire(f.patient.ID) {
			break
		}
		f.srv.uploadPer.Release(f.patient.ID)
		if time.Now().After(deadline) {
			t.Fatal("the slow upload never reached the handler")
		}
	}
	// A second trickled upload of A's takes no slot B needs (before the
	// fix, it took the last of the slots every patient shared), and is
	// refused with 429 busy at once, while its body still trickles: the
	// refusal closes the connection, so net/http does not first read the
	// rest of the body (it used to, at the rate the client sent it).
	second, _ := f.slowUpload(t, aSess, aCSRF, csv)
	if err := second.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil { // generous: at once or after the whole trickle
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("A's second trickled upload got no answer while its body trickled: %v", err)
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(rb), "busy") || !resp.Close {
		t.Fatalf("A's second trickled upload: %d, close %v, %v\n%s", resp.StatusCode, resp.Close, err, rb)
	}
	// The documented refusal: A's next upload, sent whole, gets 429 busy.
	if st, b := f.postUpload(t, aSess, aCSRF, csv); st != http.StatusTooManyRequests || !strings.Contains(b, "busy") {
		t.Fatalf("A's concurrent upload: %d\n%s", st, b)
	}
	if st, b := f.postUpload(t, bSess, bCSRF, csv); st != http.StatusOK || !strings.Contains(b, "Imported ") {
		t.Fatalf("B's upload while A's trickles: %d\n%s", st, b)
	}
	if f.glucoseCount(f.other.ID) == 0 {
		t.Fatal("B's upload stored nothing")
	}
	if f.glucoseCount(f.patient.ID) != 0 {
		t.Fatal("A's unfinished upload stored readings")
	}
	finish()
	if st, b := answer(t, slow, 20*time.Second); st != http.StatusOK || !strings.Contains(b, "Imported ") {
		t.Fatalf("A's slow upload, once whole: %d\n%s", st, b)
	}
	if f.glucoseCount(f.patient.ID) != f.glucoseCount(f.other.ID) {
		t.Fatal("A's slow upload did not store the file")
	}
}

// TestSlowUploadTooSlow: a body that arrives slower than the minimum
// upload rate after the grace is cut with 408 upload_too_slow, stores
// nothing, and frees the patient's slot.
func TestSlowUploadTooSlow(t *testing.T) {
	f := newFixture(t, fixtureOpts{listen: true, cfgTweak: func(c *Config) {
		c.MinUploadRate, c.UploadGrace = 1<<20, 200*time.Millisecond
	}})
	csv := dexcomCSV(t)
	sess, csrf := f.signIn(f.patient.ID)
	conn, _ := f.slowUpload(t, sess, csrf, csv)
	st, b := answer(t, conn, 20*time.Second)
	if st != http.StatusRequestTimeout || !strings.Contains(b, "upload_too_slow") {
		t.Fatalf("a trickled upload: %d\n%s", st, b)
	}
	if n := f.glucoseCount(f.patient.ID); n != 0 {
		t.Fatalf("a cut upload stored %d readings", n)
	}
	if st, b := f.postUpload(t, sess, csrf, csv); st != http.StatusOK {
		t.Fatalf("an upload after the cut one: %d\n%s", st, b)
	}
}
