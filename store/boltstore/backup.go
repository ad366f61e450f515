package boltstore

import (
	"context"
	"io"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MetaLastBackup is the meta key holding the time of the last backup, in
// unix seconds.
const MetaLastBackup = "last_backup"

// Backup writes a consistent snapshot of the whole database to w, in one
// read transaction: writers carry on meanwhile, and what they commit after
// it began is not in the snapshot. The snapshot is the database file as it
// stands, so what is encrypted stays encrypted, and the root key, which
// never lives in the file, is not in it. On a writable store it then
// records the time, for the time-since-backup metric.
// size, when set, is told the snapshot's size before the first byte.
func (s *Store) Backup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.view(context.Background(), func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil || s.opts.ReadOnly {
		return n, err
	}
	return n, s.PutMeta(context.Background(), MetaLastBackup, []byte(strconv.FormatInt(time.Now().Unix(), 10)))
}

// Size is the database file's size in bytes (api.StoreInfo).
func (s *Store) Size() (int64, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// LastBackup is when Backup last completed, zero if never.
func (s *Store) LastBackup() time.Time {
	b, err := s.Meta(context.Background(), MetaLastBackup)
	if err != nil || b == nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// ReadingPages returns the bytes of the database pages (branch and leaf,
// in use) that hold every patient's records: what a stored reading costs
// on disk, without free pages and the file's preallocation.
func (s *Store) ReadingPages(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		st := tx.Bucket(bReadings).Stats()
		n = int64(st.BranchAlloc + st.LeafAlloc)
		return nil
	})
	return n, err
}
