package boltstore

import (
	"context"
	"encoding/json"

	"github.com/jupyterhealth/vault/vault"
	bolt "go.etcd.io/bbolt"
)

// Tokens implements vault.Backend. Tokens are keyed by id with no index
// by user, so it reads the bucket (one row per token; a deployment has
// few).
func (s *Store) Tokens(ctx context.Context, userID string) ([]vault.TokenRow, error) {
	var out []vault.TokenRow
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bTokens).ForEach(func(k, v []byte) error {
			var t vault.TokenRow
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.UserID == userID {
				out = append(out, t)
			}
			return nil
		})
	})
	return out, err
}

// DeleteToken implements vault.Backend.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bTokens)
		if b.Get([]byte(id)) == nil {
			return vault.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}
