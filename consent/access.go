package consent

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// AccessState is one export as the index holds it: its access-start entry
// and, once logged, its access-end.
type AccessState struct {
	Patient   string `json:"patient"`
	Clinician string `json:"clinician"`
	// App is the client id of an app that read under an app grant (its
	// Clinician is empty): a FHIR read by a patient's app.
	App         string    `json:"app,omitempty"`
	Start       int64     `json:"start"` // the access-start entry
	Time        time.Time `json:"time"`
	Grants      []string  `json:"grants"`
	Schemas     []string  `json:"schemas"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	Format      string    `json:"format"`
	Recipient   string    `json:"recipient"`
	End         *int64    `json:"end,omitempty"` // the access-end entry
	Records     int64     `json:"records"`
	ContentHash []byte    `json:"content_hash,omitempty"`
	Incomplete  bool      `json:"incomplete,omitempty"`
}

const accessRowPrefix = "acc/"

func accessRowID(patient string, start int64) string {
	return accessRowPrefix + patient + "/" + strconv.FormatInt(start, 10)
}

func isAccessRow(id string) bool { return len(id) > 4 && id[:4] == accessRowPrefix }

// nextAccessState is what an access entry at index i makes of its row.
func nextAccessState(prev *AccessState, i int64, e *Entry) (*AccessState, error) {
	a := e.Access
	if e.Patient == "" || (e.Clinician == "") == (e.App == "") {
		return nil, errors.New("an access entry names a patient and a clinician or an app")
	}
	at, _ := parseTime(e.Time)
	switch e.Kind {
	case KindAccessStart:
		if prev != nil {
			return nil, errors.New("access-start logged twice")
		}
		return &AccessState{Patient: e.Patient, Clinician: e.Clinician, App: e.App, Start: i, Time: at, Grants: a.Grants, Schemas: a.Schemas,
			From: a.From, To: a.To, Format: a.Format, Recipient: a.Recipient}, nil
	case KindAccessEnd:
		if prev == nil {
			return nil, errors.New("access-end names no access-start")
		}
		if prev.End != nil || prev.Clinician != e.Clinician || prev.App != e.App {
			return nil, errors.New("access-end does not match its access-start")
		}
		st := *prev
		st.End, st.Records, st.ContentHash, st.Incomplete = &i, a.Records, a.ContentHash, a.Incomplete
		return &st, nil
	}
	return nil, nil
}

// putAccess records an access in its patient's list of access-start
// indexes, kept in ledger order; the caller holds x.mu. The index keeps
// only these 8 bytes per access: a page's rows are read from the store
// (AccessPage). A new access-start is the newest, so it lands at the end;
// an access-end names a start already listed, and changes nothing here.
func (x *grantIndex) putAccess(patient string, start int64) {
	list := x.accesses[patient]
	if n := len(list); n == 0 || list[n-1] < start {
		x.accesses[patient] = append(list, start)
		return
	}
	i, found := slices.BinarySearch(list, start)
	if !found {
		x.accesses[patient] = slices.Insert(list, i, start)
	}
}

// Accesses returns a patient's accesses, newest first, at most limit (all
// when limit <= 0).
func (l *Ledger) Accesses(patient string, limit int) ([]AccessState, error) {
	out, _, err := l.AccessPage(patient, 0, limit)
	return out, err
}

// AccessPage returns one page of a patient's accesses, newest first: at
// most limit (all when limit <= 0) of those whose access-start index is
// below before (any, when before <= 0). more reports that older ones
// remain; the next page is AccessPage(patient, out[len(out)-1].Start,
// limit). The in-memory index holds each patient's access-start indexes
// only; the page's rows are read from the store, in one read transaction,
// so a page costs the page, not the patient's whole log, and the memory
// held is 8 bytes per access.
func (l *Ledger) AccessPage(patient string, before int64, limit int) (out []AccessState, more bool, err error) {
	x, err := l.index()
	if err != nil {
		return nil, false, err
	}
	x.mu.RLock()
	list := x.accesses[patient]
	end := len(list)
	if before > 0 {
		end, _ = slices.BinarySearch(list, before)
	}
	first := 0
	if limit > 0 && end > limit {
		first = end - limit
	}
	// Copy the page's indexes while the lock is held: commits append to
	// the list meanwhile.
	starts := slices.Clone(list[first:end])
	x.mu.RUnlock()
	out = make([]AccessState, 0, len(starts))
	ids := make([]string, len(starts))
	for i := range starts {
		ids[i] = accessRowID(patient, starts[len(starts)-1-i])
	}
	err = l.view(func(tx ledgerstore.ReadTx) error {
		// One read for the page's rows: on PostgreSQL a row at a time
		// was a round trip each, three quarters of a page's time.
		out = out[:0]
		rows, err := tx.IndexRowsByID(ids)
		if err != nil {
			return err
		}
		for i, id := range ids {
			sealed := rows[i]
			if st, ok := l.accessRows.get(id, sealed); ok && sealed != nil {
				out = append(out, st)
				continue
			}
			var r indexRow
			if sealed != nil {
				if r, err = l.openRow(id, sealed); err != nil {
					return err
				}
			}
			if r.Access == nil {
				return fmt.Errorf("index entry %s is missing", id)
			}
			l.accessRows.put(id, sealed, r.Access)
			out = append(out, *r.Access)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, first > 0, nil
}
