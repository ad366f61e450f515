package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/web/webstore"
)

// TestMigrateWebOAuthRows: every kind of web UI and OAuth row crosses to
// PostgreSQL as it was, and behaves there as it did: a passkey is the
// user's, a recovery code is used once, a ceremony taken once, a spent
// challenge and a spent client-assertion id stay spent, a code is claimed
// once with its request, a rotated refresh token is still known rotated,
// a session and an app consent read back. The rows are put in the bbolt
// file through its store (a demo vault has no passkey).
func TestMigrateWebOAuthRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")
	s := startServer(t, data, key, "--demo", "--demo-days", "1")
	s.stop(t)

	h := func(b byte) (x [32]byte) { x[0], x[31] = b, 0xee; return }
	now := time.Now().UTC().Truncate(time.Microsecond)
	later := now.Add(time.Hour)
	bst, err := boltstore.Open(dbPath(data), boltstore.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, o := bst.Web(), bst.OAuth()
	steps := []error{
		w.AddCredential(ctx, "pt_ada", webstore.Credential{ID: []byte("cred-1\x00bin"), Sealed: []byte("sealed-cred")}, 10),
		w.ReplaceRecoveryCodes(ctx, "pt_ada", []webstore.RecoveryCode{{Hash: h(1), Sealed: []byte("rc1")}, {Hash: h(2), Sealed: []byte("rc2")}}),
		w.CreateSession(ctx, webstore.Session{Hash: h(3), UserID: "pt_ada", Created: now, LastSeen: now, Expires: later, Sealed: []byte("sess")}, 100),
		w.PutCeremony(ctx, webstore.Ceremony{Hash: h(4), UserID: "pt_ada", Created: now, Expires: later, Sealed: []byte("cer")}, 100),
		w.SpendChallenge(ctx, webstore.SpentChallenge{Hash: h(5), Created: now, Expires: later}, 100),
		w.PutAppConsent(ctx, webstore.AppConsent{Hash: h(6), UserID: "pt_ada", Created: now, Sealed: []byte("app")}, 10),
		o.PutClient(ctx, oauthstore.Client{ID: "oc_x", Created: now, Sealed: []byte("client")}),
		o.PutRequest(ctx, oauthstore.Request{Hash: h(7), ClientID: "oc_x", Expires: later, Sealed: []byte("req")}),
		o.PutCode(ctx, oauthstore.Code{Hash: h(8), Request: h(7), Expires: later}),
		o.PutTokens(ctx, oauthstore.Token{Hash: h(9), Kind: oauthstore.Refresh, Family: "f1", UserID: "pt_ada", ClientID: "oc_x", Expires: later, Sealed: []byte("rt")}),
		o.RotateRefresh(ctx, h(9), oauthstore.Token{Hash: h(10), Kind: oauthstore.Refresh, Family: "f1", UserID: "pt_ada", ClientID: "oc_x", Expires: later, Sealed: []byte("rt2")}),
		o.SpendJTI(ctx, h(11), later),
		o.AddKey(ctx, oauthstore.Key{ID: "k1", Created: now, Sealed: []byte("key1")}, 5),
		o.AddKey(ctx, oauthstore.Key{ID: "k2", Created: later, Sealed: []byte("key2")}, 5),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	bst.Close()

	m, _, _ := copyToPostgres(t, data, key)

	pw, po := m.dst.Web(), m.dst.OAuth()
	if cs, err := pw.Credentials(ctx, "pt_ada"); err != nil || len(cs) != 1 || !bytes.Equal(cs[0].ID, []byte("cred-1\x00bin")) || string(cs[0].Sealed) != "sealed-cred" {
		t.Fatalf("passkeys: %+v %v", cs, err)
	}
	open := func([]byte) (string, error) { return "pt_ada", nil }
	if u, err := pw.UseRecoveryCode(ctx, h(1), open); err != nil || u != "pt_ada" {
		t.Fatalf("recovery code: %q %v", u, err)
	}
	if _, err := pw.UseRecoveryCode(ctx, h(1), open); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("a used recovery code again: %v", err)
	}
	if n, err := pw.RecoveryCodesLeft(ctx, "pt_ada"); err != nil || n != 1 {
		t.Fatalf("recovery codes left: %d %v", n, err)
	}
	if se, err := pw.Session(ctx, h(3)); err != nil || string(se.Sealed) != "sess" || !se.LastSeen.Equal(now) || !se.Expires.Equal(later) {
		t.Fatalf("session: %+v %v", se, err)
	}
	if c, err := pw.TakeCeremony(ctx, h(4)); err != nil || string(c.Sealed) != "cer" || c.UserID != "pt_ada" {
		t.Fatalf("ceremony: %+v %v", c, err)
	}
	if _, err := pw.TakeCeremony(ctx, h(4)); !errors.Is(err, webstore.ErrNotFound) {
		t.Fatalf("a ceremony taken twice: %v", err)
	}
	if err := pw.SpendChallenge(ctx, webstore.SpentChallenge{Hash: h(5), Created: now, Expires: later}, 100); !errors.Is(err, webstore.ErrExists) {
		t.Fatalf("a spent challenge spent again: %v", err)
	}
	if a, err := pw.AppConsent(ctx, h(6)); err != nil || string(a.Sealed) != "app" {
		t.Fatalf("app consent: %+v %v", a, err)
	}
	if r, err := po.ClaimCode(ctx, h(8)); err != nil || string(r.Sealed) != "req" || r.ClientID != "oc_x" {
		t.Fatalf("code: %+v %v", r, err)
	}
	if _, err := po.ClaimCode(ctx, h(8)); err == nil {
		t.Fatal("a code claimed twice")
	}
	if err := po.RotateRefresh(ctx, h(9), oauthstore.Token{Hash: h(12), Kind: oauthstore.Refresh, Family: "f1", UserID: "pt_ada", ClientID: "oc_x", Expires: later, Sealed: []byte("x")}); !errors.Is(err, oauthstore.ErrRotated) {
		t.Fatalf("the rotated refresh token rotated again: %v", err)
	}
	if tok, err := po.Token(ctx, h(10)); err != nil || string(tok.Sealed) != "rt2" || tok.Rotated {
		t.Fatalf("the current refresh token: %+v %v", tok, err)
	}
	if err := po.SpendJTI(ctx, h(11), later); !errors.Is(err, oauthstore.ErrExists) {
		t.Fatalf("a spent assertion id spent again: %v", err)
	}
	// The server's own signing key, then the two put here, oldest first.
	ks, err := po.Keys(ctx)
	if err != nil || len(ks) != 3 || ks[1].ID != "k1" || ks[2].ID != "k2" || string(ks[2].Sealed) != "key2" {
		t.Fatalf("signing keys: %d %v", len(ks), err)
	}
}
