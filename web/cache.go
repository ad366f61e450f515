package web

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

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
	days    map[cacheKey][]glucosePoint
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
func (c *pageCache) entry(ctx context.Context, patient string) (uint64, error) {
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
	n, err := c.v.Backend().Count(ctx, patient)
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
		e = &patientCache{version: n, gen: c.gen, days: map[cacheKey][]glucosePoint{}, latest: map[string]latestEntry{}}
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

func (c *pageCache) getDay(patient string, gen uint64, k cacheKey) ([]glucosePoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[patient]
	if e == nil || e.gen != gen {
		return nil, false
	}
	pts, ok := e.days[k]
	return pts, ok
}

func (c *pageCache) putDay(patient string, gen uint64, k cacheKey, pts []glucosePoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[patient]; e != nil && e.gen == gen {
		e.days[k] = pts
	}
}

// dailySeries returns the (time, value) pairs of a patient's readings of
// one schema in [from, to), in time order, through the cache: each local
// day the window touches is read and decrypted once (value extracts the
// number, or false to skip a reading), then served from memory until the
// patient's data changes. series names the schema and the extraction.
func (s *Server) dailySeries(ctx context.Context, u vault.User, series, schema string, value func([]byte) (float64, bool), from, to time.Time) ([]glucosePoint, error) {
	gen, err := s.cache.entry(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	loc := u.Location()
	l0 := from.In(loc)
	var days []time.Time
	for d := time.Date(l0.Year(), l0.Month(), l0.Day(), 0, 0, 0, 0, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	got := make([][]glucosePoint, len(days))
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
					var pts []glucosePoint
					for r, err := range s.vault.Readings(ctx, u.ID, schema, days[i], days[i].AddDate(0, 0, 1)) {
						if err != nil {
							errs[i] = err
							break
						}
						if v, ok := value(r.JSON); ok {
							pts = append(pts, glucosePoint{T: r.Time, MgDL: v})
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
	var out []glucosePoint
	for _, pts := range got {
		for _, p := range pts {
			if !p.T.Before(from) && p.T.Before(to) {
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
	gen, err := s.cache.entry(ctx, u.ID)
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

// seriesBody is the part of a stored reading the cached series read: a
// typed decode, several times faster than the generic one (no map, no
// second pass), which matters when a cold dashboard decodes about 8,000
// readings.
type seriesBody struct {
	Body struct {
		BloodGlucose *seriesValue `json:"blood_glucose"`
		HeartRate    *seriesValue `json:"heart_rate"`
		StepCount    *seriesValue `json:"step_count"`
	} `json:"body"`
}

type seriesValue struct {
	Value json.Number `json:"value"`
	Unit  string      `json:"unit"`
}

func (v *seriesValue) float() (float64, bool) {
	if v == nil || v.Value == "" {
		return 0, false
	}
	f, err := v.Value.Float64()
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// quickUnitValue reads `"key":{"value":NUMBER,"unit":"UNIT"}` straight
// from a stored reading's bytes: the form the vault's canonical encoder
// writes. The bytes are the vault's own (authenticated by the decryption),
// and a quoted key can only be a key (quotes in strings are escaped), but
// anything else (the key twice, another order, an escape in the unit)
// reports false, and the caller decodes the reading properly.
func quickUnitValue(b []byte, key string) (v float64, unit string, ok bool) {
	k := []byte(`"` + key + `":{"value":`)
	i := bytes.Index(b, k)
	if i < 0 || bytes.Contains(b[i+len(k):], k) {
		return 0, "", false
	}
	rest := b[i+len(k):]
	j := bytes.IndexByte(rest, ',')
	if j <= 0 || !bytes.HasPrefix(rest[j:], []byte(`,"unit":"`)) {
		return 0, "", false
	}
	f, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "", false
	}
	u := rest[j+len(`,"unit":"`):]
	e := bytes.IndexByte(u, '"')
	if e < 0 || bytes.IndexByte(u[:e], '\\') >= 0 || !bytes.HasPrefix(u[e:], []byte(`"}`)) {
		return 0, "", false
	}
	return f, string(u[:e]), true
}

// glucoseValue is glucoseOf for the cache: mg/dL, mmol/L converted.
func glucoseValue(b []byte) (float64, bool) {
	if v, unit, ok := quickUnitValue(b, "blood_glucose"); ok {
		switch unit {
		case "mg/dL":
			return v, true
		case "mmol/L":
			return v * mgdlPerMmol, true
		}
		return 0, false
	}
	var r seriesBody
	if json.Unmarshal(b, &r) != nil {
		return 0, false
	}
	v, ok := r.Body.BloodGlucose.float()
	if !ok {
		return 0, false
	}
	switch r.Body.BloodGlucose.Unit {
	case "mg/dL":
		return v, true
	case "mmol/L":
		return v * mgdlPerMmol, true
	}
	return 0, false
}

// heartRateValue and stepsValue are readingValue(b, "heart_rate", "")
// and readingValue(b, "step_count", "") for the cache.
func heartRateValue(b []byte) (float64, bool) {
	if v, _, ok := quickUnitValue(b, "heart_rate"); ok {
		return v, true
	}
	var r seriesBody
	if json.Unmarshal(b, &r) != nil {
		return 0, false
	}
	return r.Body.HeartRate.float()
}

func stepsValue(b []byte) (float64, bool) {
	if v, _, ok := quickUnitValue(b, "step_count"); ok {
		return v, true
	}
	var r seriesBody
	if json.Unmarshal(b, &r) != nil {
		return 0, false
	}
	return r.Body.StepCount.float()
}
