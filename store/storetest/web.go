package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/web/webstore"
)

// WebFactory opens a fresh, empty web store for one test, and returns it
// with reopen, which closes it and opens the same data again (a restart)
// and returns the new handle. The factory closes whatever is open at the
// end of the test (t.Cleanup), and may check the data then too.
type WebFactory func(t *testing.T) (s webstore.Store, reopen func() webstore.Store)

// RunWeb runs the web store's conformance suite.
func RunWeb(t *testing.T, open WebFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s webstore.Store, reopen func() webstore.Store)
	}{
		{"Invites", testWebInvites},
		{"InviteSweep", testWebInviteSweep},
		{"InviteClaimRace", testWebInviteClaimRace},
		{"Credentials", testWebCredentials},
		{"CredentialLimitsRace", testWebCredentialLimitsRace},
		{"RecoveryCodes", testWebRecoveryCodes},
		{"RecoveryUseRace", testWebRecoveryUseRace},
		{"Sessions", testWebSessions},
		{"SessionSweepAndLimit", testWebSessionSweepAndLimit},
		{"Ceremonies", testWebCeremonies},
		{"CeremonyTakeRace", testWebCeremonyTakeRace},
		{"SpentChallenges", testWebSpentChallenges},
		{"SpendRace", testWebSpendRace},
		{"ForgetUser", testWebForgetUser},
		{"AppConsents", testWebAppConsents},
		{"Reopen", testWebReopen},
		{"TimeRange", testWebTimeRange},
		{"BadUserIDs", testWebBadUserIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := open(t)
			tc.fn(t, s, reopen)
		})
	}
}

// webNow is the suite's clock: a store must go by the times it is given,
// never by its own clock. The nanoseconds check that times round-trip
// exactly.
var webNow = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func h32(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func sealedOf(s string) []byte { return []byte("sealed:" + s) }

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// race runs fn in n goroutines at once and returns how many succeeded; every
// failure must be want.
func race(t *testing.T, n int, want error, fn func(i int) error) int {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, want):
			t.Fatalf("racing call: %v, want nil or %v", err, want)
		}
	}
	return won
}

func sameInvite(t *testing.T, got, want webstore.Invite) {
	t.Helper()
	if got.Hash != want.Hash || got.UserID != want.UserID || !got.Expires.Equal(want.Expires) || !bytes.Equal(got.Sealed, want.Sealed) {
		t.Fatalf("invite %+v, want %+v", got, want)
	}
}

func testWebInvites(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	a := webstore.Invite{Hash: h32("a"), UserID: "pt_a", Expires: webNow.Add(time.Hour), Sealed: sealedOf("a")}
	b := webstore.Invite{Hash: h32("b"), UserID: "pt_b", Expires: webNow.Add(2 * time.Hour), Sealed: sealedOf("b")}
	if _, err := s.Invite(ctx, a.Hash); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("missing invite: %v", err)
	}
	must(t, s.PutInvite(ctx, a, time.Time{}))
	must(t, s.PutInvite(ctx, b, webNow))
	got, err := s.Invite(ctx, a.Hash)
	must(t, err)
	sameInvite(t, got, a)
	got.Sealed[0] ^= 1 // a copy: the store's row is unchanged
	got, err = s.Invite(ctx, a.Hash)
	must(t, err)
	sameInvite(t, got, a)

	all, err := s.Invites(ctx)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("Invites: %d rows", len(all))
	}
	slices.SortFunc(all, func(x, y webstore.Invite) int { return x.Expires.Compare(y.Expires) })
	sameInvite(t, all[0], a)
	sameInvite(t, all[1], b)

	// Claim takes it once; release puts it back.
	got, err = s.ClaimInvite(ctx, a.Hash)
	must(t, err)
	sameInvite(t, got, a)
	_, err = s.ClaimInvite(ctx, a.Hash)
	wantErr(t, "second claim", err, webstore.ErrNotFound)
	_, err = s.Invite(ctx, a.Hash)
	wantErr(t, "claimed invite", err, webstore.ErrNotFound)
	must(t, s.ReleaseInvite(ctx, got))
	got, err = s.Invite(ctx, a.Hash)
	must(t, err)
	sameInvite(t, got, a)

	// Put replaces; an invite without an owner (an old row) is kept and
	// listed as such.
	a2 := a
	a2.Sealed, a2.Expires = sealedOf("a2"), webNow.Add(3*time.Hour)
	must(t, s.PutInvite(ctx, a2, time.Time{}))
	got, err = s.Invite(ctx, a.Hash)
	must(t, err)
	sameInvite(t, got, a2)
	old := webstore.Invite{Hash: h32("old"), Sealed: sealedOf("old")}
	must(t, s.PutInvite(ctx, old, time.Time{}))
	got, err = s.Invite(ctx, old.Hash)
	must(t, err)
	sameInvite(t, got, old)
}

