package consent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jupyterhealth/vault/vault"
)

// DeletePatient deletes a patient account the one way the vault does it,
// whoever asks (the admin through the API or CLI, the patient on the web
// UI's account page):
//
//  1. every grant of the patient still in force is revoked (a revoke entry
//     by actor), so nothing is decided on a deleted patient;
//  2. the patient is crypto-shredded (vault.DeletePatient: the key blob,
//     readings, account and tokens go, and the file is compacted);
//  3. a "user-delete" admin entry naming the patient records it, with
//     actor as its actor ("admin", or the patient's own id).
//
// Only patients can be deleted. An unknown patient is vault.ErrNoUser. If
// the last step fails the deletion has happened; the error says so.
func DeletePatient(ctx context.Context, v *vault.Vault, l *Ledger, actor, id string, now time.Time) error {
	if vault.RoleOf(id) != vault.RolePatient {
		return &vault.InputError{Code: "bad_user", Message: "only patients can be deleted for now"}
	}
	if _, err := v.User(ctx, id); err != nil {
		return err
	}
	// Begun, it goes through even if the asker goes away: a cancelled
	// request must not leave grants revoked and the patient kept.
	ctx = context.WithoutCancel(ctx)
	if actor == "" {
		actor = "admin"
	}
	gs, err := l.Grants(id, "")
	if err != nil {
		return err
	}
	for _, g := range gs {
		if !g.Active(now) {
			continue
		}
		if _, err := l.Append(NewRevoke(actor, g, now)); err != nil && !errors.Is(err, ErrRevoked) {
			return fmt.Errorf("revoking %s before the delete: %v", g.ID, err)
		}
	}
	if err := v.DeletePatient(ctx, id); err != nil {
		return err
	}
	e := NewAdmin("user-delete", id, "", now)
	e.Actor = actor
	if _, err := l.Append(e); err != nil {
		return fmt.Errorf("the action was done but its ledger entry failed: %v", err)
	}
	return nil
}

// MintOwnToken makes an API token for a user at their own request (the
// web UI's token page) and records it as a "token-mint" admin entry with
// the user as its actor (kind and token id only), as the admin's
// vault admin token is recorded. The secret is returned once.
func MintOwnToken(ctx context.Context, v *vault.Vault, l *Ledger, userID, kind string, ttl time.Duration, now time.Time) (string, vault.Token, error) {
	secret, t, err := v.MintToken(ctx, userID, kind, ttl)
	if err != nil {
		return "", vault.Token{}, err
	}
	if l != nil {
		e := NewAdmin("token-mint", userID, t.Kind+" "+t.ID, now)
		e.Actor = userID
		if _, err := l.Append(e); err != nil {
			// Nothing is granted by a token the ledger has not recorded:
			// take it back.
			if rerr := v.RevokeToken(context.WithoutCancel(ctx), userID, t.ID); rerr != nil {
				return "", vault.Token{}, fmt.Errorf("ledger: %v; the token could not be taken back: %v", err, rerr)
			}
			return "", vault.Token{}, fmt.Errorf("ledger: %v", err)
		}
	}
	return secret, t, nil
}

// RevokeToken revokes one of a user's API tokens at their request (the
// web UI, or DELETE /api/v1/tokens/{id}): it stops authenticating at once,
// and a "token-revoke" admin entry with the user as its actor records it
// (l may be nil). A token that is not the user's is vault.ErrNoToken. If
// only the entry fails, the token is revoked and the error says so.
func RevokeToken(ctx context.Context, v *vault.Vault, l *Ledger, userID, tokenID string, now time.Time) error {
	if err := v.RevokeToken(ctx, userID, tokenID); err != nil {
		return err
	}
	if l != nil {
		e := NewAdmin("token-revoke", userID, tokenID, now)
		e.Actor = userID
		if _, err := l.Append(e); err != nil {
			return fmt.Errorf("the token was revoked but its ledger entry failed: %v", err)
		}
	}
	return nil
}
