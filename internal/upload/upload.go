// Package upload holds what the routes that take a request body of any
// size share (POST /api/v1/readings, POST /api/v1/imports, the web
// upload), so that one slow or greedy client cannot hold up everyone else:
//
//   - [Rate] cuts a body that arrives slower than a minimum rate: a
//     wrapped body's read deadline moves forward as bytes arrive, so a
//     client that trickles is cut as soon as its average, after a grace
//     period, falls below the rate ([ErrTooSlow]);
//   - [PerKey] bounds the requests in flight per patient: the rest wait
//     for (or are refused) that patient's own slots, so one patient's
//     devices cannot take the slots every patient shares.
//
// A handler reads (or spools) the whole body through [Rate.Reader] before it
// takes any slot that other patients share; those then cover only the
// work that costs CPU or the store's writer, never waiting on a client.
//
// A refusal sent before the body was read closes the connection after it
// ([TrackBody], [CloseIfUnread]), so net/http does not wait for a
// trickled body before it sends the refusal.
package upload

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Defaults for Rate.
const (
	// DefaultMinBytesPerSecond is the slowest average rate a body may
	// arrive at once the grace period is over: a slow mobile uplink
	// manages several times this.
	DefaultMinBytesPerSecond = 64 << 10
	// DefaultGrace is how long a body may take before the rate applies:
	// its first bytes, a TLS handshake's stall, a phone waking its radio.
	DefaultGrace = 10 * time.Second
)

// ErrTooSlow is returned by a Rate reader whose body fell below the minimum
// rate; the handler answers 408 upload_too_slow.
var ErrTooSlow = errors.New("the request body arrived slower than the minimum upload rate")

// Rate is a minimum upload rate: after Grace, a body must have arrived at
// an average of at least MinBytesPerSecond since the reader was made, and
// it must be whole within Max (0 means no bound beyond the rate).
type Rate struct {
	MinBytesPerSecond int64
	Grace             time.Duration
	Max               time.Duration
}

// WithDefaults fills the zero fields with the defaults.
func (r Rate) WithDefaults() Rate {
	if r.MinBytesPerSecond <= 0 {
		r.MinBytesPerSecond = DefaultMinBytesPerSecond
	}
	if r.Grace <= 0 {
		r.Grace = DefaultGrace
	}
	return r
}

// Reader wraps body, the body of the request w answers. Each Read sets the
// connection's read deadline to the moment the average would fall below
// the rate, given the bytes that have arrived, so a read that waits longer
// fails with ErrTooSlow; it replaces the server's own read timeout for the
// rest of the body. Read w's body only through the returned reader.
func (r Rate) Reader(w http.ResponseWriter, body io.Reader) io.Reader {
	r = r.WithDefaults()
	now := time.Now()
	rd := &rateReader{r: body, rc: http.NewResponseController(w), rate: r, start: now}
	if r.Max > 0 {
		rd.end = now.Add(r.Max)
	}
	return rd
}

type rateReader struct {
	r     io.Reader
	rc    *http.ResponseController
	rate  Rate
	start time.Time
	end   time.Time // zero: none
	n     int64     // bytes read so far
	set   time.Time // the deadline set last
	err   error     // sticky ErrTooSlow
}

func (rd *rateReader) Read(p []byte) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	// The average falls below the rate at start + grace + n/rate.
	d := rd.start.Add(rd.rate.Grace + time.Duration(float64(rd.n)/float64(rd.rate.MinBytesPerSecond)*float64(time.Second)))
	if !rd.end.IsZero() && d.After(rd.end) {
		d = rd.end
	}
	if !d.Equal(rd.set) {
		// An error means the connection can't take deadlines (HTTP/2
		// without support, a test recorder): the server's own timeout
		// then stands.
		if rd.rc.SetReadDeadline(d) == nil {
			rd.set = d
		}
	}
	n, err := rd.r.Read(p)
	rd.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		rd.err = ErrTooSlow
		return n, rd.err
	}
	return n, err
}

// PerKey bounds the requests in flight per key (a patient's id): one
// patient's requests wait for (or are refused) each other's slots, never
// another patient's.
type PerKey struct {
	max int
	mu  sync.Mutex
	m   map[string]*keySlots
}

type keySlots struct {
	ch   chan struct{}
	refs int // holders and waiters
}

// NewPerKey allows max requests in flight per key.
func NewPerKey(max int) *PerKey {
	return &PerKey{max: max, m: map[string]*keySlots{}}
}

func (p *PerKey) ref(key string) *keySlots {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.m[key]
	if k == nil {
		k = &keySlots{ch: make(chan struct{}, p.max)}
		p.m[key] = k
	}
	k.refs++
	return k
}

func (p *PerKey) unref(key string, k *keySlots) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(p.m, key)
	}
}

// Acquire waits for a slot for key until ctx ends (then it reports
// false). Each true must be followed by one Release.
func (p *PerKey) Acquire(ctx context.Context, key string) bool {
	k := p.ref(key)
	select {
	case k.ch <- struct{}{}:
		return true
	case <-ctx.Done():
		p.unref(key, k)
		return false
	}
}

// TryAcquire takes a slot for key, or reports false at once if key holds
// all of its slots. Each true must be followed by one Release.
func (p *PerKey) TryAcquire(key string) bool {
	k := p.ref(key)
	select {
	case k.ch <- struct{}{}:
		return true
	default:
		p.unref(key, k)
		return false
	}
}

// Release gives back a slot Acquire or TryAcquire took.
func (p *PerKey) Release(key string) {
	p.mu.Lock()
	k := p.m[key]
	p.mu.Unlock()
	<-k.ch
	p.unref(key, k)
}

// Max is the bound per key.
func (p *PerKey) Max() int { return p.max }