func testWebInviteSweep(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	for i, exp := range []time.Duration{-3 * time.Hour, -2 * time.Hour, -time.Minute, time.Hour} {
		inv := webstore.Invite{Hash: h32(fmt.Sprint(i)), UserID: "pt_a", Expires: webNow.Add(exp), Sealed: sealedOf(fmt.Sprint(i))}
		must(t, s.PutInvite(ctx, inv, time.Time{}))
	}
	// Sweeping everything that expired before an hour and a half ago.
	must(t, s.PutInvite(ctx, webstore.Invite{Hash: h32("new"), UserID: "pt_b", Expires: webNow.Add(time.Hour), Sealed: sealedOf("new")}, webNow.Add(-90*time.Minute)))
	for i, want := range []bool{false, false, true, true} {
		_, err := s.Invite(ctx, h32(fmt.Sprint(i)))
		if (err == nil) != want {
			t.Errorf("invite %d after the sweep: %v, want kept=%v", i, err, want)
		}
	}
	if _, err := s.Invite(ctx, h32("new")); err != nil {
		t.Fatal(err)
	}
}

func testWebInviteClaimRace(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	inv := webstore.Invite{Hash: h32("race"), UserID: "pt_a", Expires: webNow.Add(time.Hour), Sealed: sealedOf("race")}
	must(t, s.PutInvite(ctx, inv, time.Time{}))
	won := race(t, 16, webstore.ErrNotFound, func(int) error {
		_, err := s.ClaimInvite(ctx, inv.Hash)
		return err
	})
	if won != 1 {
		t.Fatalf("%d claims won, want 1", won)
	}
}

func credIDs(t *testing.T, s webstore.Store, user string) []string {
	t.Helper()
	cs, err := s.Credentials(t.Context(), user)
	must(t, err)
	var out []string
	for _, c := range cs {
		if !bytes.Equal(c.Sealed, sealedOf(string(c.ID))) && !bytes.HasPrefix(c.Sealed, []byte("modified:")) {
			t.Fatalf("credential %q has sealed %q", c.ID, c.Sealed)
		}
		out = append(out, string(c.ID))
	}
	slices.Sort(out)
	return out
}

func addCred(t *testing.T, s webstore.Store, user, id string, max int) error {
	return s.AddCredential(t.Context(), user, webstore.Credential{ID: []byte(id), Sealed: sealedOf(id)}, max)
}

func testWebCredentials(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	_, err := s.Credential(ctx, []byte("c1"))
	wantErr(t, "missing credential", err, webstore.ErrNotFound)
	must(t, addCred(t, s, "pt_a", "c1", 3))
	must(t, addCred(t, s, "pt_a", "c2", 3))
	must(t, addCred(t, s, "pt_ab", "c3", 3)) // a user id that extends another
	wantErr(t, "duplicate id", addCred(t, s, "pt_a", "c1", 3), webstore.ErrExists)
	wantErr(t, "duplicate id of another user", addCred(t, s, "pt_b", "c2", 3), webstore.ErrExists)
	must(t, addCred(t, s, "pt_a", "c4", 3))
	wantErr(t, "past the limit", addCred(t, s, "pt_a", "c5", 3), webstore.ErrTooMany)
	if got := credIDs(t, s, "pt_a"); !slices.Equal(got, []string{"c1", "c2", "c4"}) {
		t.Fatalf("pt_a's credentials %v", got)
	}
	if got := credIDs(t, s, "pt_ab"); !slices.Equal(got, []string{"c3"}) {
		t.Fatalf("pt_ab's credentials %v", got)
	}
	if got := credIDs(t, s, "pt_none"); len(got) != 0 {
		t.Fatalf("a user without passkeys has %v", got)
	}
	c, err := s.Credential(ctx, []byte("c2"))
	must(t, err)
	if string(c.ID) != "c2" || !bytes.Equal(c.Sealed, sealedOf("c2")) {
		t.Fatalf("credential %+v", c)
	}

	// Modify: fn sees the row and replaces it; an error changes nothing.
	must(t, s.ModifyCredential(ctx, "pt_a", []byte("c1"), func(sealed []byte) ([]byte, error) {
		if !bytes.Equal(sealed, sealedOf("c1")) {
			return nil, fmt.Errorf("fn got %q", sealed)
		}
		return []byte("modified:c1"), nil
	}))
	boom := errors.New("boom")
	err = s.ModifyCredential(ctx, "pt_a", []byte("c1"), func([]byte) ([]byte, error) { return []byte("lost"), boom })
	wantErr(t, "modify with a failing fn", err, boom)
	c, err = s.Credential(ctx, []byte("c1"))
	must(t, err)
	if string(c.Sealed) != "modified:c1" {
		t.Fatalf("after modify: %q", c.Sealed)
	}
	called := false
	err = s.ModifyCredential(ctx, "pt_b", []byte("c1"), func(b []byte) ([]byte, error) { called = true; return b, nil })
	wantErr(t, "modify another user's", err, webstore.ErrNotFound)
	err = s.ModifyCredential(ctx, "pt_a", []byte("nope"), func(b []byte) ([]byte, error) { called = true; return b, nil })
	wantErr(t, "modify a missing one", err, webstore.ErrNotFound)
	if called {
		t.Fatal("fn ran for a credential that is not the user's")
	}

	// Remove: not another user's, never the last.
	wantErr(t, "remove another user's", s.RemoveCredential(ctx, "pt_b", []byte("c1")), webstore.ErrNotFound)
	wantErr(t, "remove a missing one", s.RemoveCredential(ctx, "pt_a", []byte("nope")), webstore.ErrNotFound)
	wantErr(t, "remove the last", s.RemoveCredential(ctx, "pt_ab", []byte("c3")), webstore.ErrLastPasskey)
	must(t, s.RemoveCredential(ctx, "pt_a", []byte("c1")))
	must(t, s.RemoveCredential(ctx, "pt_a", []byte("c4")))
	wantErr(t, "remove the last", s.RemoveCredential(ctx, "pt_a", []byte("c2")), webstore.ErrLastPasskey)
	_, err = s.Credential(ctx, []byte("c1"))
	wantErr(t, "removed credential", err, webstore.ErrNotFound)
	if got := credIDs(t, s, "pt_a"); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("after removals %v", got)
	}
	// A removed id can be registered again.
	must(t, addCred(t, s, "pt_a", "c1", 3))
}

