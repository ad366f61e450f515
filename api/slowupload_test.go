package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/ingest/formats"
)

// slowPost opens a POST of a body of size bytes and sends its headers and
// the body's first byte, then, if trickle, one byte every 50 ms until the
// test ends. It returns the connection, to read the answer from.
func slowPost(t *testing.T, f *fixture, path, token, ctype string, size int, trickle bool) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: vault.test\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n[", path, token, ctype, size)
	if err != nil {
		t.Fatal(err)
	}
	if trickle {
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
	}
	return conn
}

// answered reads the answer on conn, if one arrives within wait.
func answered(t *testing.T, conn net.Conn, wait time.Duration) (*http.Response, []byte, bool) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, nil, false
	}
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, true
}

// postWithin posts body and fails the test if no answer arrives within a
// generous bound (the old code never answered while slow uploads held
// every slot).
func postWithin(t *testing.T, f *fixture, path, token, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s got no answer while slow uploads were open: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestSlowIngestDoesNotStallOthers: as many trickling uploads from one
// device token as there are shared ingest slots, and another patient's
// upload is stored while they are all still open and unanswered.
func TestSlowIngestDoesNotStallOthers(t *testing.T) {
	f := newFixture(t, api.Config{})
	var slow []net.Conn
	for range api.DefaultMaxConcurrentIngest {
		slow = append(slow, slowPost(t, f, "/api/v1/readings", f.device, "application/json", 1<<20, true))
	}
	// Give the slow uploads time to reach the handler (on the old code,
	// to take every slot); what is checked does not depend on it.
	time.Sleep(300 * time.Millisecond)
	st, b := postWithin(t, f, "/api/v1/readings", f.other, "application/json", []byte(batch(3)))
	if st != http.StatusCreated {
		t.Fatalf("the other patient's upload: %d %s", st, b)
	}
	for i, c := range slow {
		if resp, b, ok := answered(t, c, 50*time.Millisecond); ok {
			t.Fatalf("slow upload %d was answered meanwhile: %d %s", i, resp.StatusCode, b)
		}
	}
}

// TestSlowImportsDoNotRefuseOthers: a patient's slow import holds only
// that patient's import slot: a second import of theirs is refused with
// 429 too_many_imports, and another patient's import goes through while
// the slow one is still open.
func TestSlowImportsDoNotRefuseOthers(t *testing.T) {
	f, _ := importFixture(t, 0)
	first := slowPost(t, f, "/api/v1/imports?format=dexcom-clarity", f.device, "text/csv", 1<<20, true)
	time.Sleep(300 * time.Millisecond) // as above: for the old code's sake
	second := slowPost(t, f, "/api/v1/imports?format=dexcom-clarity", f.device, "text/csv", 1<<20, true)
	st, b := postWithin(t, f, "/api/v1/imports", f.other, "text/csv", dexcomFile(t))
	if st != http.StatusCreated {
		t.Fatalf("the other patient's import: %d %s", st, b)
	}
	if resp, b, ok := answered(t, first, 50*time.Millisecond); ok {
		t.Fatalf("the slow import was answered meanwhile: %d %s", resp.StatusCode, b)
	}
	resp, b, ok := answered(t, second, 5*time.Second)
	if !ok {
		t.Fatal("the patient's second import was not refused")
	}
	if resp.StatusCode != http.StatusTooManyRequests || errBody(t, b).Code != "too_many_imports" {
		t.Fatalf("the patient's second import: %d %s", resp.StatusCode, b)
	}
}

// TestUploadTooSlow: a body that trickles below the minimum rate is cut
// after the grace period with 408 upload_too_slow, on both upload routes,
// and the connection is closed.
func TestUploadTooSlow(t *testing.T) {
	const grace = 300 * time.Millisecond
	f := newFixture(t, api.Config{Importers: formats.New(), SpoolDir: t.TempDir(), MinUploadRate: 64 << 10, UploadGrace: grace})
	for _, path := range []string{"/api/v1/readings", "/api/v1/imports?format=dexcom-clarity"} {
		t.Run(path, func(t *testing.T) {
			conn := slowPost(t, f, path, f.device, "application/json", 1<<20, true)
			resp, b, ok := answered(t, conn, 10*time.Second) // generous: the cut comes after grace
			if !ok {
				t.Fatal("a body trickling at 20 bytes a second was not cut")
			}
			if resp.StatusCode != http.StatusRequestTimeout || errBody(t, b).Code != "upload_too_slow" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if !resp.Close {
				t.Error("the connection is kept open after a cut body")
			}
		})
	}
	// A body that arrives at once is not cut.
	if st, b := postWithin(t, f, "/api/v1/readings", f.device, "application/json", []byte(batch(2))); st != http.StatusCreated {
		t.Fatalf("an ordinary upload: %d %s", st, b)
	}
}

// TestRefusalBeforeBodyClosesAtOnce: a request refused before its body
// is read is answered at once, with Connection: close, although its
// client has sent only the first byte of a body net/http would otherwise
// read to its end (up to 256 KiB) before answering, to keep the
// connection: a trickling client is not waited on. Before the fix none of
// these answers arrived while the body was outstanding.
func TestRefusalBeforeBodyClosesAtOnce(t *testing.T) {
	f, _ := importFixture(t, 0)
	const size = 100 << 10 // under net/http's 256 KiB it would read
	// The patient's first import holds her import slot, trickling.
	slowPost(t, f, "/api/v1/imports?format=dexcom-clarity", f.device, "text/csv", 1<<20, true)
	time.Sleep(300 * time.Millisecond) // as in TestSlowImportsDoNotRefuseOthers: the first holds the slot before the second arrives
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"second import of one patient", "/api/v1/imports?format=dexcom-clarity", f.device, http.StatusTooManyRequests, "too_many_imports"},
		{"unknown token", "/api/v1/readings", "vt_nosuchtoken", http.StatusUnauthorized, ""},
		{"clinician token uploads", "/api/v1/readings", f.clin, http.StatusForbidden, "wrong_token_type"},
		{"no such route", "/api/v1/nothing", f.device, http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := slowPost(t, f, tc.path, tc.token, "text/csv", size, false)
			resp, b, ok := answered(t, conn, 10*time.Second) // generous: an answer comes at once or never
			if !ok {
				t.Fatal("no answer while the body is outstanding")
			}
			if resp.StatusCode != tc.status || (tc.code != "" && errBody(t, b).Code != tc.code) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
			if !resp.Close {
				t.Fatalf("the refusal does not close the connection: %v", resp.Header)
			}
		})
	}
	// A refusal after the body was read keeps the connection.
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/readings", bytes.NewReader([]byte(`{"not":"a point"}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.device)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Close {
		t.Fatalf("a bad point, body read: %d, close %v", resp.StatusCode, resp.Close)
	}
}

