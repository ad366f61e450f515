package vault_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// TestReadingsAcrossBatches reads more records than several decryption
// batches and scan pages hold: every reading comes back once, in time
// order, and stopping early or cancelling leaves no goroutine behind.
func TestReadingsAcrossBatches(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	const n = 2345 // not a multiple of the batch (256) or the page (512)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range n {
		pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), float64(70+i%100), "cgm"))...)
	}
	if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()

	got, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(got) != n {
		t.Fatalf("read %d of %d: %v", len(got), n, err)
	}
	for i, r := range got {
		if want := at.Add(time.Duration(i) * time.Minute); !r.Time.Equal(want) {
			t.Fatalf("reading %d at %v, want %v", i, r.Time, want)
		}
		if id := extractUUID(r.JSON); id != uuidN(i) {
			t.Fatalf("reading %d is %s, want %s", i, id, uuidN(i))
		}
	}

	// Stop after 700: the loop ends and the decryptors stop with it.
	seen := 0
	for _, err := range e.Vault.Readings(t.Context(), p.ID, bg, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; seen == 700 {
			break
		}
	}
	// Cancelled mid-scan: an error, not a silent short read.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	seen = 0
	var cerr error
	for _, err := range e.Vault.Readings(ctx, p.ID, bg, time.Time{}, time.Time{}) {
		if err != nil {
			cerr = err
			break
		}
		if seen++; seen == 300 {
			cancel()
		}
	}
	if cerr == nil {
		t.Fatalf("a cancelled read ended without an error after %d readings", seen)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Fatalf("%d goroutines left running after the reads (was %d)", g, base)
	}
}

// TestReadingsStopAtCorruptRecord damages one record in the middle of a long
// scan: every reading before it comes back, then the error, and nothing
// after it.
func TestReadingsStopAtCorruptRecord(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	const n, bad = 1000, 600
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range n {
		pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), 100, "cgm"))...)
	}
	if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	recs := rawRecords(t, e, p.ID)
	recs[bad].Value[len(recs[bad].Value)-1] ^= 1
	putRaw(t, e, p.ID, recs[bad])

	got, err := readAll(t, e.Vault, p.ID, bg)
	if err == nil || len(got) != bad {
		t.Fatalf("got %d readings and err %v; want %d readings, then an error", len(got), err, bad)
	}
}

// TestReadingsCancelAlwaysErrs cancels a long read right after its first
// reading, many times over: each read must end in an error, never in a
// quiet short read (an export would sign a cut-short payload).
func TestReadingsCancelAlwaysErrs(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range 2000 {
		pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), 100, "cgm"))...)
	}
	if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	for round := range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		n, ended := 0, false
		for _, err := range e.Vault.Readings(ctx, p.ID, bg, time.Time{}, time.Time{}) {
			if err != nil {
				ended = true
				break
			}
			if n++; n == 1 {
				cancel()
			}
		}
		cancel()
		if !ended && n != 2000 {
			t.Fatalf("round %d: a cancelled read ended quietly after %d of 2000 readings", round, n)
		}
	}
}

// TestVerifyRecords: every record opens, and a damaged or stray one is
// found, as a restore needs.
func TestVerifyRecords(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	e.patient(t) // a patient with no records
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range 300 {
		pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), 100, "cgm"))...)
	}
	if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	st, err := e.Vault.VerifyRecords(t.Context())
	if err != nil || st.Patients != 2 || st.Records != 300 {
		t.Fatalf("%+v %v", st, err)
	}
	recs := rawRecords(t, e, p.ID)
	// A record under a schema no reader knows is found by the count.
	stray := recs[0]
	stray.Schema = "omh:unknown:1.0"
	putRaw(t, e, p.ID, stray)
	if _, err := e.Vault.VerifyRecords(t.Context()); err == nil || !strings.Contains(err.Error(), "301 stored records but 300 readable") {
		t.Fatalf("stray record: %v", err)
	}
	// A flipped byte fails its record.
	recs[7].Value[len(recs[7].Value)-3] ^= 0x40
	putRaw(t, e, p.ID, recs[7])
	if _, err := e.Vault.VerifyRecords(t.Context()); err == nil || strings.Contains(err.Error(), "stored records") {
		t.Fatalf("damaged record: %v", err)
	}
}
