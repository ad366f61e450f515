package postgres

import (
	"testing"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openTest opens a store on a fresh database of the throwaway cluster,
// closed when the test ends.
func openTest(t *testing.T) *Store {
	t.Helper()
	s, _ := openDSN(t)
	return s
}

func openDSN(t *testing.T) (*Store, string) {
	t.Helper()
	dsn := pgtest.New(t)
	return openOn(t, dsn), dsn
}

// openOn opens another store on the database dsn, as a second process
// would; it is closed when the test ends.
func openOn(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vault.Backend { return openTest(t) })
}

// TestLedgerConformance runs the ledger store's suite, each test on a
// fresh database; Reopen closes the pool and opens the database again.
func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) *storetest.LedgerBackend {
		s, dsn := openDSN(t)
		b := &storetest.LedgerBackend{Store: s.Ledger(), Tamper: s.LedgerTamperer()}
		b.Reopen = func(t *testing.T) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			if s, err = Open(t.Context(), dsn, Options{AllowUnsafeDurability: true}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			b.Store, b.Tamper = s.Ledger(), s.LedgerTamperer()
		}
		return b
	})
}

// reopener opens a store on a fresh database and returns it with a
// reopen that closes the pool and opens the database again (a restart);
// the cleanup closes whichever is open at the end.
func reopener(t *testing.T) (*Store, func() *Store) {
	t.Helper()
	s, dsn := openDSN(t)
	return s, func() *Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		if s, err = Open(t.Context(), dsn, Options{AllowUnsafeDurability: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// TestWebConformance runs the web UI's store suite, each case on a fresh
// database.
func TestWebConformance(t *testing.T) {
	storetest.RunWeb(t, func(t *testing.T) (webstore.Store, func() webstore.Store) {
		s, reopen := reopener(t)
		return s.Web(), func() webstore.Store { return reopen().Web() }
	})
}

// TestOAuthConformance runs the OAuth provider's store suite, each case
// on a fresh database.
func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) (oauthstore.Store, func() oauthstore.Store) {
		s, reopen := reopener(t)
		return s.OAuth(), func() oauthstore.Store { return reopen().OAuth() }
	})
}
