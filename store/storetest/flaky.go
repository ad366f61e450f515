package storetest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// ErrInjected is what a FlakyLedger answers once told to fail.
var ErrInjected = errors.New("injected ledger failure")

// FlakyLedger is a real ledger store that, once FailWrites is set, refuses
// every write transaction, and once FailReads is set every read one: the
// one way to make the ledger's append (or its reads) fail on a healthy
// disk, for the tests of what fails closed.
type FlakyLedger struct {
	ledgerstore.Store
	FailWrites, FailReads atomic.Bool
}

// Update implements ledgerstore.Store.
func (s *FlakyLedger) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	if s.FailWrites.Load() {
		return ErrInjected
	}
	return s.Store.Update(ctx, fn)
}

// View implements ledgerstore.Store.
func (s *FlakyLedger) View(ctx context.Context, fn func(ledgerstore.ReadTx) error) error {
	if s.FailReads.Load() {
		return ErrInjected
	}
	return s.Store.View(ctx, fn)
}
