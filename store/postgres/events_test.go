package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

// watcher runs WatchEvents on s from after, collecting what it is handed.
type watcher struct {
	mu   sync.Mutex
	evs  []Event
	errs []error
	got  chan struct{} // a receive for each event
	stop context.CancelFunc
	done chan struct{}
}

func watch(t *testing.T, s *Store, after int64) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watcher{got: make(chan struct{}, 10000), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s.WatchEvents(ctx, after, func(e Event) {
			w.mu.Lock()
			w.evs = append(w.evs, e)
			w.mu.Unlock()
			w.got <- struct{}{}
		}, func(err error) {
			w.mu.Lock()
			w.errs = append(w.errs, err)
			w.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// wait waits for n more events, failing after a minute (a bound for a hung
// watcher, not a timing check).
func (w *watcher) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-w.got:
		case <-time.After(time.Minute):
			t.Fatalf("an event never came (%d wanted)", n)
		}
	}
}

func (w *watcher) events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.evs...)
}

func addPatient(t *testing.T, s *Store, id string) {
	t.Helper()
	if err := s.CreatePatientKeys(t.Context(), id, []byte("wrapped-"+id)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), id, []byte("user-"+id)); err != nil {
		t.Fatal(err)
	}
}

// TestEventsAcrossProcesses: a patient deleted through one process (its
// own pool) reaches a watcher on another as one patient-deleted event,
// with her id; the other process's Insert for her is refused at once (no
// key row: nothing stored), before any event is needed; a deletion of
// nobody appends no event.
func TestEventsAcrossProcesses(t *testing.T) {
	a, dsn := openDSN(t)
	b := openOn(t, dsn)
	addPatient(t, a, "pt_gone")
	addPatient(t, a, "pt_kept")
	from, err := b.LastEvent(t.Context())
	if err != nil || from != 0 {
		t.Fatalf("LastEvent on a new database = %d, %v", from, err)
	}
	w := watch(t, b, from)

	start := time.Now()
	if err := a.DeletePatient(t.Context(), "pt_gone"); err != nil {
		t.Fatal(err)
	}
	// Ingest on the other process is refused at once: the key row is gone.
	rec := vault.Record{Schema: "s", Time: 1, Value: []byte("v")}
	if n, err := b.Insert(t.Context(), "pt_gone", []vault.Record{rec}); !errors.Is(err, vault.ErrNotFound) || n != 0 {
		t.Fatalf("insert for a deleted patient on another process: %d, %v", n, err)
	}
	w.wait(t, 1)
	t.Logf("deletion to event on the other process: %v", time.Since(start))
	evs := w.events()
	if len(evs) != 1 || evs[0].Kind != EventPatientDeleted || evs[0].Subject != "pt_gone" || evs[0].ID <= from {
		t.Fatalf("events: %+v", evs)
	}
	// A deletion of nobody is refused and leaves no event behind.
	if err := a.DeletePatient(t.Context(), "pt_nobody"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("deleting nobody: %v", err)
	}
	if err := a.DeletePatient(t.Context(), "pt_kept"); err != nil {
		t.Fatal(err)
	}
	w.wait(t, 1)
	if evs = w.events(); len(evs) != 2 || evs[1].Subject != "pt_kept" {
		t.Fatalf("events after a refused deletion: %+v", evs)
	}
	if last, err := a.LastEvent(t.Context()); err != nil || last != evs[1].ID {
		t.Fatalf("LastEvent = %d, %v; the second event is %d", last, err, evs[1].ID)
	}
}

// TestEventsSurviveLostConnections: the watcher's listening connection is
// terminated by the server while deletions go on, and a watcher that was
// stopped starts again from the last id it handled: every event still
// arrives once, in id order, none lost, none twice.
func TestEventsSurviveLostConnections(t *testing.T) {
	a, dsn := openDSN(t)
	b := openOn(t, dsn)
	const n = 30
	for i := range n {
		addPatient(t, a, fmt.Sprintf("pt_%02d", i))
	}
	w := watch(t, b, 0)
	admin := pgtest.Connect(t, dsn)
	cut := 0
	for i := range n {
		if i%5 == 2 {
			// Cut every listening connection of this database, once the
			// watcher is listening (it starts, and comes back after each
			// cut, on its own goroutine).
			var k int
			for try := 0; k == 0 && try < 300; try++ {
				if try > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				if err := admin.QueryRow(t.Context(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()").Scan(&k); err != nil {
					t.Fatal(err)
				}
			}
			cut += k
		}
		if err := a.DeletePatient(t.Context(), fmt.Sprintf("pt_%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	w.wait(t, n)
	evs := w.events()
	for i, e := range evs {
		if e.Subject != fmt.Sprintf("pt_%02d", i) || i > 0 && e.ID <= evs[i-1].ID {
			t.Fatalf("event %d: %+v (all: %+v)", i, e, evs)
		}
	}
	w.mu.Lock()
	nerr := len(w.errs)
	w.mu.Unlock()
	if cut == 0 {
		t.Fatal("no listening connection was cut: the test tested nothing")
	}
	t.Logf("%d events through %d cut connections (%d errors reported)", n, cut, nerr)

	// A watcher stopped, with deletions meanwhile, resumes after the last
	// event it handled and gets exactly the ones it missed.
	w.stop()
	<-w.done
	addPatient(t, a, "pt_later")
	if err := a.DeletePatient(t.Context(), "pt_later"); err != nil {
		t.Fatal(err)
	}
	w2 := watch(t, b, evs[len(evs)-1].ID)
	w2.wait(t, 1)
	if got := w2.events(); len(got) != 1 || got[0].Subject != "pt_later" {
		t.Fatalf("resumed watcher: %+v", got)
	}
	if len(w.events()) != n {
		t.Fatalf("the stopped watcher got %d events", len(w.events()))
	}
}

// TestEventsConcurrentDeletions: deletions racing on two processes each
// give one event; a watcher sees every one exactly once, in increasing id
// order (appends commit in id order).
func TestEventsConcurrentDeletions(t *testing.T) {
	a, dsn := openDSN(t)
	b := openOn(t, dsn)
	const n = 40
	for i := range n {
		addPatient(t, a, fmt.Sprintf("pt_%02d", i))
	}
	w := watch(t, b, 0)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() { errs[i] = s.DeletePatient(t.Context(), fmt.Sprintf("pt_%02d", i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	w.wait(t, n)
	seen := map[string]bool{}
	evs := w.events()
	for i, e := range evs {
		if seen[e.Subject] || i > 0 && e.ID <= evs[i-1].ID {
			t.Fatalf("event %d: %+v twice or out of order", i, e)
		}
		seen[e.Subject] = true
	}
	if len(seen) != n {
		t.Fatalf("%d patients in events, want %d", len(seen), n)
	}
}