func testWebCredentialLimitsRace(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	// Sixteen adds race for five places.
	won := race(t, 16, webstore.ErrTooMany, func(i int) error { return addCred(t, s, "pt_a", fmt.Sprint("c", i), 5) })
	if won != 5 || len(credIDs(t, s, "pt_a")) != 5 {
		t.Fatalf("%d adds won, %d stored, want 5", won, len(credIDs(t, s, "pt_a")))
	}
	// Sixteen adds of one id: one wins.
	won = race(t, 16, webstore.ErrExists, func(i int) error { return addCred(t, s, fmt.Sprint("pt_", i), "same", 5) })
	if won != 1 {
		t.Fatalf("%d adds of one id won", won)
	}
	// Removals race down to the last passkey, which stays.
	ids := credIDs(t, s, "pt_a")
	won = race(t, len(ids), webstore.ErrLastPasskey, func(i int) error { return s.RemoveCredential(ctx, "pt_a", []byte(ids[i])) })
	if won != len(ids)-1 || len(credIDs(t, s, "pt_a")) != 1 {
		t.Fatalf("%d removals won, %v left", won, credIDs(t, s, "pt_a"))
	}
}

func recoveryCodes(user string, names ...string) []webstore.RecoveryCode {
	var out []webstore.RecoveryCode
	for _, n := range names {
		out = append(out, webstore.RecoveryCode{Hash: h32(n), Sealed: sealedOf(user + "|" + n)})
	}
	return out
}

// openCode is web's part of UseRecoveryCode for the suite's rows.
func openCode(sealed []byte) (string, error) {
	user, _, ok := bytes.Cut(bytes.TrimPrefix(sealed, []byte("sealed:")), []byte("|"))
	if !ok {
		return "", errors.New("not a code")
	}
	return string(user), nil
}

func left(t *testing.T, s webstore.Store, user string) int {
	t.Helper()
	n, err := s.RecoveryCodesLeft(t.Context(), user)
	must(t, err)
	return n
}

func testWebRecoveryCodes(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	must(t, s.ReplaceRecoveryCodes(ctx, "pt_a", recoveryCodes("pt_a", "a1", "a2", "a3")))
	must(t, s.ReplaceRecoveryCodes(ctx, "pt_ab", recoveryCodes("pt_ab", "ab1")))
	if n := left(t, s, "pt_a"); n != 3 {
		t.Fatalf("%d codes left, want 3", n)
	}
	user, err := s.UseRecoveryCode(ctx, h32("a2"), func(sealed []byte) (string, error) {
		if !bytes.Equal(sealed, sealedOf("pt_a|a2")) {
			return "", fmt.Errorf("open got %q", sealed)
		}
		return openCode(sealed)
	})
	must(t, err)
	if user != "pt_a" || left(t, s, "pt_a") != 2 {
		t.Fatalf("use: user %q, %d left", user, left(t, s, "pt_a"))
	}
	_, err = s.UseRecoveryCode(ctx, h32("a2"), openCode)
	wantErr(t, "a used code", err, webstore.ErrNotFound)
	_, err = s.UseRecoveryCode(ctx, h32("nope"), openCode)
	wantErr(t, "an unknown code", err, webstore.ErrNotFound)
	// open refuses: nothing changes.
	boom := errors.New("does not open")
	_, err = s.UseRecoveryCode(ctx, h32("a1"), func([]byte) (string, error) { return "", boom })
	wantErr(t, "a code that does not open", err, boom)
	// open names another user than the code's: refused, nothing changes.
	_, err = s.UseRecoveryCode(ctx, h32("a1"), func([]byte) (string, error) { return "pt_b", nil })
	wantErr(t, "a code of another user", err, webstore.ErrNotFound)
	if n := left(t, s, "pt_a"); n != 2 {
		t.Fatalf("refused uses spent codes: %d left", n)
	}
	// A new set replaces the old.
	must(t, s.ReplaceRecoveryCodes(ctx, "pt_a", recoveryCodes("pt_a", "n1", "n2", "n3", "n4")))
	if n := left(t, s, "pt_a"); n != 4 {
		t.Fatalf("%d codes after replace", n)
	}
	_, err = s.UseRecoveryCode(ctx, h32("a1"), openCode)
	wantErr(t, "a replaced code", err, webstore.ErrNotFound)
	if user, err := s.UseRecoveryCode(ctx, h32("n3"), openCode); err != nil || user != "pt_a" {
		t.Fatalf("a new code: %q %v", user, err)
	}
	if n := left(t, s, "pt_ab"); n != 1 {
		t.Fatalf("another user's codes changed: %d", n)
	}
}

