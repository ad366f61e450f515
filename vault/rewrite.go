package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
)

// Rewriting old records. Readings are sealed in RecordFormat when they
// arrive; records written by an older version keep their format, and
// open as they are. RewriteRecords moves them to the current format, in
// small compare-and-swap transactions, while the vault serves. It keeps
// no state of its own: a record in the current format is never touched
// again, so a rewrite cut short (a kill, a cancelled context) is resumed
// by running it again, which skips what is done.

// DefaultRewriteBatch is how many records one rewrite transaction swaps,
// and MaxRewriteBatch the most a caller may ask for (a transaction holds
// its batch's old and new records in memory).
const (
	DefaultRewriteBatch = 1000
	MaxRewriteBatch     = 100_000
)

// RewriteOptions tune RewriteRecords.
type RewriteOptions struct {
	// Batch is the records per transaction; DefaultRewriteBatch when 0.
	Batch int
	// Progress, when set, is called after each committed transaction with
	// the totals so far.
	Progress func(RewriteResult)
}

// RewriteResult is what RewriteRecords did.
type RewriteResult struct {
	Patients  int `json:"patients"`
	Records   int `json:"records"`   // records looked at
	Rewritten int `json:"rewritten"` // moved to the current format by this run
	Current   int `json:"current"`   // in the current format already
	Batches   int `json:"batches"`   // transactions committed
}

// RecordStatus counts the stored records by format.
type RecordStatus struct {
	Patients int `json:"patients"`
	// Formats maps a format version (FormatWrapped, FormatCompact,
	// FormatIdentity) to its number of records.
	Formats map[int]int `json:"formats"`
	Current int         `json:"current_format"`
}

// RewriteRecords re-seals every record that is not in RecordFormat in
// RecordFormat, patient by patient, o.Batch records per transaction. Each
// record is opened and checked first: one that fails to open stops the
// rewrite with its error, and is left as it was. A record is swapped only
// if it still holds the bytes that were read, so a concurrent rewrite or a
// patient's deletion is never undone. On an error (ctx's included) the
// result counts what was committed; running it again finishes the rest.
func (v *Vault) RewriteRecords(ctx context.Context, o RewriteOptions) (RewriteResult, error) {
	if o.Batch <= 0 {
		o.Batch = DefaultRewriteBatch
	}
	o.Batch = min(o.Batch, MaxRewriteBatch)
	var res RewriteResult
	patients, err := v.Users(ctx, RolePatient)
	if err != nil {
		return res, err
	}
	for _, p := range patients {
		pk, err := v.patientKeys(ctx, p.ID)
		if errors.Is(err, ErrNoPatient) {
			continue // deleted meanwhile
		}
		if err != nil {
			return res, err
		}
		res.Patients++
		if err := v.rewritePatient(ctx, pk, p.ID, o, &res); errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile: nothing of it is swapped
		} else if err != nil {
			return res, fmt.Errorf("patient %s: %w", p.ID, err)
		}
	}
	return res, nil
}

func (v *Vault) rewritePatient(ctx context.Context, pk *keys.PatientKeys, patientID string, o RewriteOptions, res *RewriteResult) error {
	var swaps []RecordSwap
	var ad, comp []byte
	var codes schemaCodes
	sc := new(openScratch)
	flush := func() error {
		if len(swaps) == 0 {
			return nil
		}
		if err := v.b.SwapRecords(ctx, patientID, swaps); err != nil {
			return err
		}
		for _, s := range swaps {
			if s.Swapped {
				res.Rewritten++
			}
		}
		res.Batches++
		swaps = swaps[:0]
		if o.Progress != nil {
			o.Progress(*res)
		}
		return ctx.Err()
	}
	for _, id := range omh.Accepted() {
		for r, err := range v.b.Scan(ctx, patientID, id.String(), math.MinInt64, math.MaxInt64) {
			if err != nil {
				return err
			}
			res.Records++
			if keys.EnvelopeVersion(r.Value) == RecordFormat {
				res.Current++
				continue
			}
			old := bytes.Clone(r.Value)
			// The point is sealed again before the next record opens, so
			// one arena block serves them all.
			sc.arena = sc.arena[:0]
			point, err := v.openRecord(pk, patientID, &r, sc)
			if err != nil {
				return fmt.Errorf("%s record at %d: %w", id, r.Time, err)
			}
			sealed, err := v.sealRecord(pk, RecordFormat, patientID, &r, point, &ad, &comp, &codes)
			if err != nil {
				return err
			}
			swaps = append(swaps, RecordSwap{Schema: r.Schema, Time: r.Time, Tag: r.Tag, Old: old, New: sealed})
			if len(swaps) == o.Batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// RecordStatus counts every patient's records by format. It reads every
// record's first byte (and decrypts none).
func (v *Vault) RecordStatus(ctx context.Context) (RecordStatus, error) {
	st := RecordStatus{Formats: map[int]int{}, Current: RecordFormat}
	patients, err := v.Users(ctx, RolePatient)
	if err != nil {
		return st, err
	}
	for _, p := range patients {
		st.Patients++
		for _, id := range omh.Accepted() {
			for r, err := range v.b.Scan(ctx, p.ID, id.String(), math.MinInt64, math.MaxInt64) {
				if err != nil {
					return st, err
				}
				st.Formats[keys.EnvelopeVersion(r.Value)]++
			}
		}
	}
	return st, nil
}
