package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// The concurrent phase for the readings store (vault.Backend), run by
// TestDifferentialConcurrent as "Readings".
//
// Workers insert batches for four patients: two that stay (pt_a, pt_b),
// one that worker 0 deletes half-way through its batches (ptx_a), and one
// that never has a key blob (pt_: refused inside the transaction, which
// on bbolt sends a whole group commit back to one transaction per
// caller). Each batch mixes identities every worker draws from
// (concShared of them, so several workers insert one identity at once)
// with fresh ones only it carries, now and then repeats one of its own
// with another value, and one in six holds an invalid record (no value or
// no schema) at a random place, so that the whole call must fail. A
// record's value names its identity and its batch, so a reader knows
// which batch wrote what it sees.
//
// A reader's check that a batch appears all or none rests on its scan
// being one read. The interface does not promise that of Scan (it reads
// in pages, a transaction or statement each, and never holds one for the
// whole scan), but both backends read a page of scanPage records in one
// transaction (bbolt) or one statement (PostgreSQL), so the test keeps
// every patient's records of a schema below a page and fails if a scan
// returns that many. No read spans schemas (Schemas and Count read no
// record, and a Scan is of one schema), so the check is per schema: a
// reader that sees one record of a batch in a schema sees all of the
// batch's records in that schema.

const (
	concShared  = 30 // identities all workers' batches draw from
	concBatches = 14 // per worker
	concGone    = "ptx_a"
	concNoKeys  = "pt_"
)

var concLive = []string{"pt_a", "pt_b"}

// concIdentity is the identity of record id: a schema and time of the
// sequential test's universe (not its last time, math.MaxInt64, which
// no scan reaches), and a tag that holds id.
func concIdentity(id int) vault.Record {
	var tag [16]byte
	binary.BigEndian.PutUint32(tag[12:], uint32(id))
	if id%2 == 1 {
		tag[0] = 0xff
	}
	return vault.Record{
		Schema: diffSchemas[id%len(diffSchemas)],
		Time:   diffTimes[(id/len(diffSchemas))%(len(diffTimes)-1)],
		Tag:    tag,
	}
}

// concID is the identity a stored record's tag holds.
func concID(r vault.Record) int { return int(binary.BigEndian.Uint32(r.Tag[12:])) }

// concValue is the value batch gives record id: "id NUL batch NUL again",
// again 1 for a repeat within the call.
func concValue(id int, batch string, again int) []byte {
	return fmt.Appendf(nil, "%d\x00%s\x00%d", id, batch, again)
}

// concWriter is the batch a value names.
func concWriter(v []byte) string {
	parts := bytes.Split(v, []byte{0})
	if len(parts) != 3 {
		return ""
	}
	return string(parts[1])
}

// concBatch is one Insert call and what it returned.
type concBatch struct {
	name    string
	patient string
	ids     []int          // each record's identity; -1 for the invalid record
	recs    []vault.Record // as handed to Insert, which set Stored
	valid   bool
	late    bool // started after the concurrent DeletePatient returned
	n       int
	err     error
}

// concScan is what one Scan saw: identity → value.
type concScan struct {
	patient, schema string
	seen            map[int][]byte
}

