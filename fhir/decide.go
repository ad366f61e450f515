package fhir

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// vaultID turns a FHIR id (pt-abc) back into a vault id (pt_abc); vault
// ids hold no '-', so the mapping is exact. "" when it is not an id of
// the given role.
func vaultID(fhirID, role string) string {
	id := strings.ReplaceAll(fhirID, "-", "_")
	if vault.RoleOf(id) != role || oauth.FHIRID(id) != fhirID {
		return ""
	}
	return id
}

// permit is what the ledger allows one request: per schema (index in
// schemaTable) the windows, and the covering grants.
type permit struct {
	windows map[int][]consent.Window
	grants  []string
}

func (p permit) schemas() []int {
	var out []int
	for i := range schemaTable {
		if _, ok := p.windows[i]; ok {
			out = append(out, i)
		}
	}
	return out
}

// denyMessages explain a refusal's reason.
var denyMessages = map[string]string{
	"no_grant":           "no active grant from this patient covers you",
	"revoked":            "the patient revoked the grant",
	"expired":            "the grant has expired",
	"schema_not_granted": "the patient's grants do not cover this data type",
	"window_not_granted": "the patient's grants do not cover this period",
	"index_untrusted":    "the consent index is being repaired; retry later",
	"fhir_not_granted":   "the patient's grant does not allow reading through the FHIR API (only encrypted exports); she can allow it on her consent page",
	"unsigned_grant":     "only grants the patient signed with her passkey cover reads on this server",
	"other_patient":      "this token reads one patient's data: her own",
	"scope":              "the token's scopes do not cover this data type",
}

func denied(reason string) *Error {
	msg := denyMessages[reason]
	if msg == "" {
		msg = "the consent ledger refused the read"
	}
	return refuse(http.StatusForbidden, "forbidden", reason, "%s", msg)
}

// decide asks the ledger about every schema in want for patient and
// window w, at now. It permits the schemas some grant covers (windows
// clipped), and refuses (403) when none is left, with the first reason.
func (s *Server) decide(t oauth.AccessToken, patient string, want []int, w consent.Window, now time.Time) (permit, error) {
	if t.Context == "patient" && patient != t.UserID {
		return permit{}, denied("other_patient")
	}
	p := permit{windows: map[int][]consent.Window{}}
	reason := ""
	for _, i := range want {
		if !scopeReaches(t, i) {
			reason = cmpReason(reason, "scope")
			continue
		}
		req := consent.Request{Clinician: t.UserID, Patient: patient, Schema: schemaTable[i].stored(), Window: w, Now: now}
		var d consent.Decision
		if t.Context == "patient" {
			d = s.ledger.DecideApp(t.GrantID, t.ClientID, req)
		} else {
			d = s.ledger.Decide(req)
		}
		if !d.Permit {
			reason = cmpReason(reason, d.Reason)
			continue
		}
		kept := d.Grants
		if t.Context == "user" {
			kept = nil
			why := "fhir_not_granted"
			for _, g := range d.Grants {
				switch {
				case !g.FHIR:
				case s.requireSigned && !g.Signed:
					why = "unsigned_grant"
				default:
					kept = append(kept, g)
				}
			}
			if len(kept) == 0 {
				reason = cmpReason(reason, why)
				continue
			}
		}
		ws := consent.ClipWindow(w, kept)
		if len(ws) == 0 {
			reason = cmpReason(reason, "window_not_granted")
			continue
		}
		p.windows[i] = ws
		for _, g := range kept {
			if !slices.Contains(p.grants, g.ID) {
				p.grants = append(p.grants, g.ID)
			}
		}
	}
	if len(p.windows) == 0 {
		if reason == "" {
			reason = "no_grant"
		}
		return p, denied(reason)
	}
	slices.Sort(p.grants)
	return p, nil
}

// scopeReaches reports whether the token's scopes reach schema i: a
// typed schema through the SMART scopes (oauth.AccessToken.Schemas), one
// without a typed model only through a whole Observation (or *) read.
func scopeReaches(t oauth.AccessToken, i int) bool {
	if !schemaTable[i].typed {
		return t.AllObservations
	}
	return slices.Contains(t.Schemas, schemaTable[i].name)
}

// cmpReason keeps the more telling of two deny reasons: a data-type or
// period refusal says more than "no grant".
func cmpReason(have, next string) string {
	rank := func(r string) int {
		switch r {
		case "":
			return 0
		case "no_grant", "revoked", "expired":
			return 1
		}
		return 2
	}
	if rank(next) > rank(have) {
		return next
	}
	return have
}

