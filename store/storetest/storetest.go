// Package storetest is the conformance suite every vault.Backend must pass.
// bbolt runs it on real files (store/boltstore) and PostgreSQL on fresh
// databases of a real cluster (store/postgres).
//
// A backend's test calls [Run] with a [Factory] that opens a fresh, empty
// store on real storage (for bbolt, a file in t.TempDir(), checked with
// bbolt's consistency check when the test ends). Each case gets its own
// store. The cases hold a backend to what vault.Backend's documentation
// promises: every method takes a context and refuses a cancelled one,
// errors are reported (Users included), Insert is atomic, SwapMeta is a
// compare-and-swap that exactly one of many racing creators wins, and what
// DeletePatient or a scrubbing SwapMeta removed is never returned again.
// What a removal leaves physically (free pages, dead rows) is
// backend-specific and tested by each backend's own tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// Factory opens a fresh, empty backend for one test. The suite closes it
// (some cases close it early; closing again must be harmless); the
// factory may register further checks with t.Cleanup.
type Factory func(t *testing.T) vault.Backend

// prepared are the patients whose key blobs ("keys of pt_a", ...) the suite
// creates before a case runs, unless the case starts empty.
var prepared = []string{"pt_a", "pt_b", "pt_0", "pt_1"}

// Run runs the suite.
func Run(t *testing.T, open Factory) {
	tests := []struct {
		name  string
		fn    func(t *testing.T, b vault.Backend)
		empty bool // no key blobs made first
	}{
		{"Meta", testMeta, false},
		{"MetaBinary", testMetaBinary, false},
		{"Users", testUsers, false},
		{"UsersPrefix", testUsersPrefix, false},
		{"UsersErrors", testUsersErrors, false},
		{"Tokens", testTokens, false},
		{"TokenListAndDelete", testTokenListAndDelete, false},
		{"PatientKeys", testPatientKeys, true},
		{"InsertAndScan", testInsertAndScan, false},
		{"InsertDuplicates", testInsertDuplicates, false},
		{"InsertConcurrent", testInsertConcurrent, false},
		{"InsertAtomic", testInsertAtomic, false},
		{"InsertAfterClose", testInsertAfterClose, false},
		{"ScanPagesAndBounds", testScanPages, false},
		{"CancelledContext", testCancelled, false},
		{"DeletePatient", testDeletePatient, true},
		{"InsertNeedsPatientKeys", testInsertNeedsKeys, false},
		{"Count", testCount, false},
		{"Schemas", testSchemas, false},
		{"PatientKeyBlobs", testPatientKeyBlobs, false},
		{"SwapPatientKeys", testSwapPatientKeys, false},
		{"SwapMeta", testSwapMeta, false},
		{"SwapRecords", testSwapRecords, false},
		{"SwapMetaCreateRace", testSwapMetaCreateRace, true},
		{"ExtremeTimes", testExtremeTimes, false},
		{"EqualTimesByTag", testEqualTimesByTag, false},
		{"AbandonedScan", testAbandonedScan, false},
		{"UseAfterClose", testUseAfterClose, false},
		{"InsertLargeAtomic", testInsertLargeAtomic, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			if !tc.empty {
				for _, p := range prepared {
					must(t, b.CreatePatientKeys(t.Context(), p, []byte("keys of "+p)))
				}
			}
			tc.fn(t, b)
		})
	}
}

// insert stores recs for a patient as a setup step.
func insert(t *testing.T, b vault.Backend, patient string, recs ...vault.Record) {
	t.Helper()
	if _, err := b.Insert(t.Context(), patient, recs); err != nil {
		t.Fatal(err)
	}
}

func rec(schema string, t int64, tag byte, val string) vault.Record {
	r := vault.Record{Schema: schema, Time: t, Value: []byte(val)}
	r.Tag[0] = tag
	return r
}

