package web

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// The page cache: the dashboard's daily series (glucose in mg/dL, heart
// rate, steps), decrypted and reduced to (time, value) pairs, keyed by
// patient, series and local day, and the newest reading of each schema.
// It lives only in this process's memory: it is never written to disk,
// and a restart empties it.
//
// Invalidation: a patient's entry carries a version, the patient's record
// count from the backend (vault.Backend.Count). Readings are only ever
// added (an identical reading is a duplicate and not stored) or deleted
// with the whole patient, so any change to what the pages would show
// changes the count. The count is re-read at most every cacheCheckEvery
// per patient; when it differs, the patient's whole entry is dropped. New
// readings, from the API, a device, an import or the upload page, so show
// on the dashboard within cacheCheckEvery, without the web layer having to
// hear of every write path. A dropped or evicted entry refills a day at a
// time as pages ask for it.
const (
	cacheCheckEvery   = 2 * time.Second
	cacheMaxPatients  = 128 // entries kept (about 300 KB each); the least recently used goes first
	latestRecheckEach = 10 * time.Minute
)

// cacheKey names one cached day of one series.
type cacheKey struct {
	series string
	day    int64 // the local midnight starting the day, unix seconds
}

type latestEntry struct {
	found    bool
	t        time.Time
	json     []byte
	lookedAt time.Time
}

type patientCache struct {
	version int
	gen     uint64 // bumped whenever the entry is dropped, so a fill that raced it is not stored
	checked time.Time
	used    time.Time
	days    map[cacheKey][]stats.Point
	latest  map[string]latestEntry
}

type pageCache struct {
	v          *vault.Vault
	now        func() time.Time
	checkEvery time.Duration // cacheCheckEvery; tests change it
	mu         sync.Mutex
	m          map[string]*patientCache
	gen        uint64
}

func newPageCache(v *vault.Vault, now func() time.Time) *pageCache {
	return &pageCache{v: v, now: now, checkEvery: cacheCheckEvery, m: map[string]*patientCache{}}
}

// reset empties the cache (the benchmarks' cold start).
func (c *pageCache) reset() {
	c.mu.Lock()
	c.m = map[string]*patientCache{}
	c.mu.Unlock()
}

// invalidate drops a patient's entry.
func (c *pageCache) invalidate(patient string) {
	c.mu.Lock()
	delete(c.m, patient)
	c.mu.Unlock()
}

// entry returns the patient's live entry and its generation, re-reading
// the record count when the last check is older than cacheCheckEvery.
func (c *pageCache) entry(patient string) (uint64, error) {
	now := time.Now() // wall time for the check interval, whatever the pages' clock
	c.mu.Lock()
	e := c.m[patient]
	if e != nil && now.Sub(e.checked) < c.checkEvery {
		e.used = now
		g := e.gen
		c.mu.Unlock()
		return g, nil
	}
	c.mu.Unlock()
	n, err := c.v.Backend().Count(patient)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.m[patient]
	if e == nil || e.version != n {
		if e == nil && len(c.m) >= cacheMaxPatients {
			c.evict()
		}
		c.gen++
		e = &patientCache{version: n, gen: c.gen, days: map[cacheKey][]stats.Point{}, latest: map[string]latestEntry{}}
		c.m[patient] = e
	}
	e.checked, e.used = now, now
	return e.gen, nil
}

// evict drops the least recently used entry; c.mu is held.
func (c *pageCache) evict() {
	var oldest string
	var at time.Time
	for id, e := range c.m {
		if oldest == "" || e.used.Before(at) {
			oldest, at = id, e.used
		}
	}
	delete(c.m, oldest)
}

func (c *pageCache) getDay(patient string, gen uint64, k cacheKey) ([]stats.Point, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[patient]
	if e == nil || e.gen != gen {
		return nil, false
	}
	pts, ok := e.days[k]
	return pts, ok
}

func (c *pageCache) putDay(patient string, gen uint64, k cacheKey, pts []stats.Point) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[patient]; e != nil && e.gen == gen {
		e.days[k] = pts
	}
}

