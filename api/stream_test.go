package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
)

// streamEnv is a vault with n readings under one open grant, for exports
// larger than a loopback connection's buffers.
func streamEnv(t *testing.T, cfg api.Config, n int) (*fixture, *age.X25519Identity) {
	t.Helper()
	cfg.KeyActivationDelay, cfg.ExportBurstPerGrant = -1, 1<<20
	f := newFixture(t, cfg)
	for first := 0; first < n; first += 10000 {
		var ps []string
		for i := first; i < min(n, first+10000); i++ {
			ps = append(ps, point(i, "mg/dL"))
		}
		if st, b := f.do(t, "POST", "/api/v1/readings", f.device, "", []byte("["+strings.Join(ps, ",")+"]")); st != 201 {
			t.Fatalf("ingest: %d %.300s", st, b)
		}
	}
	id, _ := f.hubKey(t, f.clin, "hub")
	gb, err := json.Marshal(api.GrantRequest{Clinician: f.clinID, Schemas: []string{"omh:blood-glucose"}, DataFrom: "2025-01-01T00:00:00Z",
		ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Purpose: "TREAT"})
	if err != nil {
		t.Fatal(err)
	}
	if st, b := f.do(t, "POST", "/api/v1/grants", f.ptok, "", gb); st != 201 {
		t.Fatalf("grant: %d %s", st, b)
	}
	return f, id
}

// smallBufferClient dials with a 64 KiB receive buffer, so a slow reader
// holds the server back after a few MiB rather than after the kernel's
// largest autotuned buffer.
func smallBufferClient() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}}
}

func (f *fixture) startExport(t *testing.T, client *http.Client, base string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/patients/"+f.patient.ID+"/export?schema=omh:blood-glucose:4.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.clin)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("export: %d %s", resp.StatusCode, b)
	}
	return resp
}

// TestExportOutlivesReadTimeout: an export read slowly for longer than the
// listener's whole-request read timeout still arrives whole, and a second
// request on the same kept-alive connection is answered. net/http lifts
// the read deadline once a request without a body has been read; this
// holds it to that.
func TestExportOutlivesReadTimeout(t *testing.T) {
	const n = 40000 // about 12 MiB of NDJSON
	// A stall timeout far above any pause of this reader, even on a loaded
	// machine: this test is about the read timeout.
	f, id := streamEnv(t, api.Config{ExportStallTimeout: 30 * time.Second}, n)
	srv := httptest.NewUnstartedServer(f.srv.Config.Handler)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.IdleTimeout = time.Minute // else ReadTimeout is the idle timeout
	srv.Start()
	t.Cleanup(srv.Close)

	client := smallBufferClient()
	resp := f.startExport(t, client, srv.URL)
	// About 6 MiB/s: two seconds or so, several read timeouts.
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		got.Write(buf[:k])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v (the export was cut off)", got.Len(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	plain, err := age.Decrypt(&got, id)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(plain)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// The manifest, the points and the trailer.
	if lines != n+2 {
		t.Fatalf("%d lines, want %d points and a manifest and a trailer", lines, n)
	}
	acc, err := f.ledger.Accesses(f.patient.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc) != 1 || acc[0].End == nil || acc[0].Incomplete || acc[0].Records != n {
		t.Fatalf("access log: %+v, want one complete access of %d records", acc, n)
	}

	// The connection is kept alive, and a request on it is answered.
	req, err := http.NewRequest("GET", srv.URL+"/api/v1/clinician/patients", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.clin)
	reused := false
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	r2, err := client.Do(req)
	if err != nil {
		t.Fatalf("the next request on the connection: %v", err)
	}
	b, err := io.ReadAll(r2.Body)
	r2.Body.Close()
	if err != nil || r2.StatusCode != 200 || !reused {
		t.Fatalf("the next request: %d %s %v (connection reused: %v)", r2.StatusCode, b, err, reused)
	}
}

// TestExportDropsStalledClient: a client that stops reading is dropped
// after the stall timeout, and its access is logged incomplete. Before,
// nothing bounded a write, so the export waited on it for ever.
func TestExportDropsStalledClient(t *testing.T) {
	f, _ := streamEnv(t, api.Config{ExportStallTimeout: 200 * time.Millisecond}, 40000)
	resp := f.startExport(t, smallBufferClient(), f.srv.URL)
	_ = resp // read nothing more
	if a := f.accessEnded(t); !a.Incomplete || a.Records >= 40000 {
		t.Fatalf("stalled export logged %+v, want incomplete", a)
	}
}

// TestExportAbandonedIsNotAnError: a client that closes the connection in
// the middle of an export (a notebook interrupted) is logged at INFO as
// abandoned, its access logged incomplete; before, the broken pipe was an
// ERROR "export stream failed", as if the vault had failed.
func TestExportAbandonedIsNotAnError(t *testing.T) {
	var logs lockedBuffer
	f, _ := streamEnv(t, api.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, 40000)
	resp := f.startExport(t, smallBufferClient(), f.srv.URL)
	if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // unread: the transport closes the connection
	if a := f.accessEnded(t); !a.Incomplete || a.Records >= 40000 {
		t.Fatalf("abandoned export logged %+v, want incomplete", a)
	}
	got := logs.String()
	if strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, "export abandoned by the client") {
		t.Fatalf("log:\n%s", got)
	}
}

// accessEnded waits (30 s at most) for the patient's one access to be
// ended, and returns it.
func (f *fixture) accessEnded(t *testing.T) consent.AccessState {
	t.Helper()
	var acc []consent.AccessState
	for range 300 {
		var err error
		if acc, err = f.ledger.Accesses(f.patient.ID, 1); err != nil {
			t.Fatal(err)
		}
		if len(acc) == 1 && acc[0].End != nil {
			return acc[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("access log %s: the export's access never ended", fmt.Sprint(acc))
	return consent.AccessState{}
}
