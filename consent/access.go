package consent

import (
	"errors"
	"slices"
	"strconv"
	"time"
)

// AccessState is one export as the index holds it: its access-start entry
// and, once logged, its access-end.
type AccessState struct {
	Patient     string    `json:"patient"`
	Clinician   string    `json:"clinician"`
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
	if e.Patient == "" || e.Clinician == "" {
		return nil, errors.New("an access entry names a patient and a clinician")
	}
	at, _ := parseTime(e.Time)
	switch e.Kind {
	case KindAccessStart:
		if prev != nil {
			return nil, errors.New("access-start logged twice")
		}
		return &AccessState{Patient: e.Patient, Clinician: e.Clinician, Start: i, Time: at, Grants: a.Grants, Schemas: a.Schemas,
			From: a.From, To: a.To, Format: a.Format, Recipient: a.Recipient}, nil
	case KindAccessEnd:
		if prev == nil {
			return nil, errors.New("access-end names no access-start")
		}
		if prev.End != nil || prev.Clinician != e.Clinician {
			return nil, errors.New("access-end does not match its access-start")
		}
		st := *prev
		st.End, st.Records, st.ContentHash, st.Incomplete = &i, a.Records, a.ContentHash, a.Incomplete
		return &st, nil
	}
	return nil, nil
}

// Accesses returns a patient's exports, newest first, at most limit.
func (l *Ledger) Accesses(patient string, limit int) []AccessState {
	x := l.grants.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []AccessState
	for _, a := range x.accesses {
		if a.Patient == patient {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b AccessState) int { return int(b.Start - a.Start) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
