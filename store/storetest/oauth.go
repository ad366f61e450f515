package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
)

// OAuthFactory opens a fresh, empty OAuth store for one test, and returns
// it with reopen (a restart), as WebFactory does.
type OAuthFactory func(t *testing.T) (s oauthstore.Store, reopen func() oauthstore.Store)

// RunOAuth runs the OAuth store's conformance suite.
func RunOAuth(t *testing.T, open OAuthFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store)
	}{
		{"Clients", testOAuthClients},
		{"RequestsAndCodes", testOAuthRequestsAndCodes},
		{"CodeClaimRace", testOAuthCodeClaimRace},
		{"Tokens", testOAuthTokens},
		{"RotateRace", testOAuthRotateRace},
		{"DeleteClientTakesItsRows", testOAuthDeleteClient},
		{"DeleteClientLeavesOtherCodes", testOAuthDeleteClientOtherCodes},
		{"JTI", testOAuthJTI},
		{"Keys", testOAuthKeys},
		{"Sweep", testOAuthSweep},
		{"TimeRange", testOAuthTimeRange},
		{"BadIDs", testOAuthBadIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := open(t)
			tc.fn(t, s, reopen)
		})
	}
}

var oauthNow = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func oauthToken(name string, kind oauthstore.Kind, family, user, client string) oauthstore.Token {
	return oauthstore.Token{Hash: h32(name), Kind: kind, Family: family, UserID: user, ClientID: client, Expires: oauthNow.Add(time.Hour), Sealed: sealedOf(name)}
}

