package oauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"golang.org/x/oauth2"
)

// benchClients are how many clients hit the provider at once: the
// issue's targets are stated under 50 concurrent clients; one client
// shows a request's own latency, without queueing.
var benchClients = []int{1, 50}

// maxBenchClients sizes the HTTP client's connection pool.
const maxBenchClients = 50

// BenchmarkOAuth measures the token endpoint (code exchange, refresh) and
// introspection (client authentication, bearer) under 1 and 50
// concurrent clients over loopback HTTP, against a real bbolt file, and reports the
// latency percentiles p50 and p99 (ms) and the throughput (req/s) in
// place of Go's ns/op. Each client
// is a goroutine with its own keep-alive connection, sending its next
// request as soon as the last is answered (a closed loop: latency includes
// the queue for the 2 cores). Setup (codes approved, logins made) is not
// timed. Run with a fixed count, as docs/benchmarks.md shows:
//
//	go test -run '^$' -bench BenchmarkOAuth -benchtime 1000x ./oauth/
func BenchmarkOAuth(b *testing.B) {
	for _, n := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchOAuth(b, n, 0) })
	}
}

// pacedInterval is how often each of the 50 paced clients sends a request:
// 50 clients every 250 ms is 200 requests a second in all, about what 50
// hubs or apps signing users in and refreshing at once could send.
const pacedInterval = 250 * time.Millisecond

// BenchmarkOAuthPaced is BenchmarkOAuth's requests from 50 concurrent
// clients in an open loop: each client sends one request every
// pacedInterval whether or not the last was answered late, and a latency is
// counted from when the request was due, not when it was sent (so a stall
// is not hidden by the clients slowing down with it). Where BenchmarkOAuth
// with 50 clients measures the provider saturated (every client sending
// back to back, latency = 50 / throughput), this measures it under a stated
// load:
//
//	go test -run '^$' -bench BenchmarkOAuthPaced -benchtime 2000x ./oauth/
func BenchmarkOAuthPaced(b *testing.B) {
	b.Run("clients=50", func(b *testing.B) { benchOAuth(b, 50, pacedInterval) })
}

