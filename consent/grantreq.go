package consent

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// Grant limits.
const (
	MaxGrantSchemas    = 20
	MaxGrantRecipients = 10
	MaxGrantLifetime   = 5 * 365 * 24 * time.Hour
)

// Purposes are the FHIR v3 ActReason purpose-of-use codes a grant may carry.
var Purposes = []string{"TREAT", "ETREAT", "CAREMGT", "HRESCH", "CLINTRL", "PATRQT", "FAMRQT", "PUBHLTH", "HOPERAT"}

var fingerprintRE = regexp.MustCompile(`^[A-Za-z0-9:_+/=-]{1,128}$`)

// GrantRequest is what a patient asks for: the body of POST /api/v1/grants,
// and what the web UI's consent form makes.
type GrantRequest struct {
	Clinician  string   `json:"clinician"`
	Schemas    []string `json:"schemas"`
	DataFrom   string   `json:"data_from,omitempty"`
	DataTo     string   `json:"data_to,omitempty"`
	ExpiresAt  string   `json:"expires_at"`
	Purpose    string   `json:"purpose"`
	Recipients []string `json:"recipients,omitempty"`
	// FHIR lets the clinician also read through the FHIR API (plaintext
	// over TLS); absent is false.
	FHIR bool `json:"fhir,omitempty"`
}

// RequestError refuses a grant request: Code is stable (the API's error
// code) and Message says what to change.
type RequestError struct {
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

func badRequest(code, format string, args ...any) *RequestError {
	return &RequestError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// GrantSchemas checks and normalises a grant's schema list: namespace:name
// covers every version; a version the vault normalises becomes canonical.
func GrantSchemas(in []string) ([]string, error) {
	if len(in) == 0 || len(in) > MaxGrantSchemas {
		return nil, badRequest("bad_schemas", "schemas must list 1 to %d schema ids, such as omh:blood-glucose or omh:heart-rate:2.0", MaxGrantSchemas)
	}
	var out []string
	for _, s := range in {
		id, err := omh.ParseSchemaID(s)
		if err != nil {
			return nil, badRequest("bad_schemas", "each schema is namespace:name or namespace:name:version, such as omh:blood-glucose")
		}
		c, ok := omh.CanonicalSchema(id)
		if !ok {
			return nil, badRequest(omh.CodeUnknownSchema, "a schema in the grant is not one the vault stores")
		}
		norm := c.Namespace + ":" + c.Name
		if id.Version != "" {
			norm = c.String()
		}
		if !slices.Contains(out, norm) {
			out = append(out, norm)
		}
	}
	return out, nil
}

func grantTime(name, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, badRequest("bad_time", "%s is required, as an RFC 3339 time such as 2027-01-01T00:00:00Z", name)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !vault.TimeInRange(t) {
		return time.Time{}, badRequest("bad_time", "%s must be an RFC 3339 time with an offset, between 1900 and 2200", name)
	}
	return t.UTC(), nil
}

// NewGrant checks a patient's grant request and makes its entry, with a
// new grant id, a fresh salt and the time now. The entry is unsigned: the
// web UI adds the patient's assertion (GrantChallenge) before it is
// appended; a grant made with an API token is appended as it is.
// isClinician reports whether an id is a clinician in the directory. A
// refusal is a *RequestError.
func NewGrant(patient string, r GrantRequest, isClinician func(id string) bool, now time.Time) (Entry, error) {
	if vault.RoleOf(r.Clinician) != vault.RoleClinician || !isClinician(r.Clinician) {
		return Entry{}, badRequest("unknown_clinician", "clinician must be a clinician id from the directory (GET /api/v1/clinicians)")
	}
	g, err := newGrantBody(r.Schemas, r.DataFrom, r.DataTo, r.ExpiresAt, now)
	if err != nil {
		return Entry{}, err
	}
	if !slices.Contains(Purposes, r.Purpose) {
		return Entry{}, badRequest("bad_purpose", "purpose must be a FHIR v3 ActReason code: %s", strings.Join(Purposes, ", "))
	}
	if len(r.Recipients) > MaxGrantRecipients {
		return Entry{}, badRequest("bad_recipients", "a grant may pin at most %d recipient fingerprints", MaxGrantRecipients)
	}
	for _, fp := range r.Recipients {
		if !fingerprintRE.MatchString(fp) {
			return Entry{}, badRequest("bad_recipients", "each recipient fingerprint is 1 to 128 characters of letters, digits and :_+/=-")
		}
	}
	e := New(KindGrant, patient, now)
	e.Patient, e.Clinician = patient, r.Clinician
	g.Purpose, g.Recipients, g.FHIR = r.Purpose, r.Recipients, r.FHIR
	e.Grant = g
	return e, nil
}

// newGrantBody checks what every grant has, a clinician's or an app's:
// its schemas, its data window and its expiry; and returns the grant's
// body with a new id and those, normalised.
func newGrantBody(schemaIDs []string, dataFrom, dataTo, expiresAt string, now time.Time) (*Grant, error) {
	schemas, err := GrantSchemas(schemaIDs)
	if err != nil {
		return nil, err
	}
	from, err := grantTime("data_from", dataFrom, false)
	if err != nil {
		return nil, err
	}
	to, err := grantTime("data_to", dataTo, false)
	if err != nil {
		return nil, err
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, badRequest("bad_window", "data_from must be earlier than data_to; the window is [data_from, data_to)")
	}
	exp, err := grantTime("expires_at", expiresAt, true)
	if err != nil {
		return nil, err
	}
	if !exp.After(now) || exp.Sub(now) > MaxGrantLifetime {
		return nil, badRequest("bad_expiry", "expires_at must be in the future and at most five years away")
	}
	g := &Grant{ID: vault.NewID("gr_"), Schemas: schemas, Expires: exp.Format(time.RFC3339Nano)}
	if !from.IsZero() {
		g.DataFrom = from.Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		g.DataTo = to.Format(time.RFC3339Nano)
	}
	return g, nil
}