func concReadings(t *testing.T, seed uint64, stores []vault.Backend) string {
	ctx := t.Context()
	s := stores[0]
	for _, p := range append([]string{concGone}, concLive...) {
		if err := s.CreatePatientKeys(ctx, p, []byte("keys of "+p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{concGone, concLive[0]} {
		if err := s.CreateUser(ctx, p, []byte("user "+p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutToken(ctx, vault.TokenRow{ID: "vd_1", UserID: concGone, Kind: "device", Hash: []byte("h"),
		Created: diffBase, Expires: diffBase.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	var (
		batches [diffWorkers][]*concBatch // worker w's, appended by w only
		deleted atomic.Bool               // the DeletePatient returned
		mu      sync.Mutex
		scans   []concScan
		reads   int
		stop    = make(chan struct{})
		readers sync.WaitGroup
	)
	// Two readers scan, count and list schemas until the writers are done
	// (on bbolt the writes take a few tens of milliseconds: a reader
	// bounded by a number of reads could finish before they had begun).
	// Of the patients that stay, what one reader sees never goes back. A
	// scan is kept for the checks below when it differs from the same
	// reader's last scan of that patient and schema, so the scans kept are
	// bounded by the states the writes make, however many were read.
	readable := append([]string{concGone}, concLive...)
	for rd := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			s := stores[rd%len(stores)]
			r := rand.New(rand.NewPCG(seed, 100+uint64(rd)))
			counts, schemas := map[string]int{}, map[string][]string{}
			lastSeen := map[string]map[int][]byte{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := readable[r.IntN(len(readable))]
				live := p != concGone
				switch r.IntN(4) {
				case 0:
					n, err := s.Count(ctx, p)
					if err != nil {
						t.Errorf("reader %d: Count(%q): %v", rd, p, err)
						return
					}
					if live && n < counts[p] {
						t.Errorf("reader %d: Count(%q) went back from %d to %d", rd, p, counts[p], n)
					}
					counts[p] = n
				case 1:
					ss, err := s.Schemas(ctx, p)
					if err != nil {
						t.Errorf("reader %d: Schemas(%q): %v", rd, p, err)
						return
					}
					if !slices.IsSorted(ss) || len(slices.Compact(slices.Clone(ss))) != len(ss) {
						t.Errorf("reader %d: Schemas(%q) = %q, not each once in order", rd, p, ss)
					}
					for _, old := range schemas[p] {
						if live && !slices.Contains(ss, old) {
							t.Errorf("reader %d: Schemas(%q) lost %q: %q", rd, p, old, ss)
						}
					}
					schemas[p] = ss
				default:
					sc := concScan{patient: p, schema: diffSchemas[r.IntN(len(diffSchemas))], seen: map[int][]byte{}}
					for rec, err := range s.Scan(ctx, p, sc.schema, math.MinInt64, math.MaxInt64) {
						if err != nil {
							t.Errorf("reader %d: Scan(%q, %q): %v", rd, p, sc.schema, err)
							return
						}
						sc.seen[concID(rec)] = rec.Value
					}
					key := p + " " + sc.schema
					last, before := lastSeen[key]
					for id, v := range last {
						if live && !bytes.Equal(sc.seen[id], v) {
							t.Errorf("reader %d: %s: record %d went from %q to %q", rd, key, id, v, sc.seen[id])
						}
					}
					if before && maps.EqualFunc(last, sc.seen, bytes.Equal) {
						break // the same state again
					}
					lastSeen[key] = sc.seen
					mu.Lock()
					scans = append(scans, sc)
					mu.Unlock()
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}

	concRun(stores, seed, func(w int, s vault.Backend, r *rand.Rand) {
		for b := range concBatches {
			if w == 0 && b == concBatches/2 {
				if err := s.DeletePatient(ctx, concGone); err != nil {
					t.Errorf("DeletePatient(%q) among the inserts: %v", concGone, err)
				}
				deleted.Store(true)
				continue
			}
			bt := &concBatch{name: fmt.Sprintf("w%d.%d", w, b), valid: r.IntN(6) != 0}
			switch k := r.IntN(10); {
			case k == 0:
				bt.patient = concNoKeys
			case k < 4:
				bt.patient = concGone
			default:
				bt.patient = concLive[k%2]
			}
			add := func(id, again int) {
				rec := concIdentity(id)
				rec.Value = concValue(id, bt.name, again)
				bt.ids, bt.recs = append(bt.ids, id), append(bt.recs, rec)
			}
			for _, id := range r.Perm(concShared)[:2+r.IntN(5)] {
				add(id, 0)
			}
			for j := range 1 + r.IntN(2) {
				add(concShared+(w*concBatches+b)*2+j, 0)
			}
			if r.IntN(4) == 0 { // an identity again, another value: the first is stored
				add(bt.ids[r.IntN(len(bt.ids))], 1)
			}
			r.Shuffle(len(bt.recs), func(i, j int) {
				bt.ids[i], bt.ids[j] = bt.ids[j], bt.ids[i]
				bt.recs[i], bt.recs[j] = bt.recs[j], bt.recs[i]
			})
			if !bt.valid {
				i := r.IntN(len(bt.recs) + 1)
				bad := concIdentity(0)
				if r.IntN(2) == 0 {
					bad.Value = []byte("no schema")
					bad.Schema = ""
				}
				bt.ids, bt.recs = slices.Insert(bt.ids, i, -1), slices.Insert(bt.recs, i, bad)
			}
			bt.late = deleted.Load()
			bt.n, bt.err = s.Insert(ctx, bt.patient, bt.recs)
			batches[w] = append(batches[w], bt)
		}
	})
	close(stop)
	readers.Wait()

	// What each call returned, and which batch stored each identity.
	type key struct {
		patient string
		id      int
	}
	var (
		byName   = map[string]*concBatch{}
		carried  = map[key][]string{} // by batches that returned nil
		failedBy = map[key][]string{} // by batches that failed
		winners  = map[key][]*concBatch{}
		winner   = map[key][]byte{} // the value of the record counted new
		counted  = map[string]int{} // per patient, Insert's counts summed
		outcomes = map[string]int{}
	)
	for w := range diffWorkers {
		for _, b := range batches[w] {
			byName[b.name] = b
			class := diffErr(b.err)
			var want []string
			switch {
			case !b.valid:
				want = []string{"error"}
			case b.patient == concNoKeys:
				want = []string{vault.ErrNotFound.Error()}
			case b.patient == concGone && b.late:
				want = []string{vault.ErrNotFound.Error()}
			case b.patient == concGone:
				want = []string{"nil", vault.ErrNotFound.Error()}
			default:
				want = []string{"nil"}
			}
			if !slices.Contains(want, class) {
				t.Errorf("batch %s (%s, valid %v, after the deletion %v): Insert returned %v, want %s", b.name, b.patient, b.valid, b.late, b.err, strings.Join(want, " or "))
			}
			label := b.patient
			if !b.valid {
				label = "invalid"
			}
			outcomes[label+" "+class]++
			if b.err != nil {
				if b.n != 0 {
					t.Errorf("batch %s failed and counted %d new", b.name, b.n)
				}
				for _, id := range b.ids {
					failedBy[key{b.patient, id}] = append(failedBy[key{b.patient, id}], b.name)
				}
				continue
			}
			stored := 0
			for i, r := range b.recs {
				k := key{b.patient, b.ids[i]}
				if !slices.Contains(carried[k], b.name) {
					carried[k] = append(carried[k], b.name)
				}
				if r.Stored {
					stored++
					winners[k] = append(winners[k], b)
					winner[k] = r.Value
				}
			}
			if stored != b.n {
				t.Errorf("batch %s: Insert returned %d and set Stored on %d records", b.name, b.n, stored)
			}
			counted[b.patient] += b.n
		}
	}
	for k, ws := range winners {
		if len(ws) > 1 {
			var names []string
			for _, b := range ws {
				names = append(names, b.name)
			}
			t.Errorf("%s: record %d counted new by %d calls (%v)", k.patient, k.id, len(ws), names)
		}
	}

	// What the readers saw: only records of batches that returned nil,
	// each with the value of the record its batch counted new, and every
	// record of that batch in the scanned schema beside it.
	for _, sc := range scans {
		if len(sc.seen) >= scanPage {
			t.Fatalf("a scan returned %d records: the test's patients outgrew a scan page (%d), and a scan is no longer one read", len(sc.seen), scanPage)
		}
		for id, v := range sc.seen {
			k := key{sc.patient, id}
			b := byName[concWriter(v)]
			if b == nil || len(winners[k]) != 1 || winners[k][0] != b || !bytes.Equal(winner[k], v) {
				t.Errorf("a reader saw %s's record %d with value %q, not that of the one call that counted it new (calls that did: %d; failed calls that carried it: %v)", sc.patient, id, v, len(winners[k]), failedBy[k])
				continue
			}
			for i, r := range b.recs {
				if r.Schema == sc.schema && b.ids[i] >= 0 {
					if _, ok := sc.seen[b.ids[i]]; !ok {
						t.Errorf("a reader saw part of batch %s: %s's record %d in %s, not its record %d", b.name, sc.patient, id, sc.schema, b.ids[i])
					}
				}
			}
		}
	}

	// The final state, as each store reads it.
	snap := diffState(t, s)
	for _, p := range diffPatients {
		var ids []int
		var schemas []string
		for _, r := range snap.recs[p] {
			id := concID(r)
			want := concIdentity(id)
			if r.Schema != want.Schema || r.Time != want.Time || r.Tag != want.Tag {
				t.Errorf("%s: a stored record %+v is not identity %d", p, r, id)
			}
			ids = append(ids, id)
			if !slices.Contains(schemas, r.Schema) {
				schemas = append(schemas, r.Schema)
			}
			k := key{p, id}
			switch {
			case carried[k] == nil:
				t.Errorf("%s: record %d is stored, but no call that returned nil carried it (failed calls that did: %v)", p, id, failedBy[k])
			case !bytes.Equal(r.Value, winner[k]):
				t.Errorf("%s: record %d holds %q, not the value of the call that counted it new (%q)", p, id, r.Value, winner[k])
			}
		}
		if len(snap.recs[p]) != snap.counts[p] || (slices.Contains(concLive, p) && counted[p] != snap.counts[p]) {
			t.Errorf("%s: %d records stored, Count says %d, the calls counted %d new", p, len(snap.recs[p]), snap.counts[p], counted[p])
		}
		got, err := s.Schemas(ctx, p)
		if slices.Sort(schemas); err != nil || !slices.Equal(got, schemas) {
			t.Errorf("%s: Schemas = %q, %v; the records are of %q", p, got, err, schemas)
		}
		if !slices.Contains(concLive, p) && len(ids) > 0 {
			t.Errorf("%s ends with %d records, want none", p, len(ids))
		}
	}
	for k := range carried {
		if slices.Contains(concLive, k.patient) && !slices.ContainsFunc(snap.recs[k.patient], func(r vault.Record) bool { return concID(r) == k.id }) {
			t.Errorf("%s: record %d is lost (carried by %v)", k.patient, k.id, carried[k])
		}
	}
	// The deleted patient stays deleted, on every store: no key blob, no
	// user, and an insert is refused as on bbolt.
	for i, s := range stores {
		rec := concIdentity(0)
		rec.Value = []byte("after")
		if n, err := s.Insert(ctx, concGone, []vault.Record{rec}); !errors.Is(err, vault.ErrNotFound) || n != 0 {
			t.Errorf("store %d: Insert for the deleted patient: %d, %v; want ErrNotFound", i, n, err)
		}
		if _, err := s.PatientKeys(ctx, concGone); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("store %d: the deleted patient's key blob: %v", i, err)
		}
		if _, err := s.User(ctx, concGone); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("store %d: the deleted patient's user: %v", i, err)
		}
		if n, err := s.Count(ctx, concGone); err != nil || n != 0 {
			t.Errorf("store %d: the deleted patient's count: %d, %v", i, n, err)
		}
		if i > 0 {
			if a, b := concRender(snap), concRender(diffState(t, s)); a != b {
				t.Errorf("the replicas disagree\n  store 0:\n%s\n  store %d:\n%s", a, i, b)
			}
		}
	}
	// How many scans saw a state between the first and the last: those
	// the all-or-none check had something to say about.
	between := 0
	for _, sc := range scans {
		final := 0
		for _, r := range snap.recs[sc.patient] {
			if r.Schema == sc.schema {
				final++
			}
		}
		if len(sc.seen) > 0 && len(sc.seen) != final {
			between++
		}
	}
	t.Logf("%d calls (%v), %d reads meanwhile (%d scans of a new state kept, %d of a state between the first and the last); %d records stored", diffWorkers*(concBatches-1), outcomes, reads, len(scans), between, snap.records)
	if between == 0 {
		t.Error("no reader scanned a state between the first and the last")
	}
	return concRender(snap)
}

// concRender renders a final state: each patient's key blob, count and
// records (identity and the record's number, not the value, which names
// the batch that won a race).
func concRender(s diffSnapshot) string {
	var b strings.Builder
	for _, p := range diffPatients {
		fmt.Fprintf(&b, "%s: keys %q, count %d, records", p, s.keys[p], s.counts[p])
		for _, r := range s.recs[p] {
			fmt.Fprintf(&b, " %s/%d/%x=%d", r.Schema, r.Time, r.Tag, concID(r))
		}
		b.WriteByte('\n')
	}
	for _, u := range s.users {
		fmt.Fprintf(&b, "user %s %q\n", u.ID, u.Blob)
	}
	for _, p := range slices.Sorted(maps.Keys(s.tokens)) {
		fmt.Fprintf(&b, "%s: %d tokens\n", p, len(s.tokens[p]))
	}
	fmt.Fprintf(&b, "meta %q", s.meta)
	return b.String()
}
