package postgres

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/tlog"
)

// TestDifferentialLedger: random transactions on the consent ledger's
// store (ledgerstore.Store) against bbolt and PostgreSQL. An Update runs
// one to five writes and reads (entries, hashes, index rows, metadata,
// the size, checkpoints, with bad arguments among them: negative indexes,
// the reserved name "size", empty and NUL-bearing names, a "pt_" id
// beside "ptx_"), stops at the first error and returns it, or is failed by
// its own callback after its writes (which must then leave nothing
// behind); a View runs one read. Each transaction's reads and outcome,
// and every 25 transactions the whole ledger, must be the same on both.
//
//	go test -run TestDifferentialLedger ./store/postgres/ -diff.seed=N -diff.runs=1
func TestDifferentialLedger(t *testing.T) {
	diffRepeat(t, "TestDifferentialLedger", 400, 2, func(t *testing.T, seed uint64, steps int) {
		bolt, pg := openBolt(t).Ledger(), openTest(t).Ledger()
		diffStores(t, "TestDifferentialLedger", seed, steps, 25, bolt, pg, diffLedgerStep, diffLedgerState)
	})
}

var (
	diffLedgerIdx   = []int64{-1, 0, 1, 2, 3, 7, 1 << 40, math.MaxInt64}
	diffLedgerIDs   = []string{"pt_a", "ptx_a", "pt_", "pt_a\x00", "g\x00a", "z", ""}
	diffLedgerMetas = []string{"sign", "verifier", "sign\x00", "s", "size", ""}
	diffLedgerSizes = []int64{-1, 0, 1, 3, 4, 1 << 40}
)

func (g *diffRand) idx() int64 { return diffLedgerIdx[g.n(len(diffLedgerIdx))] }

// sealed draws a value to store: now and then empty or nil, which both
// stores refuse.
func (g *diffRand) sealed() []byte {
	if g.one(10) {
		return g.bytes(0)
	}
	for {
		if b := g.bytes(12); len(b) > 0 {
			return b
		}
	}
}

// diffB renders bytes a ledger returns: nil (not stored) is not empty.
func diffB(b []byte) string {
	if b == nil {
		return "nil"
	}
	return "[" + diffX(b) + "]"
}

// diffLedgerOp is one call inside a transaction.
type diffLedgerOp struct {
	desc  string
	read  func(tx ledgerstore.ReadTx) (string, error)
	write func(tx ledgerstore.WriteTx) error
}

