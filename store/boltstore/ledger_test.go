package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/jupyterhealth/vault/store/storetest"
)

// TestLedgerConformance runs the ledger store's suite on real files, each
// checked page by page when its test ends.
func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) *storetest.LedgerBackend {
		path := filepath.Join(t.TempDir(), "vault.db")
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := &storetest.LedgerBackend{Store: s.Ledger(), Tamper: s.LedgerTamperer()}
		b.Reopen = func(t *testing.T) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
			b.Store, b.Tamper = s.Ledger(), s.LedgerTamperer()
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := Check(path); err != nil {
				t.Errorf("integrity: %v", err)
			}
		})
		return b
	})
}
