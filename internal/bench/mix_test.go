package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMixReplicasRefused: the load bench's replica settings are checked
// before anything is seeded or started.
func TestMixReplicasRefused(t *testing.T) {
	ok := MixConfig{Clients: 1, Patients: 1, Duration: time.Second, Dir: t.TempDir()}
	for _, tc := range []struct {
		name string
		edit func(*MixConfig)
		want string
	}{
		{"replicas without a database", func(c *MixConfig) { c.Replicas = 2 }, "--replicas needs --database"},
		{"no replicas", func(c *MixConfig) { c.Database, c.Replicas = "host=/nowhere", 0 }, "--replicas must be 1 to 32"},
		{"too many replicas", func(c *MixConfig) { c.Database, c.Replicas = "host=/nowhere", 33 }, "--replicas must be 1 to 32"},
		{"attack on replicas", func(c *MixConfig) {
			c.Database, c.Replicas, c.Attack = "host=/nowhere", 2, &AttackConfig{Honest: 1}
		}, "not with --database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, err := Mix(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRoundRobin: the clients' transport sends each request to the next
// replica in turn and counts what each was sent.
func TestRoundRobin(t *testing.T) {
	var hits [3]atomic.Int64
	rr := &roundRobin{rt: http.DefaultTransport, sent: make([]atomic.Int64, 3)}
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i].Add(1) }))
		t.Cleanup(srv.Close)
		rr.hosts = append(rr.hosts, strings.TrimPrefix(srv.URL, "http://"))
	}
	c := &http.Client{Transport: rr}
	for range 9 {
		resp, err := c.Get("http://" + rr.hosts[0] + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i := range hits {
		if hits[i].Load() != 3 || rr.sent[i].Load() != 3 {
			t.Errorf("replica %d: %d requests served, %d counted, want 3", i, hits[i].Load(), rr.sent[i].Load())
		}
	}
}
