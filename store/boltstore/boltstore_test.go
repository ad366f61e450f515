package boltstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/vault"
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
