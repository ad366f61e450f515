package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/vault"
)

// SwapRecords implements vault.Backend: in one transaction that first
// takes a key-share lock on the patient's key row (as Insert does), each
// record still holding exactly its Old value gets New; the value is
// compared in the database (the UPDATE's WHERE), so a record changed or
// deleted meanwhile is left alone.
func (s *Store) SwapRecords(ctx context.Context, patientID string, swaps []vault.RecordSwap) error {
	if len(swaps) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range swaps {
		swaps[i].Swapped = false
		if swaps[i].Schema == "" || len(swaps[i].New) == 0 {
			return fmt.Errorf("swap %d has no schema or no new value", i)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return vault.ErrClosed
	}
	swapped := make([]bool, len(swaps))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clear(swapped)
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM patient_keys WHERE patient = $1 FOR KEY SHARE", patientID).Scan(&one); err != nil {
			_, err = notFound(nil, err)
			return err
		}
		for i := range swaps {
			sw := &swaps[i]
			tag, err := tx.Exec(ctx, `UPDATE readings SET value = $6 WHERE patient = $1 AND schema_id = $2 AND t = $3 AND tag = $4 AND value = $5`,
				patientID, sw.Schema, sw.Time, sw.Tag[:], sw.Old, sw.New)
			if err != nil {
				return err
			}
			swapped[i] = tag.RowsAffected() == 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range swaps {
		swaps[i].Swapped = swapped[i]
	}
	return nil
}
