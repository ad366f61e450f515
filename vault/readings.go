package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"iter"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
)

func keysForPatient(v *Vault, id string) (*keys.PatientKeys, []byte, error) {
	return keys.NewPatientKeys(v.master, id)
}

// Storable time range: a reading's time is kept as int64 nanoseconds.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TimeInRange reports whether a reading's time can be stored.
func TimeInRange(t time.Time) bool { return !t.Before(MinTime) && t.Before(MaxTime) }

// recordAD binds a sealed reading to its patient, schema, time and uuid tag.
func recordAD(dst []byte, patient, schema string, t int64, tag [keys.TagSize]byte) []byte {
	dst = append(dst, "jhvault/record/v1|"...)
	dst = append(dst, patient...)
	dst = append(dst, '|')
	dst = append(dst, schema...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, '|')
	return hex.AppendEncode(dst, tag[:])
}

// IngestResult counts what an ingest stored.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// parallelMin is the batch size from which sealing is spread over all cores.
const parallelMin = 256

// Ingest seals and stores validated points for one patient, atomically. A
// point without a uuid gets one derived under the patient's dedup key from
// its content (or its original OMH 1.x id), so re-sending it is a duplicate.
func (v *Vault) Ingest(ctx context.Context, patientID string, pts []*omh.Point) (IngestResult, error) {
	pk, err := v.patientKeys(patientID)
	if err != nil {
		return IngestResult{}, err
	}
	for _, p := range pts {
		if !TimeInRange(p.Time) {
			return IngestResult{}, errors.New("reading time out of range")
		}
	}
	recs := make([]Record, len(pts))
	seal := func(lo, hi int) error {
		var buf, ad []byte
		for i := lo; i < hi; i++ {
			p := pts[i]
			if p.UUID == "" {
				var src []byte
				if p.SourceID != "" {
					src = append([]byte("source-id|"+p.Schema.String()+"|"), p.SourceID...)
				} else {
					src = p.AppendJSON(buf[:0])
				}
				u, err := pk.DeriveUUID(src)
				if err != nil {
					return err
				}
				p.SetUUID(u)
			}
			tag, err := pk.Tag(p.UUID)
			if err != nil {
				return err
			}
			r := &recs[i]
			r.Schema, r.Time, r.Tag = p.Schema.String(), p.Time.UnixNano(), tag
			buf = p.AppendJSON(buf[:0])
			ad = recordAD(ad[:0], patientID, r.Schema, r.Time, tag)
			if r.Value, err = pk.Seal(buf, ad); err != nil {
				return err
			}
		}
		return nil
	}
	if err := parallel(len(pts), seal); err != nil {
		return IngestResult{}, err
	}
	n, err := v.b.Insert(ctx, patientID, recs)
	if errors.Is(err, ErrNotFound) {
		return IngestResult{}, ErrNoPatient
	}
	if err != nil {
		return IngestResult{}, err
	}
	return IngestResult{Accepted: n, Duplicates: len(recs) - n}, nil
}

// parallel runs fn over [0,n) in one chunk per core when n is large.
func parallel(n int, fn func(lo, hi int) error) error {
	workers := runtime.GOMAXPROCS(0)
	if n < parallelMin || workers < 2 {
		return fn(0, n)
	}
	chunk := (n + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			break
		}
		wg.Go(func() { errs[w] = fn(lo, hi) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reading is one decrypted reading: its canonical OMH JSON.
type Reading struct {
	Schema string
	Time   time.Time
	JSON   []byte
}

// Readings yields a patient's readings of one schema with from <= time < to,
// in time order, decrypting as it goes. A zero from or to leaves that end
// open. A record that fails to decrypt stops the scan with an error.
func (v *Vault) Readings(ctx context.Context, patientID, schema string, from, to time.Time) iter.Seq2[Reading, error] {
	return func(yield func(Reading, error) bool) {
		pk, err := v.patientKeys(patientID)
		if err != nil {
			yield(Reading{}, err)
			return
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if !from.IsZero() {
			lo = clampNanos(from)
		}
		if !to.IsZero() {
			hi = clampNanos(to)
		}
		var ad []byte
		for r, err := range v.b.Scan(ctx, patientID, schema, lo, hi) {
			if err != nil {
				yield(Reading{}, err)
				return
			}
			ad = recordAD(ad[:0], patientID, r.Schema, r.Time, r.Tag)
			pt, err := pk.Open(r.Value, ad)
			if err != nil {
				yield(Reading{}, err)
				return
			}
			if !yield(Reading{Schema: r.Schema, Time: time.Unix(0, r.Time).UTC(), JSON: pt}, nil) {
				return
			}
		}
	}
}

func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(MinTime):
		return MinTime.UnixNano()
	case !t.Before(MaxTime):
		return MaxTime.UnixNano()
	}
	return t.UnixNano()
}
