package consent

import (
	"regexp"
	"slices"
	"time"
)

// An app grant is a patient's consent to an OAuth client (a SMART app):
// a grant entry whose grantee is the app's client id (Entry.App) instead
// of a clinician. It carries the same body as a clinician grant (id,
// schemas, data window, expiry, and the patient's passkey assertion when
// she made it in the web UI), is revoked by the same revoke entry (naming
// the app), and is checked by Verify, Rebuild and the signature check
// exactly as a clinician grant is. The index keeps app grants apart:
// Decide and Grants never see them, so a clinician can never read under
// a grant made to an app, nor an app under a clinician's; AppGrants and
// AppGrantActive are theirs.

// AppPurpose is the purpose an app grant carries: the patient asked for it.
const AppPurpose = "PATRQT"

// MaxAppIDLength bounds a client id in an entry.
const MaxAppIDLength = 128

var appIDRE = regexp.MustCompile(`^[A-Za-z0-9._~:-]{1,128}$`)

// ValidAppID reports whether id can name an app in the ledger: 1 to 128
// characters of letters, digits and ._~:- (an OAuth client id).
func ValidAppID(id string) bool { return appIDRE.MatchString(id) }

// AppGrantRequest is what a patient allows an app: the client id, the
// schemas (namespace:name or namespace:name:version), an optional data
// window [DataFrom, DataTo) and the expiry, times in RFC 3339.
type AppGrantRequest struct {
	App       string
	Schemas   []string
	DataFrom  string
	DataTo    string
	ExpiresAt string
}

// NewAppGrant checks an app grant request and makes its entry, unsigned,
// with a new grant id, a fresh salt and the time now; the web UI adds
// the patient's assertion (GrantChallenge) before it is appended. A
// refusal is a *RequestError with the same codes NewGrant uses, and
// bad_app for a client id that cannot be one.
func NewAppGrant(patient string, r AppGrantRequest, now time.Time) (Entry, error) {
	if !ValidAppID(r.App) {
		return Entry{}, badRequest("bad_app", "the app's client id must be 1 to %d characters of letters, digits and ._~:-", MaxAppIDLength)
	}
	g, err := newGrantBody(r.Schemas, r.DataFrom, r.DataTo, r.ExpiresAt, now)
	if err != nil {
		return Entry{}, err
	}
	g.Purpose = AppPurpose
	e := New(KindGrant, patient, now)
	e.Patient, e.App, e.Grant = patient, r.App, g
	return e, nil
}

// AppGrants returns the app grants a patient made, revoked and expired
// ones included, newest first. It fails when the index cannot be brought
// up to date (see Ledger.index).
func (l *Ledger) AppGrants(patient string) ([]GrantState, error) {
	x, err := l.index()
	if err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]GrantState, 0, len(x.apps[patient]))
	for _, g := range x.apps[patient] {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b GrantState) int { return int(b.Index - a.Index) })
	return out, nil
}

// AppGrantActive reports whether grant id is an app grant of patient to
// app that is in force at now (not revoked, not expired), as of the last
// committed entry: a revoke that has committed answers false at once. An
// untrusted index answers false. The OAuth provider asks it on every use
// of a token issued under the grant.
func (l *Ledger) AppGrantActive(id, patient, app string, now time.Time) bool {
	g, ok := l.appGrant(id, patient, app)
	return ok && g.Active(now)
}

// DecideApp answers whether app may read patient's data of one schema in a
// window under app grant id at r.Now: the same rules as Decide (schema,
// data window, expiry, revocation) applied to that one grant. r.Clinician
// is ignored.
func (l *Ledger) DecideApp(id, app string, r Request) Decision {
	g, ok := l.appGrant(id, r.Patient, app)
	if !ok {
		return Decision{Reason: "no_grant"}
	}
	return decide([]*GrantState{&g}, r)
}

// appGrant finds an app grant by id, patient and app; an untrusted index
// finds nothing.
func (l *Ledger) appGrant(id, patient, app string) (GrantState, bool) {
	if l.indexBad.Load() != nil || patient == "" || app == "" {
		return GrantState{}, false
	}
	x, err := l.index()
	if err != nil || l.indexBad.Load() != nil {
		return GrantState{}, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	g := x.byID[id]
	if g == nil || g.App == "" || g.App != app || g.Patient != patient {
		return GrantState{}, false
	}
	return *g, true
}
