package boltstore

import (
	"testing"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
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

// TestLedgerNotShared: the bbolt ledger store is one process's (the file
// is locked), so it does not offer ledgerstore.Shared, and a ledger on it
// reads nothing before a decision to learn of other writers.
func TestLedgerNotShared(t *testing.T) {
	s, _ := openReopenable(t)
	if _, ok := s.Ledger().(ledgerstore.Shared); ok {
		t.Fatal("the bbolt ledger store says other processes may append to it")
	}
}
