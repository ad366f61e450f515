package postgres

import (
	"bytes"
	"fmt"
	"testing"
)

// TestRebuildAnnounced: a ledger's Rebuild on this database appends one
// ledger-rebuilt event, naming the log size it replayed, in its own
// transaction: a rebuild that fails (an entry altered behind the log's
// back) appends none. The other process rebuilds on the event; the one
// that rebuilt knows its own and skips it.
func TestRebuildAnnounced(t *testing.T) {
	ps := openReplicas(t, 2, nil)
	for i := range 3 {
		if _, err := ps[0].l.Append(repGrant(fmt.Sprintf("gr_%d", i), "pt_a", "cl_b")); err != nil {
			t.Fatal(err)
		}
	}
	from, err := ps[0].s.LastEvent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ps[0].l.Rebuild(); err != nil || n != 3 {
		t.Fatalf("rebuild: %d %v", n, err)
	}
	evs, err := ps[0].s.EventsAfter(t.Context(), from)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != EventLedgerRebuilt || evs[0].Subject != "3" {
		t.Fatalf("events after a rebuild: %+v", evs)
	}
	if rebuilt, err := ps[1].l.RebuiltElsewhere(evs[0].ID); !rebuilt || err != nil {
		t.Fatalf("the other process on the event: %v %v", rebuilt, err)
	}
	if rebuilt, err := ps[0].l.RebuiltElsewhere(evs[0].ID); rebuilt || err != nil {
		t.Fatalf("the rebuilding process on its own event: %v %v", rebuilt, err)
	}

	tm := ps[0].s.LedgerTamperer()
	orig, err := tm.Raw("entries", "1")
	if err != nil || orig == nil {
		t.Fatalf("entry 1: %v", err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)-1] ^= 1
	if err := tm.SetRaw("entries", "1", bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ps[0].l.Rebuild(); err == nil {
		t.Fatal("a rebuild over an altered entry succeeded")
	}
	if evs, err := ps[0].s.EventsAfter(t.Context(), evs[0].ID); err != nil || len(evs) != 0 {
		t.Fatalf("events after a failed rebuild: %+v %v", evs, err)
	}
}
