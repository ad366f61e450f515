package postgres

import (
	"testing"

	"github.com/jupyterhealth/vault/vault"
)

// TestInsertCopyPath: a batch of new records takes the COPY path and
// stores every one; a batch that overlaps what is stored falls back to
// INSERT … ON CONFLICT and stores exactly the new ones, each marked; a
// batch with a duplicate inside it stores the first; the counts stay
// exact throughout, and a patient with no key row stores nothing.
func TestInsertCopyPath(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	if err := s.CreatePatientKeys(ctx, "pt_copy", []byte("k")); err != nil {
		t.Fatal(err)
	}
	batch := func(from, n int) []vault.Record {
		recs := make([]vault.Record, n)
		for i := range recs {
			recs[i] = vault.Record{Schema: "omh:blood-glucose:4.0", Time: int64(from+i) * 1e9, Value: []byte{byte(from + i), 1}}
			recs[i].Tag[0] = byte((from + i) % 7)
		}
		return recs
	}
	count := func(want int) {
		t.Helper()
		if n, err := s.Count(ctx, "pt_copy"); err != nil || n != want {
			t.Fatalf("count %d (%v), want %d", n, err, want)
		}
		n := 0
		for _, err := range s.Scan(ctx, "pt_copy", "omh:blood-glucose:4.0", -1<<63, 1<<63-1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != want {
			t.Fatalf("scan finds %d, want %d", n, want)
		}
	}

	first := batch(0, 2*copyMin)
	if n, err := s.Insert(ctx, "pt_copy", first); err != nil || n != len(first) {
		t.Fatalf("new batch: %d %v", n, err)
	}
	for i, r := range first {
		if !r.Stored {
			t.Fatalf("record %d of a new batch not marked stored", i)
		}
	}
	count(2 * copyMin)

	// Half stored already: the COPY fails on the key, the fallback stores
	// the other half.
	overlap := batch(copyMin, 2*copyMin)
	if n, err := s.Insert(ctx, "pt_copy", overlap); err != nil || n != copyMin {
		t.Fatalf("overlapping batch: %d %v, want %d", n, err, copyMin)
	}
	for i, r := range overlap {
		if r.Stored != (i >= copyMin) {
			t.Fatalf("overlapping record %d marked stored=%v", i, r.Stored)
		}
	}
	count(3 * copyMin)

	// A duplicate inside one batch: the first is stored, once.
	dup := batch(10*copyMin, copyMin)
	dup = append(dup, dup[0])
	dup[len(dup)-1].Value = []byte("other")
	if n, err := s.Insert(ctx, "pt_copy", dup); err != nil || n != copyMin {
		t.Fatalf("batch with a duplicate: %d %v", n, err)
	}
	if !dup[0].Stored || dup[len(dup)-1].Stored {
		t.Fatalf("duplicate marks: first %v, second %v", dup[0].Stored, dup[len(dup)-1].Stored)
	}
	for r, err := range s.Scan(ctx, "pt_copy", "omh:blood-glucose:4.0", dup[0].Time, dup[0].Time+1) {
		if err != nil || string(r.Value) != string(dup[0].Value) {
			t.Fatalf("the stored duplicate holds %q (%v)", r.Value, err)
		}
	}
	count(4 * copyMin)

	if _, err := s.Insert(ctx, "pt_nokey", batch(0, copyMin)); err == nil {
		t.Fatal("an insert for a patient with no key row succeeded")
	}
	if n, err := s.Count(ctx, "pt_nokey"); err != nil || n != 0 {
		t.Fatalf("pt_nokey count %d %v", n, err)
	}
}