func collect(t *testing.T, b vault.Backend, patient, schema string, from, to int64) []vault.Record {
	t.Helper()
	var out []vault.Record
	for r, err := range b.Scan(t.Context(), patient, schema, from, to) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func count(t *testing.T, b vault.Backend, patient string) int {
	t.Helper()
	n, err := b.Count(t.Context(), patient)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func userIDs(t *testing.T, b vault.Backend, prefix string) []string {
	t.Helper()
	rows, err := b.Users(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return ids
}

func testMeta(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	if v, err := b.Meta(ctx, "nope"); err != nil || v != nil {
		t.Fatalf("absent meta = %q, %v", v, err)
	}
	must(t, b.PutMeta(ctx, "k", []byte("v1")))
	if v, err := b.Meta(ctx, "k"); err != nil || string(v) != "v1" {
		t.Fatalf("meta = %q, %v", v, err)
	}
	must(t, b.PutMeta(ctx, "k", []byte("v2")))
	if v, err := b.Meta(ctx, "k"); err != nil || string(v) != "v2" {
		t.Fatalf("meta after overwrite = %q, %v", v, err)
	}
}

// testMetaBinary: meta values are bytes, not text: NUL and 0xff survive,
// and SwapMeta compares every byte (a C-string comparison would stop at
// the first NUL).
func testMetaBinary(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	v1 := []byte("\x00wrapped\x00master\xff\x00")
	must(t, b.PutMeta(ctx, "bin", v1))
	if got, err := b.Meta(ctx, "bin"); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("binary meta = %q, %v; want %q", got, err, v1)
	}
	// A returned value belongs to the caller.
	got, err := b.Meta(ctx, "bin")
	must(t, err)
	got[1] ^= 0xff
	if again, _ := b.Meta(ctx, "bin"); !bytes.Equal(again, v1) {
		t.Fatal("a returned meta value aliases the store")
	}
	// Old differs from the stored value only after a NUL.
	stale := []byte("\x00wrapped\x00master\xff\x01")
	if err := b.SwapMeta(ctx, []vault.MetaSwap{{Key: "bin", Old: stale, New: []byte("x")}}, false); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("swap with an Old differing after a NUL: %v, want ErrConflict", err)
	}
	v2 := []byte{0, 0, 0}
	must(t, b.SwapMeta(ctx, []vault.MetaSwap{{Key: "bin", Old: v1, New: v2}}, false))
	if got, err := b.Meta(ctx, "bin"); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("after swap = %q, %v; want three NULs", got, err)
	}
}

