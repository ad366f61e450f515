package consent

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// EntryVersion is the version of the entry encoding.
const EntryVersion = 1

// Entry kinds.
const (
	KindGrant           = "grant"
	KindRevoke          = "revoke"
	KindClinicianKeyAdd = "clinician-key-added"
	KindClinicianKeyDel = "clinician-key-removed"
	KindPasskey         = "passkey-registered"
	KindPasskeyRemoved  = "passkey-removed" // carries the credential id only
	KindAccessStart     = "access-start"
	KindAccessEnd       = "access-end"
	KindAdmin           = "admin"
)

// SaltSize is the length of an entry's random salt.
const SaltSize = 16

// Entry is one ledger entry. It holds ids only: never names or readings.
// Its canonical encoding (Marshal) is the JSON of this struct in field
// order, with empty optional parts left out; Parse accepts only that
// encoding, so an entry's bytes, and so its leaf hash, are unique.
type Entry struct {
	V         int    `json:"v"`
	Kind      string `json:"kind"`
	Salt      []byte `json:"salt"`  // random, so a leaf hash reveals nothing about the entry
	Time      string `json:"time"`  // RFC 3339 UTC, nanoseconds
	Actor     string `json:"actor"` // who caused it: a user id, or "admin"
	Patient   string `json:"patient,omitempty"`
	Clinician string `json:"clinician,omitempty"`
	// App is the OAuth client id of an app a patient granted access to
	// (an app grant, appgrant.go), on a grant or revoke entry instead of
	// a clinician. It is a client id, never a name.
	App string `json:"app,omitempty"`

	Grant   *Grant        `json:"grant,omitempty"`
	Revoke  *Revoke       `json:"revoke,omitempty"`
	Key     *ClinicianKey `json:"key,omitempty"`
	Passkey *Passkey      `json:"passkey,omitempty"`
	Access  *Access       `json:"access,omitempty"`
	Admin   *Admin        `json:"admin,omitempty"`
}

// Grant is the body of a grant entry.
type Grant struct {
	ID       string   `json:"id"`
	Schemas  []string `json:"schemas"`             // namespace:name[:version]
	DataFrom string   `json:"data_from,omitempty"` // RFC 3339; empty is open
	DataTo   string   `json:"data_to,omitempty"`   // RFC 3339; empty is open
	Expires  string   `json:"expires_at"`          // RFC 3339
	Purpose  string   `json:"purpose"`             // FHIR v3 ActReason code, such as TREAT
	// Recipients pins export recipients by fingerprint (export issue).
	Recipients []string `json:"recipients,omitempty"`
	// FHIR says the grantee may also read the granted data through the
	// FHIR API (plaintext over TLS), not only in age-encrypted exports.
	// A grant written before the field existed, or without it, does not
	// allow it (docs/ledger.md, "The FHIR choice"). App grants ignore it:
	// an app reads only through the FHIR API.
	FHIR bool `json:"fhir,omitempty"`
	// Assertion is the patient's WebAuthn assertion over the grant, made
	// with her passkey in the web UI (assertion.go). A grant without one,
	// made with an API token, is unsigned.
	Assertion *Assertion `json:"assertion,omitempty"`
}

// Revoke is the body of a revoke entry: it points at the grant's index.
type Revoke struct {
	GrantIndex int64  `json:"grant_index"`
	GrantID    string `json:"grant_id"`
}

// ClinicianKey is the body of a clinician-key entry. A removal carries the
// fingerprint only.
type ClinicianKey struct {
	Fingerprint string `json:"fingerprint"`
	Recipient   string `json:"recipient,omitempty"`
	Label       string `json:"label,omitempty"`
	ActiveFrom  string `json:"active_from,omitempty"` // RFC 3339; the activation delay's end
	// Assertion is the clinician's WebAuthn assertion over the entry,
	// made with their passkey in the web UI (keyconfirm.go): a confirmed
	// key is active at once. A key added with an API token has none.
	Assertion *Assertion `json:"assertion,omitempty"`
}

// Passkey is the body of a passkey-registered entry.
type Passkey struct {
	CredentialID []byte `json:"credential_id"`
	PublicKey    []byte `json:"public_key"` // COSE
	RPID         string `json:"rp_id"`
	Origin       string `json:"origin"`
}