// TestAnnouncedBodyNotAllocated: uploads that announce the largest body
// allowed and send one byte of it do not have it allocated while they
// trickle (before the fix each had 16 MiB at once: one device token's 4
// took 64 MiB, and the load bench's attack grew the server by 190 MiB).
func TestAnnouncedBodyNotAllocated(t *testing.T) {
	f := newFixture(t, api.Config{})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range 4 { // the patient's 4 slots: each is reading its body
		slowPost(t, f, "/api/v1/readings", f.device, "application/x-ndjson", api.DefaultMaxBodyBytes, false)
	}
	time.Sleep(300 * time.Millisecond) // for the handlers to reach the body (they would have allocated by then)
	if grew := int64(heap()) - int64(before); grew > 8<<20 {
		t.Fatalf("4 uploads of one byte so far hold %d MiB", grew>>20)
	}
}

// TestIngestSlotNotHeldForTheDisk: an upload waiting for the store's
// commit does not hold one of the shared ingest slots, which bound the
// CPU phase only. With one slot, and the database's single writer held
// (a ledger transaction left open), one patient's upload is sealed and
// waits for the disk; another patient's invalid upload still takes the
// slot and is refused at once (on the old code it waited for the first
// upload's commit), and once the writer is free the first is stored.
func TestIngestSlotNotHeldForTheDisk(t *testing.T) {
	f := newFixture(t, api.Config{MaxConcurrentIngest: 1})
	// Each token's first use records when it was used, a write; done
	// here, before the writer is held.
	for _, tok := range []string{f.device, f.other} {
		if st, b := postWithin(t, f, "/api/v1/readings", tok, "application/json", []byte(batch(1))); st != http.StatusCreated {
			t.Fatalf("first upload: %d %s", st, b)
		}
	}
	held, release := make(chan struct{}), make(chan struct{})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // a failure below must not leave the writer held
	writer := make(chan error, 1)
	go func() {
		writer <- f.store.Ledger().Update(context.Background(), func(ledgerstore.WriteTx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/readings", strings.NewReader(batch(3)))
		req.Header.Set("Authorization", "Bearer "+f.device)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	// Let the first upload be sealed and reach the store; on the old code
	// it then held the one slot until its commit.
	time.Sleep(300 * time.Millisecond)
	select {
	case st := <-first:
		t.Fatalf("the first upload was answered (%d) while the writer was held", st)
	default:
	}
	st, b := postWithin(t, f, "/api/v1/readings", f.other, "application/json", []byte(`[{"header":{}}]`))
	if st != http.StatusBadRequest {
		t.Fatalf("the invalid upload: %d %s", st, b)
	}
	free()
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if st := <-first; st != http.StatusCreated {
		t.Fatalf("the first upload: %d", st)
	}
}
