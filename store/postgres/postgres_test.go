package postgres

import (
	"testing"

	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
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
	s, err := Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
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
