package postgres

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
)

// process is one vault process on the shared database: its own pool, its
// own vault and its own ledger.
type process struct {
	s    *Store
	v    *vault.Vault
	l    *consent.Ledger
	root *keys.Root
}

// TestTwoProcessesOneDatabase: two processes (two pools) starting at once
// on one empty database end with one master keyset and one log key, each
// reading what the other sealed; their ledgers' appends, made at the same
// time, form one log that both sign the same way and that verifies.
func TestTwoProcessesOneDatabase(t *testing.T) {
	dsn := pgtest.New(t)
	root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*process, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() {
			<-start
			p := &process{}
			p.s, errs[i] = Open(t.Context(), dsn, Options{AllowUnsafeDurability: true})
			if errs[i] != nil {
				return
			}
			t.Cleanup(func() { p.s.Close() })
			if p.v, errs[i] = vault.Open(t.Context(), p.s, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{}); errs[i] != nil {
				return
			}
			p.l, errs[i] = consent.Open(p.s.Ledger(), p.v.Master(), consent.Options{Origin: "vault.example"})
			ps[i] = p
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}

	// One master: each reads the account the other sealed.
	u, err := ps[0].v.CreateUser(t.Context(), vault.NewUser{Role: "patient", Name: "Ada", TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ps[1].v.User(t.Context(), u.ID); err != nil || got.Name != "Ada" {
		t.Fatalf("the other process reads %+v, %v", got, err)
	}
	// One log key.
	if a, b := ps[0].l.VerifierKey(), ps[1].l.VerifierKey(); a != b {
		t.Fatalf("two log keys: %q and %q", a, b)
	}

	// Appends from both processes at once: one log.
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	grant := func(id string) consent.Entry {
		e := consent.New(consent.KindGrant, "pt_a", t0)
		e.Patient, e.Clinician = "pt_a", "cl_b"
		e.Grant = &consent.Grant{ID: id, Schemas: []string{"omh:heart-rate"}, Expires: t0.Add(720 * time.Hour).Format(time.RFC3339Nano), Purpose: "TREAT"}
		return e
	}
	var aw sync.WaitGroup
	for k, p := range ps {
		for g := range 3 {
			aw.Go(func() {
				for i := range 15 {
					if _, err := p.l.Append(grant(fmt.Sprintf("gr_%d_%d_%d", k, g, i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	aw.Wait()
	if t.Failed() {
		t.FailNow()
	}
	cpA, err := ps[0].l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	cpB, err := ps[1].l.Sign()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cpA, cpB) {
		t.Fatal("two processes sign the same tree differently")
	}
	for k, p := range ps {
		res, err := p.l.Verify(cpA)
		if err != nil || res.Size != 90 {
			t.Fatalf("process %d: verify %+v, %v; want 90 entries", k, res, err)
		}
	}
}
