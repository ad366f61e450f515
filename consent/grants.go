package consent

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// The stored index is the materialised state of grants, clinician keys and
// accesses: row id -> the row's JSON, sealed under the master (a consent
// relationship can reveal a diagnosis). It is written in the same
// transaction as the entry that changes it, and can be rebuilt from the log
// (Rebuild).

// GrantState is a grant as the index holds it.
type GrantState struct {
	ID        string `json:"id"`
	Index     int64  `json:"index"` // the grant entry
	Patient   string `json:"patient"`
	Clinician string `json:"clinician"`
	// App is the client id of an app grant (its Clinician is empty); see
	// appgrant.go.
	App        string    `json:"app,omitempty"`
	Schemas    []string  `json:"schemas"`
	DataFrom   time.Time `json:"data_from,omitzero"`
	DataTo     time.Time `json:"data_to,omitzero"`
	Expires    time.Time `json:"expires_at"`
	Purpose    string    `json:"purpose"`
	Recipients []string  `json:"recipients,omitempty"`
	// FHIR: the grantee may read through the FHIR API (Grant.FHIR).
	FHIR        bool       `json:"fhir,omitempty"`
	Signed      bool       `json:"signed"`
	Created     time.Time  `json:"created"`
	RevokeIndex *int64     `json:"revoke_index,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether the grant is in force at now: not revoked, and now
// before its expiry (a grant expiring at exactly now is expired).
func (g *GrantState) Active(now time.Time) bool {
	return g.RevokeIndex == nil && now.Before(g.Expires)
}

// Covers reports whether the grant's schema list covers a schema id
// (namespace:name:version); namespace:name covers every version.
func (g *GrantState) Covers(schema string) bool {
	for _, s := range g.Schemas {
		if s == schema || strings.HasPrefix(schema, s+":") && strings.Count(s, ":") == 1 {
			return true
		}
	}
	return false
}

// grantIndex is the in-memory copy of the index, for fast decisions.
type grantIndex struct {
	mu     sync.RWMutex
	byID   map[string]*GrantState
	byPair map[[2]string][]*GrantState // (clinician, patient); clinician grants only
	apps   map[string][]*GrantState    // app grants, by patient
	keys   map[string]*KeyState        // by key row id
	// accesses holds each patient's access-start indexes in ledger order,
	// so a page of her access log costs the page, not every access in the
	// vault; the rows themselves stay in the store (AccessPage).
	accesses map[string][]int64
	// applied is the log size the index reflects: every entry below it is
	// applied, none at or above. On a shared store (PostgreSQL replicas)
	// a decision first applies what other replicas appended (catchup.go).
	applied int64
}

func newGrantIndex() *grantIndex {
	return &grantIndex{byID: map[string]*GrantState{}, byPair: map[[2]string][]*GrantState{}, apps: map[string][]*GrantState{}, keys: map[string]*KeyState{}, accesses: map[string][]int64{}}
}

// putRow applies one index row; the caller holds x.mu for writing.
func (x *grantIndex) putRow(r indexRow) {
	if r.Grant != nil {
		x.put(r.Grant)
	}
	if r.Key != nil {
		x.keys[keyRowID(r.Key.Clinician, r.Key.Fingerprint)] = r.Key
	}
	if r.Access != nil {
		x.putAccess(r.Access.Patient, r.Access.Start)
	}
}

// indexRow is one row of the stored index: a grant or a clinician key.
type indexRow struct {
	Grant  *GrantState
	Key    *KeyState
	Access *AccessState
}

func (r indexRow) empty() bool { return r.Grant == nil && r.Key == nil && r.Access == nil }

func (r indexRow) value() any {
	switch {
	case r.Grant != nil:
		return r.Grant
	case r.Key != nil:
		return r.Key
	}
	return r.Access
}

// put adds or replaces a grant. An app grant goes to apps, never to
// byPair, so no clinician decision can ever find it. The caller holds x.mu
// for writing.
func (x *grantIndex) put(g *GrantState) {
	same := func(o *GrantState) bool { return o.ID == g.ID }
	if old := x.byID[g.ID]; old != nil {
		if old.App != "" {
			x.apps[old.Patient] = slices.DeleteFunc(x.apps[old.Patient], same)
		} else {
			k := [2]string{old.Clinician, old.Patient}
			x.byPair[k] = slices.DeleteFunc(x.byPair[k], same)
		}
	}
	x.byID[g.ID] = g
	if g.App != "" {
		x.apps[g.Patient] = append(x.apps[g.Patient], g)
		return
	}
	k := [2]string{g.Clinician, g.Patient}
	x.byPair[k] = append(x.byPair[k], g)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// applyTx updates the index for an entry being appended at index i. It
// refuses entries that make no sense against the index (a revoke of an
// unknown or already revoked grant, a grant id used twice).
func grantAD(id string) []byte { return []byte("jhvault/grant-index/v1|" + id) }

func (l *Ledger) putGrant(tx ledgerstore.WriteTx, st *GrantState) error {
	_, err := l.putRow(tx, st.ID, indexRow{Grant: st})
	return err
}

// putRow seals and stores one index row, and returns the sealed bytes.
func (l *Ledger) putRow(tx ledgerstore.WriteTx, id string, r indexRow) ([]byte, error) {
	b, err := json.Marshal(r.value())
	if err != nil {
		return nil, err
	}
	sealed, err := l.sealer.Encrypt(b, grantAD(id))
	if err != nil {
		return nil, err
	}
	return sealed, tx.PutIndexRow(id, sealed)
}

func (l *Ledger) getGrant(tx ledgerstore.ReadTx, id string) (*GrantState, error) {
	r, err := l.getRow(tx, id)
	if err != nil {
		return nil, err
	}
	if r.Grant == nil {
		return nil, ErrNoGrant
	}
	return r.Grant, nil
}

// getRow reads one index row; a missing row is the zero row.
func (l *Ledger) getRow(tx ledgerstore.ReadTx, id string) (indexRow, error) {
	v, err := tx.IndexRow(id)
	if err != nil || v == nil {
		return indexRow{}, err
	}
	return l.openRow(id, v)
}

// openRow opens a sealed index row.
func (l *Ledger) openRow(id string, sealed []byte) (indexRow, error) {
	b, err := l.sealer.Decrypt(sealed, grantAD(id))
	if err != nil {
		return indexRow{}, fmt.Errorf("index entry %s does not decrypt", id)
	}
	var r indexRow
	switch {
	case isKeyRow(id):
		r.Key = new(KeyState)
		err = json.Unmarshal(b, r.Key)
	case isAccessRow(id):
		r.Access = new(AccessState)
		err = json.Unmarshal(b, r.Access)
	default:
		r.Grant = new(GrantState)
		err = json.Unmarshal(b, r.Grant)
	}
	if err != nil {
		return indexRow{}, fmt.Errorf("index entry %s is corrupt", id)
	}
	return r, nil
}

// rowID is the index row an entry changes, or "" if it changes none.
func rowID(e *Entry) string {
	switch e.Kind {
	case KindGrant:
		return e.Grant.ID
	case KindRevoke:
		return e.Revoke.GrantID
	case KindClinicianKeyAdd, KindClinicianKeyDel:
		return keyRowID(e.Clinician, e.Key.Fingerprint)
	case KindAccessEnd:
		if e.Access.Start == nil {
			return accessRowID(e.Patient, -1)
		}
		return accessRowID(e.Patient, *e.Access.Start)
	}
	return ""
}

// rowIDAt is rowID for an entry about to be stored at index i: an
// access-start's row is named by its own index.
func rowIDAt(e *Entry, i int64) string {
	if e.Kind == KindAccessStart {
		return accessRowID(e.Patient, i)
	}
	return rowID(e)
}

// nextRow is what an entry at index i makes of its index row.
func nextRow(prev indexRow, i int64, e *Entry) (indexRow, error) {
	switch e.Kind {
	case KindGrant, KindRevoke:
		g, err := nextGrantState(prev.Grant, i, e)
		return indexRow{Grant: g}, err
	case KindClinicianKeyAdd, KindClinicianKeyDel:
		k, err := nextKeyState(prev.Key, i, e)
		return indexRow{Key: k}, err
	case KindAccessStart, KindAccessEnd:
		a, err := nextAccessState(prev.Access, i, e)
		return indexRow{Access: a}, err
	}
	return indexRow{}, nil
}

// nextGrantState is what an entry at index i makes of its grant's state
// (prev is nil for a grant not seen before). It refuses entries that make
// no sense: a grant id used twice, a revoke of an unknown or revoked grant.
func nextGrantState(prev *GrantState, i int64, e *Entry) (*GrantState, error) {
	switch e.Kind {
	case KindGrant:
		g := e.Grant
		if e.Patient == "" || (e.Clinician == "") == (e.App == "") || g.ID == "" || len(g.Schemas) == 0 {
			return nil, errors.New("a grant names a patient, a clinician or an app, an id and schemas")
		}
		if prev != nil {
			return nil, fmt.Errorf("grant id %s is already used", g.ID)
		}
		st := &GrantState{ID: g.ID, Index: i, Patient: e.Patient, Clinician: e.Clinician, App: e.App, Schemas: g.Schemas,
			Purpose: g.Purpose, Recipients: g.Recipients, FHIR: g.FHIR, Signed: g.Assertion != nil}
		var err error
		if st.DataFrom, err = parseTime(g.DataFrom); err != nil {
			return nil, errors.New("grant data_from is not RFC 3339")
		}
		if st.DataTo, err = parseTime(g.DataTo); err != nil {
			return nil, errors.New("grant data_to is not RFC 3339")
		}
		if st.Expires, err = parseTime(g.Expires); err != nil || st.Expires.IsZero() {
			return nil, errors.New("grant expires_at is not RFC 3339")
		}
		st.Created, _ = parseTime(e.Time)
		return st, nil
	case KindRevoke:
		if prev == nil {
			return nil, ErrNoGrant
		}
		if prev.Index != e.Revoke.GrantIndex || prev.Patient != e.Patient || (e.Clinician != "" && prev.Clinician != e.Clinician) || prev.App != e.App {
			return nil, errors.New("the revoke does not match its grant")
		}
		if prev.RevokeIndex != nil {
			return nil, ErrRevoked
		}
		st := *prev
		at, _ := parseTime(e.Time)
		st.RevokeIndex, st.RevokedAt = &i, &at
		return &st, nil
	}
	return nil, nil
}

// applyTx updates the stored index for an entry appended at index i, and
// returns the new row and its sealed bytes (none for an entry that changes
// no row).
func (l *Ledger) applyTx(tx ledgerstore.WriteTx, i int64, e *Entry) (indexRow, []byte, error) {
	id := rowIDAt(e, i)
	if id == "" {
		return indexRow{}, nil, nil
	}
	prev, err := l.getRow(tx, id)
	if err != nil {
		return indexRow{}, nil, err
	}
	r, err := nextRow(prev, i, e)
	if err != nil {
		return indexRow{}, nil, err
	}
	sealed, err := l.putRow(tx, id, r)
	return r, sealed, err
}

// NewRevoke makes the entry that revokes g, naming both its parties (the
// patient and the clinician, or the patient and the app).
func NewRevoke(actor string, g GrantState, now time.Time) Entry {
	e := New(KindRevoke, actor, now)
	e.Patient, e.Clinician, e.App = g.Patient, g.Clinician, g.App
	e.Revoke = &Revoke{GrantIndex: g.Index, GrantID: g.ID}
	return e
}

// Grant errors.
var (
	ErrNoGrant = errors.New("no such grant")
	ErrRevoked = errors.New("the grant is already revoked")
)

// readIndex reads the stored index into a new in-memory one. The caller
// publishes it (l.grants.Store) once its transaction has committed.
func (l *Ledger) readIndex(tx ledgerstore.ReadTx) (*grantIndex, error) {
	x := newGrantIndex()
	// Access rows come in row-id order, which is not ledger order
	// ("acc/p/10" < "acc/p/9"): put them in ledger order, so each lands
	// at the end of its patient's list.
	type access struct {
		patient string
		start   int64
	}
	var accesses []access
	err := tx.IndexRows(func(id string, sealed []byte) error {
		r, err := l.openRow(id, sealed)
		if err != nil {
			return err
		}
		if r.Access != nil {
			accesses = append(accesses, access{r.Access.Patient, r.Access.Start})
			return nil
		}
		x.putRow(r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(accesses, func(a, b access) int { return cmp.Compare(a.start, b.start) })
	for _, a := range accesses {
		x.putAccess(a.patient, a.start)
	}
	return x, nil
}

// Grant returns a grant's state.
func (l *Ledger) Grant(id string) (GrantState, error) {
	x, err := l.index()
	if err != nil {
		return GrantState{}, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	g := x.byID[id]
	if g == nil {
		return GrantState{}, ErrNoGrant
	}
	return *g, nil
}

// Grants returns the clinician grants a patient made (patient != "") or
// received by a clinician (clinician != ""), newest first. App grants are
// never among them (AppGrants lists those). It fails when the index cannot
// be brought up to date (a replica that cannot reach the database): an
// empty list would say the patient has no grants, which is not known.
func (l *Ledger) Grants(patient, clinician string) ([]GrantState, error) {
	x, err := l.index()
	if err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []GrantState
	for _, g := range x.byID {
		if g.App == "" && (patient == "" || g.Patient == patient) && (clinician == "" || g.Clinician == clinician) {
			out = append(out, *g)
		}
	}
	slices.SortFunc(out, func(a, b GrantState) int { return int(b.Index - a.Index) })
	return out, nil
}

// Window is a half-open time window [From, To); a zero end is open.
type Window struct {
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// Request asks whether a clinician may read a patient's data of one schema
// in a window, at a time.
type Request struct {
	Clinician, Patient string
	Schema             string // namespace:name:version
	Window             Window
	Now                time.Time
}

// Decision is the answer. A permit lists every covering grant and the
// request's window clipped to them (merged where they overlap).
type Decision struct {
	Permit  bool         `json:"permit"`
	Reason  string       `json:"reason,omitempty"` // for a deny: no_grant, expired, revoked, schema_not_granted, window_not_granted, index_untrusted
	Grants  []GrantState `json:"grants,omitempty"`
	Windows []Window     `json:"windows,omitempty"`
}

// later is the later of two window starts, where zero is -infinity.
func later(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero(), a.After(b):
		return a
	}
	return b
}

// earlier is the earlier of two window ends, where zero is +infinity.
func earlier(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case a.Before(b):
		return a
	}
	return b
}

// intersect clips w to [from, to); ok is false when nothing is left.
func intersect(w Window, from, to time.Time) (Window, bool) {
	out := Window{From: later(w.From, from), To: earlier(w.To, to)}
	if !out.To.IsZero() && !out.From.IsZero() && !out.From.Before(out.To) {
		return Window{}, false
	}
	return out, true
}

// Decide answers a request from the index, as of the last committed entry:
// a revoke that has committed denies at once, on this replica and, on a
// shared store, on every other (the index first applies what they
// appended; if it cannot, the decision denies with index_untrusted).
func (l *Ledger) Decide(r Request) Decision {
	if l.indexBad.Load() != nil {
		return Decision{Reason: "index_untrusted"}
	}
	if r.Clinician == "" {
		return Decision{Reason: "no_grant"}
	}
	x, err := l.index()
	if err != nil || l.indexBad.Load() != nil {
		return Decision{Reason: "index_untrusted"}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return decide(x.byPair[[2]string{r.Clinician, r.Patient}], r)
}

func decide(gs []*GrantState, r Request) Decision {
	if len(gs) == 0 {
		return Decision{Reason: "no_grant"}
	}
	reason := "revoked"
	var d Decision
	for _, g := range gs {
		if g.RevokeIndex != nil {
			continue
		}
		if !r.Now.Before(g.Expires) {
			if reason == "revoked" {
				reason = "expired"
			}
			continue
		}
		if !g.Covers(r.Schema) {
			if reason == "revoked" || reason == "expired" {
				reason = "schema_not_granted"
			}
			continue
		}
		w, ok := intersect(r.Window, g.DataFrom, g.DataTo)
		if !ok {
			reason = "window_not_granted"
			continue
		}
		d.Grants = append(d.Grants, *g)
		d.Windows = append(d.Windows, w)
	}
	if len(d.Grants) == 0 {
		return Decision{Reason: reason}
	}
	d.Permit = true
	d.Windows = mergeWindows(d.Windows)
	return d
}

// mergeWindows sorts windows and merges those that overlap or touch.
func mergeWindows(ws []Window) []Window {
	slices.SortFunc(ws, func(a, b Window) int {
		switch {
		case a.From.Equal(b.From):
			return 0
		case a.From.IsZero() || (!b.From.IsZero() && a.From.Before(b.From)):
			return -1
		}
		return 1
	})
	out := ws[:1]
	for _, w := range ws[1:] {
		last := &out[len(out)-1]
		if last.To.IsZero() || !w.From.After(last.To) {
			if last.To.IsZero() || w.To.IsZero() {
				last.To = time.Time{}
			} else if w.To.After(last.To) {
				last.To = w.To
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

// ClipWindow clips a window to each grant's data window and merges the
// results: the windows the grants together cover.
func ClipWindow(w Window, gs []GrantState) []Window {
	var ws []Window
	for _, g := range gs {
		if c, ok := intersect(w, g.DataFrom, g.DataTo); ok {
			ws = append(ws, c)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	return mergeWindows(ws)
}
