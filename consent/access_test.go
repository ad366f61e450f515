package consent

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
)

func accessStart(patient, clinician string) Entry {
	e := New(KindAccessStart, clinician, t0)
	e.Patient, e.Clinician = patient, clinician
	e.Access = &Access{Schemas: []string{"omh:heart-rate:2.0"}, Format: "omh"}
	return e
}

// TestAccessPage walks a patient's access log a page at a time: every
// access exactly once, newest first, with the access-end folded in, and
// the same after the index is read back from the store (where rows come in
// row-id order, "acc/p/10" before "acc/p/9").
func TestAccessPage(t *testing.T) {
	e := newTestEnv(t)
	var want []int64 // pt_a's access-starts, oldest first
	for i := range 250 {
		if i%3 == 0 {
			e.append(t, accessStart("pt_b", "cl_b"))
		}
		start := e.append(t, accessStart("pt_a", "cl_b"))
		want = append(want, start)
		if i%2 == 0 {
			end := New(KindAccessEnd, "cl_b", t0)
			end.Patient, end.Clinician = "pt_a", "cl_b"
			end.Access = &Access{Start: &start, Records: int64(i)}
			e.append(t, end)
		}
	}
	slices.Reverse(want)
	walk := func(t *testing.T, limit int) {
		t.Helper()
		var got []int64
		var before int64
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatal("the walk does not end")
			}
			page, more, err := e.l.AccessPage("pt_a", before, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 || len(page) > limit {
				t.Fatalf("page %d holds %d accesses, limit %d", pages, len(page), limit)
			}
			for _, a := range page {
				if a.Patient != "pt_a" {
					t.Fatalf("another patient's access %d", a.Start)
				}
				n := len(got)
				i := len(want) - 1 - n // the access's place, oldest first
				if ended := i%2 == 0; (a.End != nil) != ended || ended && a.Records != int64(i) {
					t.Fatalf("access %d: end %v, records %d", a.Start, a.End, a.Records)
				}
				got = append(got, a.Start)
			}
			if !more {
				break
			}
			before = page[len(page)-1].Start
		}
		if !slices.Equal(got, want) {
			t.Fatalf("walked %d accesses, want %d, newest first, each once:\n%v\n%v", len(got), len(want), got, want)
		}
	}
	for _, limit := range []int{1, 7, 50, 250, 1000} {
		walk(t, limit)
	}
	if all := accesses(t, e.l, "pt_a", 0); len(all) != len(want) || all[0].Start != want[0] {
		t.Fatalf("Accesses: %d, want %d", len(all), len(want))
	}
	if page, more, err := e.l.AccessPage("pt_a", want[len(want)-1], 10); err != nil || len(page) != 0 || more {
		t.Fatalf("before the oldest: %d, more %v, %v", len(page), more, err)
	}
	e.close(t)
	e.open(t)
	walk(t, 7)
	if _, err := e.l.Rebuild(); err != nil {
		t.Fatal(err)
	}
	walk(t, 7)
}

// BenchmarkAccesses reads one page (50) of one patient's access log from a
// ledger holding 20,000 accesses across 100 patients, and the (empty) log
// of a patient with none.
func BenchmarkAccesses(b *testing.B) {
	e := newTestEnv(b)
	var batch []Entry
	patients := make([]string, 100)
	for i := range patients {
		patients[i] = fmt.Sprintf("pt_%d", i)
	}
	for i := range 20000 {
		batch = append(batch, accessStart(patients[i%100], "cl_b"))
		if len(batch) == 1000 {
			if _, err := e.l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Run("page", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if n := len(accesses(b, e.l, patients[i%100], 50)); n != 50 {
				b.Fatalf("%d accesses", n)
			}
			i++
		}
	})
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := len(accesses(b, e.l, "pt_none", 50)); n != 0 {
				b.Fatalf("%d accesses", n)
			}
		}
	})
}

