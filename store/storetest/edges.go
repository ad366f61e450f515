package storetest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// testExtremeTimes: the smallest and largest times a record can have are
// stored, ordered and bounded like any other (a backend that keeps time
// with less than 64 signed bits, or in microseconds, fails here).
func testExtremeTimes(t *testing.T, b vault.Backend) {
	times := []int64{math.MaxInt64 - 1, 0, math.MinInt64, -1, 1, math.MinInt64 + 1, math.MaxInt64}
	var recs []vault.Record
	for i, ts := range times {
		recs = append(recs, rec("s", ts, byte(i), "v"))
	}
	insert(t, b, "pt_a", recs...)
	got := collect(t, b, "pt_a", "s", math.MinInt64, math.MaxInt64)
	want := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1} // to is exclusive
	if len(got) != len(want) {
		t.Fatalf("scan of the whole range gave %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Time != want[i] {
			t.Fatalf("record %d has time %d, want %d", i, r.Time, want[i])
		}
	}
	// Nanoseconds are kept: two records 1 ns apart are two records.
	insert(t, b, "pt_b", rec("s", 1_000, 1, "a"), rec("s", 1_001, 1, "b"))
	if got := collect(t, b, "pt_b", "s", 1_001, 1_002); len(got) != 1 || string(got[0].Value) != "b" {
		t.Fatalf("the record at 1001 ns: %d records", len(got))
	}
}

// testEqualTimesByTag: records of one time are in tag order, bytewise
// (0x80 and above after 0x7f: a signed comparison fails here).
func testEqualTimesByTag(t *testing.T, b vault.Backend) {
	tags := []byte{0xff, 0x00, 0x80, 0x7f, 0x01}
	var recs []vault.Record
	for _, tag := range tags {
		recs = append(recs, rec("s", 5, tag, string(rune('a'+int(tag)%26))))
	}
	insert(t, b, "pt_a", recs...)
	got := collect(t, b, "pt_a", "s", 5, 6)
	want := []byte{0x00, 0x01, 0x7f, 0x80, 0xff}
	if len(got) != len(want) {
		t.Fatalf("%d records at one time, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Tag[0] != want[i] {
			t.Fatalf("record %d has tag %#x, want %#x", i, r.Tag[0], want[i])
		}
	}
}

// testAbandonedScan: a scan the caller stops early holds nothing: after
// many abandoned scans (more than any connection pool), the store still
// answers. The deadline only keeps a leak from hanging the test.
func testAbandonedScan(t *testing.T, b vault.Backend) {
	var recs []vault.Record
	for i := range 1500 {
		recs = append(recs, rec("s", int64(i), 0, "v"))
	}
	insert(t, b, "pt_a", recs...)
	for range 64 {
		for range b.Scan(t.Context(), "pt_a", "s", 0, 2000) {
			break
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if n, err := b.Count(ctx, "pt_a"); err != nil || n != 1500 {
		t.Fatalf("after abandoned scans: Count = %d, %v", n, err)
	}
	if n, err := b.Insert(ctx, "pt_a", []vault.Record{rec("s", 5000, 0, "w")}); err != nil || n != 1 {
		t.Fatalf("after abandoned scans: Insert = %d, %v", n, err)
	}
}

// testUseAfterClose: after Close every method fails with an error (Insert
// with ErrClosed), and none panics or hangs.
func testUseAfterClose(t *testing.T, b vault.Backend) {
	must(t, b.Close())
	ctx := t.Context()
	calls := map[string]func() error{
		"Meta":        func() error { _, err := b.Meta(ctx, "k"); return err },
		"PutMeta":     func() error { return b.PutMeta(ctx, "k", []byte("v")) },
		"CreateUser":  func() error { return b.CreateUser(ctx, "pt_new", []byte("N")) },
		"User":        func() error { _, err := b.User(ctx, "pt_a"); return err },
		"Users":       func() error { _, err := b.Users(ctx, "pt_"); return err },
		"PutToken":    func() error { return b.PutToken(ctx, vault.TokenRow{ID: "tok", UserID: "pt_a"}) },
		"Token":       func() error { _, err := b.Token(ctx, "tok"); return err },
		"PatientKeys": func() error { _, err := b.PatientKeys(ctx, "pt_a"); return err },
		"Count":       func() error { _, err := b.Count(ctx, "pt_a"); return err },
		"Scan": func() error {
			for _, err := range b.Scan(ctx, "pt_a", "s", 0, 10) {
				return err
			}
			return nil
		},
		"DeletePatient": func() error { return b.DeletePatient(ctx, "pt_a") },
		"SwapMeta":      func() error { return b.SwapMeta(ctx, []vault.MetaSwap{{Key: "k", New: []byte("v")}}, false) },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s after Close: no error", name)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testInsertLargeAtomic: one 50,000-record batch that fails half-way (a
// record with no value) stores nothing; repaired, it is stored whole.
func testInsertLargeAtomic(t *testing.T, b vault.Backend) {
	const size = 50_000
	recs := make([]vault.Record, size)
	for i := range recs {
		recs[i] = rec("s", int64(i), byte(i), "v")
	}
	recs[size/2].Value = nil
	if n, err := b.Insert(t.Context(), "pt_a", recs); err == nil {
		t.Fatalf("a batch with a record of no value stored %d", n)
	}
	if c := count(t, b, "pt_a"); c != 0 {
		t.Fatalf("a failed 50,000-record batch left %d records", c)
	}
	recs[size/2].Value = []byte("v")
	if n, err := b.Insert(t.Context(), "pt_a", recs); err != nil || n != size {
		t.Fatalf("repaired batch = %d, %v; want %d", n, err, size)
	}
	if c := count(t, b, "pt_a"); c != size {
		t.Fatalf("Count = %d, want %d", c, size)
	}
}
