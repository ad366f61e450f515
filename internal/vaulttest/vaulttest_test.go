package vaulttest_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/vault"
)

// TestEnv: what New makes survives Reopen (the same root opens it), a
// minted token authenticates, and Close leaves a file that passes the
// integrity check (a failing check would fail this test at cleanup).
func TestEnv(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := vaulttest.New(t, vaulttest.Options{Now: func() time.Time { return now }})
	p := e.User(t, vault.RolePatient, "Ada")
	if !p.Created.Equal(now) {
		t.Fatalf("created %v, want the test's clock %v", p.Created, now)
	}
	secret := e.Token(t, p.ID, vault.TokenDevice)
	e.Reopen(t)
	if u, err := e.Vault.User(t.Context(), p.ID); err != nil || u.Name != "Ada" {
		t.Fatalf("after reopen: %+v, %v", u, err)
	}
	if tok, err := e.Vault.Authenticate(t.Context(), secret); err != nil || tok.UserID != p.ID {
		t.Fatalf("token after reopen: %+v, %v", tok, err)
	}
	e.Close(t)
	e.Close(t) // harmless
	if e.Store != nil || e.Vault != nil {
		t.Fatal("Close left the handles set")
	}
	if _, err := os.Stat(e.Path); err != nil {
		t.Fatalf("database file: %v", err)
	}
}

// TestEmpty: Empty opens the store only; the first vault.Open creates the
// master keyset, and Open afterwards opens the same one.
func TestEmpty(t *testing.T) {
	e := vaulttest.Empty(t, vaulttest.Options{})
	if e.Vault != nil {
		t.Fatal("Empty opened a vault")
	}
	if m, err := e.Store.Meta(t.Context(), vault.MetaMaster); err != nil || m != nil {
		t.Fatalf("master in an empty store: %d bytes, %v", len(m), err)
	}
	v, err := vault.Open(t.Context(), e.Store, e.Root, vault.RootInfo{Kind: e.Root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Reopen(t)
	if !e.Vault.Master().SameKeys(v.Master()) {
		t.Fatal("Reopen opened another master keyset")
	}
	if _, err := e.Vault.User(t.Context(), "pt_none"); !errors.Is(err, vault.ErrNoUser) {
		t.Fatalf("unknown user: %v", err)
	}
}
