package consent

import (
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/jupyterhealth/vault/consent/ledgerstore"

	"golang.org/x/mod/sumdb/tlog"
)

// Proof is an inclusion or consistency proof as the API and exports carry
// it, with every hash in standard base64. Check an inclusion proof with
// tlog.CheckRecord(proof, size, root, index, leaf) and a consistency proof
// with tlog.CheckTree(proof, size, root, from, fromHash).
type Proof struct {
	Kind     string   `json:"kind"` // inclusion or consistency
	Index    *int64   `json:"index,omitempty"`
	From     *int64   `json:"from,omitempty"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash,omitempty"`
	RootHash string   `json:"root_hash"`
	FromHash string   `json:"from_hash,omitempty"`
	Proof    []string `json:"proof"`
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func b64s(hs []tlog.Hash) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, b64(h))
	}
	return out
}

// InclusionProof proves that entry i is in the tree of size n, with the
// leaf and root hashes, from one read transaction (on PostgreSQL, one
// round trip for each read rather than a transaction each).
func (l *Ledger) InclusionProof(i, n int64) (Proof, error) {
	ps, _, err := l.provenEntries([]int64{i}, n, false)
	if err != nil {
		return Proof{}, err
	}
	return ps[0], nil
}

// ProvenEntries proves each entry of idxs in the tree of size n, as
// InclusionProof does, and returns the entries' canonical bytes too, as
// Entry does: all from one read transaction, the root hash read once (an
// export's manifest carries its access-start and the grants it used,
// each with its proof).
func (l *Ledger) ProvenEntries(idxs []int64, n int64) ([]Proof, [][]byte, error) {
	return l.provenEntries(idxs, n, true)
}

func (l *Ledger) provenEntries(idxs []int64, n int64, entries bool) (proofs []Proof, raws [][]byte, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		proofs, raws = make([]Proof, len(idxs)), make([][]byte, len(idxs))
		size, err := tx.Size()
		if err != nil {
			return err
		}
		err = inOneRead(tx, func(r tlog.HashReader) error {
			root, err := treeHashTx(r, size, n)
			if err != nil {
				return err
			}
			for k, i := range idxs {
				p, err := proveInclusionTx(r, size, i, n)
				if err != nil {
					return err
				}
				leaf, err := leafHashTx(r, size, i)
				if err != nil {
					return err
				}
				proofs[k] = Proof{Kind: "inclusion", Index: &i, Size: n, LeafHash: b64(leaf), RootHash: b64(root), Proof: b64s(p)}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if entries {
			for k, i := range idxs {
				if raws[k], err = l.entryTx(tx, size, i); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return proofs, raws, nil
}

// ConsistencyProof proves that the tree of size m is a prefix of size n,
// with both root hashes, from one read transaction and one read of the
// stored hashes.
func (l *Ledger) ConsistencyProof(m, n int64) (out Proof, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		size, err := tx.Size()
		if err != nil {
			return err
		}
		return inOneRead(tx, func(r tlog.HashReader) error {
			p, err := proveConsistencyTx(r, size, m, n)
			if err != nil {
				return err
			}
			fh, err := treeHashTx(r, size, m)
			if err != nil {
				return err
			}
			root, err := treeHashTx(r, size, n)
			if err != nil {
				return err
			}
			out = Proof{Kind: "consistency", From: &m, Size: n, RootHash: b64(root), FromHash: b64(fh), Proof: b64s(p)}
			return nil
		})
	})
	return out, err
}

// inOneRead runs prove, which reads stored hashes at indexes set by the
// tree's shape alone (proofs, leaves, roots), with every hash it needs
// fetched in one read: a first pass over a hashPlan learns the indexes,
// one ReadHashes fetches them, and the second pass computes. What the
// first pass computes from zero hashes is overwritten by the second.
func inOneRead(tx ledgerstore.ReadTx, prove func(tlog.HashReader) error) error {
	var plan hashPlan
	if err := prove(&plan); err != nil {
		return err
	}
	hs, err := plan.read(tx)
	if err != nil {
		return err
	}
	return prove(hs)
}

// hashPlan is a tlog.HashReader that only notes the stored hash indexes
// asked of it (answering zero hashes), so that a computation's hashes can
// be read in one call (read) and the computation run again on them.
type hashPlan struct{ idx []int64 }

func (p *hashPlan) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	p.idx = append(p.idx, indexes...)
	return make([]tlog.Hash, len(indexes)), nil
}

// read fetches every hash the plan noted, once each.
func (p *hashPlan) read(tx ledgerstore.ReadTx) (readHashes, error) {
	slices.Sort(p.idx)
	idx := slices.Compact(p.idx)
	hs, err := tx.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	m := make(readHashes, len(idx))
	for k, x := range idx {
		m[x] = hs[k]
	}
	return m, nil
}

// readHashes answers a tlog.HashReader's reads from hashes read before;
// one it lacks is ledgerstore.ErrMissing, as from the store.
type readHashes map[int64]tlog.Hash

func (m readHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for k, x := range indexes {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d: %w", x, ledgerstore.ErrMissing)
		}
		out[k] = h
	}
	return out, nil
}