func testUsers(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	must(t, b.CreateUser(ctx, "pt_a", []byte("A")))
	if err := b.CreateUser(ctx, "pt_a", []byte("B")); !errors.Is(err, vault.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	must(t, b.CreateUser(ctx, "cl_x", []byte("X")))
	must(t, b.CreateUser(ctx, "pt_b", []byte("B")))
	if _, err := b.User(ctx, "pt_zz"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	rows, err := b.Users(ctx, "pt_")
	if err != nil || len(rows) != 2 || rows[0].ID != "pt_a" || string(rows[0].Blob) != "A" || rows[1].ID != "pt_b" {
		t.Fatalf("Users(pt_) = %+v, %v", rows, err)
	}
	// A returned blob belongs to the caller.
	rows[0].Blob[0] = 'Z'
	if v, err := b.User(ctx, "pt_a"); err != nil || string(v) != "A" {
		t.Fatalf("a returned user blob aliases the store: %q, %v", v, err)
	}
	must(t, b.PutUser(ctx, "pt_a", []byte("A2")))
	if v, err := b.User(ctx, "pt_a"); err != nil || string(v) != "A2" {
		t.Fatalf("user = %q, %v", v, err)
	}
	if got := userIDs(t, b, "nobody_"); len(got) != 0 {
		t.Fatalf("Users of an unused prefix = %v", got)
	}
}

// testUsersPrefix: the prefix is compared as bytes. "pt_" is no pattern
// (an SQL LIKE would read "_" as any character and match "ptx…").
func testUsersPrefix(t *testing.T, b vault.Backend) {
	for _, id := range []string{"pt_a", "ptxa", "pt", "pt_", "pu_a", "cl_x", "PT_b", "pt_z", "ptx_b", "pt%a"} {
		must(t, b.CreateUser(t.Context(), id, []byte("u "+id)))
	}
	if got, want := userIDs(t, b, "pt_"), []string{"pt_", "pt_a", "pt_z"}; !slices.Equal(got, want) {
		t.Fatalf("Users(pt_) = %v, want %v", got, want)
	}
	if got, want := userIDs(t, b, "pt%"), []string{"pt%a"}; !slices.Equal(got, want) {
		t.Fatalf("Users(pt%%) = %v, want %v", got, want)
	}
	if got := userIDs(t, b, ""); len(got) != 10 || !slices.IsSorted(got) {
		t.Fatalf("Users(\"\") = %v, want all ten in id order", got)
	}
}

// testUsersErrors: Users reports a failure instead of an empty list.
func testUsersErrors(t *testing.T, b vault.Backend) {
	must(t, b.CreateUser(t.Context(), "pt_a", []byte("A")))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if rows, err := b.Users(ctx, "pt_"); !errors.Is(err, context.Canceled) || rows != nil {
		t.Fatalf("Users with a cancelled context = %v, %v; want context.Canceled", rows, err)
	}
	must(t, b.Close())
	if rows, err := b.Users(t.Context(), "pt_"); err == nil {
		t.Fatalf("Users on a closed store = %v, nil; want an error", rows)
	}
}

func testTokens(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	row := vault.TokenRow{ID: "tok1", UserID: "pt_a", Kind: "device", Hash: []byte{1, 2, 3}, Created: now, Expires: now.Add(time.Hour)}
	must(t, b.PutToken(ctx, row))
	got, err := b.Token(ctx, "tok1")
	if err != nil || got.UserID != "pt_a" || !bytes.Equal(got.Hash, row.Hash) || !got.Expires.Equal(row.Expires) {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	must(t, b.TouchToken(ctx, "tok1", now.Add(time.Minute)))
	if got, err := b.Token(ctx, "tok1"); err != nil || !got.LastUsed.Equal(now.Add(time.Minute)) {
		t.Fatalf("LastUsed = %v, %v", got.LastUsed, err)
	}
	if _, err := b.Token(ctx, "nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
}

func testPatientKeys(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	must(t, b.CreatePatientKeys(ctx, "pt_a", []byte("blob")))
	if err := b.CreatePatientKeys(ctx, "pt_a", []byte("other")); !errors.Is(err, vault.ErrExists) {
		t.Fatalf("overwrote patient keys: %v", err)
	}
	if v, err := b.PatientKeys(ctx, "pt_a"); err != nil || string(v) != "blob" {
		t.Fatalf("keys = %q, %v", v, err)
	}
	if _, err := b.PatientKeys(ctx, "pt_none"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing keys: %v", err)
	}
}

func testInsertAndScan(t *testing.T, b vault.Backend) {
	recs := []vault.Record{
		rec("omh:heart-rate:2.0", 30, 1, "hr30"),
		rec("omh:blood-glucose:4.0", 20, 1, "g20"),
		rec("omh:blood-glucose:4.0", -5, 2, "g-5"), // before 1970
		rec("omh:blood-glucose:4.0", 10, 3, "g10"),
		rec("omh:blood-glucose:4.0", 10, 4, "g10b"), // same time, other uuid
	}
	n, err := b.Insert(t.Context(), "pt_a", recs)
	if err != nil || n != 5 {
		t.Fatalf("Insert = %d, %v", n, err)
	}
	got := collect(t, b, "pt_a", "omh:blood-glucose:4.0", -100, 100)
	var vals []string
	for _, r := range got {
		vals = append(vals, string(r.Value))
	}
	if fmt.Sprint(vals) != "[g-5 g10 g10b g20]" {
		t.Fatalf("scan order = %v", vals)
	}
	if got[1].Time != 10 || got[1].Tag[0] != 3 || got[1].Schema != "omh:blood-glucose:4.0" {
		t.Fatalf("record fields = %+v", got[1])
	}
	if got := collect(t, b, "pt_a", "omh:blood-glucose:4.0", 10, 20); len(got) != 2 {
		t.Fatalf("[10,20) gave %d records, want 2 (half-open)", len(got))
	}
	if got := collect(t, b, "pt_b", "omh:blood-glucose:4.0", -100, 100); len(got) != 0 {
		t.Fatalf("other patient sees %d records", len(got))
	}
	if got := collect(t, b, "pt_a", "omh:blood-glucose:4", -100, 100); len(got) != 0 {
		t.Fatal("schema prefix matched a longer schema")
	}
}

func testInsertDuplicates(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	recs := []vault.Record{rec("s", 1, 1, "a"), rec("s", 2, 1, "b"), rec("s", 1, 1, "a-again")}
	n, err := b.Insert(ctx, "pt_a", recs)
	if err != nil || n != 2 {
		t.Fatalf("Insert = %d, %v; want 2 (third repeats the first)", n, err)
	}
	if !recs[0].Stored || !recs[1].Stored || recs[2].Stored {
		t.Fatalf("Stored = %v %v %v; want true true false", recs[0].Stored, recs[1].Stored, recs[2].Stored)
	}
	n, err = b.Insert(ctx, "pt_a", recs)
	if err != nil || n != 0 {
		t.Fatalf("re-insert = %d, %v; want 0", n, err)
	}
	for i, r := range recs {
		if r.Stored {
			t.Fatalf("record %d marked stored on a re-insert", i)
		}
	}
	got := collect(t, b, "pt_a", "s", 0, 10)
	if len(got) != 2 || string(got[0].Value) != "a" {
		t.Fatalf("after duplicates: %d records, first %q", len(got), got[0].Value)
	}
}

func testInsertConcurrent(t *testing.T, b vault.Backend) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			var recs []vault.Record
			for i := range 200 {
				recs = append(recs, rec("s", int64(i), byte(w), "v"))
			}
			n, err := b.Insert(t.Context(), fmt.Sprintf("pt_%d", w%2), recs)
			if err == nil && n != 200 {
				err = fmt.Errorf("writer %d stored %d of 200", w, n)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := collect(t, b, "pt_0", "s", 0, 1000); len(got) != 800 {
		t.Fatalf("pt_0 has %d records, want 800", len(got))
	}
}

// testInsertAtomic: a large batch that fails near its end (a record with
// no schema) stores nothing, and does not fail other callers' batches
// committed alongside it.
func testInsertAtomic(t *testing.T, b vault.Backend) {
	const size = 5000
	batch := func(w int) []vault.Record {
		recs := make([]vault.Record, size)
		for i := range recs {
			recs[i] = rec("s", int64(i), byte(w), "v")
		}
		return recs
	}
	bad := batch(0)
	bad[size-10].Schema = ""
	n, err := b.Insert(t.Context(), "pt_a", bad)
	if err == nil || errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("batch with a schema-less record = %d, %v; want an error", n, err)
	}
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("a failed batch left %d records", c)
	}
	bad = batch(0)
	bad[size/2].Value = nil
	if _, err := b.Insert(t.Context(), "pt_a", bad); err == nil {
		t.Fatal("a record with no value was accepted")
	}
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("a failed batch left %d records", c)
	}

	// Failing batches alongside good ones: each good one is stored whole.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Go(func() {
			recs := batch(w)
			patient := "pt_b"
			if w%2 == 1 {
				recs[size-1].Schema = ""
				patient = "pt_a"
			}
			n, err := b.Insert(t.Context(), patient, recs)
			switch {
			case w%2 == 1 && err == nil:
				errs <- fmt.Errorf("writer %d: a failing batch was accepted", w)
			case w%2 == 0 && (err != nil || n != size):
				errs <- fmt.Errorf("writer %d: a good batch beside failing ones stored %d, %v", w, n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("failed batches left %d records", c)
	}
	if c := count(t, b, "pt_b"); c != 4*size {
		t.Fatalf("good batches stored %d records, want %d", c, 4*size)
	}
	// Nothing of a failed batch was kept: all of it is new now.
	if n, err := b.Insert(t.Context(), "pt_a", batch(0)); err != nil || n != size {
		t.Fatalf("the failed batch, repaired = %d, %v; want all %d new", n, err, size)
	}
}

// testInsertAfterClose: a closed store refuses inserts with ErrClosed.
func testInsertAfterClose(t *testing.T, b vault.Backend) {
	must(t, b.Close())
	if n, err := b.Insert(t.Context(), "pt_a", []vault.Record{rec("s", 1, 1, "x")}); !errors.Is(err, vault.ErrClosed) {
		t.Fatalf("Insert after Close = %d, %v; want ErrClosed", n, err)
	}
}

func testScanPages(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	var recs []vault.Record
	for i := range 2000 {
		recs = append(recs, rec("s", int64(i), 0, fmt.Sprint(i)))
	}
	insert(t, b, "pt_a", recs...)
	got := collect(t, b, "pt_a", "s", 100, 1900)
	if len(got) != 1800 || got[0].Time != 100 || got[len(got)-1].Time != 1899 {
		t.Fatalf("scan gave %d records", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time != got[i-1].Time+1 {
			t.Fatalf("gap or repeat at %d", i)
		}
	}
	// Stopping early must not hang or leak.
	n := 0
	for range b.Scan(ctx, "pt_a", "s", 0, 2000) {
		n++
		if n == 700 {
			break
		}
	}
	// Cancelled midway: the scan ends with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	var last error
	for _, err := range b.Scan(cctx, "pt_a", "s", 0, 2000) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 100 {
			cancel()
		}
	}
	cancel()
	if !errors.Is(last, context.Canceled) || n >= 2000 {
		t.Fatalf("scan cancelled after 100 records read %d and ended with %v", n, last)
	}
}

// testCancelled: every method refuses a context cancelled before the call
// with the context's error, and changes nothing.
func testCancelled(t *testing.T, b vault.Backend) {
	live := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	must(t, b.CreateUser(live, "pt_a", []byte("A")))
	must(t, b.PutToken(live, vault.TokenRow{ID: "tok1", UserID: "pt_a", Kind: "device", Created: now, Expires: now.Add(time.Hour)}))
	must(t, b.PutMeta(live, "k", []byte("v")))
	insert(t, b, "pt_a", rec("s", 1, 1, "x"))

	ctx, cancel := context.WithCancel(live)
	cancel()
	calls := map[string]func() error{
		"Meta":              func() error { _, err := b.Meta(ctx, "k"); return err },
		"PutMeta":           func() error { return b.PutMeta(ctx, "k", []byte("changed")) },
		"CreateUser":        func() error { return b.CreateUser(ctx, "pt_new", []byte("N")) },
		"PutUser":           func() error { return b.PutUser(ctx, "pt_a", []byte("changed")) },
		"User":              func() error { _, err := b.User(ctx, "pt_a"); return err },
		"Users":             func() error { _, err := b.Users(ctx, "pt_"); return err },
		"PutToken":          func() error { return b.PutToken(ctx, vault.TokenRow{ID: "tok2", UserID: "pt_a"}) },
		"Token":             func() error { _, err := b.Token(ctx, "tok1"); return err },
		"TouchToken":        func() error { return b.TouchToken(ctx, "tok1", now.Add(time.Minute)) },
		"Tokens":            func() error { _, err := b.Tokens(ctx, "pt_a"); return err },
		"DeleteToken":       func() error { return b.DeleteToken(ctx, "tok1") },
		"CreatePatientKeys": func() error { return b.CreatePatientKeys(ctx, "pt_new", []byte("K")) },
		"PatientKeys":       func() error { _, err := b.PatientKeys(ctx, "pt_a"); return err },
		"Insert": func() error {
			_, err := b.Insert(ctx, "pt_a", []vault.Record{rec("s", 2, 1, "y")})
			return err
		},
		"Scan": func() error {
			for _, err := range b.Scan(ctx, "pt_a", "s", 0, 10) {
				return err
			}
			return nil
		},
		"Count":           func() error { _, err := b.Count(ctx, "pt_a"); return err },
		"DeletePatient":   func() error { return b.DeletePatient(ctx, "pt_a") },
		"Ping":            func() error { return b.Ping(ctx) },
		"PatientKeyBlobs": func() error { _, err := b.PatientKeyBlobs(ctx, "", 10); return err },
		"SwapPatientKeys": func() error {
			return b.SwapPatientKeys(ctx, []vault.KeySwap{{PatientID: "pt_a", Old: []byte("keys of pt_a"), New: []byte("changed")}})
		},
		"SwapMeta": func() error {
			return b.SwapMeta(ctx, []vault.MetaSwap{{Key: "k", Old: []byte("v"), New: []byte("changed")}}, false)
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	// Nothing changed.
	if v, err := b.Meta(live, "k"); err != nil || string(v) != "v" {
		t.Errorf("meta = %q, %v", v, err)
	}
	if v, err := b.User(live, "pt_a"); err != nil || string(v) != "A" {
		t.Errorf("user = %q, %v", v, err)
	}
	if _, err := b.User(live, "pt_new"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("user created under a cancelled context: %v", err)
	}
	if rows, err := b.Tokens(live, "pt_a"); err != nil || len(rows) != 1 || !rows[0].LastUsed.IsZero() {
		t.Errorf("tokens = %+v, %v; want tok1 alone, never used", rows, err)
	}
	if _, err := b.PatientKeys(live, "pt_new"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("keys created under a cancelled context: %v", err)
	}
	if v, err := b.PatientKeys(live, "pt_a"); err != nil || string(v) != "keys of pt_a" {
		t.Errorf("keys = %q, %v", v, err)
	}
	if c := count(t, b, "pt_a"); c != 1 {
		t.Errorf("pt_a has %d records, want the one stored before", c)
	}
}

// testDeletePatient: what DeletePatient removed is never returned again,
// by any method; other patients keep theirs.
func testDeletePatient(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	must(t, b.CreatePatientKeys(ctx, "pt_a", []byte("KEYBLOB")))
	must(t, b.CreatePatientKeys(ctx, "pt_b", []byte("KEYBLOB-B")))
	must(t, b.CreateUser(ctx, "pt_a", []byte("USER")))
	must(t, b.CreateUser(ctx, "pt_b", []byte("USER-B")))
	must(t, b.PutToken(ctx, vault.TokenRow{ID: "t1", UserID: "pt_a", Kind: "device"}))
	must(t, b.PutToken(ctx, vault.TokenRow{ID: "t2", UserID: "pt_b", Kind: "device"}))
	insert(t, b, "pt_a", rec("s", 1, 1, "x"), rec("t", 1, 1, "x2"))
	insert(t, b, "pt_b", rec("s", 1, 1, "y"))
	must(t, b.DeletePatient(ctx, "pt_a"))

	if _, err := b.PatientKeys(ctx, "pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("keys survive: %v", err)
	}
	if _, err := b.User(ctx, "pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("user survives: %v", err)
	}
	if got := userIDs(t, b, "pt_"); !slices.Equal(got, []string{"pt_b"}) {
		t.Fatalf("Users after the delete = %v", got)
	}
	if _, err := b.Token(ctx, "t1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("token survives: %v", err)
	}
	if rows, err := b.Tokens(ctx, "pt_a"); err != nil || len(rows) != 0 {
		t.Fatalf("Tokens after the delete = %+v, %v", rows, err)
	}
	if got := collect(t, b, "pt_a", "s", 0, 10); len(got) != 0 {
		t.Fatal("records survive")
	}
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("Count after the delete = %d", c)
	}
	if page, err := b.PatientKeyBlobs(ctx, "", 10); err != nil || len(page) != 1 || page[0].PatientID != "pt_b" {
		t.Fatalf("PatientKeyBlobs after the delete = %v, %v", blobIDs(page), err)
	}
	if _, err := b.Token(ctx, "t2"); err != nil {
		t.Fatalf("other patient's token gone: %v", err)
	}
	if got := collect(t, b, "pt_b", "s", 0, 10); len(got) != 1 {
		t.Fatal("other patient's records gone")
	}
	if err := b.DeletePatient(ctx, "pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The store still works after the delete's cleanup.
	if n, err := b.Insert(ctx, "pt_b", []vault.Record{rec("s", 2, 1, "z")}); err != nil || n != 1 {
		t.Fatalf("insert after delete: %d, %v", n, err)
	}
}

func testInsertNeedsKeys(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	if _, err := b.Insert(ctx, "pt_nobody", []vault.Record{rec("s", 1, 1, "x")}); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("insert for a patient without keys: %v, want ErrNotFound", err)
	}
	if got := collect(t, b, "pt_nobody", "s", 0, 10); len(got) != 0 {
		t.Fatal("records stored for a patient without keys")
	}
	must(t, b.CreatePatientKeys(ctx, "pt_x", []byte("k")))
	must(t, b.DeletePatient(ctx, "pt_x"))
	if _, err := b.Insert(ctx, "pt_x", []vault.Record{rec("s", 1, 1, "x")}); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("insert after delete: %v, want ErrNotFound", err)
	}
	// A malformed call is refused as malformed, not as a missing patient,
	// on every backend (the differential test found them differing).
	if _, err := b.Insert(ctx, "pt_nobody", []vault.Record{rec("s", 1, 1, "x"), rec("s", 2, 2, "")}); err == nil || errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("a record without a value, for a patient without keys: %v, want the malformed record's error", err)
	}
}

func testCount(t *testing.T, b vault.Backend) {
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("Count of an empty patient = %d", c)
	}
	if c := count(t, b, "pt_never"); c != 0 {
		t.Fatalf("Count of an unknown patient = %d", c)
	}
	insert(t, b, "pt_a", rec("s", 1, 1, "a"), rec("s", 2, 1, "b"), rec("t", 1, 2, "c"))
	if c := count(t, b, "pt_a"); c != 3 {
		t.Fatalf("Count = %d; want 3 over two schemas", c)
	}
	insert(t, b, "pt_a", rec("s", 1, 1, "a"), rec("s", 3, 1, "d")) // one duplicate
	if c := count(t, b, "pt_a"); c != 4 {
		t.Fatalf("Count after a duplicate = %d; want 4", c)
	}
}

