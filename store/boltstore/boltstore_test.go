package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
	bolt "go.etcd.io/bbolt"
)

// openTest opens a store on a real file in t.TempDir() and, after the test,
// checks the file's integrity as bbolt's own tests do.
func openTest(t *testing.T) *Store {
	t.Helper()
	s, _ := openReopenable(t)
	return s
}

// openReopenable is openTest with a restart: reopen closes the handle open
// now, checks the file and opens it again. When the test ends, the handle
// open then is closed and the file checked.
func openReopenable(t *testing.T) (s *Store, reopen func(t *testing.T) *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := Check(path); err != nil {
			t.Errorf("integrity: %v", err)
		}
	})
	reopen = func(t *testing.T) *Store {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := Check(path); err != nil {
			t.Fatalf("integrity: %v", err)
		}
		if s, err = Open(path, Options{}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return s, reopen
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	_ vault.Backend            = (*Store)(nil)
	_ storetest.RecordTamperer = (*RecordTamperer)(nil)
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vault.Backend { return openTest(t) })
}

func TestLockTimeout(t *testing.T) {
	s := openTest(t)
	start := time.Now()
	_, err := Open(s.Path(), Options{LockTimeout: 200 * time.Millisecond})
	if err != ErrLocked {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("lock wait took %v", d)
	}
}

// TestCompactLeavesNoTrace is bbolt's physical half of the erasure
// promise (vault.Backend): after DeletePatient, no free page of the file
// keeps the deleted bytes.
func TestCompactLeavesNoTrace(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	canary := bytes.Repeat([]byte("SHRED-CANARY-"), 40)
	must(t, s.CreatePatientKeys(ctx, "pt_a", canary))
	must(t, s.CreateUser(ctx, "pt_a", []byte("u")))
	// Churn so the blob's page is copied around and freed.
	for i := range 50 {
		if _, err := s.Insert(ctx, "pt_a", []vault.Record{{Schema: "s", Time: int64(i), Value: bytes.Repeat([]byte{byte(i)}, 3000)}}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(readFile(t, s.Path()), canary) {
		t.Fatal("test is broken: canary not in the file before delete")
	}
	must(t, s.DeletePatient(ctx, "pt_a"))
	if bytes.Contains(readFile(t, s.Path()), canary[:24]) {
		t.Fatal("deleted key blob still in the database file")
	}
	if _, err := os.Stat(s.Path() + ".compact"); !os.IsNotExist(err) {
		t.Fatal("compaction left its temporary file")
	}
}

// TestScrubLeavesNoTrace: the same for a value a scrubbing SwapMeta
// replaced.
func TestScrubLeavesNoTrace(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	canary := bytes.Repeat([]byte("SCRUB-CANARY-"), 40)
	must(t, s.SwapMeta(ctx, []vault.MetaSwap{{Key: "master", New: canary}}, false))
	if !bytes.Contains(readFile(t, s.Path()), canary) {
		t.Fatal("test is broken: canary not in the file before the swap")
	}
	must(t, s.SwapMeta(ctx, []vault.MetaSwap{{Key: "master", Old: canary, New: []byte("rewrapped")}}, true))
	if bytes.Contains(readFile(t, s.Path()), canary[:24]) {
		t.Fatal("a scrubbed meta value is still in the database file")
	}
}

func TestOpenWritesNothingWhenCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	before := readFile(t, path)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("opening a current database changed the file")
	}
}

func TestFailedCompactionIsFinishedLater(t *testing.T) {
	for _, how := range []string{"next delete", "next open"} {
		t.Run(how, func(t *testing.T) {
			s := openTest(t)
			ctx := t.Context()
			canary := bytes.Repeat([]byte("PENDING-CANARY-"), 30)
			must(t, s.CreatePatientKeys(ctx, "pt_a", canary))
			must(t, s.CreateUser(ctx, "pt_a", []byte("u")))
			// Block the compaction: a directory where its temporary file goes.
			must(t, os.Mkdir(s.Path()+".compact", 0o700))
			must(t, os.WriteFile(filepath.Join(s.Path()+".compact", "x"), nil, 0o600))
			if err := s.DeletePatient(ctx, "pt_a"); err == nil {
				t.Fatal("compaction was expected to fail")
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("store unusable after a failed compaction: %v", err)
			}
			// Already gone from the live store, though not yet from the file.
			if _, err := s.PatientKeys(ctx, "pt_a"); !errors.Is(err, vault.ErrNotFound) {
				t.Fatalf("key blob readable after a delete whose compaction failed: %v", err)
			}
			must(t, os.RemoveAll(s.Path()+".compact"))
			switch how {
			case "next delete":
				if err := s.DeletePatient(ctx, "pt_a"); err != vault.ErrNotFound {
					t.Fatalf("retry: %v, want ErrNotFound", err)
				}
			case "next open":
				must(t, s.Close())
				s2, err := Open(s.Path(), Options{})
				if err != nil {
					t.Fatal(err)
				}
				must(t, s2.Close())
			}
			if bytes.Contains(readFile(t, s.Path()), canary[:30]) {
				t.Fatal("deleted key blob still in the file after the retry")
			}
		})
	}
}