func diffLedgerRead(g *diffRand) diffLedgerOp {
	switch g.n(11) {
	case 0:
		return diffLedgerOp{desc: "Size()", read: func(tx ledgerstore.ReadTx) (string, error) {
			n, err := tx.Size()
			return fmt.Sprint(n), err
		}}
	case 1:
		k := g.str(diffLedgerMetas)
		return diffLedgerOp{desc: fmt.Sprintf("Meta(%q)", k), read: func(tx ledgerstore.ReadTx) (string, error) {
			v, err := tx.Meta(k)
			return diffB(v), err
		}}
	case 2:
		stop := g.n(4)
		return diffLedgerOp{desc: fmt.Sprintf("MetaKeys(stop after %d)", stop), read: func(tx ledgerstore.ReadTx) (string, error) {
			var keys []string
			err := tx.MetaKeys(func(k string) error {
				if len(keys) == stop {
					return errDiffCallback
				}
				keys = append(keys, fmt.Sprintf("%q", k))
				return nil
			})
			return strings.Join(keys, ","), err
		}}
	case 3:
		i := g.idx()
		return diffLedgerOp{desc: fmt.Sprintf("Entry(%d)", i), read: func(tx ledgerstore.ReadTx) (string, error) {
			v, err := tx.Entry(i)
			return diffB(v), err
		}}
	case 4:
		below, stop := g.idx(), 1+g.n(4)
		return diffLedgerOp{desc: fmt.Sprintf("EntriesDesc(%d, stop after %d)", below, stop), read: func(tx ledgerstore.ReadTx) (string, error) {
			var out []string
			err := tx.EntriesDesc(below, func(i int64, sealed []byte) bool {
				out = append(out, fmt.Sprintf("%d:%s", i, diffB(sealed)))
				return len(out) < stop
			})
			return strings.Join(out, " "), err
		}}
	case 5:
		idx := make([]int64, g.n(4))
		for i := range idx {
			idx[i] = g.idx()
		}
		return diffLedgerOp{desc: fmt.Sprintf("ReadHashes(%v)", idx), read: func(tx ledgerstore.ReadTx) (string, error) {
			hs, err := tx.ReadHashes(idx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%x", hs), nil
		}}
	case 6:
		if g.one(2) {
			ids := make([]string, g.n(5))
			for i := range ids {
				ids[i] = g.str(diffLedgerIDs)
			}
			return diffLedgerOp{desc: fmt.Sprintf("IndexRowsByID(%q)", ids), read: func(tx ledgerstore.ReadTx) (string, error) {
				vs, err := tx.IndexRowsByID(ids)
				out := make([]string, len(vs))
				for i, v := range vs {
					out[i] = diffB(v)
				}
				return strings.Join(out, " "), err
			}}
		}
		id := g.str(diffLedgerIDs)
		return diffLedgerOp{desc: fmt.Sprintf("IndexRow(%q)", id), read: func(tx ledgerstore.ReadTx) (string, error) {
			v, err := tx.IndexRow(id)
			return diffB(v), err
		}}
	case 7:
		stop := g.n(5)
		return diffLedgerOp{desc: fmt.Sprintf("IndexRows(stop after %d)", stop), read: func(tx ledgerstore.ReadTx) (string, error) {
			var out []string
			err := tx.IndexRows(func(id string, sealed []byte) error {
				if len(out) == stop {
					return errDiffCallback
				}
				out = append(out, fmt.Sprintf("%q:%s", id, diffB(sealed)))
				return nil
			})
			return strings.Join(out, " "), err
		}}
	case 8:
		return diffLedgerOp{desc: "LatestCheckpoint()", read: func(tx ledgerstore.ReadTx) (string, error) {
			n, v, err := tx.LatestCheckpoint()
			return fmt.Sprintf("%d:%s", n, diffB(v)), err
		}}
	case 9:
		return diffLedgerOp{desc: "Checkpoints()", read: func(tx ledgerstore.ReadTx) (string, error) {
			var out []string
			err := tx.Checkpoints(func(n int64, v []byte) error {
				out = append(out, fmt.Sprintf("%d:%s", n, diffB(v)))
				return nil
			})
			return strings.Join(out, " "), err
		}}
	}
	return diffLedgerOp{desc: "Extent()", read: func(tx ledgerstore.ReadTx) (string, error) {
		e, err := tx.Extent()
		return fmt.Sprintf("%+v", e), err
	}}
}

func diffLedgerWrite(g *diffRand) diffLedgerOp {
	switch g.n(8) {
	case 0, 1:
		i, v := g.idx(), g.sealed()
		return diffLedgerOp{desc: fmt.Sprintf("PutEntry(%d, %s)", i, diffB(v)), write: func(tx ledgerstore.WriteTx) error { return tx.PutEntry(i, v) }}
	case 2:
		first := g.idx()
		hs := make([]tlog.Hash, g.n(4))
		for i := range hs {
			hs[i] = tlog.Hash(diffHash(g.n(6)))
		}
		return diffLedgerOp{desc: fmt.Sprintf("PutHashes(%d, %d hashes)", first, len(hs)), write: func(tx ledgerstore.WriteTx) error { return tx.PutHashes(first, hs) }}
	case 3:
		id, v := g.str(diffLedgerIDs), g.sealed()
		return diffLedgerOp{desc: fmt.Sprintf("PutIndexRow(%q, %s)", id, diffB(v)), write: func(tx ledgerstore.WriteTx) error { return tx.PutIndexRow(id, v) }}
	case 4:
		if g.one(3) {
			return diffLedgerOp{desc: "ClearIndex()", write: func(tx ledgerstore.WriteTx) error { return tx.ClearIndex() }}
		}
		k, v := g.str(diffLedgerMetas), g.sealed()
		return diffLedgerOp{desc: fmt.Sprintf("PutMeta(%q, %s)", k, diffB(v)), write: func(tx ledgerstore.WriteTx) error { return tx.PutMeta(k, v) }}
	case 5:
		n := diffLedgerSizes[g.n(len(diffLedgerSizes))]
		return diffLedgerOp{desc: fmt.Sprintf("SetSize(%d)", n), write: func(tx ledgerstore.WriteTx) error { return tx.SetSize(n) }}
	default:
		n, v := diffLedgerSizes[g.n(len(diffLedgerSizes))], g.sealed()
		return diffLedgerOp{desc: fmt.Sprintf("PutCheckpoint(%d, %s)", n, diffB(v)), write: func(tx ledgerstore.WriteTx) error { return tx.PutCheckpoint(n, v) }}
	}
}

func diffLedgerStep(g *diffRand) diffStoreStep[ledgerstore.Store] {
	if g.one(3) {
		op := diffLedgerRead(g)
		return diffStoreStep[ledgerstore.Store]{"View(" + op.desc + ")", func(ctx context.Context, s ledgerstore.Store) string {
			var out string
			err := s.View(ctx, func(tx ledgerstore.ReadTx) error {
				var err error
				out, err = op.read(tx)
				return err
			})
			return out + " " + diffClass(err)
		}}
	}
	ops := make([]diffLedgerOp, 1+g.n(5))
	descs := make([]string, len(ops))
	for i := range ops {
		if g.one(3) {
			ops[i] = diffLedgerRead(g)
		} else {
			ops[i] = diffLedgerWrite(g)
		}
		descs[i] = ops[i].desc
	}
	abort := g.one(6)
	desc := "Update(" + strings.Join(descs, "; ")
	if abort {
		desc += "; then fail"
	}
	return diffStoreStep[ledgerstore.Store]{desc + ")", func(ctx context.Context, s ledgerstore.Store) string {
		var out []string
		err := s.Update(ctx, func(tx ledgerstore.WriteTx) error {
			out = out[:0] // a backend may run fn again
			for _, op := range ops {
				if op.read != nil {
					v, err := op.read(tx)
					out = append(out, v+" "+diffClass(err))
					if err != nil {
						return err
					}
					continue
				}
				err := op.write(tx)
				out = append(out, diffClass(err))
				if err != nil {
					return err
				}
			}
			if abort {
				return errDiffCallback
			}
			return nil
		})
		return strings.Join(out, "; ") + " => " + diffClass(err)
	}}
}

// diffLedgerState renders the whole ledger: size, metadata, index,
// checkpoints, extent, every entry, and the hashes at the drawn indexes.
func diffLedgerState(t *testing.T, s ledgerstore.Store) string {
	t.Helper()
	var b strings.Builder
	err := s.View(t.Context(), func(tx ledgerstore.ReadTx) error {
		n, err := tx.Size()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "size %d\n", n)
		if err := tx.MetaKeys(func(k string) error {
			v, err := tx.Meta(k)
			fmt.Fprintf(&b, "meta %q=%s\n", k, diffB(v))
			return err
		}); err != nil {
			return err
		}
		if err := tx.IndexRows(func(id string, v []byte) error {
			fmt.Fprintf(&b, "index %q=%s\n", id, diffB(v))
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Checkpoints(func(n int64, v []byte) error {
			fmt.Fprintf(&b, "checkpoint %d=%s\n", n, diffB(v))
			return nil
		}); err != nil {
			return err
		}
		e, err := tx.Extent()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "extent %+v\n", e)
		if err := tx.EntriesDesc(math.MaxInt64, func(i int64, v []byte) bool {
			fmt.Fprintf(&b, "entry %d=%s\n", i, diffB(v))
			return true
		}); err != nil {
			return err
		}
		for _, i := range diffLedgerIdx {
			hs, err := tx.ReadHashes([]int64{i})
			fmt.Fprintf(&b, "hash %d=%x %s\n", i, hs, diffClass(err))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
