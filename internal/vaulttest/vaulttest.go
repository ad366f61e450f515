// Package vaulttest opens a real vault for a test: a bbolt database file
// and a fresh root key file in t.TempDir(), opened with vault.Open, every
// step failing the test on its error. When the test ends the store is
// closed and the file is put through bbolt's consistency check, so every
// test that uses it also checks that it left a sound file.
//
//	e := vaulttest.New(t, vaulttest.Options{})
//	p := e.User(t, vault.RolePatient, "Ada")
//	secret := e.Token(t, p.ID, vault.TokenDevice)
//	e.Reopen(t) // a restart: nothing cached survives
//
// Tests that reach below the vault (tamper and barrier tests) use
// e.Store.RecordTamperer(); nothing here imports bbolt.
package vaulttest

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// Options tune New. The zero value is a key-file root, the wall clock and
// no logging.
type Options struct {
	// Now is the vault's clock (vault.Options.Now). It is called afresh,
	// so a test can move its time between calls.
	Now func() time.Time
	// Logger receives the vault's log; discarded when nil.
	Logger *slog.Logger
	// Store tunes the bbolt file (page size, lock timeout).
	Store boltstore.Options
}

// Env is an open vault and what it stands on.
type Env struct {
	Dir  string     // the test's temporary directory
	Path string     // the database file, Dir/vault.db
	Root *keys.Root // the root key, from the key file Dir/root.key
	// Store and Vault are the open store and vault; nil between Close and
	// Open.
	Store *boltstore.Store
	Vault *vault.Vault

	opts Options
}

// New makes a root key file and an empty database in a new temporary
// directory and opens the vault on them. Cleanup closes it and checks the
// file's integrity.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	e := Empty(t, o)
	e.openVault(t)
	return e
}

// Empty is New without the vault: the root key file and the open, empty
// store, for a test that opens the vault itself (Vault is nil). Open and
// Reopen open the vault too.
func Empty(t testing.TB, o Options) *Env {
	t.Helper()
	dir := t.TempDir()
	root, err := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Dir: dir, Path: filepath.Join(dir, "vault.db"), Root: root, opts: o}
	e.openStore(t)
	t.Cleanup(func() { e.Close(t) })
	return e
}

// Open opens the store and the vault on it, with the same root: after
// Close, it is the vault's restart.
func (e *Env) Open(t testing.TB) {
	t.Helper()
	e.openStore(t)
	e.openVault(t)
}

func (e *Env) openStore(t testing.TB) {
	t.Helper()
	if e.Store != nil {
		t.Fatal("vaulttest: Open on an open store")
	}
	st, err := boltstore.Open(e.Path, e.opts.Store)
	if err != nil {
		t.Fatal(err)
	}
	e.Store = st
}

func (e *Env) openVault(t testing.TB) {
	t.Helper()
	v, err := vault.Open(t.Context(), e.Store, e.Root, vault.RootInfo{Kind: e.Root.Kind()}, vault.Options{Now: e.opts.Now, Logger: e.opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	e.Vault = v
}

// Close closes the store and checks the file's integrity. Closing a
// closed Env does nothing.
func (e *Env) Close(t testing.TB) {
	t.Helper()
	if e.Store == nil {
		return
	}
	err := e.Store.Close()
	e.Store, e.Vault = nil, nil
	if err != nil {
		t.Errorf("close: %v", err)
	}
	if err := boltstore.Check(e.Path); err != nil {
		t.Errorf("integrity of %s: %v", e.Path, err)
	}
}

// Reopen closes the vault, checks the file and opens it again.
func (e *Env) Reopen(t testing.TB) {
	t.Helper()
	e.Close(t)
	e.Open(t)
}

// User creates an account (a patient gets fresh keys) in the UTC time
// zone.
func (e *Env) User(t testing.TB, role, name string) vault.User {
	t.Helper()
	u, err := e.Vault.CreateUser(t.Context(), vault.NewUser{Role: role, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Token mints a token of the kind's default lifetime for a user and
// returns its secret.
func (e *Env) Token(t testing.TB, userID, kind string) string {
	t.Helper()
	return e.TokenFor(t, userID, kind, 0)
}

// TokenFor mints a token that lasts ttl (the kind's default when ttl <= 0)
// and returns its secret.
func (e *Env) TokenFor(t testing.TB, userID, kind string, ttl time.Duration) string {
	t.Helper()
	secret, _, err := e.Vault.MintToken(t.Context(), userID, kind, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}
