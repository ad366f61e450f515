package vault

import (
	"context"
	"slices"

	"github.com/jupyterhealth/vault/omh"
)

// Schemas returns the schemas the patient has readings of, in the order of
// omh.Accepted: what a read of "every schema" needs to scan. It asks the
// backend (Backend.Schemas, a seek per stored schema) rather than scanning
// each of the hundred or so schemas the vault accepts, most of which a
// patient never has. A stored schema the vault no longer accepts is left
// out, as a scan of the accepted ones would.
func (v *Vault) Schemas(ctx context.Context, patientID string) ([]string, error) {
	stored, err := v.b.Schemas(ctx, patientID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range omh.Accepted() {
		if s := id.String(); slices.Contains(stored, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
