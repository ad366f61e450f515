package consent

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
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
// one read transaction (ReadTx.EntriesDesc), opening each entry; a cheap byte search skips
// entries that cannot name the party before any is parsed.
func (l *Ledger) PartyEntries(party string, size int64, limit int) (out []PartyEntry, more bool, err error) {
	if party == "" {
		return nil, false, fmt.Errorf("no party named")
	}
	q, _ := json.Marshal(party)
	needles := [][]byte{append([]byte(`"patient":`), q...), append([]byte(`"clinician":`), q...)}
	err = l.view(func(tx ledgerstore.ReadTx) error {
		out, more = nil, false
		n, err := tx.Size()
		if err != nil {
			return err
		}
		below := size
		if below <= 0 || below > n {
			below = n
		}
		next := below - 1 // the index the next entry must have
		var ferr error
		err = tx.EntriesDesc(below, func(i int64, sealed []byte) bool {
			if i != next {
				ferr = fmt.Errorf("entry %d is missing", next)
				return false
			}
			next--
			raw, err := l.sealer.Decrypt(sealed, entryAD(i))
			if err != nil {
				ferr = fmt.Errorf("entry %d does not decrypt", i)
				return false
			}
			if !bytes.Contains(raw, needles[0]) && !bytes.Contains(raw, needles[1]) {
				return true
			}
			e, err := Parse(raw)
			if err != nil {
				ferr = fmt.Errorf("entry %d: %v", i, err)
				return false
			}
			if e.Patient != party && e.Clinician != party {
				return true
			}
			if limit > 0 && len(out) == limit {
				more, next = true, -1
				return false
			}
			hs, err := tx.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
			if err != nil {
				ferr = err
				return false
			}
			out = append(out, PartyEntry{Index: i, Entry: e, Raw: raw, LeafHash: hs[0]})
			return true
		})
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
		if next >= 0 {
			return fmt.Errorf("entry %d is missing", next)
		}
		return nil
	})
	return out, more, err
}
