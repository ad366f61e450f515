package web

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// DefaultGrantDays is how long the consent form offers a grant lasts.
const DefaultGrantDays = 90

// purposeLabels name the ActReason codes a grant may carry.
var purposeLabels = map[string]string{
	"TREAT":   "Treatment",
	"ETREAT":  "Emergency treatment",
	"CAREMGT": "Care management",
	"HRESCH":  "Healthcare research",
	"CLINTRL": "Clinical trial",
	"PATRQT":  "At my request",
	"FAMRQT":  "At a family member's request",
	"PUBHLTH": "Public health",
	"HOPERAT": "Healthcare operations",
}

// purposeLabel names a grant's purpose for people (the code itself when
// it has no name).
func purposeLabel(code string) string {
	if l, ok := purposeLabels[code]; ok {
		return l
	}
	return code
}

type option struct {
	Value, Label string
	Selected     bool
}

type consentGrantView struct {
	ID          string
	Clinician   string // the clinician's name
	clinicianID string
	grantView
	Index     int64
	Created   string
	RevokedAt string
}

// keyIsNew is how recent a clinician's hub key is flagged new on the
// consent page: a key the patient did not expect is worth a second look.
const keyIsNew = 7 * 24 * time.Hour

// granteeKeyView is one of a grantee's live hub keys, as the consent page
// shows it.
type granteeKeyView struct {
	Label       string
	Fingerprint string
	PostQuantum bool
	Pending     bool // not yet past its activation delay
	Added       string
	ActiveFrom  string
	Confirmed   bool // added in the web UI, confirmed with the clinician's passkey
	New         bool // added within keyIsNew
	Index       int64
}

// granteeKeys is a clinician with an active grant from the patient, and
// the hub keys exports under it may be encrypted to.
type granteeKeys struct {
	Clinician string
	Keys      []granteeKeyView
}

type consentBody struct {
	Clinicians []option
	Schemas    []option
	Purposes   []option
	Today      string
	ExpiresOn  string
	MaxOn      string
	Active     []consentGrantView
	Expired    []consentGrantView
	Revoked    []consentGrantView
	Apps       []appGrantView // app grants (oauth_authorize.go)
	// Keys are the hub keys of the clinicians with an active grant.
	Keys []granteeKeys
}

// schemaLabels name the schemas people know by another name.
var schemaLabels = map[string]string{
	"omh:step-count":        "Steps",
	"omh:oxygen-saturation": "Oxygen saturation (SpO2)",
	"omh:sleep-episode":     "Sleep",
}

// schemaLabel names a namespace:name for people: "omh:blood-glucose" is
// "Blood glucose".
func schemaLabel(id string) string {
	if l, ok := schemaLabels[id]; ok {
		return l
	}
	_, name, _ := strings.Cut(id, ":")
	name = strings.ReplaceAll(name, "-", " ")
	if name == "" {
		return id
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Consent", "consent")
	switch {
	case r.URL.Query().Get("granted") == "1":
		d.Notice = "The grant is signed with your passkey and recorded in the consent ledger."
	case r.URL.Query().Get("revoked") == "1":
		d.Notice = "The grant is revoked. The clinician can no longer export your data under it."
	}
	return s.renderConsent(r.Context(), w, sess, http.StatusOK, d)
}

func (s *Server) renderConsent(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData) error {
	u, _ := s.vault.User(ctx, sess.UserID)
	loc := u.Location()
	now := s.now()
	b := consentBody{
		Today:     now.In(loc).Format(time.DateOnly),
		ExpiresOn: now.In(loc).AddDate(0, 0, DefaultGrantDays).Format(time.DateOnly),
		MaxOn:     now.Add(consent.MaxGrantLifetime).In(loc).AddDate(0, 0, -1).Format(time.DateOnly),
	}
	clinicians, err := s.vault.Users(ctx, vault.RoleClinician)
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Consent unavailable", Message: "The clinician directory could not be read. Try again shortly.", Cause: err}
	}
	names := map[string]string{}
	for _, c := range clinicians {
		label := c.Name
		if c.Organization != "" {
			label += " (" + c.Organization + ")"
		}
		names[c.ID] = c.Name
		b.Clinicians = append(b.Clinicians, option{Value: c.ID, Label: label})
	}
	slices.SortFunc(b.Clinicians, func(a, b option) int { return strings.Compare(a.Label, b.Label) })
	for _, id := range omh.Supported() {
		v := id.Namespace + ":" + id.Name
		b.Schemas = append(b.Schemas, option{Value: v, Label: schemaLabel(v), Selected: v == "omh:blood-glucose"})
	}
	for _, p := range consent.Purposes {
		b.Purposes = append(b.Purposes, option{Value: p, Label: purposeLabels[p], Selected: p == "TREAT"})
	}
	gs, err := s.ledger.Grants(sess.UserID, "")
	if err != nil {
		return grantsUnavailable(err)
	}
	for _, g := range gs {
		name, ok := names[g.Clinician]
		if !ok {
			name = g.Clinician // a clinician no longer in the directory
		}
		v := consentGrantView{ID: g.ID, Clinician: name, clinicianID: g.Clinician, grantView: grantViewOf(g, loc), Index: g.Index, Created: fmtTime(g.Created, loc)}
		switch {
		case g.RevokeIndex != nil:
			v.RevokedAt = fmtTime(*g.RevokedAt, loc)
			b.Revoked = append(b.Revoked, v)
		case !g.Active(now):
			b.Expired = append(b.Expired, v)
		default:
			b.Active = append(b.Active, v)
		}
	}
	if b.Apps, err = s.appGrantViews(ctx, sess.UserID, loc); err != nil {
		return grantsUnavailable(err)
	}
	b.Keys = s.granteeKeys(b.Active, names, loc, now)
	d.Body, d.Script = b, true
	return s.render(w, status, "consent", d)
}

