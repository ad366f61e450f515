//go:build ignore

// gen_vectors writes go_vectors.json: RFC 6962 tree hashes, inclusion and
// consistency proofs computed by golang.org/x/mod/sumdb/tlog, and signed
// notes made by golang.org/x/mod/sumdb/note, for the Python client's tests.
// Run from the repository root:
//
//	go run ./clients/python/tests/testdata/gen_vectors.go > clients/python/tests/testdata/go_vectors.json
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type hashes []tlog.Hash

func (h hashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = h[x]
	}
	return out, nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func b64s(p []tlog.Hash) []string {
	out := []string{}
	for _, h := range p {
		out = append(out, b64(h))
	}
	return out
}

// detRand is a deterministic reader for key generation, so the vectors are
// stable.
type detRand struct{ ctr int }

func (r *detRand) Read(p []byte) (int, error) {
	for i := range p {
		s := sha256.Sum256(fmt.Appendf(nil, "jhvault-vectors|%d", r.ctr))
		p[i] = s[0]
		r.ctr++
	}
	return len(p), nil
}

func main() {
	const n = 21
	var stored hashes
	var records []string
	for i := int64(0); i < n; i++ {
		data := fmt.Appendf(nil, `{"v":1,"kind":"admin","n":%d}`, i)
		records = append(records, base64.StdEncoding.EncodeToString(data))
		hs, err := tlog.StoredHashes(i, data, stored)
		if err != nil {
			panic(err)
		}
		stored = append(stored, hs...)
	}
	out := map[string]any{"records": records}
	var trees []map[string]any
	for size := int64(1); size <= n; size++ {
		h, err := tlog.TreeHash(size, stored)
		if err != nil {
			panic(err)
		}
		trees = append(trees, map[string]any{"size": size, "root": b64(h)})
	}
	out["trees"] = trees
	var incl []map[string]any
	for size := int64(1); size <= n; size++ {
		for i := int64(0); i < size; i++ {
			p, err := tlog.ProveRecord(size, i, stored)
			if err != nil {
				panic(err)
			}
			incl = append(incl, map[string]any{"index": i, "size": size, "proof": b64s(p)})
		}
	}
	out["inclusion"] = incl
	var cons []map[string]any
	for size := int64(1); size <= n; size++ {
		for m := int64(1); m <= size; m++ {
			p, err := tlog.ProveTree(size, m, stored)
			if err != nil {
				panic(err)
			}
			cons = append(cons, map[string]any{"from": m, "size": size, "proof": b64s(p)})
		}
	}
	out["consistency"] = cons

	skey, vkey, err := note.GenerateKey(&detRand{}, "vectors.example")
	if err != nil {
		panic(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	skey2, vkey2, err := note.GenerateKey(&detRand{ctr: 1000}, "other.example")
	if err != nil {
		panic(err)
	}
	signer2, err := note.NewSigner(skey2)
	if err != nil {
		panic(err)
	}
	root, _ := tlog.TreeHash(n, stored)
	text := fmt.Sprintf("vectors.example\n%d\n%s\n", n, b64(root))
	one, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		panic(err)
	}
	two, err := note.Sign(&note.Note{Text: text}, signer, signer2)
	if err != nil {
		panic(err)
	}
	other, err := note.Sign(&note.Note{Text: text}, signer2)
	if err != nil {
		panic(err)
	}
	out["notes"] = map[string]any{
		"verifier_key": vkey, "other_verifier_key": vkey2, "text": text,
		"signed": string(one), "signed_by_both": string(two), "signed_by_other": string(other),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
	os.Stdout.Write(buf.Bytes())
}