func testWebRecoveryUseRace(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	must(t, s.ReplaceRecoveryCodes(t.Context(), "pt_a", recoveryCodes("pt_a", "r1", "r2")))
	won := race(t, 16, webstore.ErrNotFound, func(int) error {
		_, err := s.UseRecoveryCode(t.Context(), h32("r1"), openCode)
		return err
	})
	if won != 1 || left(t, s, "pt_a") != 1 {
		t.Fatalf("%d uses won, %d left", won, left(t, s, "pt_a"))
	}
}

func session(name, user string, created, expires time.Time) webstore.Session {
	return webstore.Session{Hash: h32(name), UserID: user, Created: created, LastSeen: created, Expires: expires, Sealed: sealedOf(name)}
}

func sameSession(t *testing.T, got, want webstore.Session) {
	t.Helper()
	if got.Hash != want.Hash || got.UserID != want.UserID || !got.Created.Equal(want.Created) || !got.LastSeen.Equal(want.LastSeen) ||
		!got.Expires.Equal(want.Expires) || !bytes.Equal(got.Sealed, want.Sealed) {
		t.Fatalf("session %+v, want %+v", got, want)
	}
}

func hasSession(t *testing.T, s webstore.Store, name string) bool {
	t.Helper()
	_, err := s.Session(t.Context(), h32(name))
	if err != nil && !errors.Is(err, webstore.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func testWebSessions(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	a := session("a", "pt_a", webNow, webNow.Add(30*time.Minute))
	_, err := s.Session(ctx, a.Hash)
	wantErr(t, "missing session", err, webstore.ErrNotFound)
	must(t, s.CreateSession(ctx, a, 100))
	got, err := s.Session(ctx, a.Hash)
	must(t, err)
	sameSession(t, got, a)

	// Touch moves last-seen and expiry forward, never back.
	a.LastSeen, a.Expires = webNow.Add(5*time.Minute), webNow.Add(35*time.Minute)
	must(t, s.TouchSession(ctx, a.Hash, a.LastSeen, a.Expires))
	must(t, s.TouchSession(ctx, a.Hash, webNow.Add(time.Minute), webNow.Add(31*time.Minute)))
	got, err = s.Session(ctx, a.Hash)
	must(t, err)
	sameSession(t, got, a)
	wantErr(t, "touch a missing session", s.TouchSession(ctx, h32("nope"), webNow, webNow.Add(time.Hour)), webstore.ErrNotFound)
	if hasSession(t, s, "nope") {
		t.Fatal("touch made a session")
	}

	// Delete; a missing one is fine, and touch does not bring it back.
	must(t, s.DeleteSession(ctx, a.Hash))
	must(t, s.DeleteSession(ctx, a.Hash))
	wantErr(t, "touch a deleted session", s.TouchSession(ctx, a.Hash, webNow.Add(10*time.Minute), webNow.Add(40*time.Minute)), webstore.ErrNotFound)
	if hasSession(t, s, "a") {
		t.Fatal("a deleted session is back")
	}

	// DeleteSessions: a user's, by match, or all; no one else's.
	for _, n := range []string{"a1", "a2", "a3"} {
		must(t, s.CreateSession(ctx, session(n, "pt_a", webNow, webNow.Add(time.Hour)), 100))
	}
	must(t, s.CreateSession(ctx, session("ab", "pt_ab", webNow, webNow.Add(time.Hour)), 100))
	n, err := s.DeleteSessions(ctx, "pt_a", func(r webstore.Session) bool {
		if r.UserID != "pt_a" {
			t.Errorf("match saw %q's session", r.UserID)
		}
		return bytes.Equal(r.Sealed, sealedOf("a2"))
	})
	must(t, err)
	if n != 1 || hasSession(t, s, "a2") || !hasSession(t, s, "a1") || !hasSession(t, s, "a3") {
		t.Fatalf("DeleteSessions with a match removed %d", n)
	}
	n, err = s.DeleteSessions(ctx, "pt_a", nil)
	must(t, err)
	if n != 2 || hasSession(t, s, "a1") || hasSession(t, s, "a3") || !hasSession(t, s, "ab") {
		t.Fatalf("DeleteSessions removed %d", n)
	}
}

func testWebSessionSweepAndLimit(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	// Ten sessions that expire within the hour, two that don't.
	for i := range 10 {
		must(t, s.CreateSession(ctx, session(fmt.Sprint("old", i), "pt_a", webNow, webNow.Add(time.Duration(i+1)*time.Minute)), 100))
	}
	must(t, s.CreateSession(ctx, session("live1", "pt_a", webNow, webNow.Add(2*time.Hour)), 100))
	must(t, s.CreateSession(ctx, session("live2", "pt_b", webNow, webNow.Add(3*time.Hour)), 100))
	// An hour later, a new session sweeps the expired ones.
	later := webNow.Add(time.Hour)
	must(t, s.CreateSession(ctx, session("new", "pt_b", later, later.Add(30*time.Minute)), 100))
	for i := range 10 {
		if hasSession(t, s, fmt.Sprint("old", i)) {
			t.Fatalf("expired session old%d not swept", i)
		}
	}
	for _, n := range []string{"live1", "live2", "new"} {
		if !hasSession(t, s, n) {
			t.Fatalf("live session %s swept", n)
		}
	}
	// At the limit (4), a new session drops the one that expires soonest
	// (new, at later+30m), and only it.
	must(t, s.CreateSession(ctx, session("fourth", "pt_c", later, later.Add(4*time.Hour)), 4))
	must(t, s.CreateSession(ctx, session("fifth", "pt_c", later, later.Add(5*time.Hour)), 4))
	for n, want := range map[string]bool{"new": false, "live1": true, "live2": true, "fourth": true, "fifth": true} {
		if hasSession(t, s, n) != want {
			t.Errorf("at the limit, session %s present=%v, want %v", n, !want, want)
		}
	}
}

func ceremony(name, user string, created time.Time) webstore.Ceremony {
	return webstore.Ceremony{Hash: h32(name), UserID: user, Created: created, Expires: created.Add(5 * time.Minute), Sealed: sealedOf(name)}
}

func testWebCeremonies(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	a := ceremony("a", "pt_a", webNow)
	signin := ceremony("signin", "", webNow) // a sign-in names no one
	must(t, s.PutCeremony(ctx, a, 3))
	must(t, s.PutCeremony(ctx, signin, 3))
	got, err := s.TakeCeremony(ctx, a.Hash)
	must(t, err)
	if got.Hash != a.Hash || got.UserID != "pt_a" || !got.Created.Equal(a.Created) || !got.Expires.Equal(a.Expires) || !bytes.Equal(got.Sealed, a.Sealed) {
		t.Fatalf("taken %+v, want %+v", got, a)
	}
	_, err = s.TakeCeremony(ctx, a.Hash)
	wantErr(t, "a ceremony taken twice", err, webstore.ErrNotFound)
	got, err = s.TakeCeremony(ctx, signin.Hash)
	must(t, err)
	if got.UserID != "" {
		t.Fatalf("sign-in ceremony user %q", got.UserID)
	}

	// Full of live ceremonies: refused.
	for i := range 3 {
		must(t, s.PutCeremony(ctx, ceremony(fmt.Sprint("c", i), "", webNow.Add(time.Duration(i)*time.Minute)), 3))
	}
	wantErr(t, "a put when full", s.PutCeremony(ctx, ceremony("more", "", webNow.Add(3*time.Minute)), 3), webstore.ErrFull)
	// Once the first has expired, there is room again: the expired one
	// goes, the live ones stay.
	must(t, s.PutCeremony(ctx, ceremony("more", "", webNow.Add(5*time.Minute)), 3))
	if _, err := s.TakeCeremony(ctx, h32("c0")); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("the expired ceremony: %v", err)
	}
	for _, n := range []string{"c1", "c2", "more"} {
		if _, err := s.TakeCeremony(ctx, h32(n)); err != nil {
			t.Fatalf("ceremony %s: %v", n, err)
		}
	}
	// Expired ones are swept by later puts, not only when full.
	for i := range 10 {
		must(t, s.PutCeremony(ctx, ceremony(fmt.Sprint("x", i), "pt_a", webNow), 100))
	}
	must(t, s.PutCeremony(ctx, ceremony("late", "", webNow.Add(time.Hour)), 100))
	for i := range 10 {
		if _, err := s.TakeCeremony(ctx, h32(fmt.Sprint("x", i))); !errors.Is(err, webstore.ErrNotFound) {
			t.Fatalf("expired ceremony x%d not swept: %v", i, err)
		}
	}
}

func testWebCeremonyTakeRace(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	c := ceremony("race", "pt_a", webNow)
	must(t, s.PutCeremony(t.Context(), c, 10))
	won := race(t, 16, webstore.ErrNotFound, func(int) error {
		_, err := s.TakeCeremony(t.Context(), c.Hash)
		return err
	})
	if won != 1 {
		t.Fatalf("%d takes won, want 1", won)
	}
}

func spent(name string, created time.Time) webstore.SpentChallenge {
	return webstore.SpentChallenge{Hash: h32(name), Created: created, Expires: created.Add(2 * time.Minute)}
}

// testWebSpentChallenges: a challenge is spent once; the table is bounded,
// a full one refuses rather than forget a live row, and expired rows make
// room; the rows survive a reopen.
func testWebSpentChallenges(t *testing.T, s webstore.Store, reopen func() webstore.Store) {
	ctx := t.Context()
	must(t, s.SpendChallenge(ctx, spent("a", webNow), 3))
	wantErr(t, "spending a challenge twice", s.SpendChallenge(ctx, spent("a", webNow.Add(time.Second)), 3), webstore.ErrExists)
	must(t, s.SpendChallenge(ctx, spent("b", webNow), 3))
	must(t, s.SpendChallenge(ctx, spent("c", webNow.Add(time.Minute)), 3))
	wantErr(t, "a spend when full", s.SpendChallenge(ctx, spent("d", webNow.Add(time.Minute)), 3), webstore.ErrFull)
	// Nothing was dropped to make room: every live row still refuses.
	for _, n := range []string{"a", "b", "c"} {
		wantErr(t, "spending "+n+" again when full", s.SpendChallenge(ctx, spent(n, webNow.Add(time.Minute)), 3), webstore.ErrExists)
	}
	s = reopen()
	wantErr(t, "spending a again after reopening", s.SpendChallenge(ctx, spent("a", webNow.Add(time.Minute)), 3), webstore.ErrExists)
	// a and b expired at +2m; d fits then, and a's row is gone.
	later := webNow.Add(2*time.Minute + time.Second)
	must(t, s.SpendChallenge(ctx, spent("d", later), 3))
	must(t, s.SpendChallenge(ctx, spent("a", later), 3))
	wantErr(t, "c, still live", s.SpendChallenge(ctx, spent("c", later), 3), webstore.ErrExists)
	// A spend that is already past its row's expiry is refused: its row
	// could be swept the moment it was stored, and then the challenge
	// answered again.
	dead := spent("e", later)
	dead.Expires = dead.Created
	wantErr(t, "a spend at its own expiry", s.SpendChallenge(ctx, dead, 10), webstore.ErrExists)
}

func testWebSpendRace(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	won := race(t, 16, webstore.ErrExists, func(int) error {
		return s.SpendChallenge(t.Context(), spent("race", webNow), 10)
	})
	if won != 1 {
		t.Fatalf("%d spends won, want 1", won)
	}
}

// fillUser stores one of everything for a user, names prefixed by p.
func fillUser(t *testing.T, s webstore.Store, user, p string) {
	ctx := t.Context()
	must(t, s.PutInvite(ctx, webstore.Invite{Hash: h32(p + "inv"), UserID: user, Expires: webNow.Add(time.Hour), Sealed: sealedOf(p + "inv")}, time.Time{}))
	must(t, addCred(t, s, user, p+"c1", 5))
	must(t, addCred(t, s, user, p+"c2", 5))
	must(t, s.ReplaceRecoveryCodes(ctx, user, recoveryCodes(user, p+"r1", p+"r2")))
	must(t, s.CreateSession(ctx, session(p+"s", user, webNow, webNow.Add(time.Hour)), 100))
	must(t, s.PutCeremony(ctx, ceremony(p+"cer", user, webNow), 100))
}

// userLeft lists what is stored of a user's rows, as fillUser made them.
func userLeft(t *testing.T, s webstore.Store, user, p string) []string {
	ctx := t.Context()
	var out []string
	if _, err := s.Invite(ctx, h32(p+"inv")); err == nil {
		out = append(out, "invite")
	}
	if ids := credIDs(t, s, user); len(ids) > 0 {
		out = append(out, "passkeys listed")
	}
	for _, id := range []string{p + "c1", p + "c2"} {
		if _, err := s.Credential(ctx, []byte(id)); err == nil {
			out = append(out, "passkey "+id)
		}
	}
	if left(t, s, user) > 0 {
		out = append(out, "recovery codes")
	}
	if _, err := s.UseRecoveryCode(ctx, h32(p+"r1"), openCode); err == nil {
		out = append(out, "a usable recovery code")
	}
	if hasSession(t, s, p+"s") {
		out = append(out, "session")
	}
	if _, err := s.TakeCeremony(ctx, h32(p+"cer")); err == nil {
		out = append(out, "ceremony")
	}
	return out
}

func testWebForgetUser(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	fillUser(t, s, "pt_a", "a-")
	fillUser(t, s, "pt_ab", "ab-") // a user id that extends pt_a's
	signin := ceremony("signin", "", webNow)
	must(t, s.PutCeremony(ctx, signin, 100))
	must(t, s.ForgetUser(ctx, "pt_a"))
	if got := userLeft(t, s, "pt_a", "a-"); len(got) != 0 {
		t.Fatalf("after ForgetUser, still stored: %v", got)
	}
	// The id is free again, and the session limit counts right.
	must(t, addCred(t, s, "pt_c", "a-c1", 1))
	if got := userLeft(t, s, "pt_ab", "ab-"); len(got) != 8 {
		t.Fatalf("another user's rows after ForgetUser: %v", got)
	}
	if _, err := s.TakeCeremony(ctx, signin.Hash); err != nil {
		t.Fatalf("a sign-in ceremony went with the user: %v", err)
	}
	must(t, s.ForgetUser(ctx, "pt_nobody"))
}

func testWebReopen(t *testing.T, s webstore.Store, reopen func() webstore.Store) {
	ctx := t.Context()
	fillUser(t, s, "pt_a", "a-")
	a := session("a-s", "pt_a", webNow, webNow.Add(time.Hour))
	a.LastSeen, a.Expires = webNow.Add(time.Minute), webNow.Add(61*time.Minute)
	must(t, s.TouchSession(ctx, a.Hash, a.LastSeen, a.Expires))
	// Two ceremonies fill a limit of three with the one fillUser made.
	must(t, s.PutCeremony(ctx, ceremony("c2", "", webNow), 3))
	must(t, s.PutCeremony(ctx, ceremony("c3", "", webNow), 3))

	s = reopen()
	got, err := s.Session(ctx, a.Hash)
	must(t, err)
	sameSession(t, got, a)
	wantErr(t, "a put when full, after reopening", s.PutCeremony(ctx, ceremony("c4", "", webNow), 3), webstore.ErrFull)
	if got := userLeft(t, s, "pt_a", "a-"); len(got) != 8 {
		t.Fatalf("after reopening: %v", got)
	}
}

// testWebAppConsents: remembered app consents are put (replacing the
// same hash), listed per user, deleted only by their user, bounded per
// user, survive a reopen and go with ForgetUser.
func testWebAppConsents(t *testing.T, s webstore.Store, reopen func() webstore.Store) {
	ctx := t.Context()
	c := func(name, user string) webstore.AppConsent {
		return webstore.AppConsent{Hash: h32(name), UserID: user, Created: webNow, Sealed: sealedOf(name)}
	}
	must(t, s.PutAppConsent(ctx, c("a1", "cl_a"), 2))
	must(t, s.PutAppConsent(ctx, c("a2", "cl_a"), 2))
	wantErr(t, "a third past the limit", s.PutAppConsent(ctx, c("a3", "cl_a"), 2), webstore.ErrTooMany)
	again := c("a2", "cl_a")
	again.Sealed, again.Created = sealedOf("a2 again"), webNow.Add(time.Hour)
	must(t, s.PutAppConsent(ctx, again, 2)) // a replacement is no new one
	if err := s.PutAppConsent(ctx, c("a1", "cl_ab"), 2); err == nil {
		t.Fatal("another user's put replaced cl_a's row")
	}
	must(t, s.PutAppConsent(ctx, c("b1", "cl_ab"), 2))
	s = reopen()
	got, err := s.AppConsent(ctx, h32("a2"))
	must(t, err)
	if got.UserID != "cl_a" || !got.Created.Equal(again.Created) || !bytes.Equal(got.Sealed, again.Sealed) {
		t.Fatalf("after reopen: %+v", got)
	}
	list, err := s.AppConsents(ctx, "cl_a")
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("cl_a's consents: %d", len(list))
	}
	wantErr(t, "another user's delete", s.DeleteAppConsent(ctx, "cl_ab", h32("a1")), webstore.ErrNotFound)
	must(t, s.DeleteAppConsent(ctx, "cl_a", h32("a1")))
	wantErr(t, "a deleted one", s.DeleteAppConsent(ctx, "cl_a", h32("a1")), webstore.ErrNotFound)
	_, err = s.AppConsent(ctx, h32("a1"))
	wantErr(t, "a deleted one read", err, webstore.ErrNotFound)
	must(t, s.ForgetUser(ctx, "cl_a"))
	if list, err := s.AppConsents(ctx, "cl_a"); err != nil || len(list) != 0 {
		t.Fatalf("after ForgetUser: %v, %v", list, err)
	}
	if list, err := s.AppConsents(ctx, "cl_ab"); err != nil || len(list) != 1 {
		t.Fatalf("another user's after ForgetUser: %v, %v", list, err)
	}
}

