package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// testTokenListAndDelete: Tokens lists one user's rows only; DeleteToken
// removes one row, which then is not found, is not listed, and is not
// brought back by TouchToken.
func testTokenListAndDelete(t *testing.T, b vault.Backend) {
	now := time.Now().UTC().Truncate(time.Second)
	for i, r := range []struct{ id, user string }{{"tokA1", "pt_a"}, {"tokA2", "pt_a"}, {"tokB1", "pt_b"}, {"tokA3", "pt_ab"}} {
		row := vault.TokenRow{ID: r.id, UserID: r.user, Kind: "device", Hash: []byte{byte(i)}, Created: now.Add(time.Duration(i) * time.Second), Expires: now.Add(time.Hour)}
		if err := b.PutToken(t.Context(), row); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(user string) []string {
		t.Helper()
		rows, err := b.Tokens(t.Context(), user)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			if r.UserID != user {
				t.Fatalf("Tokens(%s) returned a row of %s", user, r.UserID)
			}
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := ids("pt_a"); !slices.Equal(got, []string{"tokA1", "tokA2"}) {
		t.Fatalf("Tokens(pt_a) = %v", got)
	}
	if got := ids("pt_none"); len(got) != 0 {
		t.Fatalf("Tokens of a user with none = %v", got)
	}
	rows, err := b.Tokens(t.Context(), "pt_b")
	if err != nil || len(rows) != 1 || rows[0].Kind != "device" || !rows[0].Expires.Equal(now.Add(time.Hour)) || len(rows[0].Hash) != 1 {
		t.Fatalf("Tokens(pt_b) = %+v, %v", rows, err)
	}
	if err := b.DeleteToken(t.Context(), "tokA1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Token(t.Context(), "tokA1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("deleted token: %v", err)
	}
	if got := ids("pt_a"); !slices.Equal(got, []string{"tokA2"}) {
		t.Fatalf("Tokens(pt_a) after delete = %v", got)
	}
	if err := b.TouchToken(t.Context(), "tokA1", now); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("TouchToken of a deleted token: %v", err)
	}
	if _, err := b.Token(t.Context(), "tokA1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatal("TouchToken brought a deleted token back")
	}
	if err := b.DeleteToken(t.Context(), "tokA1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("deleting a deleted token: %v", err)
	}
	if err := b.DeleteToken(t.Context(), "nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("deleting a missing token: %v", err)
	}
}