// granteeKeys lists the live (active and pending) hub keys of each
// clinician with an active grant, from the consent ledger's key entries:
// how each was added (confirmed with the clinician's passkey, or with an
// API token and so pending until its activation delay has passed), when,
// and whether in the last week. Clinicians are in name order, their keys
// oldest first.
func (s *Server) granteeKeys(active []consentGrantView, names map[string]string, loc *time.Location, now time.Time) []granteeKeys {
	seen := map[string]bool{}
	var out []granteeKeys
	for _, g := range active {
		if seen[g.clinicianID] {
			continue
		}
		seen[g.clinicianID] = true
		gk := granteeKeys{Clinician: g.Clinician}
		for _, k := range s.ledger.ClinicianKeys(g.clinicianID) {
			if k.RemoveIndex != nil {
				continue
			}
			gk.Keys = append(gk.Keys, granteeKeyView{Label: k.Label, Fingerprint: k.Fingerprint, PostQuantum: strings.HasPrefix(k.Recipient, "age1pq1"),
				Pending: now.Before(k.ActiveFrom), Added: fmtTime(k.Added, loc), ActiveFrom: fmtTime(k.ActiveFrom, loc),
				Confirmed: k.Confirmed, New: now.Sub(k.Added) < keyIsNew, Index: k.Index})
		}
		out = append(out, gk)
	}
	slices.SortStableFunc(out, func(a, b granteeKeys) int { return strings.Compare(a.Clinician, b.Clinician) })
	return out
}

// expiryText says when a grant ends: a grant ending at a local midnight
// (as the consent form makes them) lasts to the end of the day before.
func expiryText(t time.Time, loc *time.Location) string {
	if calendar.IsDayStart(t, loc) {
		return "end of " + t.Add(-time.Nanosecond).In(loc).Format("2 Jan 2006")
	}
	return fmtTime(t, loc)
}

// schemaList names a grant's schemas for people.
func schemaList(ids []string) string {
	var out []string
	for _, id := range ids {
		out = append(out, schemaLabel(schemaName(id)))
	}
	return strings.Join(out, ", ")
}

// grantForm is the consent form as the page's script sends it. Dates are
// days in the patient's time zone.
type grantForm struct {
	Clinician string   `json:"clinician"`
	Schemas   []string `json:"schemas"`
	DataFrom  string   `json:"data_from"`  // the first day of data, or empty for all earlier data
	DataTo    string   `json:"data_to"`    // the last day of data, or empty for all later data
	ExpiresOn string   `json:"expires_on"` // the last day the grant is in force
	Purpose   string   `json:"purpose"`
	FHIR      bool     `json:"fhir"` // the clinician may also read through the FHIR API
}

// day parses a YYYY-MM-DD day and returns the first instant of the local
// day plus days after it (its midnight, unless a clock change skips it).
func day(v string, loc *time.Location, plus int) (time.Time, bool) {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, false
	}
	return calendar.Midnight(d.Year(), d.Month(), d.Day()+plus, loc), true
}