// The edges of the times a web or OAuth row keeps: signed Unix
// nanoseconds, less the smallest (the zero time's), and the zero time.
// Beyond them a store refuses: one keeping nanoseconds in a bigint would
// wrap a year-3000 expiry around into the past.
var (
	timeKeptMin  = time.Unix(0, math.MinInt64+1).UTC()
	timeKeptMax  = time.Unix(0, math.MaxInt64).UTC()
	timesRefused = []time.Time{
		time.Unix(0, math.MinInt64).UTC(),
		timeKeptMax.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
	}
)

// testWebTimeRange: the extreme times and the zero time come back as they
// were put; a time beyond them is refused, and nothing is stored. (Found
// by store/postgres's TestDifferentialWeb: bbolt read the zero time back
// as 1754, and both wrapped times beyond 2262 around.)
func testWebTimeRange(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	for i, tm := range []time.Time{timeKeptMin, timeKeptMax, {}} {
		sess := webstore.Session{Hash: h32(fmt.Sprint("kept", i)), UserID: "pt_a", Created: tm, LastSeen: tm, Expires: timeKeptMax, Sealed: sealedOf("s")}
		if i == 2 {
			sess.Expires = time.Time{}
		}
		must(t, s.CreateSession(ctx, sess, 100))
		sameSession(t, getSession(t, s, sess.Hash), sess)
		inv := webstore.Invite{Hash: h32(fmt.Sprint("inv", i)), UserID: "pt_a", Expires: tm, Sealed: sealedOf("i")}
		must(t, s.PutInvite(ctx, inv, time.Time{}))
		got, err := s.Invite(ctx, inv.Hash)
		must(t, err)
		sameInvite(t, got, inv)
	}
	touched := webstore.Session{Hash: h32("touched"), UserID: "pt_a", Created: webNow, LastSeen: webNow, Expires: webNow.Add(time.Hour)}
	must(t, s.CreateSession(ctx, touched, 100))
	for _, tm := range timesRefused {
		h := h32("refused " + tm.String())
		if err := s.CreateSession(ctx, webstore.Session{Hash: h, UserID: "pt_a", Created: webNow, LastSeen: webNow, Expires: tm}, 100); err == nil {
			t.Errorf("a session expiring %s was stored", tm)
		}
		if _, err := s.Session(ctx, h); !errors.Is(err, webstore.ErrNotFound) {
			t.Errorf("the refused session: %v", err)
		}
		if err := s.TouchSession(ctx, touched.Hash, webNow, tm); err == nil {
			t.Errorf("a touch to %s was taken", tm)
		}
		if err := s.PutCeremony(ctx, webstore.Ceremony{Hash: h, Created: tm, Expires: webNow}, 100); err == nil {
			t.Errorf("a ceremony created %s was stored", tm)
		}
		if err := s.PutInvite(ctx, webstore.Invite{Hash: h, UserID: "pt_a", Expires: tm}, time.Time{}); err == nil {
			t.Errorf("an invite expiring %s was stored", tm)
		}
		if err := s.SpendChallenge(ctx, webstore.SpentChallenge{Hash: h, Created: webNow, Expires: tm}, 100); err == nil {
			t.Errorf("a challenge spent until %s was stored", tm)
		}
		if err := s.PutAppConsent(ctx, webstore.AppConsent{Hash: h, UserID: "pt_a", Created: tm}, 100); err == nil {
			t.Errorf("an app consent made %s was stored", tm)
		}
	}
	// The touch refused left the session as it was.
	if got := getSession(t, s, touched.Hash); !got.Expires.Equal(touched.Expires) {
		t.Fatalf("after refused touches the session expires %s", got.Expires)
	}
}