// Access is the body of an access entry.
type Access struct {
	Start       *int64   `json:"start,omitempty"`  // access-end: the access-start index
	Grants      []string `json:"grants,omitempty"` // access-start: the covering grant ids
	Schemas     []string `json:"schemas,omitempty"`
	From        string   `json:"from,omitempty"`
	To          string   `json:"to,omitempty"`
	Format      string   `json:"format,omitempty"`
	Recipient   string   `json:"recipient,omitempty"`
	Records     int64    `json:"records,omitempty"`
	ContentHash []byte   `json:"content_hash,omitempty"`
	Incomplete  bool     `json:"incomplete,omitempty"` // access-end: the stream broke off
}

// Admin is the body of an admin entry.
type Admin struct {
	Action string `json:"action"` // user-add, token-mint, user-delete, key-rotate
	Target string `json:"target,omitempty"`
	Detail string `json:"detail,omitempty"` // ids and kinds only
}

// New makes an entry of a kind with a fresh salt and the time now.
func New(kind, actor string, now time.Time) Entry {
	salt := make([]byte, SaltSize)
	rand.Read(salt)
	return Entry{V: EntryVersion, Kind: kind, Salt: salt, Time: now.UTC().Format(time.RFC3339Nano), Actor: actor}
}

// NewAdmin makes an admin entry about target. A target with a patient
// (pt_) or clinician (cl_) id prefix is named as a party, so that user can
// read the entry.
func NewAdmin(action, target, detail string, now time.Time) Entry {
	e := New(KindAdmin, "admin", now)
	switch {
	case strings.HasPrefix(target, "pt_"):
		e.Patient = target
	case strings.HasPrefix(target, "cl_"):
		e.Clinician = target
	}
	e.Admin = &Admin{Action: action, Target: target, Detail: detail}
	return e
}

// body reports which body an entry kind must carry.
func (e *Entry) body() (want string, have []string) {
	for name, set := range map[string]bool{"grant": e.Grant != nil, "revoke": e.Revoke != nil, "key": e.Key != nil, "passkey": e.Passkey != nil, "access": e.Access != nil, "admin": e.Admin != nil} {
		if set {
			have = append(have, name)
		}
	}
	switch e.Kind {
	case KindGrant:
		return "grant", have
	case KindRevoke:
		return "revoke", have
	case KindClinicianKeyAdd, KindClinicianKeyDel:
		return "key", have
	case KindPasskey, KindPasskeyRemoved:
		return "passkey", have
	case KindAccessStart, KindAccessEnd:
		return "access", have
	case KindAdmin:
		return "admin", have
	}
	return "", have
}

// Validate checks an entry's shape.
func (e *Entry) Validate() error {
	if e.V != EntryVersion {
		return fmt.Errorf("entry version %d is not %d", e.V, EntryVersion)
	}
	want, have := e.body()
	if want == "" {
		return fmt.Errorf("unknown entry kind %q", e.Kind)
	}
	if len(have) != 1 || have[0] != want {
		return fmt.Errorf("a %s entry carries exactly one %s body", e.Kind, want)
	}
	if len(e.Salt) != SaltSize {
		return errors.New("entry salt must be 16 bytes")
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339Nano) != e.Time {
		return errors.New("entry time must be RFC 3339 UTC in canonical form")
	}
	if e.Actor == "" {
		return errors.New("entry has no actor")
	}
	if e.App != "" {
		switch {
		case e.Kind != KindGrant && e.Kind != KindRevoke && e.Kind != KindAccessStart && e.Kind != KindAccessEnd:
			return fmt.Errorf("a %s entry names no app", e.Kind)
		case e.Clinician != "":
			return errors.New("an entry names a clinician or an app, not both")
		case !ValidAppID(e.App):
			return errors.New("the app is not a valid client id")
		}
	}
	return nil
}

// Marshal returns the canonical bytes of a valid entry.
func (e *Entry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Parse decodes canonical entry bytes. Anything that does not re-encode to
// exactly the same bytes is refused, so one entry has one encoding.
func Parse(b []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("entry is not valid: %v", err)
	}
	if dec.More() {
		return Entry{}, errors.New("entry has trailing data")
	}
	again, err := e.Marshal()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, b) {
		return Entry{}, errors.New("entry is not in canonical form")
	}
	return e, nil
}

// Parties are the user ids an entry names; only they (and the admin, for
// admin entries) may read its content.
func (e *Entry) Parties() []string {
	var p []string
	for _, id := range []string{e.Patient, e.Clinician} {
		if id != "" {
			p = append(p, id)
		}
	}
	return p
}