// grantsToFHIR reports whether patient has an active grant to the
// token's holder that allows FHIR reads (any data type): what reading
// her Patient resource or her grants needs. It fails when the grant
// index cannot be brought up to date.
func (s *Server) grantsToFHIR(t oauth.AccessToken, patient string, now time.Time) (bool, error) {
	switch t.Context {
	case "patient":
		return patient == t.UserID, nil
	case "user":
		gs, err := s.ledger.Grants(patient, t.UserID)
		if err != nil {
			return false, err
		}
		for _, g := range gs {
			if g.Active(now) && g.FHIR && (!s.requireSigned || g.Signed) {
				return true, nil
			}
		}
	}
	return false, nil
}

var errConsentChanged = errors.New("the consent changed while the read was being logged")

// logged runs one access: it calls render (the readings are read and
// the answer built in memory), then appends the access-start and the
// access-end with the count render returns in one ledger transaction
// (consent.Ledger.AppendAccess), deciding again inside the ledger's
// serialised step, so a revoke that came in meanwhile refuses the answer;
// and only then writes the body. If the append fails, nothing is sent
// (503); if the consent changed, 403. A render that fails is logged all
// the same, as an incomplete access.
func (s *Server) logged(w http.ResponseWriter, t oauth.AccessToken, patient string, want []int, win consent.Window, p permit,
	render func() (body []byte, count int64, err error)) error {
	body, err := s.logAccess(t, patient, want, win, p, accessFormat, render)
	if err != nil {
		return err
	}
	writeBytes(w, http.StatusOK, body)
	s.putPage(body)
	return nil
}

// accessFormat is the access log's format of a read through this API.
const accessFormat = "fhir"

// logAccess is logged's work, for any surface: it returns the body
// render made once both entries are in the log, with format in them.
func (s *Server) logAccess(t oauth.AccessToken, patient string, want []int, win consent.Window, p permit, format string,
	render func() (body []byte, count int64, err error)) ([]byte, error) {
	body, count, rerr := render()
	now := s.now()
	actor := t.UserID
	start := consent.New(consent.KindAccessStart, actor, now)
	start.Patient = patient
	if t.Context == "patient" {
		start.App = t.ClientID
	} else {
		start.Clinician = t.UserID
	}
	var names []string
	for _, i := range p.schemas() {
		names = append(names, schemaTable[i].stored())
	}
	start.Access = &consent.Access{Grants: p.grants, Schemas: names, Format: format}
	if !win.From.IsZero() {
		start.Access.From = win.From.UTC().Format(time.RFC3339Nano)
	}
	if !win.To.IsZero() {
		start.Access.To = win.To.UTC().Format(time.RFC3339Nano)
	}
	end := consent.New(consent.KindAccessEnd, actor, now)
	end.Patient, end.Clinician, end.App = patient, start.Clinician, start.App
	end.Access = &consent.Access{Records: count, Format: format, Incomplete: rerr != nil}
	check := func(int64) error {
		p2, err := s.decide(t, patient, want, win, s.now())
		if err != nil || !slices.Equal(p2.grants, p.grants) || !sameWindows(p2.windows, p.windows) {
			return errConsentChanged
		}
		return nil
	}
	_, err := s.ledger.AppendAccess(check, start, end)
	switch {
	case errors.Is(err, errConsentChanged):
		return nil, denied("revoked")
	case err != nil:
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "access_log_unavailable",
			Message: "the read could not be logged in the patient's access log, so nothing was sent; retry later", Cause: err}
	}
	if rerr != nil {
		return nil, rerr
	}
	return body, nil
}

// maxPooledPage is the largest buffer kept for reuse.
const maxPooledPage = 4 << 20

// getPage returns an empty buffer for a page, reused when one is free.
func (s *Server) getPage() []byte {
	if b, ok := s.pages.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 256<<10)
}

// putPage gives a page's buffer back once it has been written.
func (s *Server) putPage(b []byte) {
	if cap(b) <= maxPooledPage {
		s.pages.Put(&b)
	}
}

// sameWindows compares two permits' windows.
func sameWindows(a, b map[int][]consent.Window) bool {
	if len(a) != len(b) {
		return false
	}
	for i, ws := range a {
		vs, ok := b[i]
		if !ok || len(vs) != len(ws) {
			return false
		}
		for j := range ws {
			if !ws[j].From.Equal(vs[j].From) || !ws[j].To.Equal(vs[j].To) {
				return false
			}
		}
	}
	return true
}
