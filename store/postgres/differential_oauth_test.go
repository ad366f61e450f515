package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
)

// TestDifferentialOAuth: random calls on the OAuth provider's store
// (oauthstore.Store) against bbolt and PostgreSQL: clients (an empty id,
// "cl_" beside "clx_"), requests and their codes (a code for a missing
// request, claimed twice, a request deleted under its code), access and
// refresh tokens (an unknown kind, one stored twice, rotations of a
// rotated, an access or a missing token, filters), client-assertion ids
// spent twice, signing keys (keep 0, an empty id), sweeps; times from the
// smallest to the largest Unix nanosecond, one nanosecond apart, and the
// zero time. Each result, and every 25 calls the whole store, must be the
// same on both.
//
//	go test -run TestDifferentialOAuth ./store/postgres/ -diff.seed=N -diff.runs=1
func TestDifferentialOAuth(t *testing.T) {
	diffRepeat(t, "TestDifferentialOAuth", 400, 2, func(t *testing.T, seed uint64, steps int) {
		bolt, pg := openBolt(t).OAuth(), openTest(t).OAuth()
		diffStores(t, "TestDifferentialOAuth", seed, steps, 25, bolt, pg, diffOAuthStep, diffOAuthState)
	})
}

// The ids drawn: the last ones of each list are refused by both stores
// (empty, where an id is required; with a NUL byte or not UTF-8).
var (
	diffClients  = []string{"cl_a", "cl_", "clx_a", "cl_b", "", "c\x00l", "c\xff"}
	diffUsers    = []string{"pt_a", "ptx_a", "pt_", "pt_b", "pt_\x00"}
	diffFamilies = []string{"f1", "f2", "f", "f\x00"}
	diffKeyIDs   = []string{"k1", "k2", "k", "", "k\x00"}
)

// The hashes each kind of row draws from (requests, codes, tokens, spent
// assertion ids), disjoint so a description names one row.
const (
	diffReqs, diffCodes, diffToks, diffJTIs  = 4, 4, 8, 4
	diffCodeBase, diffTokenBase, diffJTIBase = 100, 200, 300
)

// valid picks one of the first n of ids mostly, and now and then one of
// the rest, which a store refuses.
func (g *diffRand) valid(ids []string, n int) string {
	if g.one(15) {
		return g.str(ids[n:])
	}
	return g.str(ids[:n])
}

func (g *diffRand) token() oauthstore.Token {
	kind := oauthstore.Access
	switch g.n(10) {
	case 0:
		kind = 'x'
	case 1, 2, 3, 4:
		kind = oauthstore.Refresh
	}
	return oauthstore.Token{
		Hash: diffHash(diffTokenBase + g.n(diffToks)), Kind: kind, Family: g.valid(diffFamilies, 3),
		UserID: g.valid(diffUsers, 4), ClientID: g.valid(diffClients, 4), Expires: g.time(),
		Rotated: g.one(8), Sealed: g.bytes(10),
	}
}

func diffToken(t oauthstore.Token) string {
	return fmt.Sprintf("{%s %c %s %s %s %s rotated=%v %s}", diffH(t.Hash), t.Kind, t.Family, t.UserID, t.ClientID, diffT(t.Expires), t.Rotated, diffX(t.Sealed))
}

func diffTokens(ts []oauthstore.Token) string {
	var out []string
	for _, t := range ts {
		out = append(out, diffToken(t))
	}
	return strings.Join(out, " ")
}

func diffRequest(r oauthstore.Request) string {
	return fmt.Sprintf("{%s %q %s %s}", diffH(r.Hash), r.ClientID, diffT(r.Expires), diffX(r.Sealed))
}

func diffClient(c oauthstore.Client) string {
	return fmt.Sprintf("{%q %s %s}", c.ID, diffT(c.Created), diffX(c.Sealed))
}

func diffKeys(ks []oauthstore.Key) string {
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("{%q %s %s}", k.ID, diffT(k.Created), diffX(k.Sealed)))
	}
	return strings.Join(out, " ")
}

type oauthStep = diffStoreStep[oauthstore.Store]

