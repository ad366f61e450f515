package postgres

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
	"golang.org/x/mod/sumdb/tlog"
)

// TestDifferentialConcurrent: the concurrent phase of the differential
// tests. On each backend (bbolt: one store in a file; PostgreSQL: two
// stores on one database, as two replicas, the workers split between
// them) diffWorkers goroutines issue their calls at once; then the test
// checks what must hold whatever the interleaving, and that both
// backends end in the same state:
//
//   - ledger: appends (read the size, write the entry and its hash, set
//     the size), some failed by their own transaction after writing:
//     the size is the number of appends that returned nil, entries 0 to
//     size-1 are there, each exactly one successful append's, no failed
//     append's; readers running meanwhile always see size = entries; of
//     racing checkpoints of one size the first stays.
//   - OAuth: every code claimed by all workers is claimed exactly once,
//     with its request; every refresh token rotated by all workers is
//     rotated exactly once (the others ErrRotated), and exactly one
//     successor is stored, the winner's; every client-assertion id is
//     spent exactly once.
//   - web: every ceremony, invite, recovery code and sign-in challenge is
//     taken, claimed, used or spent exactly once; no session is lost
//     (every one not deleted is there), and each ends with the latest
//     last-seen and expiry any touch that returned nil gave it; of
//     passkeys added at once beyond the limit exactly the limit are
//     stored, and of all removed at once exactly one stays.
//   - readings (vault.Backend, differential_readings_test.go):
//     overlapping batches inserted at once, some invalid, some for a
//     patient without keys, one patient deleted among them: every
//     identity a call that returned nil carried is stored exactly once,
//     counted new by exactly one call, with that call's value, and none
//     only failed calls carried; Count and Schemas agree with the
//     records; a reader's scan sees a batch's records of its schema all
//     or none, and never a failed call's; the deleted patient ends with
//     nothing, and every insert that started after the deletion returned,
//     and every one after the run, is refused with ErrNotFound.
//
// The calls each worker makes come from the seed (-diff.seed); their
// interleaving is the scheduler's. -diff.runs rounds (default 1), each on
// fresh stores.
func TestDifferentialConcurrent(t *testing.T) {
	diffRepeat(t, "TestDifferentialConcurrent", 1, 1, func(t *testing.T, seed uint64, _ int) {
		t.Run("Ledger", func(t *testing.T) {
			diffConcurrent(t, seed, func(b *boltstore.Store) ledgerstore.Store { return b.Ledger() },
				func(s *Store) ledgerstore.Store { return s.Ledger() }, concLedger)
		})
		t.Run("OAuth", func(t *testing.T) {
			diffConcurrent(t, seed, func(b *boltstore.Store) oauthstore.Store { return b.OAuth() },
				func(s *Store) oauthstore.Store { return s.OAuth() }, concOAuth)
		})
		t.Run("Web", func(t *testing.T) {
			diffConcurrent(t, seed, func(b *boltstore.Store) webstore.Store { return b.Web() },
				func(s *Store) webstore.Store { return s.Web() }, concWeb)
		})
		t.Run("Readings", func(t *testing.T) {
			diffConcurrent(t, seed, func(b *boltstore.Store) vault.Backend { return b },
				func(s *Store) vault.Backend { return s }, concReadings)
		})
	})
}

// diffWorkers is how many goroutines call at once.
const diffWorkers = 8

// diffConcurrent runs body on a bbolt store and on two PostgreSQL stores
// sharing a database, and compares the final states body returns.
func diffConcurrent[S any](t *testing.T, seed uint64, bolt func(*boltstore.Store) S, pg func(*Store) S,
	body func(t *testing.T, seed uint64, stores []S) string) {
	t.Helper()
	var got [2]string
	t.Run("bbolt", func(t *testing.T) {
		got[0] = body(t, seed, []S{bolt(openBolt(t))})
	})
	t.Run("postgres", func(t *testing.T) {
		s1, dsn := openDSN(t)
		got[1] = body(t, seed, []S{pg(s1), pg(openOn(t, dsn))})
	})
	if t.Failed() {
		return
	}
	if got[0] != got[1] {
		t.Fatalf("seed %d: the backends ended in different states\n  bbolt:\n%s\n  postgres:\n%s\nreplay: go test -run 'TestDifferentialConcurrent' ./store/postgres/ -diff.seed=%d -diff.runs=1", seed, got[0], got[1], seed)
	}
}