// request turns the form into a grant request: the data window is
// [first day's midnight, the midnight after the last day), and the grant
// expires at the midnight after its last day, all in the patient's zone.
func (f grantForm) request(loc *time.Location) (consent.GrantRequest, string) {
	r := consent.GrantRequest{Clinician: f.Clinician, Schemas: f.Schemas, Purpose: f.Purpose, FHIR: f.FHIR}
	if f.DataFrom != "" {
		t, ok := day(f.DataFrom, loc, 0)
		if !ok {
			return r, "The first day of data is not a date."
		}
		r.DataFrom = t.Format(time.RFC3339)
	}
	if f.DataTo != "" {
		t, ok := day(f.DataTo, loc, 1)
		if !ok {
			return r, "The last day of data is not a date."
		}
		r.DataTo = t.Format(time.RFC3339)
	}
	t, ok := day(f.ExpiresOn, loc, 1)
	if !ok {
		return r, "Choose the last day the grant lasts."
	}
	r.ExpiresAt = t.Format(time.RFC3339)
	return r, ""
}

// grantMessages say what to change on the form, by consent.RequestError
// code.
var grantMessages = map[string]string{
	"unknown_clinician":   "Choose a clinician from the list.",
	"bad_schemas":         "Choose at least one data type.",
	"bad_window":          "The first day of data must not be after the last day.",
	"bad_expiry":          "The grant must end after today, and within five years.",
	"bad_purpose":         "Choose a purpose from the list.",
	"bad_time":            "A date on the form is not one the vault can store.",
	omh.CodeUnknownSchema: "Choose data types from the list.",
}

// grantBegin checks the consent form, makes the grant's entry (unsigned),
// and starts a WebAuthn assertion over it: the challenge is
// consent.GrantChallenge(entry, nonce), and only the patient's own
// passkeys may answer, with user verification.
func (s *Server) grantBegin(w http.ResponseWriter, r *http.Request, sess session) error {
	var f grantForm
	if err := readJSON(r, &f); err != nil {
		return err
	}
	u, err := s.vault.User(r.Context(), sess.UserID)
	if err != nil {
		return errNoAccount.because(err)
	}
	req, msg := f.request(u.Location())
	if msg != "" {
		return refuse(http.StatusBadRequest, "bad_date", "Request refused", msg)
	}
	var lookupErr error
	e, err := consent.NewGrant(sess.UserID, req, func(id string) bool {
		ok, err := s.isClinician(r.Context(), id)
		lookupErr = cmp.Or(lookupErr, err)
		return ok
	}, s.now())
	if lookupErr != nil {
		return unavailable("Not granted", "The clinician could not be looked up just now. Nothing was granted; try again shortly.", lookupErr)
	}
	if err != nil {
		return refuseGrant(err, "new grant")
	}
	nonce, challenge, err := grantChallenge(e)
	if err != nil {
		return err
	}
	return s.beginStepUp(r.Context(), w, sess, ceremony{Kind: "grant", Grant: &e, Nonce: nonce}, challenge, "grant",
		"A grant is signed with a passkey, and this account has none. Add one on the Passkeys page first.")
}

// refuseGrant answers a grant the consent package refused (NewGrant,
// NewAppGrant) with its code and the page's words for it; any other error
// is the server's.
func refuseGrant(err error, what string) error {
	var re *consent.RequestError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := grantMessages[re.Code]
	if msg == "" {
		msg = re.Message
	}
	return refuse(http.StatusBadRequest, re.Code, "Request refused", msg)
}

// grantChallenge is what the patient's passkey signs for a grant (a
// clinician's or an app's): a fresh server nonce and the challenge over
// the grant with it.
func grantChallenge(e consent.Entry) (nonce, challenge []byte, err error) {
	nonce = make([]byte, consent.NonceSize)
	rand.Read(nonce)
	challenge, err = consent.GrantChallenge(e, nonce)
	if err != nil {
		return nil, nil, fmt.Errorf("grant challenge: %w", err)
	}
	return nonce, challenge, nil
}

// isClinician reports whether id is a clinician's account; an error is a
// lookup that failed (the store unreachable), not an unknown clinician.
func (s *Server) isClinician(ctx context.Context, id string) (bool, error) {
	u, err := s.vault.User(ctx, id)
	switch {
	case errors.Is(err, vault.ErrNoUser):
		return false, nil
	case err != nil:
		return false, err
	}
	return u.Role == vault.RoleClinician, nil
}

var errNoPasskey = errors.New("the user has no passkey")

