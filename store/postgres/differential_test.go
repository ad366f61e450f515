package postgres

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// The differential test: random sequences of vault.Backend calls run
// against bbolt (a real file) and PostgreSQL (a fresh database) side by
// side, every call's result compared at once, so the first step where the
// two backends disagree fails the test with the seed that replays it.
//
//	go test -run TestDifferential ./store/postgres/                       # a few seconds
//	go test -run TestDifferential ./store/postgres/ -diff.seed=N          # replay a failure
//	VAULT_DIFF_STEPS=20000 VAULT_DIFF_RUNS=10 go test -run TestDifferential ./store/postgres/
var (
	diffSeed  = flag.Uint64("diff.seed", 0, "seed of the differential test, to replay a run (default: from the clock, or $VAULT_DIFF_SEED)")
	diffSteps = flag.Int("diff.steps", 0, "calls per run of the differential test (default 600, or $VAULT_DIFF_STEPS)")
	diffRuns  = flag.Int("diff.runs", 0, "runs (fresh stores, seeds seed, seed+1, ...) of the differential test (default 2, or $VAULT_DIFF_RUNS)")
)

func diffParam(t *testing.T, flagVal uint64, env string, def uint64) uint64 {
	t.Helper()
	if flagVal != 0 {
		return flagVal
	}
	if v := os.Getenv(env); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			t.Fatalf("%s=%q: want a positive number", env, v)
		}
		return n
	}
	return def
}

// The universe the random calls draw from: small, so that calls collide
// (duplicates, deletes of what exists, swaps that match), with the edges
// the conformance suite names: a "pt_" prefix that must not match "ptx_",
// extreme and equal times, tags that differ only in a late byte, values
// and metadata with NUL bytes.
var (
	diffPatients = []string{"pt_a", "pt_b", "ptx_a", "pt_", "cl_a"}
	diffSchemas  = []string{"omh:blood-glucose:4.0", "omh:heart-rate:2.0", "omh:blood-glucose:4.0x"}
	diffTimes    = []int64{math.MinInt64, math.MinInt64 + 1, -1_000_000_000, -1, 0, 1, 1_000, 1_000_000_000, 1_700_000_000_000_000_000, math.MaxInt64 - 1, math.MaxInt64}
	diffPrefixes = []string{"", "pt_", "ptx_", "pt", "cl_", "p", "pt_a", "zz"}
	diffMetaKeys = []string{"master", "info", "m\x01", "rotation", "zz"}
	diffTokenIDs = []string{"vd_1", "vd_2", "vp_1", "vc_1"}
)

// diffErr is an error's class: the sentinel the interface promises, or
// "error" for any other (whose text the backends need not share).
func diffErr(err error) string {
	for _, s := range []error{vault.ErrNotFound, vault.ErrExists, vault.ErrConflict, vault.ErrClosed} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "error"
	}
	return "nil"
}

// diffGen draws the calls.
type diffGen struct{ r *rand.Rand }

func (g diffGen) pick(n int) int { return g.r.IntN(n) }
func (g diffGen) patient() string {
	return diffPatients[g.pick(len(diffPatients))]
}
func (g diffGen) schema() string { return diffSchemas[g.pick(len(diffSchemas))] }
func (g diffGen) time() int64    { return diffTimes[g.pick(len(diffTimes))] }
func (g diffGen) tag() [16]byte {
	var tag [16]byte
	switch g.pick(4) {
	case 0: // all zero
	case 1:
		tag[0] = byte(g.pick(3))
	case 2:
		tag[15] = byte(g.pick(3)) // differs only at the end
	default:
		tag[0], tag[7] = 0xff, byte(g.pick(2))
	}
	return tag
}
func (g diffGen) bytes(max int) []byte {
	b := make([]byte, 1+g.pick(max))
	for i := range b {
		if g.pick(4) == 0 {
			b[i] = 0 // NUL bytes, often
		} else {
			b[i] = byte(g.r.Uint32())
		}
	}
	return b
}
func (g diffGen) record() vault.Record {
	return vault.Record{Schema: g.schema(), Time: g.time(), Tag: g.tag(), Value: g.bytes(40)}
}
func (g diffGen) stamp() time.Time {
	return time.Unix(1_700_000_000+int64(g.pick(1000)), int64(g.pick(1_000_000_000))).UTC()
}

