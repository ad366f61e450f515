package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/web/webstore"
)

// The differential tests of the ledger, web and OAuth stores
// (differential_ledger_test.go, differential_web_test.go,
// differential_oauth_test.go) share what TestDifferential does for
// vault.Backend: a seeded generator draws calls, each call runs on a bbolt
// file and on a fresh PostgreSQL database, and its result (values, and
// errors by the sentinel they wrap) must be the same on both; every few
// calls the whole state, read back through the interface, must be the
// same too. They take the same flags (-diff.seed, -diff.steps, -diff.runs
// and their VAULT_DIFF_* variables), and a failure prints the command that
// replays it.
//
// The concurrent phase (differential_concurrent_test.go) runs calls from
// many goroutines at once on each backend and checks what must hold
// whatever the interleaving.

// diffStoreStep is one call on a store of type S; run returns what the
// call returned, rendered as text (so that a difference prints readably).
type diffStoreStep[S any] struct {
	desc string
	run  func(ctx context.Context, s S) string
}

// diffStores runs the differential test of one store interface: steps
// calls drawn by next, on bolt and pg, compared after each call; state
// renders a store's whole state, compared every checkEvery calls and at
// the end. name is the test's name, for the replay line.
func diffStores[S any](t *testing.T, name string, seed uint64, steps, checkEvery int, bolt, pg S,
	next func(g *diffRand) diffStoreStep[S], state func(t *testing.T, s S) string) {
	t.Helper()
	g := &diffRand{rand.New(rand.NewPCG(seed, 0x5eed))}
	var history []string
	calls := map[string]int{}
	for i := range steps {
		st := next(g)
		history = append(history, fmt.Sprintf("%4d %s", i, st.desc))
		a, b := st.run(t.Context(), bolt), st.run(t.Context(), pg)
		if j := strings.IndexAny(st.desc, "({"); j > 0 {
			calls[st.desc[:j]+" "+a[strings.LastIndexByte(a, ' ')+1:]]++
		}
		if a != b {
			t.Fatalf("seed %d, step %d: %s\n  bbolt:    %s\n  postgres: %s\nthe calls up to here:\n%s\nreplay: go test -run '%s' ./store/postgres/ -diff.seed=%d -diff.runs=1 -diff.steps=%d",
				seed, i, st.desc, a, b, diffTail(history, 40), name, seed, i+1)
		}
		if i%checkEvery == checkEvery-1 || i == steps-1 {
			if a, b := state(t, bolt), state(t, pg); a != b {
				t.Fatalf("seed %d, after step %d: the stores differ\n  bbolt:\n%s\n  postgres:\n%s\nthe calls up to here:\n%s\nreplay: go test -run '%s' ./store/postgres/ -diff.seed=%d -diff.runs=1 -diff.steps=%d",
					seed, i, a, b, diffTail(history, 60), name, seed, i+1)
			}
		}
	}
	t.Logf("seed %d: %d calls agreed (call and outcome: times): %v", seed, steps, calls)
}

// diffRepeat reads the flags and runs body once per run, each with its own
// seed, as TestDifferential does.
func diffRepeat(t *testing.T, name string, defSteps, defRuns int, body func(t *testing.T, seed uint64, steps int)) {
	seed := diffParam(t, *diffSeed, "VAULT_DIFF_SEED", uint64(time.Now().UnixNano()))
	steps := int(diffParam(t, uint64(max(*diffSteps, 0)), "VAULT_DIFF_STEPS", uint64(defSteps)))
	runs := int(diffParam(t, uint64(max(*diffRuns, 0)), "VAULT_DIFF_RUNS", uint64(defRuns)))
	t.Logf("%s: %d runs of %d calls, seed %d (replay with -run '%s' -diff.seed=%d -diff.steps=%d -diff.runs=%d)", name, runs, steps, seed, name, seed, steps, runs)
	for run := range runs {
		s := seed + uint64(run)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { body(t, s, steps) })
	}
}

// openBolt opens a bbolt store in a file of the test's temporary
// directory, closed when the test ends.
func openBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "vault.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// diffRand draws the calls' arguments.
type diffRand struct{ r *rand.Rand }