func TestInsertAfterCloseDoesNotHang(t *testing.T) {
	s := openTest(t)
	must(t, s.CreatePatientKeys(t.Context(), "pt_a", []byte("k")))
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if _, err := s.Insert(context.Background(), "pt_a", []vault.Record{{Schema: "s", Time: int64(i), Value: []byte("v")}}); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	must(t, s.Close())
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("insert after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Insert hung after Close")
	}
}

// TestRecordTamperer: the test hook reads back exactly what Insert stored,
// and what it writes is what Scan returns.
func TestRecordTamperer(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tm := s.RecordTamperer()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	in := []vault.Record{
		{Schema: "omh:heart-rate:2.0", Time: -7, Tag: [16]byte{1}, Value: []byte("hr")},
		{Schema: "omh:blood-glucose:4.0", Time: 5, Tag: [16]byte{2, 3}, Value: []byte("g\x00")},
	}
	if _, err := s.Insert(ctx, "pt_a", in); err != nil {
		t.Fatal(err)
	}
	got, err := tm.Records(ctx, "pt_a")
	if err != nil || len(got) != 2 {
		t.Fatalf("Records = %d, %v", len(got), err)
	}
	// Key order: schema first.
	for i, want := range []vault.Record{in[1], in[0]} {
		if got[i].Schema != want.Schema || got[i].Time != want.Time || got[i].Tag != want.Tag || !bytes.Equal(got[i].Value, want.Value) {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want)
		}
	}
	forged := got[0]
	forged.Value = []byte("forged")
	must(t, tm.PutRecord(ctx, "pt_a", forged))
	var scanned []vault.Record
	for r, err := range s.Scan(ctx, "pt_a", forged.Schema, 0, 10) {
		must(t, err)
		scanned = append(scanned, r)
	}
	if len(scanned) != 1 || string(scanned[0].Value) != "forged" {
		t.Fatalf("after PutRecord, Scan = %+v", scanned)
	}
	must(t, tm.DeleteRecord(ctx, "pt_a", forged))
	if n, err := s.Count(ctx, "pt_a"); err != nil || n != 1 {
		t.Fatalf("after DeleteRecord, Count = %d, %v", n, err)
	}
	must(t, tm.PutPatientKeys(ctx, []vault.PatientKeyBlob{{PatientID: "pt_b", Blob: []byte("b")}, {PatientID: "pt_c", Blob: []byte("c")}}))
	if page, err := s.PatientKeyBlobs(ctx, "", 10); err != nil || len(page) != 3 {
		t.Fatalf("after PutPatientKeys, %d blobs, %v", len(page), err)
	}
}

// BenchmarkCount measures Count (a walk of the patient bucket's page
// headers) at two sizes; vault.Backend's Count documents the figures.
func BenchmarkCount(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "vault.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := b.Context()
			if err := s.CreatePatientKeys(ctx, "pt_a", []byte("k")); err != nil {
				b.Fatal(err)
			}
			val := bytes.Repeat([]byte{0xa5}, 450) // about a sealed reading
			for i := 0; i < n; i += 10_000 {
				recs := make([]vault.Record, 10_000)
				for j := range recs {
					recs[j] = vault.Record{Schema: "omh:blood-glucose:4.0", Time: int64(i+j) * 1e9, Value: val}
				}
				if _, err := s.Insert(ctx, "pt_a", recs); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if c, err := s.Count(ctx, "pt_a"); err != nil || c != n {
					b.Fatalf("Count = %d, %v", c, err)
				}
			}
		})
	}
}

// TestWebConformance runs the web store's suite on a real file; after each
// case the file is closed and checked (bbolt's consistency check over every
// page).
func TestWebConformance(t *testing.T) {
	storetest.RunWeb(t, func(t *testing.T) (webstore.Store, func() webstore.Store) {
		s, reopen := openReopenable(t)
		return s.Web(), func() webstore.Store { return reopen(t).Web() }
	})
}

