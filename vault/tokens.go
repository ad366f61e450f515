package vault

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// TokenInfo describes one of a user's API tokens for listing: never the
// secret, nor its hash.
type TokenInfo struct {
	ID       string
	UserID   string
	Kind     string
	Created  time.Time
	Expires  time.Time
	LastUsed time.Time // zero when never used (recorded at most every five minutes)
}

// Expired reports whether the token has expired at now.
func (t TokenInfo) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// ErrNoToken is returned for a token that does not exist or is not the
// user's: the two are the same to the caller.
var ErrNoToken = errors.New("no such token")

// Tokens lists a user's API tokens, expired ones included, newest first.
func (v *Vault) Tokens(ctx context.Context, userID string) ([]TokenInfo, error) {
	rows, err := v.b.Tokens(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(rows))
	for _, r := range rows {
		if r.UserID != userID {
			continue
		}
		out = append(out, TokenInfo{ID: r.ID, UserID: r.UserID, Kind: r.Kind, Created: r.Created, Expires: r.Expires, LastUsed: r.LastUsed})
	}
	slices.SortFunc(out, func(a, b TokenInfo) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeToken deletes one of a user's tokens. It stops authenticating at
// once: Authenticate reads the token's row on every call, and no copy of
// it is cached. A token that is not the user's is ErrNoToken, as a
// missing one.
func (v *Vault) RevokeToken(ctx context.Context, userID, tokenID string) error {
	row, err := v.b.Token(ctx, tokenID)
	if errors.Is(err, ErrNotFound) || err == nil && row.UserID != userID {
		return ErrNoToken
	}
	if err != nil {
		return err
	}
	if err := v.b.DeleteToken(ctx, tokenID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrNoToken
		}
		return err
	}
	v.touchMu.Lock()
	delete(v.touched, tokenID)
	v.touchMu.Unlock()
	v.log.Info("token revoked", "token_id", tokenID, "user", userID, "kind", row.Kind)
	return nil
}
