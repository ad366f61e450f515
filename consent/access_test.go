package consent

import (
	"fmt"
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
			page, more := e.l.AccessPage("pt_a", before, limit)
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
	if all := e.l.Accesses("pt_a", 0); len(all) != len(want) || all[0].Start != want[0] {
		t.Fatalf("Accesses: %d, want %d", len(all), len(want))
	}
	if page, more := e.l.AccessPage("pt_a", want[len(want)-1], 10); len(page) != 0 || more {
		t.Fatalf("before the oldest: %d, more %v", len(page), more)
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
			if n := len(e.l.Accesses(patients[i%100], 50)); n != 50 {
				b.Fatalf("%d accesses", n)
			}
			i++
		}
	})
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := len(e.l.Accesses("pt_none", 50)); n != 0 {
				b.Fatalf("%d accesses", n)
			}
		}
	})
}
