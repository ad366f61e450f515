package boltstore

import (
	"testing"

	"github.com/jupyterhealth/vault/store/storetest"
)

// TestLedgerConformance runs the ledger store's suite on real files, each
// checked page by page when its test ends and at every reopen.
func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) *storetest.LedgerBackend {
		s, reopen := openReopenable(t)
		b := &storetest.LedgerBackend{Store: s.Ledger(), Tamper: s.LedgerTamperer()}
		b.Reopen = func(t *testing.T) {
			s := reopen(t)
			b.Store, b.Tamper = s.Ledger(), s.LedgerTamperer()
		}
		return b
	})
}