func benchOAuth(b *testing.B, clients int, pace time.Duration) {
	b.Run("code-exchange", func(b *testing.B) {
		f := newFixture(b)
		cfg := f.client(b, true, "openid", "fhirUser", "offline_access", "user/Observation.rs")
		type pending struct{ code, verifier string }
		codes := make([]pending, b.N)
		for i := range codes {
			v := oauth2.GenerateVerifier()
			codes[i] = pending{benchCode(b, f, cfg, v), v}
		}
		c := benchHTTP()
		defer serverTimes(b, f)()
		measure(b, clients, pace, func(i int) error {
			return benchPost(c, f.p.Issuer()+"/auth/token", cfg, url.Values{"grant_type": {"authorization_code"}, "code": {codes[i].code},
				"redirect_uri": {redirectURI}, "code_verifier": {codes[i].verifier}}, "", func(m map[string]any) bool { return m["id_token"] != nil && m["refresh_token"] != nil })
		})
	})
	b.Run("refresh", func(b *testing.B) {
		f := newFixture(b)
		cfg := f.client(b, true, "openid", "fhirUser", "offline_access", "user/Observation.rs")
		// One login per client; each refreshes its own chain (a refresh
		// rotates the token, so a chain is used by one client at a time).
		refresh := make([]string, clients)
		for w := range refresh {
			v := oauth2.GenerateVerifier()
			_, _, tok := f.exchange(b, cfg, benchCode(b, f, cfg, v), v)
			refresh[w], _ = tok["refresh_token"].(string)
		}
		c := benchHTTP()
		defer serverTimes(b, f)()
		measureWorkers(b, clients, pace, func(w, _ int) error {
			return benchPost(c, f.p.Issuer()+"/auth/token", cfg, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh[w]}}, "",
				func(m map[string]any) bool {
					refresh[w], _ = m["refresh_token"].(string)
					return refresh[w] != ""
				})
		})
	})
	introspection := func(bearer bool) func(b *testing.B) {
		return func(b *testing.B) {
			f := newFixture(b)
			cfg := f.client(b, true, "openid", "fhirUser", "offline_access", "user/Observation.rs")
			v := oauth2.GenerateVerifier()
			_, _, tok := f.exchange(b, cfg, benchCode(b, f, cfg, v), v)
			access, _ := tok["access_token"].(string)
			c := benchHTTP()
			as, auth := cfg, ""
			if bearer {
				as, auth = nil, "Bearer "+access
			}
			defer serverTimes(b, f)()
			measure(b, clients, pace, func(int) error {
				return benchPost(c, f.p.Issuer()+"/auth/introspect", as, url.Values{"token": {access}}, auth, func(m map[string]any) bool { return m["active"] == true })
			})
		}
	}
	b.Run("introspect", introspection(false))
	b.Run("introspect-bearer", introspection(true))
	// The floor: loopback HTTP with a handler that only parses the form
	// and answers {"active":true}; no provider, no store.
	b.Run("baseline-http", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"active":true}`)
		}))
		defer srv.Close()
		c := benchHTTP()
		measure(b, clients, pace, func(int) error {
			return benchPost(c, srv.URL, nil, url.Values{"token": {"vo_x"}}, "Bearer vo_x", func(m map[string]any) bool { return m["active"] == true })
		})
	})
}

// serverTimes collects the provider's own time per request (the fixture's
// handler, from the request's arrival to its answer) while a benchmark
// runs, and reports its p50 and p99 beside the client's: the client's
// figure includes loopback HTTP and the Go client, whose floor
// baseline-http shows.
func serverTimes(b *testing.B, f *fixture) func() {
	var mu sync.Mutex
	var ds []time.Duration
	f.mu.Lock()
	f.served = func(d time.Duration) { mu.Lock(); ds = append(ds, d); mu.Unlock() }
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.served = nil
		f.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		ms := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond) }
		b.ReportMetric(ms(0.50), "server-p50-ms")
		b.ReportMetric(ms(0.99), "server-p99-ms")
	}
}

// benchCode makes an approved authorization code (not timed).
func benchCode(b *testing.B, f *fixture, cfg *oauth2.Config, verifier string) string {
	b.Helper()
	return f.code(b, f.begin(b, cfg, verifier), oauth.Approval{UserID: f.clinician.ID})
}

func benchHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxBenchClients, MaxIdleConns: maxBenchClients}, Timeout: time.Minute}
}

// benchPost sends one form (Basic auth for cfg, or the given Authorization)
// and checks the answer is 200 JSON that ok accepts.
func benchPost(c *http.Client, u string, cfg *oauth2.Config, form url.Values, auth string, ok func(map[string]any) bool) error {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cfg != nil {
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var m map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &m) != nil || !ok(m) {
		return fmt.Errorf("POST %s: %d %s", u, resp.StatusCode, body)
	}
	return nil
}

// measure runs op for i in [0, b.N) on that many concurrent clients.
func measure(b *testing.B, clients int, pace time.Duration, op func(i int) error) {
	measureWorkers(b, clients, pace, func(_, i int) error { return op(i) })
}

// measureWorkers runs b.N operations on that many concurrent clients
// (op gets the client's number and the operation's) and reports p50 and
// p99 latency in milliseconds. With pace 0 each client sends its next
// request as soon as the last is answered (a closed loop); otherwise each
// sends one every pace, the clients spread evenly over it, and a latency
// runs from when the request was due (an open loop).
func measureWorkers(b *testing.B, clients int, pace time.Duration, op func(worker, i int) error) {
	b.Helper()
	lat := make([]time.Duration, b.N)
	next := make(chan int, b.N)
	for i := range b.N {
		next <- i
	}
	close(next)
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	b.ResetTimer()
	t0 := time.Now()
	for w := range clients {
		wg.Go(func() {
			due := t0.Add(time.Duration(w) * pace / time.Duration(clients))
			for i := range next {
				start := time.Now()
				if pace > 0 {
					time.Sleep(time.Until(due))
					start, due = due, due.Add(pace)
				}
				err := op(w, i)
				lat[i] = time.Since(start)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