// diffStep is one call, run on a backend; it returns what the call
// returned, in a comparable form.
type diffStep struct {
	desc string
	run  func(t *testing.T, b vault.Backend) any
}

// next draws a call. known holds values the bbolt side returned earlier
// (key blobs, meta values, record values), so swaps can name the current
// value and succeed, not only fail.
func (g diffGen) next(known *diffKnown) diffStep {
	switch g.pick(21) {
	case 0, 1:
		p, blob := g.patient(), g.bytes(24)
		return diffStep{fmt.Sprintf("CreatePatientKeys(%q, %x)", p, blob), func(t *testing.T, b vault.Backend) any {
			return diffErr(b.CreatePatientKeys(t.Context(), p, blob))
		}}
	case 2:
		p := g.patient()
		return diffStep{fmt.Sprintf("PatientKeys(%q)", p), func(t *testing.T, b vault.Backend) any {
			v, err := b.PatientKeys(t.Context(), p)
			return []any{v, diffErr(err)}
		}}
	case 3, 4, 5, 6:
		p := g.patient()
		n := 1 + g.pick(6)
		recs := make([]vault.Record, n)
		for i := range recs {
			recs[i] = g.record()
			if i > 0 && g.pick(4) == 0 { // a duplicate within the call, another value
				recs[i].Schema, recs[i].Time, recs[i].Tag = recs[i-1].Schema, recs[i-1].Time, recs[i-1].Tag
			}
		}
		if g.pick(25) == 0 {
			recs[n-1].Value = nil // refused: the whole call stores nothing
		}
		return diffStep{fmt.Sprintf("Insert(%q, %d records %s)", p, n, diffRecs(recs)), func(t *testing.T, b vault.Backend) any {
			cp := make([]vault.Record, len(recs))
			for i, r := range recs {
				cp[i] = r
				cp[i].Value = bytes.Clone(r.Value)
			}
			k, err := b.Insert(t.Context(), p, cp)
			stored := make([]bool, len(cp))
			if err == nil {
				for i := range cp {
					stored[i] = cp[i].Stored
				}
			}
			return []any{k, stored, diffErr(err)}
		}}
	case 7, 8, 9:
		p, s := g.patient(), g.schema()
		from, to := g.time(), g.time()
		limit := -1
		if g.pick(3) == 0 {
			limit = g.pick(4) // an abandoned scan
		}
		return diffStep{fmt.Sprintf("Scan(%q, %q, %d, %d) limit %d", p, s, from, to, limit), func(t *testing.T, b vault.Backend) any {
			var out []vault.Record
			var errClass string
			for r, err := range b.Scan(t.Context(), p, s, from, to) {
				if err != nil {
					errClass = diffErr(err)
					break
				}
				if limit >= 0 && len(out) == limit {
					break
				}
				out = append(out, r)
			}
			return []any{out, errClass}
		}}
	case 10:
		p := g.patient()
		return diffStep{fmt.Sprintf("Count(%q)", p), func(t *testing.T, b vault.Backend) any {
			n, err := b.Count(t.Context(), p)
			return []any{n, diffErr(err)}
		}}
	case 11:
		p := g.patient()
		return diffStep{fmt.Sprintf("DeletePatient(%q)", p), func(t *testing.T, b vault.Backend) any {
			return diffErr(b.DeletePatient(t.Context(), p))
		}}
	case 12:
		k := diffMetaKeys[g.pick(len(diffMetaKeys))]
		if g.pick(2) == 0 {
			v := g.bytes(20)
			return diffStep{fmt.Sprintf("PutMeta(%q, %x)", k, v), func(t *testing.T, b vault.Backend) any {
				return diffErr(b.PutMeta(t.Context(), k, v))
			}}
		}
		return diffStep{fmt.Sprintf("Meta(%q)", k), func(t *testing.T, b vault.Backend) any {
			v, err := b.Meta(t.Context(), k)
			return []any{v, diffErr(err)}
		}}
	case 13:
		n := 1 + g.pick(3)
		swaps := make([]vault.MetaSwap, n)
		for i := range swaps {
			k := diffMetaKeys[g.pick(len(diffMetaKeys))]
			swaps[i].Key = k
			switch g.pick(3) {
			case 0: // the current value, as last read
				swaps[i].Old = known.meta[k]
			case 1:
				swaps[i].Old = g.bytes(8)
			}
			if g.pick(4) != 0 {
				swaps[i].New = g.bytes(20)
			}
		}
		scrub := g.pick(8) == 0
		return diffStep{fmt.Sprintf("SwapMeta(%s, scrub %v)", diffMetaSwaps(swaps), scrub), func(t *testing.T, b vault.Backend) any {
			return diffErr(b.SwapMeta(t.Context(), swaps, scrub))
		}}
	case 14:
		id, blob := g.patient(), g.bytes(16)
		switch g.pick(3) {
		case 0:
			return diffStep{fmt.Sprintf("CreateUser(%q, %x)", id, blob), func(t *testing.T, b vault.Backend) any {
				return diffErr(b.CreateUser(t.Context(), id, blob))
			}}
		case 1:
			return diffStep{fmt.Sprintf("PutUser(%q, %x)", id, blob), func(t *testing.T, b vault.Backend) any {
				return diffErr(b.PutUser(t.Context(), id, blob))
			}}
		}
		return diffStep{fmt.Sprintf("User(%q)", id), func(t *testing.T, b vault.Backend) any {
			v, err := b.User(t.Context(), id)
			return []any{v, diffErr(err)}
		}}
	case 15:
		prefix := diffPrefixes[g.pick(len(diffPrefixes))]
		return diffStep{fmt.Sprintf("Users(%q)", prefix), func(t *testing.T, b vault.Backend) any {
			us, err := b.Users(t.Context(), prefix)
			if len(us) == 0 {
				us = nil
			}
			return []any{us, diffErr(err)}
		}}
	case 16:
		row := vault.TokenRow{
			ID: diffTokenIDs[g.pick(len(diffTokenIDs))], UserID: g.patient(), Kind: "device",
			Hash: g.bytes(32), Created: g.stamp(), Expires: g.stamp(),
		}
		if g.pick(2) == 0 {
			row.LastUsed = g.stamp()
		}
		return diffStep{fmt.Sprintf("PutToken(%+v)", row), func(t *testing.T, b vault.Backend) any {
			return diffErr(b.PutToken(t.Context(), row))
		}}
	case 17:
		id := diffTokenIDs[g.pick(len(diffTokenIDs))]
		switch g.pick(4) {
		case 0:
			at := g.stamp()
			return diffStep{fmt.Sprintf("TouchToken(%q, %v)", id, at), func(t *testing.T, b vault.Backend) any {
				return diffErr(b.TouchToken(t.Context(), id, at))
			}}
		case 1:
			return diffStep{fmt.Sprintf("DeleteToken(%q)", id), func(t *testing.T, b vault.Backend) any {
				return diffErr(b.DeleteToken(t.Context(), id))
			}}
		case 2:
			u := g.patient()
			return diffStep{fmt.Sprintf("Tokens(%q)", u), func(t *testing.T, b vault.Backend) any {
				ts, err := b.Tokens(t.Context(), u)
				if len(ts) == 0 {
					ts = nil
				}
				return []any{ts, diffErr(err)}
			}}
		}
		return diffStep{fmt.Sprintf("Token(%q)", id), func(t *testing.T, b vault.Backend) any {
			row, err := b.Token(t.Context(), id)
			return []any{row, diffErr(err)}
		}}
	case 18:
		after, limit := diffPrefixes[g.pick(len(diffPrefixes))], 1+g.pick(4)
		return diffStep{fmt.Sprintf("PatientKeyBlobs(%q, %d)", after, limit), func(t *testing.T, b vault.Backend) any {
			bs, err := b.PatientKeyBlobs(t.Context(), after, limit)
			if len(bs) == 0 {
				bs = nil
			}
			return []any{bs, diffErr(err)}
		}}
	case 19:
		n := 1 + g.pick(3)
		swaps := make([]vault.KeySwap, n)
		for i := range swaps {
			p := g.patient()
			swaps[i] = vault.KeySwap{PatientID: p, Old: g.bytes(8), New: g.bytes(24)}
			if g.pick(2) == 0 && known.keys[p] != nil {
				swaps[i].Old = known.keys[p]
			}
		}
		return diffStep{fmt.Sprintf("SwapPatientKeys(%d swaps)", n), func(t *testing.T, b vault.Backend) any {
			cp := append([]vault.KeySwap(nil), swaps...)
			err := b.SwapPatientKeys(t.Context(), cp)
			done := make([]bool, len(cp))
			for i := range cp {
				done[i] = cp[i].Swapped
			}
			return []any{done, diffErr(err)}
		}}
	default:
		p := g.patient()
		n := 1 + g.pick(3)
		swaps := make([]vault.RecordSwap, n)
		for i := range swaps {
			r := g.record()
			swaps[i] = vault.RecordSwap{Schema: r.Schema, Time: r.Time, Tag: r.Tag, Old: g.bytes(8), New: g.bytes(30)}
			if rs := known.recs[p]; len(rs) > 0 && g.pick(3) != 0 {
				k := rs[g.pick(len(rs))]
				swaps[i].Schema, swaps[i].Time, swaps[i].Tag, swaps[i].Old = k.Schema, k.Time, k.Tag, k.Value
			}
		}
		return diffStep{fmt.Sprintf("SwapRecords(%q, %d swaps)", p, n), func(t *testing.T, b vault.Backend) any {
			cp := append([]vault.RecordSwap(nil), swaps...)
			err := b.SwapRecords(t.Context(), p, cp)
			done := make([]bool, len(cp))
			for i := range cp {
				done[i] = cp[i].Swapped
			}
			return []any{done, diffErr(err)}
		}}
	}
}

