package consent

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"time"
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

// putAccess puts an access row in its patient's list, replacing the row of
// the same access-start; the caller holds x.mu. A new access-start is the
// newest, so it lands at the end.
func (x *grantIndex) putAccess(a *AccessState) {
	list := x.accesses[a.Patient]
	if n := len(list); n == 0 || list[n-1].Start < a.Start {
		x.accesses[a.Patient] = append(list, a)
		return
	}
	i, found := slices.BinarySearchFunc(list, a.Start, func(e *AccessState, start int64) int { return cmp.Compare(e.Start, start) })
	if found {
		list[i] = a
		return
	}
	x.accesses[a.Patient] = slices.Insert(list, i, a)
}

// Accesses returns a patient's exports, newest first, at most limit (all
// when limit <= 0).
func (l *Ledger) Accesses(patient string, limit int) []AccessState {
	out, _ := l.AccessPage(patient, 0, limit)
	return out
}

// AccessPage returns one page of a patient's exports, newest first: at most
// limit (all when limit <= 0) of those whose access-start index is below
// before (any, when before <= 0). more reports that older ones remain; the
// next page is AccessPage(patient, out[len(out)-1].Start, limit). It costs
// the page, not the patient's whole log.
func (l *Ledger) AccessPage(patient string, before int64, limit int) (out []AccessState, more bool) {
	x := l.grants.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	list := x.accesses[patient]
	end := len(list)
	if before > 0 {
		end, _ = slices.BinarySearchFunc(list, before, func(e *AccessState, start int64) int { return cmp.Compare(e.Start, start) })
	}
	first := 0
	if limit > 0 && end > limit {
		first = end - limit
	}
	out = make([]AccessState, 0, end-first)
	for i := end - 1; i >= first; i-- {
		out = append(out, *list[i])
	}
	return out, first > 0
}