// TestWebBucketsMigration: a file of the previous format (web buckets made
// by the web UI on first use, or none yet) is brought up to date on open,
// and its passkeys and invites are read as they were written.
func TestWebBucketsMigration(t *testing.T) {
	for _, withOld := range []bool{true, false} {
		t.Run(fmt.Sprintf("old web buckets %v", withOld), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vault.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Back to format 1, as the previous version left it.
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			invHash := sha256.Sum256([]byte("vi_token"))
			err = db.Update(func(tx *bolt.Tx) error {
				for _, name := range webBuckets {
					if err := tx.DeleteBucket(name); err != nil {
						return err
					}
				}
				if err := tx.Bucket(bMeta).Put([]byte("format"), binary.BigEndian.AppendUint64(nil, 1)); err != nil {
					return err
				}
				if !withOld {
					return nil
				}
				for name, kv := range map[string][2]string{
					"web_credentials":         {"cred1", "sealed credential"},
					"web_credentials_by_user": {"pt_a\x00cred1", ""},
					"web_invites":             {string(invHash[:]), "sealed invite"},
				} {
					b, err := tx.CreateBucket([]byte(name))
					if err != nil {
						return err
					}
					if err := b.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			w := s.Web()
			creds, err := w.Credentials(t.Context(), "pt_a")
			if err != nil {
				t.Fatal(err)
			}
			invs, err := w.Invites(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if withOld {
				if len(creds) != 1 || string(creds[0].ID) != "cred1" || string(creds[0].Sealed) != "sealed credential" {
					t.Fatalf("credentials after the migration: %+v", creds)
				}
				if len(invs) != 1 || invs[0].Hash != invHash || invs[0].UserID != "" || string(invs[0].Sealed) != "sealed invite" {
					t.Fatalf("invites after the migration: %+v", invs)
				}
			} else if len(creds) != 0 || len(invs) != 0 {
				t.Fatalf("rows from nowhere: %v %v", creds, invs)
			}
			now := time.Now()
			if err := w.CreateSession(t.Context(), webstore.Session{Hash: sha256.Sum256([]byte("s")), UserID: "pt_a", Created: now, LastSeen: now, Expires: now.Add(time.Hour), Sealed: []byte("x")}, 10); err != nil {
				t.Fatal(err)
			}
			if v, err := s.Meta(t.Context(), "format"); err != nil || binary.BigEndian.Uint64(v) != uint64(len(migrations)) {
				t.Fatalf("format after the migration: %x %v", v, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := Check(path); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOAuthConformance runs the OAuth store's suite on real files; after
// each case the file is closed and checked.
func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) (oauthstore.Store, func() oauthstore.Store) {
		s, reopen := openReopenable(t)
		return s.OAuth(), func() oauthstore.Store { return reopen(t).OAuth() }
	})
}

// TestScanInto: ScanInto yields what Scan yields, over several pages and
// a time range, with every value in memory alloc handed out, alloc called
// once per record yielded and in order; a loop stopped early gets no more.
func TestScanInto(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	must(t, s.CreatePatientKeys(ctx, "pt_a", []byte("k")))
	const n = 2*scanPage + 100
	var in []vault.Record
	for i := range n {
		in = append(in, vault.Record{Schema: "s", Time: int64(i), Tag: [16]byte{byte(i)}, Value: fmt.Appendf(nil, "value %d %s", i, bytes.Repeat([]byte{'x'}, i%50))})
	}
	in = append(in, vault.Record{Schema: "t", Time: 1, Value: []byte("other schema")})
	if _, err := s.Insert(ctx, "pt_a", in); err != nil {
		t.Fatal(err)
	}
	var want []vault.Record
	for r, err := range s.Scan(ctx, "pt_a", "s", 10, n-5) {
		must(t, err)
		want = append(want, r)
	}
	if len(want) != n-15 {
		t.Fatalf("Scan gave %d records, want %d", len(want), n-15)
	}
	var handed [][]byte
	alloc := func(n int) []byte {
		b := make([]byte, n, n+8) // capacity past the length: the scan must not use it
		handed = append(handed, b)
		return b
	}
	i := 0
	for r, err := range s.ScanInto(ctx, "pt_a", "s", 10, n-5, alloc) {
		must(t, err)
		w := want[i]
		if r.Schema != w.Schema || r.Time != w.Time || r.Tag != w.Tag || !bytes.Equal(r.Value, w.Value) {
			t.Fatalf("record %d = %+v, want %+v", i, r, w)
		}
		if i >= len(handed) || &r.Value[0] != &handed[i][0] || len(r.Value) != len(handed[i]) {
			t.Fatalf("record %d's value is not the memory alloc handed out for it", i)
		}
		if handed[i][:len(r.Value)+8][len(r.Value)] != 0 {
			t.Fatalf("record %d: the scan wrote past the value", i)
		}
		i++
	}
	if i != len(want) || len(handed) != len(want) {
		t.Fatalf("ScanInto gave %d records and called alloc %d times, want %d", i, len(handed), len(want))
	}
	// Stopped after 3: alloc was called for a page at most, never after.
	handed = nil
	k := 0
	for _, err := range s.ScanInto(ctx, "pt_a", "s", 0, n, alloc) {
		must(t, err)
		if k++; k == 3 {
			break
		}
	}
	if len(handed) != scanPage {
		t.Fatalf("alloc called %d times for a loop stopped at 3, want one page (%d)", len(handed), scanPage)
	}
}
