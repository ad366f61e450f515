package vault_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// TestTokensListAndRevoke: a user lists their own tokens only (no secret,
// no hash), and a revoked token fails Authenticate at once, even one used
// a moment before (the last-use throttle holds no copy that authenticates).
func TestTokensListAndRevoke(t *testing.T) {
	e := newEnv(t)
	p, q := e.patient(t), e.patient(t)
	sec1, t1, err := e.Vault.MintToken(t.Context(), p.ID, vault.TokenDevice, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	sec2, t2, err := e.Vault.MintToken(t.Context(), p.ID, vault.TokenPatient, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, tq, err := e.Vault.MintToken(t.Context(), q.ID, vault.TokenDevice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Vault.Authenticate(t.Context(), sec1); err != nil {
		t.Fatal(err)
	}
	list, err := e.Vault.Tokens(t.Context(), p.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	// Newest first.
	if list[0].ID != t2.ID || list[1].ID != t1.ID || list[1].Kind != vault.TokenDevice || list[1].LastUsed.IsZero() || !list[0].LastUsed.IsZero() {
		t.Fatalf("Tokens = %+v", list)
	}
	if !list[0].Created.Equal(e.now) || !list[0].Expires.Equal(e.now.Add(time.Hour)) || list[0].Expired(e.now) || !list[0].Expired(e.now.Add(time.Hour)) {
		t.Fatalf("token times %+v", list[0])
	}
	// Another user's token, or a missing one, is ErrNoToken; nothing changes.
	if err := e.Vault.RevokeToken(t.Context(), p.ID, tq.ID); !errors.Is(err, vault.ErrNoToken) {
		t.Fatalf("revoking another user's token: %v", err)
	}
	if err := e.Vault.RevokeToken(t.Context(), p.ID, "nope"); !errors.Is(err, vault.ErrNoToken) {
		t.Fatalf("revoking a missing token: %v", err)
	}
	if l, err := e.Vault.Tokens(t.Context(), q.ID); err != nil || len(l) != 1 {
		t.Fatalf("another user's token was touched: %+v, %v", l, err)
	}
	if err := e.Vault.RevokeToken(t.Context(), p.ID, t1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Vault.Authenticate(t.Context(), sec1); !errors.Is(err, vault.ErrTokenInvalid) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	if _, err := e.Vault.Authenticate(t.Context(), sec2); err != nil {
		t.Fatalf("the other token stopped working: %v", err)
	}
	if l, err := e.Vault.Tokens(t.Context(), p.ID); err != nil || len(l) != 1 || l[0].ID != t2.ID {
		t.Fatalf("after revoke: %+v, %v", l, err)
	}
	if err := e.Vault.RevokeToken(t.Context(), p.ID, t1.ID); !errors.Is(err, vault.ErrNoToken) {
		t.Fatalf("revoking twice: %v", err)
	}
}