// dailySeries returns the (time, value) pairs of a patient's readings of
// one schema in [from, to), in time order, through the cache: each local
// day the window touches is read and decrypted once (value extracts the
// number, or false to skip a reading: one of package stats's readers),
// then served from memory until the patient's data changes. series names
// the schema and the extraction.
func (s *Server) dailySeries(ctx context.Context, u vault.User, series, schema string, value func([]byte) (float64, bool), from, to time.Time) ([]stats.Point, error) {
	gen, err := s.cache.entry(u.ID)
	if err != nil {
		return nil, err
	}
	loc := u.Location()
	days := calendar.Days(from, to, loc)
	got := make([][]stats.Point, len(days))
	var missing []int
	for i, d := range days {
		pts, ok := s.cache.getDay(u.ID, gen, cacheKey{series: series, day: d.Unix()})
		if ok {
			got[i] = pts
		} else {
			missing = append(missing, i)
		}
	}
	// Uncached days are read and decrypted in parallel, one day to a
	// worker, on every core.
	if len(missing) > 0 {
		var wg sync.WaitGroup
		errs := make([]error, len(days))
		next := make(chan int, len(missing))
		for _, i := range missing {
			next <- i
		}
		close(next)
		for range min(len(missing), runtime.GOMAXPROCS(0)) {
			wg.Go(func() {
				for i := range next {
					var pts []stats.Point
					for r, err := range s.vault.Readings(ctx, u.ID, schema, days[i], calendar.Next(days[i], loc)) {
						if err != nil {
							errs[i] = err
							break
						}
						if v, ok := value(r.JSON); ok {
							pts = append(pts, stats.Point{Time: r.Time, Value: v})
						}
					}
					got[i] = pts
				}
			})
		}
		wg.Wait()
		for _, i := range missing {
			if errs[i] != nil {
				return nil, errs[i]
			}
			s.cache.putDay(u.ID, gen, cacheKey{series: series, day: days[i].Unix()}, got[i])
		}
	}
	var out []stats.Point
	for _, pts := range got {
		for _, p := range pts {
			if !p.Time.Before(from) && p.Time.Before(to) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// latestReading returns the newest reading of a schema in the 30 days up
// to now (and a minute past it), through the cache. Uncached, it looks in
// the last hour, then two days, then 30, so a schema read every few
// minutes costs a few decryptions, not two days of them.
func (s *Server) latestReading(ctx context.Context, u vault.User, schema string, now time.Time) (*vault.Reading, error) {
	gen, err := s.cache.entry(u.ID)
	if err != nil {
		return nil, err
	}
	floor := now.Add(-30 * 24 * time.Hour)
	s.cache.mu.Lock()
	e := s.cache.m[u.ID]
	var le latestEntry
	var ok bool
	if e != nil && e.gen == gen {
		le, ok = e.latest[schema]
	}
	s.cache.mu.Unlock()
	if ok && now.Sub(le.lookedAt) < latestRecheckEach && now.Sub(le.lookedAt) >= 0 {
		if !le.found || le.t.Before(floor) {
			return nil, nil
		}
		return &vault.Reading{Time: le.t, JSON: le.json}, nil
	}
	var last *vault.Reading
	for _, back := range []time.Duration{time.Hour, 48 * time.Hour, 30 * 24 * time.Hour} {
		for r, err := range s.vault.Readings(ctx, u.ID, schema, now.Add(-back), now.Add(time.Minute)) {
			if err != nil {
				return nil, err
			}
			last = &r
		}
		if last != nil {
			break
		}
	}
	le = latestEntry{lookedAt: now}
	if last != nil {
		le.found, le.t, le.json = true, last.Time, bytes.Clone(last.JSON)
	}
	s.cache.mu.Lock()
	if e := s.cache.m[u.ID]; e != nil && e.gen == gen {
		e.latest[schema] = le
	}
	s.cache.mu.Unlock()
	return last, nil
}
