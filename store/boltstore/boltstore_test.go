package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
	bolt "go.etcd.io/bbolt"
)

// openTest opens a store on a real file in t.TempDir() and, after the test,
// checks the file's integrity as bbolt's own tests do.
func openTest(t *testing.T) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if err := Check(path); err != nil {
			t.Errorf("integrity: %v", err)
		}
	})
	return s
}

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

func TestCompactLeavesNoTrace(t *testing.T) {
	s := openTest(t)
	canary := bytes.Repeat([]byte("SHRED-CANARY-"), 40)
	if err := s.CreatePatientKeys("pt_a", canary); err != nil {
		t.Fatal(err)
	}
	s.CreateUser("pt_a", []byte("u"))
	// Churn so the blob's page is copied around and freed.
	for i := range 50 {
		s.Insert(context.Background(), "pt_a", []vault.Record{{Schema: "s", Time: int64(i), Value: bytes.Repeat([]byte{byte(i)}, 3000)}})
	}
	if b, _ := os.ReadFile(s.Path()); !bytes.Contains(b, canary) {
		t.Fatal("test is broken: canary not in the file before delete")
	}
	if err := s.DeletePatient("pt_a"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, canary[:24]) {
		t.Fatal("deleted key blob still in the database file")
	}
	if _, err := os.Stat(s.Path() + ".compact"); !os.IsNotExist(err) {
		t.Fatal("compaction left its temporary file")
	}
}

func TestOpenWritesNothingWhenCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("opening a current database changed the file")
	}
}

func TestFailedCompactionIsFinishedLater(t *testing.T) {
	for _, how := range []string{"next delete", "next open"} {
		t.Run(how, func(t *testing.T) {
			s := openTest(t)
			canary := bytes.Repeat([]byte("PENDING-CANARY-"), 30)
			s.CreatePatientKeys("pt_a", canary)
			s.CreateUser("pt_a", []byte("u"))
			// Block the compaction: a directory where its temporary file goes.
			if err := os.Mkdir(s.Path()+".compact", 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(s.Path()+".compact", "x"), nil, 0o600)
			if err := s.DeletePatient("pt_a"); err == nil {
				t.Fatal("compaction was expected to fail")
			}
			if err := s.Ping(); err != nil {
				t.Fatalf("store unusable after a failed compaction: %v", err)
			}
			os.RemoveAll(s.Path() + ".compact")
			switch how {
			case "next delete":
				if err := s.DeletePatient("pt_a"); err != vault.ErrNotFound {
					t.Fatalf("retry: %v, want ErrNotFound", err)
				}
			case "next open":
				s.Close()
				s2, err := Open(s.Path(), Options{})
				if err != nil {
					t.Fatal(err)
				}
				s2.Close()
			}
			b, _ := os.ReadFile(s.Path())
			if bytes.Contains(b, canary[:30]) {
				t.Fatal("deleted key blob still in the file after the retry")
			}
		})
	}
}

func TestInsertAfterCloseDoesNotHang(t *testing.T) {
	s := openTest(t)
	s.CreatePatientKeys("pt_a", []byte("k"))
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
	s.Close()
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("insert after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Insert hung after Close")
	}
}

// TestWebConformance runs the web store's suite on a real file; after each
// case the file is closed and checked (bbolt's consistency check over every
// page).
func TestWebConformance(t *testing.T) {
	storetest.RunWeb(t, func(t *testing.T) (webstore.Store, func() webstore.Store) {
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
		reopen := func() webstore.Store {
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
			return s.Web()
		}
		return s.Web(), reopen
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
			if v, err := s.Meta("format"); err != nil || binary.BigEndian.Uint64(v) != uint64(len(migrations)) {
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