// diffKnown is the bbolt side's state as last read, for drawing swaps
// that match.
type diffKnown struct {
	meta map[string][]byte
	keys map[string][]byte
	recs map[string][]vault.Record
}

// refresh reads the state of b (which both backends share, if the test
// has passed so far).
func (k *diffKnown) refresh(t *testing.T, b vault.Backend) {
	t.Helper()
	k.meta, k.keys, k.recs = map[string][]byte{}, map[string][]byte{}, map[string][]vault.Record{}
	for _, key := range diffMetaKeys {
		v, err := b.Meta(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		k.meta[key] = v
	}
	for _, p := range diffPatients {
		if v, err := b.PatientKeys(t.Context(), p); err == nil {
			k.keys[p] = v
		} else if !errors.Is(err, vault.ErrNotFound) {
			t.Fatal(err)
		}
		for _, s := range diffSchemas {
			for r, err := range b.Scan(t.Context(), p, s, math.MinInt64, math.MaxInt64) {
				if err != nil {
					t.Fatal(err)
				}
				k.recs[p] = append(k.recs[p], r)
			}
		}
	}
}

func diffRecs(recs []vault.Record) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, fmt.Sprintf("{%s %d %x %d bytes}", r.Schema, r.Time, r.Tag, len(r.Value)))
	}
	return strings.Join(parts, " ")
}