// signer is the signed-in user as the library sees them for an assertion:
// their passkeys (and no one else's) are the only ones allowed.
func (s *Server) signer(ctx context.Context, userID string) (*waUser, error) {
	recs, err := s.creds.list(ctx, userID)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errNoPasskey
	}
	wu := &waUser{handle: recs[0].Handle, name: userID, display: userID}
	for _, rec := range recs {
		wu.creds = append(wu.creds, rec.webauthnCredential())
	}
	return wu, nil
}

const grantRefused = "Your passkey's signature on the grant could not be verified, so nothing was granted. Try again, and unlock the passkey with your fingerprint, face or PIN."

// grantFinish verifies the assertion over the grant and appends the
// grant entry with the assertion in it. The ledger checks the assertion
// again against the passkey's ledger entry before it stores the grant, so
// a grant it stores as signed always passes vault ledger verify.
func (s *Server) grantFinish(w http.ResponseWriter, r *http.Request, sess session) error {
	su, err := s.finishStepUp(w, r, sess, "grant", func(c ceremony) bool { return c.Grant != nil }, stepUpRefusal{what: "grant", code: "grant_refused", refused: grantRefused, stale: "This grant request has expired or was already used. Start again."})
	if err != nil {
		return err
	}
	c, parsed, cred, rec := su.c, su.parsed, su.cred, su.rec
	// The form was checked at the start; what can change in the five
	// minutes since is checked again.
	e := *c.Grant
	exp, _ := time.Parse(time.RFC3339Nano, e.Grant.Expires)
	isClin, err := s.isClinician(r.Context(), e.Clinician)
	if err != nil {
		return unavailable("Not granted", "The clinician could not be looked up just now. Nothing was granted; try again shortly.", err)
	}
	if !exp.After(s.now()) || !isClin {
		return refuse(http.StatusConflict, "grant_stale", "Request refused", "The grant's clinician or dates are no longer valid. Check the form and try again.")
	}
	g := *e.Grant
	g.Assertion = su.assertion()
	e.Grant = &g
	idx, err := s.ledger.Append(e)
	switch {
	case errors.Is(err, consent.ErrBadAssertion):
		s.log.Warn("web grant refused by the ledger", "user", sess.UserID, "ledger_index", rec.LedgerIndex, "cause", err.Error())
		return refuse(http.StatusUnauthorized, "grant_refused", "Request refused", grantRefused)
	case err != nil:
		return unavailable("Not granted", "The grant could not be recorded. Nothing was granted; try again shortly.", err)
	}
	if _, err := s.noteUse(r.Context(), rec, cred, parsed); err != nil {
		s.log.Error("web credential update", "user", sess.UserID, "cause", err.Error())
	}
	s.log.Info("grant signed", "user", sess.UserID, "grant", e.Grant.ID, "ledger_index", idx, "passkey_index", rec.LedgerIndex)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/consent?granted=1", "grant": e.Grant.ID})
	return nil
}

// revokeGrant revokes one of the patient's grants (a revoke entry, as
// POST /api/v1/grants/{id}/revoke makes). A grant that is not the
// patient's answers 404, as a missing one.
func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request, sess session) error {
	g, err := s.ledger.Grant(r.PathValue("id"))
	if err != nil && !errors.Is(err, consent.ErrNoGrant) {
		return grantsUnavailable(err)
	}
	if err != nil || g.Patient != sess.UserID {
		return errNotFound
	}
	_, err = s.ledger.Append(consent.NewRevoke(sess.UserID, g, s.now()))
	switch {
	case errors.Is(err, consent.ErrRevoked):
		d := s.signedData(r.Context(), sess, "Consent", "consent")
		d.Error = "That grant was already revoked."
		return s.renderConsent(r.Context(), w, sess, http.StatusConflict, d)
	case err != nil:
		return unavailable("Not revoked", "The grant could not be revoked just now. Try again shortly.", fmt.Errorf("revoke %s: %w", g.ID, err))
	}
	s.log.Info("grant revoked", "user", sess.UserID, "grant", g.ID)
	http.Redirect(w, r, "/consent?revoked=1", http.StatusSeeOther)
	return nil
}

// grantTableData is what the consent page's "grants" template reads.
type grantTableData struct {
	Grants  []consentGrantView
	Caption string
	CSRF    string
	Revoke  bool // a Revoke button on each
	Revoked bool // show when each was revoked
}

func grantTable(gs []consentGrantView, caption, csrf string, revoke, revoked bool) grantTableData {
	return grantTableData{Grants: gs, Caption: caption, CSRF: csrf, Revoke: revoke, Revoked: revoked}
}
