package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// baseline is what every response of the public listener carries, whoever
// writes it (web/headers.go).
var baseline = map[string]string{
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "same-origin",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=()",
}

// TestSecurityHeadersOnEveryResponse: the redirects net/http's ServeMux
// answers for unclean paths, the 404s and 405s, and every route with
// health data carry the security headers; nothing with health data may be
// cached.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := sharedServer(t)
	c := s.creds
	day := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
	now := time.Now().UTC().Format(time.RFC3339)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, method, path, token string
		status                    int
		page                      bool // a web UI page, with its own CSP
	}{
		{"double slash", "GET", "//", "", 307, false},
		{"dot dot", "GET", "/%2e%2e/", "", 404, true},
		{"api without slash", "GET", "/api", "", 307, false},
		{"api dot dot", "GET", "/api/v1/../v1/readings", "", 307, false},
		{"unknown page", "GET", "/nope", "", 404, true},
		{"metrics", "GET", "/metrics", "", 404, true},
		{"unknown api route", "GET", "/api/v1/nope", c.PatientToken, 404, false},
		{"wrong method", "PUT", "/api/v1/readings", c.PatientToken, 405, false},
		{"no token", "GET", "/api/v1/readings", "", 401, false},
		{"sign-in page", "GET", "/signin", "", 200, true},
		{"healthz", "GET", "/healthz", "", 200, false},
		{"readings", "GET", "/api/v1/readings?schema=omh:blood-glucose:4.0&from=" + day, c.PatientToken, 200, false},
		{"export", "GET", "/api/v1/patients/" + c.PatientID + "/export?schema=omh:blood-glucose:4.0&from=" + day + "&to=" + now, c.ClinicianToken, 200, false},
		{"access log", "GET", "/api/v1/access-log", c.PatientToken, 200, false},
		{"grants", "GET", "/api/v1/grants", c.PatientToken, 200, false},
		{"grant", "GET", "/api/v1/grants/" + c.GrantID, c.ClinicianToken, 200, false},
		{"clinician patients", "GET", "/api/v1/clinician/patients", c.ClinicianToken, 200, false},
		{"tokens", "GET", "/api/v1/tokens", c.PatientToken, 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.url+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			for h, want := range baseline {
				if got := resp.Header.Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			csp := resp.Header.Values("Content-Security-Policy")
			if len(csp) != 1 || !strings.HasPrefix(csp[0], "default-src 'none'") || !strings.Contains(csp[0], "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			// The web UI keeps its own, page, policy; everything else gets
			// the listener's, which allows nothing.
			if pagePolicy := len(csp) == 1 && strings.Contains(csp[0], "script-src 'self'"); pagePolicy != tc.page {
				t.Errorf("Content-Security-Policy %q: page policy %v, want %v", csp, pagePolicy, tc.page)
			}
			if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
		})
	}
}

// TestMetricsListener: /metrics is on its own listener (--metrics-addr),
// not on the public one.
func TestMetricsListener(t *testing.T) {
	s := sharedServer(t)
	if st, _ := httpDo(t, "GET", s.url+"/metrics", "", "", nil); st != 404 {
		t.Fatalf("the public listener answers /metrics with %d", st)
	}
	st, b := httpDo(t, "GET", s.metricsURL+"/metrics", "", "", nil)
	if st != 200 || !strings.Contains(string(b), "vault_http_request_duration_seconds") || !strings.Contains(string(b), "\nvault_ledger_entries ") {
		t.Fatalf("metrics listener: %d %.300s", st, b)
	}
	// It serves nothing else.
	for _, p := range []string{"/", "/healthz", "/api/v1/readings", "/signin"} {
		if st, _ := httpDo(t, "GET", s.metricsURL+p, "", "", nil); st != 404 {
			t.Errorf("the metrics listener answers %s with %d", p, st)
		}
	}
}

// TestSlowClients: hundreds of connections that trickle their headers a
// byte a second, or say nothing at all, on every listener (public, metrics,
// admin socket), neither keep honest clients from being served nor stay
// open past --read-header-timeout; kept-alive connections that ask nothing
// more are closed after --idle-timeout (before, the admin socket kept them
// for ever).
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections for tens of seconds")
	}
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	initVault(t, data, key)
	maddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	const headerTimeout, idleTimeout = 2 * time.Second, 3 * time.Second
	srv := startServer(t, data, key, "--metrics-addr", maddr, "--read-header-timeout", headerTimeout.String(), "--idle-timeout", idleTimeout.String())
	targets := []struct{ network, addr, path string }{
		{"tcp", strings.TrimPrefix(srv.url, "http://"), "/healthz"},
		{"tcp", maddr, "/metrics"},
		{"unix", filepath.Join(data, "admin.sock"), "/admin/ping"},
	}

	// On each listener, connections that made one request, kept alive.
	var idle []net.Conn
	for _, tg := range targets {
		for range 5 {
			c, err := net.Dial(tg.network, tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
			if _, err := io.WriteString(c, "GET "+tg.path+" HTTP/1.1\r\nHost: vault\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("%s %s: %d, close %v", tg.network, tg.path, resp.StatusCode, resp.Close)
			}
		}
	}

	const slow = 200
	var (
		conns   []net.Conn
		stop    = make(chan struct{})
		writers sync.WaitGroup
	)
	for i := range slow {
		tg := targets[i%len(targets)]
		if i%10 < 7 { // most on the public listener
			tg = targets[0]
		}
		c, err := net.Dial(tg.network, tg.addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			continue // says nothing at all
		}
		// Trickles a request's headers a byte a second, never finishing.
		writers.Add(1)
		go func() {
			defer writers.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			msg := "GET /healthz HTTP/1.1\r\nHost: vault\r\nX-Slow: " + strings.Repeat("a", 1000)
			for j := 0; ; j++ {
				if _, err := c.Write([]byte{msg[j%len(msg)]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for _, c := range conns {
			c.Close()
		}
		writers.Wait()
	}()

	// Honest clients are served while the slow connections are open.
	const honest = 30
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range honest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := cl.Get(srv.url + "/healthz")
			if err != nil {
				t.Log(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != honest {
		t.Errorf("%d of %d honest requests were served beside %d slow connections", ok.Load(), honest, slow)
	}

	// Every slow connection is closed by the server once the header
	// timeout passes (the bound is generous: a loaded machine is slow).
	var closed, open atomic.Int32
	var rd sync.WaitGroup
	for _, c := range conns {
		rd.Add(1)
		go func() {
			defer rd.Done()
			c.SetReadDeadline(time.Now().Add(headerTimeout + 60*time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1)
				return
			}
			closed.Add(1) // EOF or reset: the server hung up
		}()
	}
	rd.Wait()
	if closed.Load() != slow {
		t.Errorf("%d of %d slow connections were closed by the server; %d still open after %s", closed.Load(), slow, open.Load(), headerTimeout+60*time.Second)
	}

	// The idle ones are closed too; ReadResponse above read exactly the
	// answer, so what is left is the server hanging up.
	deadline := time.Now().Add(idleTimeout + 60*time.Second)
	for i, c := range idle {
		c.SetReadDeadline(deadline)
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || n != 0 {
			t.Errorf("kept-alive connection %d (%s): still open after %s (%d bytes, %v)", i, targets[i/5].network+" "+targets[i/5].path, idleTimeout+60*time.Second, n, err)
		}
		c.Close()
	}
}
