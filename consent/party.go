package consent

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// PartyEntry is one ledger entry that names a party, with its canonical
// bytes and leaf hash.
type PartyEntry struct {
	Index    int64
	Entry    Entry
	Raw      []byte
	LeafHash tlog.Hash
}

// PartyEntries returns the entries below size that name party (as patient
// or clinician: the entries that party may read), newest first, at most
// limit (no limit when limit <= 0). more reports that older entries naming
// the party were left out. size <= 0 means the whole log.
//
// No index lists a party's entries, so this reads the log from the end in
// one read transaction, opening each entry; a cheap byte search skips
// entries that cannot name the party before any is parsed.
func (l *Ledger) PartyEntries(party string, size int64, limit int) (out []PartyEntry, more bool, err error) {
	if party == "" {
		return nil, false, fmt.Errorf("no party named")
	}
	q, _ := json.Marshal(party)
	needles := [][]byte{append([]byte(`"patient":`), q...), append([]byte(`"clinician":`), q...)}
	err = l.view(func(tx *bolt.Tx) error {
		n := txSize(tx)
		if size <= 0 || size > n {
			size = n
		}
		eb := tx.Bucket(bEntries)
		hashes := txHashes(tx)
		for i := size - 1; i >= 0; i-- {
			sealed := eb.Get(u64(i))
			if sealed == nil {
				return fmt.Errorf("entry %d is missing", i)
			}
			raw, err := l.sealer.Decrypt(sealed, entryAD(i))
			if err != nil {
				return fmt.Errorf("entry %d does not decrypt", i)
			}
			if !bytes.Contains(raw, needles[0]) && !bytes.Contains(raw, needles[1]) {
				continue
			}
			e, err := Parse(raw)
			if err != nil {
				return fmt.Errorf("entry %d: %v", i, err)
			}
			if e.Patient != party && e.Clinician != party {
				continue
			}
			if limit > 0 && len(out) == limit {
				more = true
				return nil
			}
			hs, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
			if err != nil {
				return err
			}
			out = append(out, PartyEntry{Index: i, Entry: e, Raw: raw, LeafHash: hs[0]})
		}
		return nil
	})
	return out, more, err
}
