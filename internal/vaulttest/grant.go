package vaulttest

import (
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
)

// Grant appends a clinician grant from patient, as the API's POST
// /api/v1/grants would (unsigned), and returns it as the ledger's index
// holds it. An empty ExpiresAt is a day from now and an empty Purpose is
// TREAT; the clinician is taken as known.
func Grant(t testing.TB, led *consent.Ledger, patient string, r consent.GrantRequest) consent.GrantState {
	t.Helper()
	if r.ExpiresAt == "" {
		r.ExpiresAt = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	}
	if r.Purpose == "" {
		r.Purpose = "TREAT"
	}
	e, err := consent.NewGrant(patient, r, func(string) bool { return true }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(e); err != nil {
		t.Fatal(err)
	}
	g, err := led.Grant(e.Grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Revoke appends the patient's revoke of g.
func Revoke(t testing.TB, led *consent.Ledger, g consent.GrantState) {
	t.Helper()
	if _, err := led.Append(consent.NewRevoke(g.Patient, g, time.Now())); err != nil {
		t.Fatal(err)
	}
}
