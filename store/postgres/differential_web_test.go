package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/web/webstore"
)

// TestDifferentialWeb: random calls on the web UI's store
// (webstore.Store) against bbolt and PostgreSQL: invites (claimed twice,
// released, swept, without an owner), passkeys (a duplicate id, ids with
// NUL bytes and one a prefix of another, per-user limits, the last
// passkey, another user's), recovery codes (used twice, naming another
// user, refused by their opener), sessions (table limits that evict,
// touches that must never move a time back, deletions by match),
// ceremonies (taken twice, a full table), spent sign-in challenges (spent
// twice, created not before they expire), remembered app consents and
// forgetting a user; users "pt_" beside "ptx_", user ids with a NUL byte
// or not UTF-8 (refused by both), times from the smallest
// to the largest Unix nanosecond and one nanosecond apart. Each result,
// and every 25 calls the whole store, must be the same on both.
//
//	go test -run TestDifferentialWeb ./store/postgres/ -diff.seed=N -diff.runs=1
func TestDifferentialWeb(t *testing.T) {
	diffRepeat(t, "TestDifferentialWeb", 500, 2, func(t *testing.T, seed uint64, steps int) {
		bolt, pg := openBolt(t).Web(), openTest(t).Web()
		gen := &diffWebGen{}
		diffStores(t, "TestDifferentialWeb", seed, steps, 25, bolt, pg, gen.next, gen.state)
	})
}

var (
	diffWebUsers = []string{"pt_a", "ptx_a", "pt_", "pt_b", "pt_a\x00b", "pt_\xff"} // the last two refused by both
	diffCredIDs  = []string{"c1", "c2", "c1\x00", "c", "\x00", "c1\x00x"}
)

// The hashes each kind of row draws from when it may collide (invites,
// spent challenges, app consents); sessions, ceremonies and recovery
// codes are new each time they are made (their ids are random secrets),
// and looked up among those made and a few never made.
const (
	diffInvites, diffSpent, diffAppN            = 5, 5, 6
	diffInviteBase, diffSpentBase, diffAppsBase = 400, 500, 600
	diffFreshBase                               = 1000
)

// diffWebGen draws web-store calls; it remembers the session, ceremony
// and recovery-code hashes it has made.
type diffWebGen struct {
	fresh                          int
	sessions, ceremonies, recovery [][32]byte
}

func (w *diffWebGen) newHash() [32]byte {
	w.fresh++
	return diffHash(diffFreshBase + w.fresh)
}

// made picks one of hs, or now and then a hash never made.
func (w *diffWebGen) made(g *diffRand, hs [][32]byte) [32]byte {
	switch {
	case len(hs) == 0 || g.one(6):
		return diffHash(diffFreshBase - 1 - g.n(3))
	case g.one(2):
		return hs[max(0, len(hs)-1-g.n(3))] // one of the last few
	}
	return hs[g.n(len(hs))]
}

func diffInvite(inv webstore.Invite) string {
	return fmt.Sprintf("{%s %q %s %s}", diffH(inv.Hash), inv.UserID, diffT(inv.Expires), diffX(inv.Sealed))
}

func diffCreds(cs []webstore.Credential) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("{%q %s}", c.ID, diffX(c.Sealed)))
	}
	slices.Sort(out) // "in no particular order"
	return strings.Join(out, " ")
}

func diffSession(s webstore.Session) string {
	return fmt.Sprintf("{%s %q %s %s %s %s}", diffH(s.Hash), s.UserID, diffT(s.Created), diffT(s.LastSeen), diffT(s.Expires), diffX(s.Sealed))
}

func diffCeremony(c webstore.Ceremony) string {
	return fmt.Sprintf("{%s %q %s %s %s}", diffH(c.Hash), c.UserID, diffT(c.Created), diffT(c.Expires), diffX(c.Sealed))
}

