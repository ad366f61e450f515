package upload_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/upload"
)

// result is what the server's handler read of a body.
type result struct {
	n   int64
	err error
}

// rateServer serves a handler on loopback that reads its body through
// rate and reports what it read.
func rateServer(t *testing.T, rate upload.Rate) (string, <-chan result) {
	t.Helper()
	got := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, rate.Reader(w, r.Body))
		got <- result{n, err}
		if errors.Is(err, upload.ErrTooSlow) {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), got
}

// send opens a POST of size bytes over a raw connection, writes first
// bytes of the body at once, then chunk bytes every every until size bytes
// are sent, the server closes the connection, or the test ends.
func send(t *testing.T, addr string, size, first, chunk int, every time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: upload.test\r\nContent-Length: %d\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, max(first, chunk))
	if _, err := conn.Write(buf[:first]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for sent := first; sent < size && chunk > 0; sent += chunk {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			if _, err := conn.Write(buf[:min(chunk, size-sent)]); err != nil {
				return
			}
		}
	}()
	return conn
}

// TestRate: on a real loopback server, a body that keeps up the rate is
// read whole; one that falls below it after the grace, hits Max, or stops
// after a fast start is cut with ErrTooSlow and its connection closed.
func TestRate(t *testing.T) {
	cases := []struct {
		name               string
		rate               upload.Rate
		size, first, chunk int
		every              time.Duration
		whole              bool
		read               int64 // bytes the server reads before the cut (-1: any fewer than size)
	}{
		// 1,000 B/s offered against a minimum of 100 B/s.
		{"above the rate", upload.Rate{MinBytesPerSecond: 100, Grace: 2 * time.Second}, 400, 20, 20, 20 * time.Millisecond, true, 400},
		{"all at once", upload.Rate{MinBytesPerSecond: 100, Grace: 100 * time.Millisecond}, 64 << 10, 64 << 10, 0, 0, true, 64 << 10},
		// 20 B/s offered against a minimum of 10,000 B/s.
		{"below the rate", upload.Rate{MinBytesPerSecond: 10000, Grace: 100 * time.Millisecond}, 1000, 1, 1, 50 * time.Millisecond, false, -1},
		// Fast enough for any rate, but longer than Max.
		{"past max", upload.Rate{MinBytesPerSecond: 1, Grace: time.Hour, Max: 300 * time.Millisecond}, 1 << 20, 1, 1, 10 * time.Millisecond, false, -1},
		// 500 bytes at once buy 0.5 s at 1,000 B/s; then nothing comes.
		{"fast start then a stall", upload.Rate{MinBytesPerSecond: 1000, Grace: 100 * time.Millisecond}, 10000, 500, 0, 0, false, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, got := rateServer(t, tc.rate)
			conn := send(t, addr, tc.size, tc.first, tc.chunk, tc.every)
			var res result
			select {
			case res = <-got:
			case <-time.After(20 * time.Second):
				t.Fatal("the server read no end of the body in 20 s")
			}
			if tc.whole {
				if res.err != nil || res.n != int64(tc.size) {
					t.Fatalf("read %d of %d bytes, err %v", res.n, tc.size, res.err)
				}
				return
			}
			if !errors.Is(res.err, upload.ErrTooSlow) {
				t.Fatalf("read %d bytes, err %v; want ErrTooSlow", res.n, res.err)
			}
			if res.n >= int64(tc.size) || (tc.read >= 0 && res.n != tc.read) {
				t.Fatalf("read %d of %d bytes before the cut, want %d", res.n, tc.size, tc.read)
			}
			// The server answers 408 and closes the connection: reading
			// it ends (EOF or a reset), long before the generous bound.
			if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			_, err := io.Copy(io.Discard, conn)
			if errors.Is(err, net.ErrClosed) || isTimeout(err) {
				t.Fatalf("the connection stayed open after the cut: %v", err)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestRateDefaults: zero fields take the documented defaults; set ones
// stay.
func TestRateDefaults(t *testing.T) {
	got := upload.Rate{}.WithDefaults()
	if got.MinBytesPerSecond != upload.DefaultMinBytesPerSecond || got.Grace != upload.DefaultGrace || got.Max != 0 {
		t.Fatalf("defaults: %+v", got)
	}
	set := upload.Rate{MinBytesPerSecond: 7, Grace: time.Second, Max: time.Minute}
	if set.WithDefaults() != set {
		t.Fatalf("set fields changed: %+v", set.WithDefaults())
	}
}

// TestPerKeyTryAcquire: a key holds at most its bound; another key is not
// refused for it; a release frees a slot.
func TestPerKeyTryAcquire(t *testing.T) {
	for _, bound := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			p := upload.NewPerKey(bound)
			if p.Max() != bound {
				t.Fatalf("Max %d", p.Max())
			}
			for i := range bound {
				if !p.TryAcquire("a") {
					t.Fatalf("slot %d of %d refused", i+1, bound)
				}
			}
			if p.TryAcquire("a") {
				t.Fatal("a slot past the bound was given")
			}
			for i := range bound {
				if !p.TryAcquire("b") {
					t.Fatalf("another key's slot %d refused", i+1)
				}
			}
			p.Release("a")
			if !p.TryAcquire("a") {
				t.Fatal("a released slot was not given again")
			}
			if p.TryAcquire("a") {
				t.Fatal("a slot past the bound was given after a release")
			}
			for range bound {
				p.Release("a")
				p.Release("b")
			}
			// Every slot is back: each key takes its bound again.
			for i := range bound {
				if !p.TryAcquire("a") || !p.TryAcquire("b") {
					t.Fatalf("slot %d refused after every release", i+1)
				}
			}
		})
	}
}

// TestPerKeyAcquire: Acquire waits for a held slot until it is released,
// and gives up when its context ends; a cancelled wait leaves the slots
// as they were.
func TestPerKeyAcquire(t *testing.T) {
	p := upload.NewPerKey(1)
	if !p.Acquire(t.Context(), "a") {
		t.Fatal("a free slot was not given")
	}
	// A wait that is cancelled reports false.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if p.Acquire(ctx, "a") {
		t.Fatal("Acquire gave a held slot")
	}
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	if p.Acquire(cctx, "a") {
		t.Fatal("Acquire with a cancelled context gave a held slot")
	}
	// Another key is not held up.
	if !p.Acquire(t.Context(), "b") {
		t.Fatal("another key's slot was refused")
	}
	p.Release("b")
	// A waiter gets the slot when it is released, not before.
	got := make(chan bool, 1)
	go func() { got <- p.Acquire(t.Context(), "a") }()
	select {
	case <-got:
		t.Fatal("Acquire returned while the slot was held")
	case <-time.After(50 * time.Millisecond):
	}
	p.Release("a")
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiter was refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter got no slot after the release")
	}
	p.Release("a")
	if !p.TryAcquire("a") {
		t.Fatal("the slot was not free after the last release")
	}
	p.Release("a")
}

