package consent

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// countingSealer counts the decryptions a ledger asks for.
type countingSealer struct {
	Sealer
	opens atomic.Int64
}

func (c *countingSealer) Decrypt(ct, ad []byte) ([]byte, error) {
	c.opens.Add(1)
	return c.Sealer.Decrypt(ct, ad)
}

// TestAccessPageCache: a page read again opens no row it opened before
// (the cache), yet what it returns is always what the store holds: a row
// whose access-end was logged since is opened again, a flipped byte in a
// cached row is detected, a cached row the store lost is missing, and a
// caller that changes a page it was given changes nothing for the next.
func TestAccessPageCache(t *testing.T) {
	e := newTestEnv(t)
	cs := &countingSealer{Sealer: e.l.sealer}
	e.l.sealer = cs
	var starts []int64
	for range 3 {
		starts = append(starts, e.append(t, accessStart("pt_a", "cl_b")))
	}
	page := func() []AccessState {
		t.Helper()
		p, _, err := e.l.AccessPage("pt_a", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := page()
	before := cs.opens.Load()
	again := page()
	if n := cs.opens.Load() - before; n != 0 {
		t.Fatalf("the second read of a page opened %d rows, want 0", n)
	}
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("cached page differs:\n%+v\n%+v", first, again)
	}
	again[0].Schemas[0] = "changed by the caller"
	if p := page(); p[0].Schemas[0] != "omh:heart-rate:2.0" {
		t.Fatalf("a caller's change reached the cache: %q", p[0].Schemas[0])
	}

	// The access-end rewrites the row: it is opened again, and shown ended.
	end := New(KindAccessEnd, "cl_b", t0)
	end.Patient, end.Clinician = "pt_a", "cl_b"
	end.Access = &Access{Start: &starts[1], Records: 42}
	e.append(t, end)
	before = cs.opens.Load()
	p := page()
	if n := cs.opens.Load() - before; n != 1 {
		t.Fatalf("after one row changed, the page opened %d rows, want 1", n)
	}
	if p[1].Start != starts[1] || p[1].End == nil || p[1].Records != 42 {
		t.Fatalf("the ended access is shown as %+v", p[1])
	}

	tam := e.store.LedgerTamperer()
	id := accessRowID("pt_a", starts[2])
	raw, err := tam.Raw("index", id)
	if err != nil || raw == nil {
		t.Fatalf("row %s: %v", id, err)
	}
	flipped := []byte(string(raw))
	flipped[len(flipped)/2] ^= 1
	if err := tam.SetRaw("index", id, flipped); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.l.AccessPage("pt_a", 0, 10); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("a cached row with a flipped byte: %v, want does not decrypt", err)
	}
	if err := tam.SetRaw("index", id, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.l.AccessPage("pt_a", 0, 10); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a cached row the store lost: %v, want missing", err)
	}
	if err := tam.SetRaw("index", id, raw); err != nil {
		t.Fatal(err)
	}
	if p := page(); len(p) != 3 || p[0].Start != starts[2] {
		t.Fatalf("restored row: %+v", p)
	}
}

// TestAccessCacheBounded: the cache never holds more than accessCacheRows.
func TestAccessCacheBounded(t *testing.T) {
	var c accessCache
	for i := range accessCacheRows + 500 {
		id := "acc/pt_a/" + strconv.Itoa(i)
		c.put(id, []byte(fmt.Sprint("sealed", i)), &AccessState{Start: int64(i)})
		if len(c.rows) > accessCacheRows {
			t.Fatalf("%d rows after %d puts", len(c.rows), i+1)
		}
	}
	last := "acc/pt_a/" + strconv.Itoa(accessCacheRows+499)
	if st, ok := c.get(last, []byte(fmt.Sprint("sealed", accessCacheRows+499))); !ok || st.Start != accessCacheRows+499 {
		t.Fatalf("the newest row is not kept: %v %v", st, ok)
	}
	if _, ok := c.get(last, []byte("other bytes")); ok {
		t.Fatal("a row served for bytes it was not opened from")
	}
}
