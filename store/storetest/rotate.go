package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jupyterhealth/vault/vault"
)

// The suite pre-creates key blobs for pt_a, pt_b, pt_0 and pt_1 ("keys of
// pt_a", ...) before these tests run.

func blobIDs(page []vault.PatientKeyBlob) []string {
	var ids []string
	for _, p := range page {
		ids = append(ids, p.PatientID)
	}
	return ids
}

func testPatientKeyBlobs(t *testing.T, b vault.Backend) {
	for i := range 5 {
		if err := b.CreatePatientKeys(t.Context(), fmt.Sprintf("pt_c%d", i), fmt.Appendf(nil, "blob %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var all []vault.PatientKeyBlob
	after := ""
	for pages := 0; ; pages++ {
		page, err := b.PatientKeyBlobs(t.Context(), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d blobs with limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		all = append(all, page...)
		after = page[len(page)-1].PatientID
	}
	want := "[pt_0 pt_1 pt_a pt_b pt_c0 pt_c1 pt_c2 pt_c3 pt_c4]"
	if got := fmt.Sprint(blobIDs(all)); got != want {
		t.Fatalf("paged ids = %s, want %s", got, want)
	}
	if string(all[2].Blob) != "keys of pt_a" || string(all[6].Blob) != "blob 2" {
		t.Fatalf("blobs = %q, %q", all[2].Blob, all[6].Blob)
	}
	// after need not be a stored id.
	page, err := b.PatientKeyBlobs(t.Context(), "pt_bz", 2)
	if err != nil || fmt.Sprint(blobIDs(page)) != "[pt_c0 pt_c1]" {
		t.Fatalf("after an absent id: %v, %v", blobIDs(page), err)
	}
	// A returned blob belongs to the caller.
	page[0].Blob[0] ^= 0xff
	if v, err := b.PatientKeys(t.Context(), "pt_c0"); err != nil || string(v) != "blob 0" {
		t.Fatal("a returned blob aliases the store")
	}
	if page, err := b.PatientKeyBlobs(t.Context(), "pt_c4", 10); err != nil || len(page) != 0 {
		t.Fatalf("after the last id: %d blobs, %v", len(page), err)
	}
}

func testSwapPatientKeys(t *testing.T, b vault.Backend) {
	must(t, b.CreatePatientKeys(t.Context(), "pt_gone", []byte("G")))
	must(t, b.DeletePatient(t.Context(), "pt_gone"))
	swaps := []vault.KeySwap{
		{PatientID: "pt_a", Old: []byte("keys of pt_a"), New: []byte("A2")},
		{PatientID: "pt_b", Old: []byte("stale"), New: []byte("B2")},        // changed meanwhile
		{PatientID: "pt_gone", Old: []byte("G"), New: []byte("G2")},         // deleted meanwhile
		{PatientID: "pt_never", Old: []byte("N"), New: []byte("N2")},        // never existed
		{PatientID: "pt_0", Old: []byte("keys of pt_0"), New: []byte("02")}, // same transaction
		{PatientID: "pt_1", Old: []byte("keys of pt_1"), New: []byte("12"), Swapped: true},
	}
	swaps[5].Old = []byte("not it") // Swapped must be cleared, not kept
	if err := b.SwapPatientKeys(t.Context(), swaps); err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, false, false, true, false}
	for i, s := range swaps {
		if s.Swapped != want[i] {
			t.Errorf("swap %s: Swapped = %v, want %v", s.PatientID, s.Swapped, want[i])
		}
	}
	for id, v := range map[string]string{"pt_a": "A2", "pt_b": "keys of pt_b", "pt_0": "02", "pt_1": "keys of pt_1"} {
		if got, err := b.PatientKeys(t.Context(), id); err != nil || string(got) != v {
			t.Errorf("%s = %q, %v; want %q", id, got, err, v)
		}
	}
	for _, id := range []string{"pt_gone", "pt_never"} {
		if _, err := b.PatientKeys(t.Context(), id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("%s was created by a swap: %v", id, err)
		}
	}
	// Records still need the blob: a swapped patient keeps inserting.
	if n, err := b.Insert(t.Context(), "pt_a", []vault.Record{rec("s", 1, 1, "x")}); err != nil || n != 1 {
		t.Fatalf("insert after swap: %d, %v", n, err)
	}
	if err := b.SwapPatientKeys(t.Context(), nil); err != nil {
		t.Fatalf("empty swap: %v", err)
	}
}

func testSwapMeta(t *testing.T, b vault.Backend) {
	// nil Old: must be absent.
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k1", New: []byte("v1")}, {Key: "k2", New: []byte("v2")}}, false); err != nil {
		t.Fatal(err)
	}
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k1", New: []byte("again")}}, false); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("create over a present key: %v, want ErrConflict", err)
	}
	// All or nothing: the second swap conflicts, so the first is not done.
	err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k1", Old: []byte("v1"), New: []byte("v1b")}, {Key: "k2", Old: []byte("wrong"), New: []byte("v2b")}}, false)
	if !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("stale swap: %v, want ErrConflict", err)
	}
	if v, err := b.Meta(t.Context(), "k1"); err != nil || string(v) != "v1" {
		t.Fatalf("a conflicting SwapMeta changed k1 to %q (%v)", v, err)
	}
	// nil New deletes; a scrubbing swap leaves a working store.
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k1", Old: []byte("v1"), New: []byte("v1c")}, {Key: "k2", Old: []byte("v2")}}, true); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Meta(t.Context(), "k1"); err != nil || string(v) != "v1c" {
		t.Fatalf("k1 = %q, %v", v, err)
	}
	if v, err := b.Meta(t.Context(), "k2"); v != nil || err != nil {
		t.Fatalf("deleted k2 = %q, %v", v, err)
	}
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k2", Old: []byte("v2")}}, false); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("delete of an absent key: %v, want ErrConflict", err)
	}
	// A key named twice: both Olds are compared with the value before the
	// call, and the last New stays (the differential test found the
	// backends differing here).
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k3", New: []byte("a")}, {Key: "k3", New: []byte("b")}}, false); err != nil {
		t.Fatalf("a key created twice in one call: %v", err)
	}
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k3", Old: []byte("b"), New: []byte("c")}, {Key: "k3", Old: []byte("c"), New: []byte("d")}}, false); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("a second Old that only the first swap would make true: %v, want ErrConflict", err)
	}
	if err := b.SwapMeta(t.Context(), []vault.MetaSwap{{Key: "k3", Old: []byte("b"), New: []byte("c")}, {Key: "k3", Old: []byte("b")}}, false); err != nil {
		t.Fatalf("an update then a delete of one key: %v", err)
	}
	if v, err := b.Meta(t.Context(), "k3"); v != nil || err != nil {
		t.Fatalf("k3 after its update and delete = %q, %v", v, err)
	}
	if n, err := b.Insert(t.Context(), "pt_a", []vault.Record{rec("s", 1, 1, "x")}); err != nil || n != 1 {
		t.Fatalf("insert after a scrubbing swap: %d, %v", n, err)
	}
	if v, err := b.PatientKeys(t.Context(), "pt_a"); err != nil || string(v) != "keys of pt_a" {
		t.Fatalf("a scrubbing swap lost a patient key blob: %q, %v", v, err)
	}
}
