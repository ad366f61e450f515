// Package storetest is the conformance suite every vault.Backend must pass.
// bbolt runs it today (store/boltstore); a PostgreSQL backend will run the
// same suite.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// Factory opens a fresh, empty backend for one test. The backend is closed
// by the suite; the factory may register further checks with t.Cleanup.
type Factory func(t *testing.T) vault.Backend

// Run runs the suite.
func Run(t *testing.T, open Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b vault.Backend)
	}{
		{"Meta", testMeta},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"TokenListAndDelete", testTokenListAndDelete},
		{"PatientKeys", testPatientKeys},
		{"InsertAndScan", testInsertAndScan},
		{"InsertDuplicates", testInsertDuplicates},
		{"InsertConcurrent", testInsertConcurrent},
		{"ScanPagesAndBounds", testScanPages},
		{"DeletePatient", testDeletePatient},
		{"InsertNeedsPatientKeys", testInsertNeedsKeys},
		{"Count", testCount},
		{"PatientKeyBlobs", testPatientKeyBlobs},
		{"SwapPatientKeys", testSwapPatientKeys},
		{"SwapMeta", testSwapMeta},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			for _, p := range []string{"pt_a", "pt_b", "pt_0", "pt_1"} {
				if tc.name != "PatientKeys" && tc.name != "DeletePatient" {
					if err := b.CreatePatientKeys(p, []byte("keys of "+p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			tc.fn(t, b)
		})
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
	for r, err := range b.Scan(context.Background(), patient, schema, from, to) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func testMeta(t *testing.T, b vault.Backend) {
	if v, err := b.Meta("nope"); err != nil || v != nil {
		t.Fatalf("absent meta = %q, %v", v, err)
	}
	if err := b.PutMeta("k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Meta("k"); string(v) != "v1" {
		t.Fatalf("meta = %q", v)
	}
}

func testUsers(t *testing.T, b vault.Backend) {
	if err := b.CreateUser("pt_a", []byte("A")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateUser("pt_a", []byte("B")); !errors.Is(err, vault.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	b.CreateUser("cl_x", []byte("X"))
	b.CreateUser("pt_b", []byte("B"))
	if _, err := b.User("pt_zz"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	var ids []string
	for id := range b.Users("pt_") {
		ids = append(ids, id)
	}
	if fmt.Sprint(ids) != "[pt_a pt_b]" {
		t.Fatalf("Users(pt_) = %v", ids)
	}
	if err := b.PutUser("pt_a", []byte("A2")); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.User("pt_a"); string(v) != "A2" {
		t.Fatalf("user = %q", v)
	}
}

func testTokens(t *testing.T, b vault.Backend) {
	now := time.Now().UTC().Truncate(time.Second)
	row := vault.TokenRow{ID: "tok1", UserID: "pt_a", Kind: "device", Hash: []byte{1, 2, 3}, Created: now, Expires: now.Add(time.Hour)}
	if err := b.PutToken(row); err != nil {
		t.Fatal(err)
	}
	got, err := b.Token("tok1")
	if err != nil || got.UserID != "pt_a" || !bytes.Equal(got.Hash, row.Hash) || !got.Expires.Equal(row.Expires) {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	if err := b.TouchToken("tok1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Token("tok1"); !got.LastUsed.Equal(now.Add(time.Minute)) {
		t.Fatalf("LastUsed = %v", got.LastUsed)
	}
	if _, err := b.Token("nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
}

func testPatientKeys(t *testing.T, b vault.Backend) {
	if err := b.CreatePatientKeys("pt_a", []byte("blob")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePatientKeys("pt_a", []byte("other")); !errors.Is(err, vault.ErrExists) {
		t.Fatalf("overwrote patient keys: %v", err)
	}
	if v, _ := b.PatientKeys("pt_a"); string(v) != "blob" {
		t.Fatalf("keys = %q", v)
	}
}

func testInsertAndScan(t *testing.T, b vault.Backend) {
	ctx := context.Background()
	recs := []vault.Record{
		rec("omh:heart-rate:2.0", 30, 1, "hr30"),
		rec("omh:blood-glucose:4.0", 20, 1, "g20"),
		rec("omh:blood-glucose:4.0", -5, 2, "g-5"), // before 1970
		rec("omh:blood-glucose:4.0", 10, 3, "g10"),
		rec("omh:blood-glucose:4.0", 10, 4, "g10b"), // same time, other uuid
	}
	n, err := b.Insert(ctx, "pt_a", recs)
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
	ctx := context.Background()
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
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			var recs []vault.Record
			for i := range 200 {
				recs = append(recs, rec("s", int64(i), byte(w), "v"))
			}
			n, err := b.Insert(ctx, fmt.Sprintf("pt_%d", w%2), recs)
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

func testScanPages(t *testing.T, b vault.Backend) {
	ctx := context.Background()
	var recs []vault.Record
	for i := range 2000 {
		recs = append(recs, rec("s", int64(i), 0, fmt.Sprint(i)))
	}
	if _, err := b.Insert(ctx, "pt_a", recs); err != nil {
		t.Fatal(err)
	}
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
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, err := range b.Scan(cctx, "pt_a", "s", 0, 2000) {
		if err == nil {
			t.Fatal("scan ignored a cancelled context")
		}
		break
	}
}

func testDeletePatient(t *testing.T, b vault.Backend) {
	ctx := context.Background()
	b.CreatePatientKeys("pt_a", []byte("KEYBLOB"))
	b.CreatePatientKeys("pt_b", []byte("KEYBLOB-B"))
	b.CreateUser("pt_a", []byte("USER"))
	b.PutToken(vault.TokenRow{ID: "t1", UserID: "pt_a", Kind: "device"})
	b.PutToken(vault.TokenRow{ID: "t2", UserID: "pt_b", Kind: "device"})
	b.Insert(ctx, "pt_a", []vault.Record{rec("s", 1, 1, "x")})
	b.Insert(ctx, "pt_b", []vault.Record{rec("s", 1, 1, "y")})
	if err := b.DeletePatient("pt_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PatientKeys("pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("keys survive: %v", err)
	}
	if _, err := b.User("pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("user survives: %v", err)
	}
	if _, err := b.Token("t1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("token survives: %v", err)
	}
	if _, err := b.Token("t2"); err != nil {
		t.Fatalf("other patient's token gone: %v", err)
	}
	if got := collect(t, b, "pt_a", "s", 0, 10); len(got) != 0 {
		t.Fatal("records survive")
	}
	if got := collect(t, b, "pt_b", "s", 0, 10); len(got) != 1 {
		t.Fatal("other patient's records gone")
	}
	if err := b.DeletePatient("pt_a"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The store still works after compaction.
	if n, err := b.Insert(ctx, "pt_b", []vault.Record{rec("s", 2, 1, "z")}); err != nil || n != 1 {
		t.Fatalf("insert after delete: %d, %v", n, err)
	}
}

func testInsertNeedsKeys(t *testing.T, b vault.Backend) {
	ctx := context.Background()
	if _, err := b.Insert(ctx, "pt_nobody", []vault.Record{rec("s", 1, 1, "x")}); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("insert for a patient without keys: %v, want ErrNotFound", err)
	}
	if got := collect(t, b, "pt_nobody", "s", 0, 10); len(got) != 0 {
		t.Fatal("records stored for a patient without keys")
	}
	b.CreatePatientKeys("pt_x", []byte("k"))
	if err := b.DeletePatient("pt_x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Insert(ctx, "pt_x", []vault.Record{rec("s", 1, 1, "x")}); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("insert after delete: %v, want ErrNotFound", err)
	}
}

func testCount(t *testing.T, b vault.Backend) {
	ctx := context.Background()
	if n, err := b.Count("pt_a"); err != nil || n != 0 {
		t.Fatalf("Count of an empty patient = %d, %v", n, err)
	}
	recs := []vault.Record{rec("s", 1, 1, "a"), rec("s", 2, 1, "b"), rec("t", 1, 2, "c")}
	if _, err := b.Insert(ctx, "pt_a", recs); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Count("pt_a"); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3 over two schemas", n, err)
	}
}
