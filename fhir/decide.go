package fhir

import (
	"errors"
	"fmt"
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
		if !slices.Contains(t.Schemas, schemaTable[i].name) {
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
// her Patient resource or her grants needs.
func (s *Server) grantsToFHIR(t oauth.AccessToken, patient string, now time.Time) bool {
	switch t.Context {
	case "patient":
		return patient == t.UserID
	case "user":
		for _, g := range s.ledger.Grants(patient, t.UserID) {
			if g.Active(now) && g.FHIR && (!s.requireSigned || g.Signed) {
				return true
			}
		}
	}
	return false
}

var errConsentChanged = errors.New("the consent changed while the read was being logged")

// logged runs one access: it appends the access-start (deciding again
// inside the ledger's serialised step, so a revoke cannot slip in
// between), calls render, appends the access-end with the count render
// returns, and only then writes the body. If an append fails, nothing is
// sent (503); if the consent changed, 403.
func (s *Server) logged(w http.ResponseWriter, t oauth.AccessToken, patient string, want []int, win consent.Window, p permit,
	render func() (body []byte, count int64, err error)) error {
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
	start.Access = &consent.Access{Grants: p.grants, Schemas: names, Format: "fhir"}
	if !win.From.IsZero() {
		start.Access.From = win.From.UTC().Format(time.RFC3339Nano)
	}
	if !win.To.IsZero() {
		start.Access.To = win.To.UTC().Format(time.RFC3339Nano)
	}
	check := func(int64) error {
		p2, err := s.decide(t, patient, want, win, s.now())
		if err != nil || !slices.Equal(p2.grants, p.grants) || fmt.Sprint(p2.windows) != fmt.Sprint(p.windows) {
			return errConsentChanged
		}
		return nil
	}
	idx, err := s.ledger.AppendChecked(check, start)
	switch {
	case errors.Is(err, errConsentChanged):
		return denied("revoked")
	case err != nil:
		return &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "access_log_unavailable",
			Message: "the read could not be logged in the patient's access log, so nothing was sent; retry later", Cause: err}
	}
	body, count, rerr := render()
	end := consent.New(consent.KindAccessEnd, actor, s.now())
	end.Patient, end.Clinician, end.App = patient, start.Clinician, start.App
	end.Access = &consent.Access{Start: &idx, Records: count, Format: "fhir", Incomplete: rerr != nil}
	if _, err := s.ledger.AppendChecked(nil, end); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "access_log_unavailable",
			Message: "the read could not be logged in the patient's access log, so nothing was sent; retry later", Cause: err}
	}
	if rerr != nil {
		return rerr
	}
	writeBytes(w, http.StatusOK, body)
	return nil
}
