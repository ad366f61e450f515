package consent

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strconv"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// The grant index is guarded by a digest, so that a row pasted back from an
// older copy of the file (a revoked grant made active again, with no key
// needed) is caught when the ledger opens. The digest is the XOR of a keyed
// MAC of every index row, kept sealed under the master with the log's size
// as associated data; the MAC key is random and sealed too, so nobody
// without the master can compute a row's MAC or forge a matching set.

const (
	metaDigestKey = "dkey"    // sealed
	metaDigest    = "idigest" // sealed
)

var dkeyAD = []byte("jhvault/grant-index-digest-key/v1")

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

// loadDigestKey reads (or, for a new ledger, makes) the sealed MAC key, and
// reports whether it made it.
func (l *Ledger) loadDigestKey(tx ledgerstore.WriteTx) (created bool, err error) {
	sealed, err := tx.Meta(metaDigestKey)
	if err != nil {
		return false, err
	}
	if sealed != nil {
		k, err := l.sealer.Decrypt(sealed, dkeyAD)
		if err != nil {
			return false, errors.New("the grant index digest key does not decrypt")
		}
		l.dkey = k
		return false, nil
	}
	k := make([]byte, 32)
	rand.Read(k)
	if sealed, err = l.sealer.Encrypt(k, dkeyAD); err != nil {
		return false, err
	}
	l.dkey = k
	return true, tx.PutMeta(metaDigestKey, sealed)
}

// computeDigest hashes the stored index as it is.
func (l *Ledger) computeDigest(tx ledgerstore.ReadTx) (indexDigest, error) {
	var d indexDigest
	err := tx.IndexRows(func(id string, sealed []byte) error {
		d.toggle(l.rowMAC([]byte(id), sealed))
		return nil
	})
	return d, err
}

var errDigest = errors.New("the grant index does not match its sealed digest (a row was altered, removed or restored from an older copy); run vault ledger rebuild")

// readDigest opens the stored digest for a log of size n.
func (l *Ledger) readDigest(tx ledgerstore.ReadTx, n int64) (indexDigest, error) {
	var d indexDigest
	sealed, err := tx.Meta(metaDigest)
	if err != nil {
		return d, err
	}
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

func (l *Ledger) writeDigest(tx ledgerstore.WriteTx, n int64, d indexDigest) error {
	sealed, err := l.sealer.Encrypt(d[:], digestAD(n))
	if err != nil {
		return err
	}
	return tx.PutMeta(metaDigest, sealed)
}

// checkDigest reports whether the stored index matches its digest.
func (l *Ledger) checkDigest(tx ledgerstore.ReadTx) error {
	n, err := tx.Size()
	if err != nil {
		return err
	}
	want, err := l.readDigest(tx, n)
	if err != nil {
		return err
	}
	got, err := l.computeDigest(tx)
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:], want[:]) {
		return errDigest
	}
	return nil
}