// TestPerKeyRace: many goroutines on a few keys never hold more than the
// bound of one key at once, and every Acquire is eventually served.
func TestPerKeyRace(t *testing.T) {
	const bound, keys, workers, rounds = 2, 3, 48, 50
	p := upload.NewPerKey(bound)
	var held [keys]atomic.Int32
	var over atomic.Int32
	var served atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := w % keys
			key := fmt.Sprint("patient-", k)
			for i := range rounds {
				ok := false
				if i%2 == 0 {
					ok = p.TryAcquire(key)
				} else {
					ok = p.Acquire(context.Background(), key)
				}
				if !ok {
					continue
				}
				if n := held[k].Add(1); n > bound {
					over.Store(n)
				}
				served.Add(1)
				time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
				held[k].Add(-1)
				p.Release(key)
			}
		}()
	}
	wg.Wait()
	if n := over.Load(); n != 0 {
		t.Fatalf("%d held one key's slots at once, bound %d", n, bound)
	}
	if served.Load() < workers*rounds/2 {
		t.Fatalf("only %d acquisitions served; every blocking Acquire must be", served.Load())
	}
	for k := range keys {
		key := fmt.Sprint("patient-", k)
		for range bound {
			if !p.TryAcquire(key) {
				t.Fatalf("%s: a slot leaked", key)
			}
		}
	}
}
