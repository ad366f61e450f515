package consent

import (
	"encoding/base64"

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

// InclusionProof proves that entry i is in the tree of size n.
func (l *Ledger) InclusionProof(i, n int64) (Proof, error) {
	p, err := l.ProveInclusion(i, n)
	if err != nil {
		return Proof{}, err
	}
	leaf, err := l.LeafHash(i)
	if err != nil {
		return Proof{}, err
	}
	root, err := l.TreeHash(n)
	if err != nil {
		return Proof{}, err
	}
	return Proof{Kind: "inclusion", Index: &i, Size: n, LeafHash: b64(leaf), RootHash: b64(root), Proof: b64s(p)}, nil
}

// ConsistencyProof proves that the tree of size m is a prefix of size n.
func (l *Ledger) ConsistencyProof(m, n int64) (Proof, error) {
	p, err := l.ProveConsistency(m, n)
	if err != nil {
		return Proof{}, err
	}
	fh, err := l.TreeHash(m)
	if err != nil {
		return Proof{}, err
	}
	root, err := l.TreeHash(n)
	if err != nil {
		return Proof{}, err
	}
	return Proof{Kind: "consistency", From: &m, Size: n, RootHash: b64(root), FromHash: b64(fh), Proof: b64s(p)}, nil
}