func diffMetaSwaps(sw []vault.MetaSwap) string {
	var parts []string
	for _, s := range sw {
		parts = append(parts, fmt.Sprintf("{%q %x→%x}", s.Key, s.Old, s.New))
	}
	return strings.Join(parts, " ")
}

// TestDifferential runs random call sequences against bbolt and
// PostgreSQL and requires the same result from both at every step; at
// the end, and every 50 steps, the whole state (every patient's records,
// key blobs, counts, users, tokens, metadata) must be the same too.
func TestDifferential(t *testing.T) {
	seed := diffParam(t, *diffSeed, "VAULT_DIFF_SEED", uint64(time.Now().UnixNano()))
	steps := int(diffParam(t, uint64(max(*diffSteps, 0)), "VAULT_DIFF_STEPS", 600))
	runs := int(diffParam(t, uint64(max(*diffRuns, 0)), "VAULT_DIFF_RUNS", 2))
	t.Logf("differential test: %d runs of %d calls, seed %d (replay with -diff.seed=%d -diff.steps=%d -diff.runs=%d)", runs, steps, seed, seed, steps, runs)
	for run := range runs {
		s := seed + uint64(run)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { diffRun(t, s, steps) })
	}
}

func diffRun(t *testing.T, seed uint64, steps int) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "vault.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	pg := openTest(t)
	backends := []struct {
		name string
		b    vault.Backend
	}{{"bbolt", bolt}, {"postgres", pg}}

	g := diffGen{rand.New(rand.NewPCG(seed, 0xd1ff))}
	var known diffKnown
	known.refresh(t, bolt)
	var history []string
	calls := map[string]int{}
	// The most records and key blobs any whole-state comparison saw: a
	// run may well end empty (deleting patients is one of its calls), but
	// one whose comparisons never saw a record compared nothing.
	var seenRecords, seenKeys int
	for i := range steps {
		st := g.next(&known)
		history = append(history, fmt.Sprintf("%4d %s", i, st.desc))
		calls[st.desc[:strings.IndexByte(st.desc, '(')]]++
		got := make([]any, len(backends))
		for j, be := range backends {
			got[j] = st.run(t, be.b)
		}
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Fatalf("seed %d, step %d: %s\n  bbolt:    %#v\n  postgres: %#v\nthe calls up to here:\n%s\nreplay: go test -run 'TestDifferential' ./store/postgres/ -diff.seed=%d -diff.runs=1 -diff.steps=%d",
				seed, i, st.desc, got[0], got[1], diffTail(history, 40), seed, i+1)
		}
		if i%10 == 9 {
			known.refresh(t, bolt)
		}
		if i%50 == 49 || i == steps-1 {
			a, b := diffState(t, bolt), diffState(t, pg)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("seed %d, after step %d: the stores differ\n  bbolt:    %#v\n  postgres: %#v\nthe calls up to here:\n%s", seed, i, a, b, diffTail(history, 60))
			}
			seenRecords, seenKeys = max(seenRecords, a.records), max(seenKeys, len(a.keys))
		}
	}
	st := diffState(t, pg)
	t.Logf("seed %d: %d calls agreed (%v); at the end %d records, %d key blobs, %d users, %d tokens; at most %d records and %d key blobs in one comparison", seed, steps, calls, st.records, len(st.keys), len(st.users), len(st.tokens), seenRecords, seenKeys)
	if seenRecords == 0 || seenKeys == 0 {
		t.Fatalf("no whole-state comparison saw a record (%d) or a key blob (%d): the run compared nothing", seenRecords, seenKeys)
	}
}

func diffTail(h []string, n int) string {
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return strings.Join(h, "\n")
}

// diffSnapshot is a store's whole state over the test's universe.
type diffSnapshot struct {
	meta    map[string][]byte
	keys    map[string][]byte
	recs    map[string][]vault.Record
	counts  map[string]int
	users   []vault.UserRow
	tokens  map[string][]vault.TokenRow
	records int
}

func diffState(t *testing.T, b vault.Backend) diffSnapshot {
	t.Helper()
	var k diffKnown
	k.refresh(t, b)
	s := diffSnapshot{meta: k.meta, keys: k.keys, recs: k.recs, counts: map[string]int{}, tokens: map[string][]vault.TokenRow{}}
	for _, p := range diffPatients {
		n, err := b.Count(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		s.counts[p] = n
		s.records += len(k.recs[p])
		ts, err := b.Tokens(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) > 0 {
			s.tokens[p] = ts
		}
	}
	us, err := b.Users(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(us) > 0 {
		s.users = us
	}
	return s
}
