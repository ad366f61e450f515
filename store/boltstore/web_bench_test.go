package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/web/webstore"
)

// The web store's cost per operation on a real file: each write is one
// fsync'd bbolt transaction. Sealed values are 300 random-looking bytes,
// about a sealed session or ceremony record. Run with a fixed count, for
// example -bench BenchmarkWeb -benchtime 2000x.

func benchWebStore(b *testing.B) webstore.Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "vault.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s.Web()
}

func benchHash(i int) [32]byte { return sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i))) }

var benchSealed = make([]byte, 300)

func benchSession(i int, now time.Time) webstore.Session {
	return webstore.Session{Hash: benchHash(i), UserID: "pt_bench", Created: now, LastSeen: now, Expires: now.Add(30 * time.Minute), Sealed: benchSealed}
}

func BenchmarkWebSessionCreate(b *testing.B) {
	w, now := benchWebStore(b), time.Now()
	for i := 0; b.Loop(); i++ {
		if err := w.CreateSession(b.Context(), benchSession(i, now), 100000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWebSessionGet(b *testing.B) {
	w, now := benchWebStore(b), time.Now()
	for i := range 1000 {
		if err := w.CreateSession(b.Context(), benchSession(i, now), 100000); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := w.Session(b.Context(), benchHash(i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWebSessionTouch(b *testing.B) {
	w, now := benchWebStore(b), time.Now()
	for i := range 1000 {
		if err := w.CreateSession(b.Context(), benchSession(i, now), 100000); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		at := now.Add(time.Duration(i+1) * time.Minute)
		if err := w.TouchSession(b.Context(), benchHash(i%1000), at, at.Add(30*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebCeremonyPutTake is one ceremony's whole life: begin (put)
// and finish (take), two transactions.
func BenchmarkWebCeremonyPutTake(b *testing.B) {
	w, now := benchWebStore(b), time.Now()
	for i := 0; b.Loop(); i++ {
		c := webstore.Ceremony{Hash: benchHash(i), Created: now, Expires: now.Add(5 * time.Minute), Sealed: benchSealed}
		if err := w.PutCeremony(b.Context(), c, 10000); err != nil {
			b.Fatal(err)
		}
		if _, err := w.TakeCeremony(b.Context(), c.Hash); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebBaselinePut is the floor the writes above stand on: one
// small put in its own fsync'd transaction.
func BenchmarkWebBaselinePut(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "vault.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for i := 0; b.Loop(); i++ {
		if err := s.PutMeta("bench", binary.BigEndian.AppendUint64(nil, uint64(i))); err != nil {
			b.Fatal(err)
		}
	}
}
