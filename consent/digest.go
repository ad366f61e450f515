package consent

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// The grant index is guarded by a digest, so that a row pasted back from an
// older copy of the file (a revoked grant made active again, with no key
// needed) is caught when the ledger opens. The digest is the XOR of a keyed
// MAC of every index row, kept sealed under the master with the log's size
// as associated data; the MAC key is random and sealed too, so nobody
// without the master can compute a row's MAC or forge a matching set.

var (
	metaDigestKey = []byte("dkey")
	metaDigest    = []byte("idigest")
	dkeyAD        = []byte("jhvault/grant-index-digest-key/v1")
)

func digestAD(size int64) []byte {
	return []byte("jhvault/grant-index-digest/v1|" + strconv.FormatInt(size, 10))
}

type indexDigest [sha256.Size]byte

func (d *indexDigest) toggle(m indexDigest) {
	for i := range d {
		d[i] ^= m[i]
	}
}

// rowMAC is the keyed MAC of one sealed index row.
func (l *Ledger) rowMAC(id, sealed []byte) indexDigest {
	h := hmac.New(sha256.New, l.dkey)
	h.Write(id)
	h.Write([]byte{0})
	h.Write(sealed)
	var out indexDigest
	copy(out[:], h.Sum(nil))
	return out
}

// loadDigestKey reads (or, for a new ledger, makes) the sealed MAC key.
func (l *Ledger) loadDigestKey(m *bolt.Bucket) error {
	if sealed := m.Get(metaDigestKey); sealed != nil {
		k, err := l.sealer.Decrypt(sealed, dkeyAD)
		if err != nil {
			return errors.New("the grant index digest key does not decrypt")
		}
		l.dkey = k
		return nil
	}
	k := make([]byte, 32)
	rand.Read(k)
	sealed, err := l.sealer.Encrypt(k, dkeyAD)
	if err != nil {
		return err
	}
	l.dkey = k
	return m.Put(metaDigestKey, sealed)
}

// computeDigest hashes the stored index as it is.
func (l *Ledger) computeDigest(tx *bolt.Tx) indexDigest {
	var d indexDigest
	tx.Bucket(bGrants).ForEach(func(k, v []byte) error {
		d.toggle(l.rowMAC(k, v))
		return nil
	})
	return d
}

var errDigest = errors.New("the grant index does not match its sealed digest (a row was altered, removed or restored from an older copy); run vault ledger rebuild")

// readDigest opens the stored digest for a log of size n.
func (l *Ledger) readDigest(tx *bolt.Tx, n int64) (indexDigest, error) {
	var d indexDigest
	sealed := tx.Bucket(bLedgerMeta).Get(metaDigest)
	if sealed == nil {
		return d, errDigest
	}
	b, err := l.sealer.Decrypt(sealed, digestAD(n))
	if err != nil || len(b) != len(d) {
		return d, errDigest
	}
	copy(d[:], b)
	return d, nil
}

func (l *Ledger) writeDigest(tx *bolt.Tx, n int64, d indexDigest) error {
	sealed, err := l.sealer.Encrypt(d[:], digestAD(n))
	if err != nil {
		return err
	}
	return tx.Bucket(bLedgerMeta).Put(metaDigest, sealed)
}

// checkDigest reports whether the stored index matches its digest.
func (l *Ledger) checkDigest(tx *bolt.Tx) error {
	want, err := l.readDigest(tx, txSize(tx))
	if err != nil {
		return err
	}
	if got := l.computeDigest(tx); !bytes.Equal(got[:], want[:]) {
		return errDigest
	}
	return nil
}