// testSchemas: each schema a patient has records of, once, in byte order,
// a schema that is a prefix of another kept apart from it, and another
// patient's (pt_ against pt_0) never among them.
func testSchemas(t *testing.T, b vault.Backend) {
	schemas := func(patient string) []string {
		t.Helper()
		got, err := b.Schemas(t.Context(), patient)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := schemas("pt_a"); len(got) != 0 {
		t.Fatalf("Schemas of a patient with no records = %q", got)
	}
	if got := schemas("pt_never"); len(got) != 0 {
		t.Fatalf("Schemas of an unknown patient = %q", got)
	}
	insert(t, b, "pt_a",
		rec("omh:heart-rate:2.0", 5, 1, "a"), rec("omh:blood-glucose:4.0", 1, 1, "b"),
		rec("omh:blood-glucose:4.0", 2, 2, "c"), rec("omh:blood", 9, 1, "d"),
		rec("omh:blood-glucose:4.0-x", -3, 1, "e"), rec("omh:heart-rate:2.0", 1<<62, 3, "f"))
	insert(t, b, "pt_0", rec("omh:step-count:2.0", 1, 1, "g"))
	want := []string{"omh:blood", "omh:blood-glucose:4.0", "omh:blood-glucose:4.0-x", "omh:heart-rate:2.0"}
	if got := schemas("pt_a"); !slices.Equal(got, want) {
		t.Fatalf("Schemas = %q, want %q", got, want)
	}
	if got := schemas("pt_0"); !slices.Equal(got, []string{"omh:step-count:2.0"}) {
		t.Fatalf("Schemas of pt_0 = %q", got)
	}
	if got := schemas("pt_"); len(got) != 0 {
		t.Fatalf("Schemas of pt_ (a prefix of pt_a and pt_0) = %q", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Schemas(ctx, "pt_a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Schemas with a cancelled context: %v", err)
	}
}

// testSwapMetaCreateRace: many callers create the same keys at once with
// a nil Old, as vault.Open does on an empty store: exactly one wins, the
// others get ErrConflict, and what is stored is the winner's, whole.
func testSwapMetaCreateRace(t *testing.T, b vault.Backend) {
	won := race(t, 16, vault.ErrConflict, func(i int) error {
		return b.SwapMeta(t.Context(), []vault.MetaSwap{
			{Key: "root", New: fmt.Appendf(nil, "root %d\x00", i)},
			{Key: "master", New: fmt.Appendf(nil, "master %d\x00", i)},
		}, false)
	})
	if won != 1 {
		t.Fatalf("%d of 16 creators won, want exactly one", won)
	}
	root, err := b.Meta(t.Context(), "root")
	must(t, err)
	master, err := b.Meta(t.Context(), "master")
	must(t, err)
	var r, m int
	if _, err := fmt.Sscanf(string(root), "root %d", &r); err != nil {
		t.Fatalf("stored root %q: %v", root, err)
	}
	if _, err := fmt.Sscanf(string(master), "master %d", &m); err != nil || r != m {
		t.Fatalf("stored %q and %q: not one creator's pair", root, master)
	}
}

// testSwapRecords: a record holding exactly Old gets New; one holding
// something else, one never stored, and another patient's record of the
// same identity are left alone; a patient without a key blob swaps
// nothing and is ErrNotFound; Count and Scan see the swapped values.
func testSwapRecords(t *testing.T, b vault.Backend) {
	ctx := t.Context()
	insert(t, b, "pt_a", rec("s", 1, 1, "old1"), rec("s", 2, 1, "old2"), rec("s", 3, 1, "old3"))
	insert(t, b, "pt_b", rec("s", 1, 1, "old1"))
	swaps := []vault.RecordSwap{
		{Schema: "s", Time: 1, Tag: [16]byte{1}, Old: []byte("old1"), New: []byte("new1")},
		{Schema: "s", Time: 2, Tag: [16]byte{1}, Old: []byte("changed"), New: []byte("new2")},
		{Schema: "s", Time: 4, Tag: [16]byte{1}, Old: []byte("old4"), New: []byte("new4")},
		{Schema: "s", Time: 3, Tag: [16]byte{2}, Old: []byte("old3"), New: []byte("new3")},
	}
	if err := b.SwapRecords(ctx, "pt_a", swaps); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false, false} {
		if swaps[i].Swapped != want {
			t.Errorf("swap %d: Swapped %v, want %v", i, swaps[i].Swapped, want)
		}
	}
	var vals []string
	for _, r := range collect(t, b, "pt_a", "s", 0, 10) {
		vals = append(vals, string(r.Value))
	}
	if fmt.Sprint(vals) != "[new1 old2 old3]" || count(t, b, "pt_a") != 3 {
		t.Fatalf("after the swap pt_a holds %v (%d records)", vals, count(t, b, "pt_a"))
	}
	if got := collect(t, b, "pt_b", "s", 0, 10); len(got) != 1 || string(got[0].Value) != "old1" {
		t.Fatalf("another patient's record changed: %v", got)
	}
	gone := []vault.RecordSwap{{Schema: "s", Time: 1, Tag: [16]byte{1}, Old: []byte("old1"), New: []byte("x")}}
	if err := b.SwapRecords(ctx, "pt_nobody", gone); !errors.Is(err, vault.ErrNotFound) || gone[0].Swapped {
		t.Fatalf("a patient without keys: %v, swapped %v; want ErrNotFound", err, gone[0].Swapped)
	}
	if err := b.SwapRecords(ctx, "pt_a", []vault.RecordSwap{{Schema: "s", Time: 2, Tag: [16]byte{1}, Old: []byte("old2")}}); err == nil {
		t.Fatal("a swap to an empty value was accepted")
	}
	if got := collect(t, b, "pt_a", "s", 2, 3); string(got[0].Value) != "old2" {
		t.Fatalf("a refused swap changed the record: %q", got[0].Value)
	}
}