func diffOAuthStep(g *diffRand) oauthStep {
	req := func() [32]byte { return diffHash(g.n(diffReqs)) }
	code := func() [32]byte { return diffHash(diffCodeBase + g.n(diffCodes)) }
	switch g.n(30) {
	case 0:
		c := oauthstore.Client{ID: g.str(diffClients), Created: g.time(), Sealed: g.bytes(10)}
		return oauthStep{"PutClient" + diffClient(c), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.PutClient(ctx, c))
		}}
	case 1:
		id := g.str(diffClients)
		return oauthStep{fmt.Sprintf("Client(%q)", id), func(ctx context.Context, s oauthstore.Store) string {
			c, err := s.Client(ctx, id)
			return diffClient(c) + " " + diffClass(err)
		}}
	case 2:
		id := g.str(diffClients)
		return oauthStep{fmt.Sprintf("DeleteClient(%q)", id), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.DeleteClient(ctx, id))
		}}
	case 3, 4, 22, 23:
		r := oauthstore.Request{Hash: req(), ClientID: g.valid(diffClients, 4), Expires: g.time(), Sealed: g.bytes(10)}
		return oauthStep{"PutRequest" + diffRequest(r), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.PutRequest(ctx, r))
		}}
	case 5:
		h := req()
		return oauthStep{fmt.Sprintf("Request(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			r, err := s.Request(ctx, h)
			return diffRequest(r) + " " + diffClass(err)
		}}
	case 6:
		h := req()
		return oauthStep{fmt.Sprintf("DeleteRequest(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.DeleteRequest(ctx, h))
		}}
	case 7, 8, 24, 25:
		c := oauthstore.Code{Hash: code(), Request: req(), Expires: g.time()}
		return oauthStep{fmt.Sprintf("PutCode(%s for %s, %s)", diffH(c.Hash), diffH(c.Request), diffT(c.Expires)), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.PutCode(ctx, c))
		}}
	case 9, 10, 26:
		h := code()
		return oauthStep{fmt.Sprintf("ClaimCode(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			r, err := s.ClaimCode(ctx, h)
			return diffRequest(r) + " " + diffClass(err)
		}}
	case 11, 12, 27, 28:
		ts := make([]oauthstore.Token, g.n(4))
		for i := range ts {
			ts[i] = g.token()
		}
		return oauthStep{"PutTokens(" + diffTokens(ts) + ")", func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.PutTokens(ctx, ts...))
		}}
	case 13:
		h := diffHash(diffTokenBase + g.n(diffToks))
		return oauthStep{fmt.Sprintf("Token(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			tok, err := s.Token(ctx, h)
			return diffToken(tok) + " " + diffClass(err)
		}}
	case 14, 15:
		old := diffHash(diffTokenBase + g.n(diffToks))
		next := make([]oauthstore.Token, g.n(3))
		for i := range next {
			next[i] = g.token()
		}
		return oauthStep{fmt.Sprintf("RotateRefresh(%s, %s)", diffH(old), diffTokens(next)), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.RotateRefresh(ctx, old, next...))
		}}
	case 16:
		var f oauthstore.Filter
		if !g.one(6) {
			switch g.n(4) {
			case 0:
				f.UserID = g.valid(diffUsers, 4)
			case 1:
				f.ClientID = g.valid(diffClients, 4)
			case 2:
				f.Family = g.valid(diffFamilies, 3)
			default:
				f.UserID, f.Family = g.valid(diffUsers, 4), g.valid(diffFamilies, 3)
			}
		}
		return oauthStep{fmt.Sprintf("DeleteTokens(%+v)", f), func(ctx context.Context, s oauthstore.Store) string {
			n, err := s.DeleteTokens(ctx, f)
			return fmt.Sprint(n, " ", diffClass(err))
		}}
	case 17:
		h := diffHash(diffTokenBase + g.n(diffToks))
		return oauthStep{fmt.Sprintf("DeleteToken(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.DeleteToken(ctx, h))
		}}
	case 18:
		h, exp := diffHash(diffJTIBase+g.n(diffJTIs)), g.time()
		return oauthStep{fmt.Sprintf("SpendJTI(%s, %s)", diffH(h), diffT(exp)), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.SpendJTI(ctx, h, exp))
		}}
	case 19:
		k := oauthstore.Key{ID: g.str(diffKeyIDs), Created: g.time(), Sealed: g.bytes(10)}
		keep := g.n(4)
		return oauthStep{fmt.Sprintf("AddKey(%s, keep %d)", diffKeys([]oauthstore.Key{k}), keep), func(ctx context.Context, s oauthstore.Store) string {
			return diffClass(s.AddKey(ctx, k, keep))
		}}
	case 20:
		return oauthStep{"Keys()", func(ctx context.Context, s oauthstore.Store) string {
			ks, err := s.Keys(ctx)
			return diffKeys(ks) + " " + diffClass(err)
		}}
	}
	if g.one(2) { // a rarer sweep
		h := diffHash(diffTokenBase + g.n(diffToks))
		return oauthStep{fmt.Sprintf("Token(%s)", diffH(h)), func(ctx context.Context, s oauthstore.Store) string {
			tok, err := s.Token(ctx, h)
			return diffToken(tok) + " " + diffClass(err)
		}}
	}
	before := g.time()
	return oauthStep{fmt.Sprintf("Sweep(%s)", diffT(before)), func(ctx context.Context, s oauthstore.Store) string {
		n, err := s.Sweep(ctx, before)
		return fmt.Sprint(n, " ", diffClass(err))
	}}
}

// diffOAuthState renders the whole store over the drawn universe:
// clients, keys, every request and token. Codes and spent assertion ids
// have no read but their claim and their spending, so they are compared
// through those calls only.
func diffOAuthState(t *testing.T, s oauthstore.Store) string {
	t.Helper()
	var b strings.Builder
	cs, err := s.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		b.WriteString("client " + diffClient(c) + "\n")
	}
	ks, err := s.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("keys " + diffKeys(ks) + "\n")
	for i := range diffReqs {
		r, err := s.Request(t.Context(), diffHash(i))
		b.WriteString("request " + diffRequest(r) + " " + diffClass(err) + "\n")
	}
	var toks []string
	for i := range diffToks {
		tok, err := s.Token(t.Context(), diffHash(diffTokenBase+i))
		toks = append(toks, diffToken(tok)+" "+diffClass(err))
	}
	slices.Sort(toks)
	b.WriteString(strings.Join(toks, "\n"))
	return b.String()
}