func diffApp(c webstore.AppConsent) string {
	return fmt.Sprintf("{%s %q %s %s}", diffH(c.Hash), c.UserID, diffT(c.Created), diffX(c.Sealed))
}

// diffOpen is UseRecoveryCode's opener: a code's sealed bytes are "u:"
// and its user; anything else it refuses.
func diffOpen(sealed []byte) (string, error) {
	if u, ok := strings.CutPrefix(string(sealed), "u:"); ok {
		return u, nil
	}
	return "", errDiffCallback
}

type webStep = diffStoreStep[webstore.Store]

// later draws an expiry for a row made at created: mostly after it, now
// and then any time (before it, long past, the largest).
func (g *diffRand) later(created time.Time) time.Time {
	if g.one(4) {
		return g.time()
	}
	return created.Add(time.Duration(1+g.n(10)) * time.Minute)
}

// max draws a table limit: mostly roomy, now and then tight enough to
// evict or refuse.
func (g *diffRand) max() int {
	if g.one(3) {
		return 1 + g.n(4)
	}
	return 100
}

func (w *diffWebGen) next(g *diffRand) webStep {
	user := func() string {
		if g.one(12) {
			return g.str(diffWebUsers[4:]) // not UTF-8 text without NUL bytes
		}
		return g.str(diffWebUsers[:4])
	}
	switch g.n(28) {
	case 0:
		inv := webstore.Invite{Hash: diffHash(diffInviteBase + g.n(diffInvites)), Sealed: g.bytes(8)}
		if !g.one(5) {
			inv.UserID, inv.Expires = user(), g.time()
		}
		var sweep time.Time
		if g.one(3) {
			sweep = g.time()
		}
		return webStep{fmt.Sprintf("PutInvite(%s, sweep %s)", diffInvite(inv), diffT(sweep)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.PutInvite(ctx, inv, sweep))
		}}
	case 1:
		h := diffHash(diffInviteBase + g.n(diffInvites))
		return webStep{fmt.Sprintf("Invite(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			inv, err := s.Invite(ctx, h)
			return diffInvite(inv) + " " + diffClass(err)
		}}
	case 2:
		h := diffHash(diffInviteBase + g.n(diffInvites))
		return webStep{fmt.Sprintf("ClaimInvite(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			inv, err := s.ClaimInvite(ctx, h)
			return diffInvite(inv) + " " + diffClass(err)
		}}
	case 3:
		inv := webstore.Invite{Hash: diffHash(diffInviteBase + g.n(diffInvites)), UserID: user(), Expires: g.time(), Sealed: g.bytes(8)}
		return webStep{fmt.Sprintf("ReleaseInvite(%s)", diffInvite(inv)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.ReleaseInvite(ctx, inv))
		}}
	case 4:
		return webStep{"Invites()", func(ctx context.Context, s webstore.Store) string {
			invs, err := s.Invites(ctx)
			var out []string
			for _, inv := range invs {
				out = append(out, diffInvite(inv))
			}
			slices.Sort(out)
			return strings.Join(out, " ") + " " + diffClass(err)
		}}
	case 5, 6:
		u, c, max := user(), webstore.Credential{ID: []byte(g.str(diffCredIDs)), Sealed: g.bytes(8)}, 1+g.n(3)
		return webStep{fmt.Sprintf("AddCredential(%q, %q, max %d)", u, c.ID, max), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.AddCredential(ctx, u, c, max))
		}}
	case 7:
		id := []byte(g.str(diffCredIDs))
		return webStep{fmt.Sprintf("Credential(%q)", id), func(ctx context.Context, s webstore.Store) string {
			c, err := s.Credential(ctx, id)
			return diffCreds([]webstore.Credential{c}) + " " + diffClass(err)
		}}
	case 8:
		u := user()
		return webStep{fmt.Sprintf("Credentials(%q)", u), func(ctx context.Context, s webstore.Store) string {
			cs, err := s.Credentials(ctx, u)
			return diffCreds(cs) + " " + diffClass(err)
		}}
	case 9:
		u, id, nv, refuse := user(), []byte(g.str(diffCredIDs)), g.bytes(8), g.one(4)
		return webStep{fmt.Sprintf("ModifyCredential(%q, %q, to %s, refuse %v)", u, id, diffX(nv), refuse), func(ctx context.Context, s webstore.Store) string {
			var saw string
			err := s.ModifyCredential(ctx, u, id, func(sealed []byte) ([]byte, error) {
				saw = diffX(sealed)
				if refuse {
					return nil, errDiffCallback
				}
				return nv, nil
			})
			return "saw " + saw + " " + diffClass(err)
		}}
	case 10:
		u, id := user(), []byte(g.str(diffCredIDs))
		return webStep{fmt.Sprintf("RemoveCredential(%q, %q)", u, id), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.RemoveCredential(ctx, u, id))
		}}
	case 11:
		u := user()
		codes := make([]webstore.RecoveryCode, g.n(4))
		for i := range codes {
			codes[i] = webstore.RecoveryCode{Hash: w.newHash(), Sealed: []byte("u:" + u)}
			switch g.n(8) {
			case 0:
				codes[i].Sealed = []byte("u:" + user()) // names someone, maybe another
			case 1:
				codes[i].Sealed = g.bytes(6) // its opener refuses it
			}
			w.recovery = append(w.recovery, codes[i].Hash)
		}
		return webStep{fmt.Sprintf("ReplaceRecoveryCodes(%q, %d codes)", u, len(codes)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.ReplaceRecoveryCodes(ctx, u, codes))
		}}
	case 12:
		u := user()
		return webStep{fmt.Sprintf("RecoveryCodesLeft(%q)", u), func(ctx context.Context, s webstore.Store) string {
			n, err := s.RecoveryCodesLeft(ctx, u)
			return fmt.Sprint(n, " ", diffClass(err))
		}}
	case 13:
		h := w.made(g, w.recovery)
		return webStep{fmt.Sprintf("UseRecoveryCode(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			u, err := s.UseRecoveryCode(ctx, h, diffOpen)
			return fmt.Sprintf("%q %s", u, diffClass(err))
		}}
	case 14, 15:
		created := g.time()
		sess := webstore.Session{Hash: w.newHash(), UserID: user(), Created: created, LastSeen: created, Expires: g.later(created), Sealed: g.bytes(8)}
		max := g.max()
		w.sessions = append(w.sessions, sess.Hash)
		return webStep{fmt.Sprintf("CreateSession(%s, max %d)", diffSession(sess), max), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.CreateSession(ctx, sess, max))
		}}
	case 16:
		h := w.made(g, w.sessions)
		return webStep{fmt.Sprintf("Session(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			sess, err := s.Session(ctx, h)
			return diffSession(sess) + " " + diffClass(err)
		}}
	case 17:
		h, seen, exp := w.made(g, w.sessions), g.time(), g.time()
		return webStep{fmt.Sprintf("TouchSession(%s, %s, %s)", diffH(h), diffT(seen), diffT(exp)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.TouchSession(ctx, h, seen, exp))
		}}
	case 18:
		h := w.made(g, w.sessions)
		return webStep{fmt.Sprintf("DeleteSession(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.DeleteSession(ctx, h))
		}}
	case 19:
		u := user()
		var match func(webstore.Session) bool
		desc := "all"
		if !g.one(3) {
			before := g.time()
			desc = "seen before " + diffT(before)
			match = func(s webstore.Session) bool { return s.LastSeen.Before(before) }
		}
		return webStep{fmt.Sprintf("DeleteSessions(%q, %s)", u, desc), func(ctx context.Context, s webstore.Store) string {
			n, err := s.DeleteSessions(ctx, u, match)
			return fmt.Sprint(n, " ", diffClass(err))
		}}
	case 20:
		created := g.time()
		c := webstore.Ceremony{Hash: w.newHash(), Created: created, Expires: g.later(created), Sealed: g.bytes(8)}
		if !g.one(3) {
			c.UserID = user()
		}
		max := g.max()
		w.ceremonies = append(w.ceremonies, c.Hash)
		return webStep{fmt.Sprintf("PutCeremony(%s, max %d)", diffCeremony(c), max), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.PutCeremony(ctx, c, max))
		}}
	case 21:
		h := w.made(g, w.ceremonies)
		return webStep{fmt.Sprintf("TakeCeremony(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			c, err := s.TakeCeremony(ctx, h)
			return diffCeremony(c) + " " + diffClass(err)
		}}
	case 22:
		created := g.time()
		sp := webstore.SpentChallenge{Hash: diffHash(diffSpentBase + g.n(diffSpent)), Created: created, Expires: g.later(created)}
		max := g.max()
		return webStep{fmt.Sprintf("SpendChallenge(%s, %s, %s, max %d)", diffH(sp.Hash), diffT(sp.Created), diffT(sp.Expires), max), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.SpendChallenge(ctx, sp, max))
		}}
	case 23:
		c := webstore.AppConsent{Hash: diffHash(diffAppsBase + g.n(diffAppN)), UserID: user(), Created: g.time(), Sealed: g.bytes(8)}
		max := 1 + g.n(3)
		return webStep{fmt.Sprintf("PutAppConsent(%s, max %d)", diffApp(c), max), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.PutAppConsent(ctx, c, max))
		}}
	case 24:
		h := diffHash(diffAppsBase + g.n(diffAppN))
		return webStep{fmt.Sprintf("AppConsent(%s)", diffH(h)), func(ctx context.Context, s webstore.Store) string {
			c, err := s.AppConsent(ctx, h)
			return diffApp(c) + " " + diffClass(err)
		}}
	case 25:
		u := user()
		return webStep{fmt.Sprintf("AppConsents(%q)", u), func(ctx context.Context, s webstore.Store) string {
			cs, err := s.AppConsents(ctx, u)
			return diffApps(cs) + " " + diffClass(err)
		}}
	case 26:
		u, h := user(), diffHash(diffAppsBase+g.n(diffAppN))
		return webStep{fmt.Sprintf("DeleteAppConsent(%q, %s)", u, diffH(h)), func(ctx context.Context, s webstore.Store) string {
			return diffClass(s.DeleteAppConsent(ctx, u, h))
		}}
	}
	u := user()
	return webStep{fmt.Sprintf("ForgetUser(%q)", u), func(ctx context.Context, s webstore.Store) string {
		return diffClass(s.ForgetUser(ctx, u))
	}}
}

func diffApps(cs []webstore.AppConsent) string {
	var out []string
	for _, c := range cs {
		out = append(out, diffApp(c))
	}
	slices.Sort(out) // "in no particular order"
	return strings.Join(out, " ")
}

// state renders the whole store over the drawn universe: invites, each
// user's passkeys, recovery codes left and app consents, every session
// made. Ceremonies and spent challenges have no read but their taking
// and spending, so they are compared through those calls only.
func (w *diffWebGen) state(t *testing.T, s webstore.Store) string {
	t.Helper()
	var b strings.Builder
	invs, err := s.Invites(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, inv := range invs {
		lines = append(lines, "invite "+diffInvite(inv))
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n") + "\n")
	for _, u := range diffWebUsers[:4] {
		cs, err := s.Credentials(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.RecoveryCodesLeft(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		as, err := s.AppConsents(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "user %q: passkeys %s; recovery codes %d; app consents %s\n", u, diffCreds(cs), n, diffApps(as))
	}
	for _, h := range w.sessions {
		sess, err := s.Session(t.Context(), h)
		fmt.Fprintf(&b, "session %s %s\n", diffSession(sess), diffClass(err))
	}
	return b.String()
}
