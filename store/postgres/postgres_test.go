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