func getSession(t *testing.T, s webstore.Store, h [32]byte) webstore.Session {
	t.Helper()
	got, err := s.Session(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// testWebBadUserIDs: a user id that is not UTF-8 text without NUL bytes
// is refused, by every call that takes one, and nothing is stored. (Found
// by store/postgres's TestDifferentialWeb: PostgreSQL's text columns
// refused them, bbolt stored them, and its user indexes, keyed by the id
// and a NUL byte, then counted "pt_a\x00b"'s passkeys as "pt_a"'s.)
func testWebBadUserIDs(t *testing.T, s webstore.Store, _ func() webstore.Store) {
	ctx := t.Context()
	must(t, s.AddCredential(ctx, "pt_a", webstore.Credential{ID: []byte("ca"), Sealed: sealedOf("ca")}, 5))
	for _, u := range []string{"pt_a\x00b", "pt_\xff"} {
		calls := []struct {
			what string
			err  error
		}{
			{"AddCredential", s.AddCredential(ctx, u, webstore.Credential{ID: []byte("c" + u), Sealed: sealedOf("c")}, 5)},
			{"CreateSession", s.CreateSession(ctx, session("s"+u, u, webNow, webNow.Add(time.Hour)), 100)},
			{"PutCeremony", s.PutCeremony(ctx, webstore.Ceremony{Hash: h32("c" + u), UserID: u, Created: webNow, Expires: webNow.Add(time.Hour)}, 100)},
			{"PutInvite", s.PutInvite(ctx, webstore.Invite{Hash: h32("i" + u), UserID: u, Expires: webNow.Add(time.Hour)}, time.Time{})},
			{"ReplaceRecoveryCodes", s.ReplaceRecoveryCodes(ctx, u, recoveryCodes(u, "r1"))},
			{"PutAppConsent", s.PutAppConsent(ctx, webstore.AppConsent{Hash: h32("a" + u), UserID: u, Created: webNow}, 5)},
			{"RemoveCredential", s.RemoveCredential(ctx, u, []byte("ca"))},
			{"ForgetUser", s.ForgetUser(ctx, u)},
		}
		for _, c := range calls {
			if c.err == nil {
				t.Errorf("%s for user %q: accepted", c.what, u)
			}
		}
		if _, err := s.Credentials(ctx, u); err == nil {
			t.Errorf("Credentials of %q: accepted", u)
		}
		if _, err := s.Credential(ctx, []byte("c"+u)); !errors.Is(err, webstore.ErrNotFound) {
			t.Errorf("the refused passkey: %v", err)
		}
		if _, err := s.Session(ctx, h32("s"+u)); !errors.Is(err, webstore.ErrNotFound) {
			t.Errorf("the refused session: %v", err)
		}
	}
	// pt_a's only passkey is still her last.
	wantErr(t, "removing pt_a's only passkey", s.RemoveCredential(ctx, "pt_a", []byte("ca")), webstore.ErrLastPasskey)
}