// TestAppendAccess: an access-start and its end in one transaction. The
// end names the start's index, set inside the transaction (here behind
// concurrent appends that move it), both are in the access log and the
// log verifies; a refused check appends neither; so does an end that is
// not one.
func TestAppendAccess(t *testing.T) {
	e := newTestEnv(t)
	e.append(t, accessStart("pt_b", "cl_b"))
	done := make(chan error)
	for range 4 {
		go func() {
			_, err := e.l.Append(accessStart("pt_b", "cl_b"))
			done <- err
		}()
	}
	end := New(KindAccessEnd, "cl_b", t0)
	end.Patient, end.Clinician = "pt_a", "cl_b"
	end.Access = &Access{Records: 42, Format: "fhir"}
	checked := int64(-1)
	start, err := e.l.AppendAccess(func(next int64) error { checked = next; return nil }, accessStart("pt_a", "cl_b"), end)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if checked != start {
		t.Fatalf("check saw index %d, the start is %d", checked, start)
	}
	got, _, err := e.l.Entry(start + 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindAccessEnd || got.Access.Start == nil || *got.Access.Start != start || got.Access.Records != 42 {
		t.Fatalf("entry after the start: %+v", got)
	}
	if end.Access.Start != nil {
		t.Fatal("AppendAccess changed the caller's entry")
	}
	as := accesses(t, e.l, "pt_a", 0)
	if len(as) != 1 || as[0].Start != start || as[0].End == nil || *as[0].End != start+1 || as[0].Records != 42 {
		t.Fatalf("access log: %+v", as)
	}
	size, err := e.l.Size()
	if err != nil {
		t.Fatal(err)
	}
	refused := fmt.Errorf("refused")
	if _, err := e.l.AppendAccess(func(int64) error { return refused }, accessStart("pt_a", "cl_b"), end); err != refused {
		t.Fatalf("refused check: %v", err)
	}
	if _, err := e.l.AppendAccess(nil, accessStart("pt_a", "cl_b"), accessStart("pt_a", "cl_b")); err == nil {
		t.Fatal("two starts appended as an access")
	}
	if n, err := e.l.Size(); err != nil || n != size {
		t.Fatalf("size %d after refusals, want %d (%v)", n, size, err)
	}
	if r, err := e.l.Verify(nil); err != nil || r.Size != size {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

// accesses is Accesses for a test: a read error fails it.
func accesses(t testing.TB, l *Ledger, patient string, limit int) []AccessState {
	t.Helper()
	as, err := l.Accesses(patient, limit)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// BenchmarkAccessIndexHeap reports the heap the in-memory index holds for
// 10,000 accesses (half of them ended) across 100 patients: a ledger is
// opened on a store that holds them, and the live heap is measured, after
// a collection, before and after. It measures memory, not time.
func BenchmarkAccessIndexHeap(b *testing.B) {
	e := newTestEnv(b)
	var batch []Entry
	for i := range 10000 {
		p := fmt.Sprintf("pt_%d", i%100)
		batch = append(batch, accessStart(p, "cl_b"))
		if len(batch) == 500 {
			first, err := e.l.Append(batch...)
			if err != nil {
				b.Fatal(err)
			}
			// End every other access of the batch.
			var ends []Entry
			for k := 0; k < len(batch); k += 2 {
				start := first + int64(k)
				end := New(KindAccessEnd, "cl_b", t0)
				end.Patient, end.Clinician = batch[k].Patient, "cl_b"
				end.Access = &Access{Start: &start, Records: 288, ContentHash: make([]byte, 32)}
				ends = append(ends, end)
			}
			if _, err := e.l.Append(ends...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	live := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var held float64
	for b.Loop() {
		before := live()
		l, err := Open(e.store.Ledger(), e.master, Options{Origin: "vault.example"})
		if err != nil {
			b.Fatal(err)
		}
		after := live()
		held += float64(int64(after) - int64(before))
		runtime.KeepAlive(l)
	}
	b.ReportMetric(held/float64(b.N), "heap-B/10k-accesses")
}