func testOAuthClients(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store) {
	ctx := context.Background()
	for _, id := range []string{"oc_b", "oc_a"} {
		if err := s.PutClient(ctx, oauthstore.Client{ID: id, Created: oauthNow, Sealed: sealedOf(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutClient(ctx, oauthstore.Client{ID: "oc_a", Sealed: sealedOf("other")}); !errors.Is(err, oauthstore.ErrExists) {
		t.Fatalf("a second client with the same id: %v, want ErrExists", err)
	}
	s = reopen()
	c, err := s.Client(ctx, "oc_a")
	if err != nil || !c.Created.Equal(oauthNow) || !bytes.Equal(c.Sealed, sealedOf("oc_a")) {
		t.Fatalf("Client = %+v, %v", c, err)
	}
	all, err := s.Clients(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "oc_a" || all[1].ID != "oc_b" {
		t.Fatalf("Clients = %+v, %v; want oc_a, oc_b", all, err)
	}
	if _, err := s.Client(ctx, "oc_none"); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("unknown client: %v", err)
	}
	if err := s.DeleteClient(ctx, "oc_none"); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("deleting an unknown client: %v", err)
	}
}

func testOAuthRequestsAndCodes(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store) {
	ctx := context.Background()
	req := oauthstore.Request{Hash: h32("req"), ClientID: "oc_a", Expires: oauthNow, Sealed: sealedOf("req")}
	if err := s.PutCode(ctx, oauthstore.Code{Hash: h32("code0"), Request: req.Hash}); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("a code for no request: %v, want ErrNotFound", err)
	}
	if err := s.PutRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Sealed = sealedOf("req, approved")
	if err := s.PutRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	got, err := s.Request(ctx, req.Hash)
	if err != nil || got.ClientID != "oc_a" || !got.Expires.Equal(oauthNow) || !bytes.Equal(got.Sealed, req.Sealed) {
		t.Fatalf("Request = %+v, %v", got, err)
	}
	if err := s.PutCode(ctx, oauthstore.Code{Hash: h32("code"), Request: req.Hash, Expires: oauthNow}); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimCode(ctx, h32("code"))
	if err != nil || claimed.Hash != req.Hash || !bytes.Equal(claimed.Sealed, req.Sealed) {
		t.Fatalf("ClaimCode = %+v, %v", claimed, err)
	}
	if _, err := s.ClaimCode(ctx, h32("code")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("a second claim: %v, want ErrNotFound", err)
	}
	if _, err := s.Request(ctx, req.Hash); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("the claimed code's request is still there: %v", err)
	}
	// DeleteRequest takes the request's codes with it.
	req2 := oauthstore.Request{Hash: h32("req2"), ClientID: "oc_a", Expires: oauthNow, Sealed: sealedOf("req2")}
	if err := s.PutRequest(ctx, req2); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCode(ctx, oauthstore.Code{Hash: h32("code2"), Request: req2.Hash, Expires: oauthNow}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRequest(ctx, req2.Hash); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRequest(ctx, req2.Hash); err != nil {
		t.Fatalf("deleting a deleted request: %v", err)
	}
	if _, err := s.ClaimCode(ctx, h32("code2")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("a deleted request's code: %v, want ErrNotFound", err)
	}
}

// testOAuthCodeClaimRace: many exchanges race for one code; one wins.
func testOAuthCodeClaimRace(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	req := oauthstore.Request{Hash: h32("req"), ClientID: "oc_a", Expires: oauthNow, Sealed: sealedOf("req")}
	if err := s.PutRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCode(ctx, oauthstore.Code{Hash: h32("code"), Request: req.Hash, Expires: oauthNow}); err != nil {
		t.Fatal(err)
	}
	oneWinner(t, "claims", oauthstore.ErrNotFound, func(int) error {
		_, err := s.ClaimCode(ctx, h32("code"))
		return err
	})
}

func testOAuthTokens(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store) {
	ctx := context.Background()
	rows := []oauthstore.Token{
		oauthToken("a1", oauthstore.Access, "f1", "pt_a", "oc_a"),
		oauthToken("r1", oauthstore.Refresh, "f1", "pt_a", "oc_a"),
		oauthToken("a2", oauthstore.Access, "f2", "pt_a", "oc_b"),
		oauthToken("a3", oauthstore.Access, "f3", "cl_b", "oc_a"),
	}
	if err := s.PutTokens(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTokens(ctx, oauthToken("new", oauthstore.Access, "f9", "pt_a", "oc_a"), rows[0]); !errors.Is(err, oauthstore.ErrExists) {
		t.Fatalf("a token stored twice: %v, want ErrExists", err)
	}
	if _, err := s.Token(ctx, h32("new")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("a refused batch was stored in part: %v", err)
	}
	s = reopen()
	got, err := s.Token(ctx, h32("r1"))
	if err != nil || got.Kind != oauthstore.Refresh || got.Family != "f1" || got.UserID != "pt_a" || got.ClientID != "oc_a" || !got.Expires.Equal(oauthNow.Add(time.Hour)) || got.Rotated || !bytes.Equal(got.Sealed, sealedOf("r1")) {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	// Rotation: the old one is marked, the new ones stored; a second
	// rotation of the old one is ErrRotated and stores nothing.
	next := []oauthstore.Token{oauthToken("a1b", oauthstore.Access, "f1", "pt_a", "oc_a"), oauthToken("r1b", oauthstore.Refresh, "f1", "pt_a", "oc_a")}
	if err := s.RotateRefresh(ctx, h32("r1"), next...); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Token(ctx, h32("r1")); err != nil || !got.Rotated {
		t.Fatalf("rotated token = %+v, %v", got, err)
	}
	if err := s.RotateRefresh(ctx, h32("r1"), oauthToken("r1c", oauthstore.Refresh, "f1", "pt_a", "oc_a")); !errors.Is(err, oauthstore.ErrRotated) {
		t.Fatalf("second rotation: %v, want ErrRotated", err)
	}
	if _, err := s.Token(ctx, h32("r1c")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("a refused rotation stored its token: %v", err)
	}
	if err := s.RotateRefresh(ctx, h32("a1"), oauthToken("x", oauthstore.Refresh, "f1", "pt_a", "oc_a")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("rotating an access token: %v, want ErrNotFound", err)
	}
	// Filters.
	if _, err := s.DeleteTokens(ctx, oauthstore.Filter{}); err == nil {
		t.Fatal("an empty filter was accepted")
	}
	for _, tc := range []struct {
		f    oauthstore.Filter
		n    int
		gone []string
		kept []string
	}{
		{oauthstore.Filter{Family: "f1"}, 4, []string{"a1", "r1", "a1b", "r1b"}, []string{"a2", "a3"}},
		{oauthstore.Filter{UserID: "pt_a", ClientID: "oc_a"}, 0, nil, []string{"a2", "a3"}},
		{oauthstore.Filter{UserID: "pt_a", ClientID: "oc_b"}, 1, []string{"a2"}, []string{"a3"}},
		{oauthstore.Filter{UserID: "cl_b"}, 1, []string{"a3"}, nil},
	} {
		n, err := s.DeleteTokens(ctx, tc.f)
		if err != nil || n != tc.n {
			t.Fatalf("DeleteTokens(%+v) = %d, %v; want %d", tc.f, n, err, tc.n)
		}
		for _, g := range tc.gone {
			if _, err := s.Token(ctx, h32(g)); !errors.Is(err, oauthstore.ErrNotFound) {
				t.Fatalf("after %+v, %s: %v", tc.f, g, err)
			}
		}
		for _, k := range tc.kept {
			if _, err := s.Token(ctx, h32(k)); err != nil {
				t.Fatalf("after %+v, %s: %v", tc.f, k, err)
			}
		}
	}
	if err := s.PutTokens(ctx, oauthToken("one", oauthstore.Access, "f", "u", "c")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, h32("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, h32("one")); err != nil {
		t.Fatalf("deleting a deleted token: %v", err)
	}
}

// testOAuthRotateRace: many refreshes race with one refresh token; one
// rotates it, the rest see ErrRotated.
func testOAuthRotateRace(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	if err := s.PutTokens(ctx, oauthToken("r", oauthstore.Refresh, "f", "pt_a", "oc_a")); err != nil {
		t.Fatal(err)
	}
	oneWinner(t, "rotations", oauthstore.ErrRotated, func(i int) error {
		return s.RotateRefresh(ctx, h32("r"), oauthToken(fmt.Sprint("next", i), oauthstore.Refresh, "f", "pt_a", "oc_a"))
	})
}

func testOAuthDeleteClient(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	for _, id := range []string{"oc_a", "oc_b"} {
		if err := s.PutClient(ctx, oauthstore.Client{ID: id, Sealed: sealedOf(id)}); err != nil {
			t.Fatal(err)
		}
		req := oauthstore.Request{Hash: h32("req" + id), ClientID: id, Expires: oauthNow, Sealed: sealedOf("req")}
		if err := s.PutRequest(ctx, req); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCode(ctx, oauthstore.Code{Hash: h32("code" + id), Request: req.Hash, Expires: oauthNow}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTokens(ctx, oauthToken("tok"+id, oauthstore.Access, "f"+id, "pt_a", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteClient(ctx, "oc_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(ctx, "oc_a"); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("client: %v", err)
	}
	if _, err := s.Request(ctx, h32("reqoc_a")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("request: %v", err)
	}
	if _, err := s.ClaimCode(ctx, h32("codeoc_a")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("code: %v", err)
	}
	if _, err := s.Token(ctx, h32("tokoc_a")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("token: %v", err)
	}
	if _, err := s.Token(ctx, h32("tokoc_b")); err != nil {
		t.Fatalf("the other client's token went: %v", err)
	}
	if _, err := s.ClaimCode(ctx, h32("codeoc_b")); err != nil {
		t.Fatalf("the other client's code went: %v", err)
	}
}

// testOAuthDeleteClientOtherCodes: deleting a client takes the codes of
// its requests and no other, not even a code whose request went earlier
// (another code of it was claimed): that one is Sweep's, and Sweep counts
// it. (bbolt's DeleteClient once took every such code; the differential
// test saw the sweeps' counts differ.)
func testOAuthDeleteClientOtherCodes(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	for _, id := range []string{"oc_a", "oc_b"} {
		if err := s.PutClient(ctx, oauthstore.Client{ID: id, Sealed: sealedOf(id)}); err != nil {
			t.Fatal(err)
		}
		req := oauthstore.Request{Hash: h32("req" + id), ClientID: id, Expires: oauthNow, Sealed: sealedOf("req")}
		if err := s.PutRequest(ctx, req); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"code1", "code2"} {
			if err := s.PutCode(ctx, oauthstore.Code{Hash: h32(c + id), Request: req.Hash, Expires: oauthNow}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// oc_b's request is claimed through code1; its code2 stays behind.
	if _, err := s.ClaimCode(ctx, h32("code1oc_b")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "oc_a"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx, oauthNow.Add(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the sweep after the deletion dropped %d rows, want 1 (oc_b's unclaimable code2)", n)
	}
}

func testOAuthJTI(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store) {
	ctx := context.Background()
	if spent, err := s.JTISpent(ctx, h32("j")); err != nil || spent {
		t.Fatalf("JTISpent before the spend = %v, %v; want false", spent, err)
	}
	if err := s.SpendJTI(ctx, h32("j"), oauthNow); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	if spent, err := s.JTISpent(ctx, h32("j")); err != nil || !spent {
		t.Fatalf("JTISpent after the spend = %v, %v; want true", spent, err)
	}
	if spent, err := s.JTISpent(ctx, h32("j2")); err != nil || spent {
		t.Fatalf("JTISpent of another mark = %v, %v; want false", spent, err)
	}
	if err := s.SpendJTI(ctx, h32("j"), oauthNow); !errors.Is(err, oauthstore.ErrExists) {
		t.Fatalf("a replayed jti: %v, want ErrExists", err)
	}
	oneWinner(t, "spends of one jti", nil, func(int) error { return s.SpendJTI(ctx, h32("race"), oauthNow) })
}

func testOAuthKeys(t *testing.T, s oauthstore.Store, reopen func() oauthstore.Store) {
	ctx := context.Background()
	if err := s.AddKey(ctx, oauthstore.Key{ID: "k", Sealed: sealedOf("k")}, 0); err == nil {
		t.Fatal("keep 0 was accepted")
	}
	for i, id := range []string{"k1", "k2", "k3"} {
		if err := s.AddKey(ctx, oauthstore.Key{ID: id, Created: oauthNow.Add(time.Duration(i) * time.Hour), Sealed: sealedOf(id)}, 2); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen()
	keys, err := s.Keys(ctx)
	if err != nil || len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k3" || !bytes.Equal(keys[1].Sealed, sealedOf("k3")) || !keys[0].Created.Equal(oauthNow.Add(time.Hour)) {
		t.Fatalf("Keys = %+v, %v; want k2, k3", keys, err)
	}
}

func testOAuthSweep(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	old, live := oauthNow.Add(-time.Minute), oauthNow.Add(time.Minute)
	if err := s.PutRequest(ctx, oauthstore.Request{Hash: h32("old"), ClientID: "c", Expires: old, Sealed: sealedOf("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRequest(ctx, oauthstore.Request{Hash: h32("live"), ClientID: "c", Expires: live, Sealed: sealedOf("x")}); err != nil {
		t.Fatal(err)
	}
	told, tlive := oauthToken("told", oauthstore.Access, "f", "u", "c"), oauthToken("tlive", oauthstore.Access, "f", "u", "c")
	told.Expires, tlive.Expires = old, live
	if err := s.PutTokens(ctx, told, tlive); err != nil {
		t.Fatal(err)
	}
	if err := s.SpendJTI(ctx, h32("jold"), old); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx, oauthNow)
	if err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3", n, err)
	}
	if _, err := s.Request(ctx, h32("live")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, h32("tlive")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, h32("told")); !errors.Is(err, oauthstore.ErrNotFound) {
		t.Fatalf("expired token: %v", err)
	}
	if spent, err := s.JTISpent(ctx, h32("jold")); err != nil || spent {
		t.Fatalf("JTISpent of a swept mark = %v, %v; want false", spent, err)
	}
	if err := s.SpendJTI(ctx, h32("jold"), live); err != nil {
		t.Fatalf("a swept jti: %v", err)
	}
}

// oneWinner runs try 16 times at once and fails the test unless exactly
// one succeeds. A loser's error must be lost (with lost nil, any error
// loses).
func oneWinner(t *testing.T, what string, lost error, try func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 16 {
		wg.Go(func() {
			err := try(i)
			if err != nil && lost != nil && !errors.Is(err, lost) {
				t.Error(err)
			}
			mu.Lock()
			if err == nil {
				wins++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d %s won, want 1", wins, what)
	}
}

// testOAuthTimeRange: the extreme times and the zero time come back as
// they were put; a time beyond them is refused and nothing is stored.
// (Found by store/postgres's TestDifferentialOAuth: bbolt's JSON rows
// kept a year-3000 expiry, PostgreSQL's bigint wrapped it around.)
func testOAuthTimeRange(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := context.Background()
	for i, tm := range []time.Time{timeKeptMin, timeKeptMax, {}} {
		c := oauthstore.Client{ID: fmt.Sprint("oc_", i), Created: tm, Sealed: sealedOf("c")}
		if err := s.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.Client(ctx, c.ID)
		if err != nil || !got.Created.Equal(c.Created) || got.Created.IsZero() != tm.IsZero() {
			t.Fatalf("client created %s: read back %s, %v", tm, got.Created, err)
		}
		tok := oauthToken(fmt.Sprint("tok", i), oauthstore.Refresh, "f", "pt_a", c.ID)
		tok.Expires = tm
		if err := s.PutTokens(ctx, tok); err != nil {
			t.Fatal(err)
		}
		gt, err := s.Token(ctx, tok.Hash)
		if err != nil || !gt.Expires.Equal(tm) || gt.Expires.IsZero() != tm.IsZero() {
			t.Fatalf("token expiring %s: read back %s, %v", tm, gt.Expires, err)
		}
	}
	for _, tm := range timesRefused {
		h := h32("refused " + tm.String())
		if err := s.PutRequest(ctx, oauthstore.Request{Hash: h, ClientID: "oc_0", Expires: tm}); err == nil {
			t.Errorf("a request expiring %s was stored", tm)
		}
		if _, err := s.Request(ctx, h); !errors.Is(err, oauthstore.ErrNotFound) {
			t.Errorf("the refused request: %v", err)
		}
		tok := oauthToken("refused", oauthstore.Access, "f", "pt_a", "oc_0")
		tok.Expires = tm
		if err := s.PutTokens(ctx, tok); err == nil {
			t.Errorf("a token expiring %s was stored", tm)
		}
		if err := s.SpendJTI(ctx, h, tm); err == nil {
			t.Errorf("an assertion id spent until %s was stored", tm)
		}
		if err := s.PutClient(ctx, oauthstore.Client{ID: "oc_refused", Created: tm}); err == nil {
			t.Errorf("a client created %s was stored", tm)
		}
		if err := s.AddKey(ctx, oauthstore.Key{ID: "k_refused", Created: tm}, 3); err == nil {
			t.Errorf("a key created %s was stored", tm)
		}
		if _, err := s.Sweep(ctx, tm); err == nil {
			t.Errorf("a sweep before %s was taken", tm)
		}
	}
}

// testOAuthBadIDs: a client, user, family or key id that is not UTF-8
// text without NUL bytes is refused and nothing is stored. (Found by
// store/postgres's TestDifferentialOAuth: PostgreSQL's text columns
// refused them, bbolt stored them.)
func testOAuthBadIDs(t *testing.T, s oauthstore.Store, _ func() oauthstore.Store) {
	ctx := t.Context()
	for _, id := range []string{"oc_\x00a", "oc_\xff"} {
		if err := s.PutClient(ctx, oauthstore.Client{ID: id, Sealed: sealedOf("c")}); err == nil {
			t.Errorf("client %q: accepted", id)
		}
		if _, err := s.Client(ctx, id); err == nil {
			t.Errorf("Client(%q): found", id)
		}
		if err := s.PutRequest(ctx, oauthstore.Request{Hash: h32("r" + id), ClientID: id, Expires: oauthNow}); err == nil {
			t.Errorf("a request of client %q: accepted", id)
		}
		for i, tok := range []oauthstore.Token{
			oauthToken("t1"+id, oauthstore.Access, "f", "pt_a", id),
			oauthToken("t2"+id, oauthstore.Access, "f", id, "oc_a"),
			oauthToken("t3"+id, oauthstore.Access, id, "pt_a", "oc_a"),
		} {
			if err := s.PutTokens(ctx, tok); err == nil {
				t.Errorf("token %d naming %q: accepted", i, id)
			}
			if _, err := s.Token(ctx, tok.Hash); !errors.Is(err, oauthstore.ErrNotFound) {
				t.Errorf("the refused token %d: %v", i, err)
			}
		}
		if _, err := s.DeleteTokens(ctx, oauthstore.Filter{UserID: id}); err == nil {
			t.Errorf("DeleteTokens of user %q: accepted", id)
		}
		if err := s.AddKey(ctx, oauthstore.Key{ID: id, Created: oauthNow, Sealed: sealedOf("k")}, 3); err == nil {
			t.Errorf("key %q: accepted", id)
		}
	}
	if ks, err := s.Keys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("keys after refused adds: %d, %v", len(ks), err)
	}
}