// concRun starts diffWorkers goroutines at once, worker w calling
// fn(w, its store, its random source), and waits for them.
func concRun[S any](stores []S, seed uint64, fn func(w int, s S, r *rand.Rand)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range diffWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(w, stores[w%len(stores)], rand.New(rand.NewPCG(seed, uint64(w))))
		}()
	}
	close(start)
	wg.Wait()
}

// concTally counts outcomes per item, safe for the workers.
type concTally struct {
	mu sync.Mutex
	m  map[string]map[string]int
}

func (c *concTally) add(item, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]map[string]int{}
	}
	if c.m[item] == nil {
		c.m[item] = map[string]int{}
	}
	c.m[item][outcome]++
}

// once checks that each of n items had exactly one "ok" and every other
// call lost with the one error lost names.
func (c *concTally) once(t *testing.T, what string, n, calls int, lost string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		item := fmt.Sprintf("%s %d", what, i)
		got := c.m[item]
		if got["ok"] != 1 || got[lost] != calls-1 || len(got) > 2 {
			t.Errorf("%s: outcomes %v, want ok once and %s %d times", item, got, lost, calls-1)
		}
	}
}

// ---- ledger ----

func concLedger(t *testing.T, seed uint64, stores []ledgerstore.Store) string {
	const appends, checkpoints, maxReads = 12, 6, 150
	ctx := t.Context()
	var (
		mu       sync.Mutex
		appended []string // payloads whose append returned nil
		failed   []string // payloads whose transaction failed itself
		errs     []error
		stop     = make(chan struct{})
		readers  sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Two readers check every snapshot while the writers run.
	reads := 0
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range maxReads {
				select {
				case <-stop:
					return
				default:
				}
				err := stores[r%len(stores)].View(ctx, func(tx ledgerstore.ReadTx) error {
					n, err := tx.Size()
					if err != nil {
						return err
					}
					e, err := tx.Extent()
					if err != nil {
						return err
					}
					if e.Entries != n || e.LastEntry != n-1 || e.Hashes != n {
						return fmt.Errorf("a snapshot of size %d has extent %+v", n, e)
					}
					return nil
				})
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}
	var cps concTally
	concRun(stores, seed, func(w int, s ledgerstore.Store, r *rand.Rand) {
		for i := range appends {
			payload := fmt.Sprintf("w%d:%d", w, i)
			abort := r.IntN(5) == 0
			err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
				n, err := tx.Size()
				if err != nil {
					return err
				}
				if err := tx.PutEntry(n, []byte(payload)); err != nil {
					return err
				}
				if err := tx.PutHashes(n, []tlog.Hash{tlog.RecordHash([]byte(payload))}); err != nil {
					return err
				}
				if err := tx.SetSize(n + 1); err != nil {
					return err
				}
				if abort {
					return errDiffCallback
				}
				return nil
			})
			mu.Lock()
			switch {
			case err == nil && !abort:
				appended = append(appended, payload)
			case errors.Is(err, errDiffCallback) && abort:
				failed = append(failed, payload)
			default:
				errs = append(errs, fmt.Errorf("append %s (abort %v): %v", payload, abort, err))
			}
			mu.Unlock()
			if i%3 == 0 {
				size := int64(r.IntN(checkpoints))
				err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
					return tx.PutCheckpoint(size, []byte(fmt.Sprintf("cp%d by w%d", size, w)))
				})
				if err != nil {
					fail(err)
				}
				cps.add(fmt.Sprint(size), fmt.Sprintf("w%d", w))
			}
		}
	})
	close(stop)
	readers.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if reads == 0 {
		t.Error("no reader saw a snapshot while the writers ran")
	}

	// The final log.
	var entries []string
	var size int64
	var stored map[int64]string
	if err := stores[0].View(ctx, func(tx ledgerstore.ReadTx) error {
		var err error
		if size, err = tx.Size(); err != nil {
			return err
		}
		for i := range size {
			v, err := tx.Entry(i)
			if err != nil {
				return err
			}
			if v == nil {
				return fmt.Errorf("entry %d of %d missing", i, size)
			}
			hs, err := tx.ReadHashes([]int64{i})
			if err != nil {
				return err
			}
			if hs[0] != tlog.RecordHash(v) {
				return fmt.Errorf("entry %d's hash is another entry's", i)
			}
			entries = append(entries, string(v))
		}
		stored = map[int64]string{}
		return tx.Checkpoints(func(n int64, v []byte) error {
			stored[n] = string(v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(appended)) {
		t.Errorf("the log's size is %d after %d appends returned nil", size, len(appended))
	}
	slices.Sort(entries)
	slices.Sort(appended)
	if !slices.Equal(entries, appended) {
		t.Errorf("the log holds %d entries, not those of the %d appends that returned nil (failed ones: %d)", len(entries), len(appended), len(failed))
	}
	for _, f := range failed {
		if _, found := slices.BinarySearch(entries, f); found {
			t.Errorf("the failed append %s is in the log", f)
		}
	}
	// Of racing checkpoints of one size, one stayed: it is one of the
	// writers', and all calls returned nil (checked above).
	for n, v := range stored {
		if !strings.HasPrefix(v, fmt.Sprintf("cp%d by w", n)) {
			t.Errorf("checkpoint %d holds %q", n, v)
		}
	}
	t.Logf("%d appends (%d failed by their transaction), %d snapshots read meanwhile, %d checkpoint sizes", len(appended), len(failed), reads, len(stored))
	return fmt.Sprintf("size %d\nentries %s\nfailed %d\ncheckpoint sizes %d", size, strings.Join(entries, " "), len(failed), len(stored))
}

// ---- OAuth ----

func concOAuth(t *testing.T, seed uint64, stores []oauthstore.Store) string {
	const n = 12
	ctx := t.Context()
	exp := diffBase.Add(time.Hour)
	s := stores[0]
	if err := s.PutClient(ctx, oauthstore.Client{ID: "cl_c", Created: diffBase, Sealed: []byte("client")}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		req := oauthstore.Request{Hash: diffHash(i), ClientID: "cl_c", Expires: exp, Sealed: []byte(fmt.Sprint("req", i))}
		if err := s.PutRequest(ctx, req); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCode(ctx, oauthstore.Code{Hash: diffHash(diffCodeBase + i), Request: req.Hash, Expires: exp}); err != nil {
			t.Fatal(err)
		}
		tok := oauthstore.Token{Hash: diffHash(diffTokenBase + i), Kind: oauthstore.Refresh, Family: fmt.Sprint("f", i),
			UserID: "pt_c", ClientID: "cl_c", Expires: exp, Sealed: []byte("refresh")}
		if err := s.PutTokens(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	successor := func(w, i int) [32]byte { return diffHash(10_000 + w*100 + i) }
	var tally concTally
	concRun(stores, seed, func(w int, s oauthstore.Store, r *rand.Rand) {
		jobs := r.Perm(3 * n)
		for _, j := range jobs {
			i := j % n
			switch j / n {
			case 0:
				req, err := s.ClaimCode(ctx, diffHash(diffCodeBase+i))
				if err == nil && (req.Hash != diffHash(i) || string(req.Sealed) != fmt.Sprint("req", i) || req.ClientID != "cl_c") {
					tally.add(fmt.Sprintf("code %d", i), "another request")
					continue
				}
				tally.add(fmt.Sprintf("code %d", i), diffClass(err))
			case 1:
				next := oauthstore.Token{Hash: successor(w, i), Kind: oauthstore.Refresh, Family: fmt.Sprint("f", i),
					UserID: "pt_c", ClientID: "cl_c", Expires: exp, Sealed: []byte(fmt.Sprint("next by ", w))}
				tally.add(fmt.Sprintf("refresh %d", i), diffClass(s.RotateRefresh(ctx, diffHash(diffTokenBase+i), next)))
			default:
				tally.add(fmt.Sprintf("jti %d", i), diffClass(s.SpendJTI(ctx, diffHash(diffJTIBase+i), exp)))
			}
		}
	})
	tally.once(t, "code", n, diffWorkers, "oauth.ErrNotFound")
	tally.once(t, "refresh", n, diffWorkers, "oauth.ErrRotated")
	tally.once(t, "jti", n, diffWorkers, "oauth.ErrExists")
	var state []string
	for i := range n {
		if _, err := s.Request(ctx, diffHash(i)); !errors.Is(err, oauthstore.ErrNotFound) {
			t.Errorf("request %d after its code was claimed: %v", i, err)
		}
		old, err := s.Token(ctx, diffHash(diffTokenBase+i))
		if err != nil || !old.Rotated {
			t.Errorf("refresh token %d after the rotations: rotated %v, %v", i, old.Rotated, err)
		}
		var next []string
		for w := range diffWorkers {
			tok, err := s.Token(ctx, successor(w, i))
			switch {
			case err == nil:
				if string(tok.Sealed) != fmt.Sprint("next by ", w) {
					t.Errorf("refresh %d: worker %d's successor holds %q", i, w, tok.Sealed)
				}
				next = append(next, fmt.Sprint(w))
			case !errors.Is(err, oauthstore.ErrNotFound):
				t.Fatal(err)
			}
		}
		if len(next) != 1 {
			t.Errorf("refresh %d has %d successors stored (workers %v), want 1", i, len(next), next)
		}
		state = append(state, fmt.Sprintf("%d: request gone, refresh rotated %v, %d successor", i, old.Rotated, len(next)))
	}
	// Whatever was claimed is gone for good; what is left to sweep is
	// the same on both: the rotated tokens, their successors and the
	// assertion ids, all unexpired.
	swept, err := s.Sweep(ctx, exp.Add(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * n; swept != want {
		t.Errorf("the final sweep dropped %d rows, want %d", swept, want)
	}
	return strings.Join(state, "\n") + fmt.Sprintf("\nswept %d", swept)
}

// ---- web ----

func concWeb(t *testing.T, seed uint64, stores []webstore.Store) string {
	const (
		n        = 12 // ceremonies, invites, recovery codes, challenges
		sessions = 6  // per worker
		passkeys = 5  // the limit
	)
	ctx := t.Context()
	s := stores[0]
	for i := range n {
		if err := s.PutCeremony(ctx, webstore.Ceremony{Hash: diffHash(i), UserID: "pt_c", Created: diffBase, Expires: diffBase.Add(time.Hour), Sealed: []byte(fmt.Sprint("cer", i))}, 1000); err != nil {
			t.Fatal(err)
		}
		if err := s.PutInvite(ctx, webstore.Invite{Hash: diffHash(diffInviteBase + i), UserID: "pt_c", Expires: diffBase.Add(time.Hour), Sealed: []byte(fmt.Sprint("inv", i))}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	codes := make([]webstore.RecoveryCode, n)
	for i := range codes {
		codes[i] = webstore.RecoveryCode{Hash: diffHash(diffAppsBase + i), Sealed: []byte("u:pt_c")}
	}
	if err := s.ReplaceRecoveryCodes(ctx, "pt_c", codes); err != nil {
		t.Fatal(err)
	}
	sessionHash := func(w, i int) [32]byte { return diffHash(20_000 + w*100 + i) }
	// What each session should end with: the latest times of its creation
	// and of the touches that returned nil.
	type times struct{ seen, exp time.Time }
	var (
		mu      sync.Mutex
		want    = map[[32]byte]times{}
		deleted = map[[32]byte]bool{}
		tally   concTally
	)
	later := func(a, b time.Time) time.Time {
		if b.After(a) {
			return b
		}
		return a
	}
	concRun(stores, seed, func(w int, s webstore.Store, r *rand.Rand) {
		// Each worker first makes its own sessions, then does everything
		// else in its own random order.
		for i := range sessions {
			h := sessionHash(w, i)
			created := diffBase.Add(time.Duration(r.IntN(60)) * time.Second)
			err := s.CreateSession(ctx, webstore.Session{Hash: h, UserID: fmt.Sprint("pt_", w%3), Created: created, LastSeen: created,
				Expires: created.Add(time.Hour), Sealed: []byte("session")}, 1000)
			if err != nil {
				t.Errorf("worker %d: CreateSession: %v", w, err)
				return
			}
			mu.Lock()
			want[h] = times{later(want[h].seen, created), later(want[h].exp, created.Add(time.Hour))}
			mu.Unlock()
		}
		const kinds = 5
		for _, j := range r.Perm(kinds*n + diffWorkers*sessions) {
			if j >= kinds*n { // touch one of anyone's sessions, or delete one of mine
				k := j - kinds*n
				h := sessionHash(k/sessions, k%sessions)
				if k/sessions == w && k%sessions == 0 {
					if err := s.DeleteSession(ctx, h); err != nil {
						t.Errorf("DeleteSession: %v", err)
					}
					mu.Lock()
					deleted[h] = true
					mu.Unlock()
					continue
				}
				seen := diffBase.Add(time.Duration(r.IntN(3600)) * time.Second)
				exp := seen.Add(time.Duration(r.IntN(3)) * time.Hour)
				err := s.TouchSession(ctx, h, seen, exp)
				switch {
				case err == nil:
					mu.Lock()
					want[h] = times{later(want[h].seen, seen), later(want[h].exp, exp)}
					mu.Unlock()
				case !errors.Is(err, webstore.ErrNotFound):
					t.Errorf("TouchSession: %v", err)
				}
				continue
			}
			i := j % n
			switch j / n {
			case 0:
				c, err := s.TakeCeremony(ctx, diffHash(i))
				if err == nil && string(c.Sealed) != fmt.Sprint("cer", i) {
					err = errors.New("another ceremony")
				}
				tally.add(fmt.Sprintf("ceremony %d", i), diffClass(err))
			case 1:
				inv, err := s.ClaimInvite(ctx, diffHash(diffInviteBase+i))
				if err == nil && string(inv.Sealed) != fmt.Sprint("inv", i) {
					err = errors.New("another invite")
				}
				tally.add(fmt.Sprintf("invite %d", i), diffClass(err))
			case 2:
				u, err := s.UseRecoveryCode(ctx, diffHash(diffAppsBase+i), diffOpen)
				if err == nil && u != "pt_c" {
					err = errors.New("another user")
				}
				tally.add(fmt.Sprintf("recovery %d", i), diffClass(err))
			case 3:
				sp := webstore.SpentChallenge{Hash: diffHash(diffSpentBase + i), Created: diffBase, Expires: diffBase.Add(time.Minute)}
				tally.add(fmt.Sprintf("challenge %d", i), diffClass(s.SpendChallenge(ctx, sp, 1000)))
			default:
				id := []byte(fmt.Sprintf("w%d:%d", w, i))
				tally.add(fmt.Sprintf("passkey w%d:%d", w, i), diffClass(s.AddCredential(ctx, "pt_p", webstore.Credential{ID: id, Sealed: []byte("pk")}, passkeys)))
			}
		}
	})
	tally.once(t, "ceremony", n, diffWorkers, "web.ErrNotFound")
	tally.once(t, "invite", n, diffWorkers, "web.ErrNotFound")
	tally.once(t, "recovery", n, diffWorkers, "web.ErrNotFound")
	tally.once(t, "challenge", n, diffWorkers, "web.ErrExists")
	added := 0
	for item, got := range tally.m {
		if strings.HasPrefix(item, "passkey ") {
			added += got["ok"]
			if got["ok"]+got["web.ErrTooMany"] != 1 {
				t.Errorf("%s: %v", item, got)
			}
		}
	}
	if added != passkeys {
		t.Errorf("%d passkeys added at once under a limit of %d", added, passkeys)
	}
	if left, err := s.RecoveryCodesLeft(ctx, "pt_c"); err != nil || left != 0 {
		t.Errorf("recovery codes left: %d, %v", left, err)
	}

	// No session lost, none moved back.
	var state []string
	for w := range diffWorkers {
		for i := range sessions {
			h := sessionHash(w, i)
			got, err := s.Session(ctx, h)
			if deleted[h] {
				if !errors.Is(err, webstore.ErrNotFound) {
					t.Errorf("session w%d:%d was deleted, and is %v", w, i, err)
				}
				state = append(state, fmt.Sprintf("w%d:%d deleted", w, i))
				continue
			}
			if err != nil {
				t.Errorf("session w%d:%d is lost: %v", w, i, err)
				continue
			}
			if !got.LastSeen.Equal(want[h].seen) || !got.Expires.Equal(want[h].exp) {
				t.Errorf("session w%d:%d: last seen %s, expires %s; want the latest a touch gave, %s and %s", w, i,
					diffT(got.LastSeen), diffT(got.Expires), diffT(want[h].seen), diffT(want[h].exp))
			}
			// Which touches found the session depends on the interleaving
			// (one before its creation finds nothing), so the state
			// compared between the backends says only that it is there.
			state = append(state, fmt.Sprintf("w%d:%d there", w, i))
		}
	}

	// Every passkey removed at once, by every worker: exactly one stays.
	var removed concTally
	cs, err := s.Credentials(ctx, "pt_p")
	if err != nil {
		t.Fatal(err)
	}
	concRun(stores, seed, func(w int, s webstore.Store, r *rand.Rand) {
		for _, k := range r.Perm(len(cs)) {
			removed.add(string(cs[k].ID), diffClass(s.RemoveCredential(ctx, "pt_p", cs[k].ID)))
		}
	})
	oks := 0
	for _, got := range removed.m {
		oks += got["ok"]
		if got["ok"] > 1 {
			t.Errorf("a passkey removed %d times", got["ok"])
		}
	}
	left, err := s.Credentials(ctx, "pt_p")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || oks != len(cs)-1 {
		t.Errorf("after %d passkeys were all removed at once: %d removals returned nil, %d left; want %d and 1", len(cs), oks, len(left), len(cs)-1)
	}
	return strings.Join(state, "\n") + fmt.Sprintf("\npasskeys %d, then %d left", len(cs), len(left))
}