func (g *diffRand) n(n int) int    { return g.r.IntN(n) }
func (g *diffRand) one(p int) bool { return g.r.IntN(p) == 0 }

// str picks one of ss.
func (g *diffRand) str(ss []string) string { return ss[g.n(len(ss))] }

// bytes draws 0 to max bytes, NUL bytes often; now and then nil.
func (g *diffRand) bytes(max int) []byte {
	if g.one(12) {
		return nil
	}
	b := make([]byte, g.n(max+1))
	for i := range b {
		if g.one(4) {
			b[i] = 0
		} else {
			b[i] = byte(g.r.Uint32())
		}
	}
	return b
}

// diffHash is the i-th of the tests' 32-byte hashes, distinct for every
// i, in shapes that sort apart: all zero (i = 0), differing only in the
// last bytes, or in the first.
func diffHash(i int) [32]byte {
	var h [32]byte
	switch i % 4 {
	case 0: // diffHash(0) is all zero
		binary.BigEndian.PutUint64(h[24:], uint64(i))
	case 1:
		binary.BigEndian.PutUint64(h[:], uint64(i))
	case 2:
		h[0] = 0xff
		binary.BigEndian.PutUint64(h[24:], uint64(i))
	default:
		for j := range h {
			h[j] = byte(i * j)
		}
		binary.BigEndian.PutUint64(h[8:], uint64(i))
	}
	return h
}

// diffBase is the tests' "now", and times are drawn around it, with the
// extremes a store must keep (the smallest and largest Unix nanoseconds,
// one nanosecond apart, the zero time) and some it must refuse (before or
// after those).
var diffBase = time.Unix(1_760_000_000, 123_456_789).UTC()

func (g *diffRand) time() time.Time {
	switch g.n(20) {
	case 0:
		return time.Unix(0, math.MinInt64+1).UTC()
	case 1:
		return time.Unix(0, math.MaxInt64).UTC()
	case 2:
		return diffBase.Add(time.Nanosecond)
	case 3:
		return diffBase.Add(-time.Nanosecond)
	case 4:
		return time.Time{}
	case 5: // outside what either store keeps: refused by both
		return []time.Time{
			time.Unix(0, math.MinInt64).UTC(), // the zero time's encoding
			time.Unix(0, math.MaxInt64).Add(time.Nanosecond),
			time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		}[g.n(4)]
	}
	return diffBase.Add(time.Duration(g.n(9)-4) * time.Minute)
}

// Rendering results. Times as RFC 3339 with nanoseconds, in UTC (a store
// need not keep the location); sealed bytes as hex, where nil and empty
// are the same (a store keeps no difference between them).

func diffT(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func diffX(b []byte) string { return hex.EncodeToString(b) }

func diffH(h [32]byte) string {
	s := hex.EncodeToString(h[:])
	return s[:4] + ".." + s[60:]
}

// diffClass is an error's class: the sentinel it wraps, or "error" for
// any other (whose text the backends need not share).
func diffClass(err error) string {
	if err == nil {
		return "ok"
	}
	for _, s := range []struct {
		name string
		err  error
	}{
		{"web.ErrNotFound", webstore.ErrNotFound}, {"web.ErrExists", webstore.ErrExists},
		{"web.ErrTooMany", webstore.ErrTooMany}, {"web.ErrLastPasskey", webstore.ErrLastPasskey},
		{"web.ErrFull", webstore.ErrFull},
		{"oauth.ErrNotFound", oauthstore.ErrNotFound}, {"oauth.ErrExists", oauthstore.ErrExists},
		{"oauth.ErrRotated", oauthstore.ErrRotated},
		{"ledger.ErrMissing", ledgerstore.ErrMissing},
		{"errCallback", errDiffCallback},
		{"context.Canceled", context.Canceled},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "error"
}

// errDiffCallback is what a generated callback (ModifyCredential's fn,
// UseRecoveryCode's open, a ledger transaction) fails with: a store must
// return it as it is and change nothing.
var errDiffCallback = errors.New("the callback refused")
