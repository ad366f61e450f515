package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Roles.
const (
	RolePatient   = "patient"
	RoleClinician = "clinician"
)

// Token kinds. A device token may only upload readings for its patient.
const (
	TokenDevice    = "device"
	TokenPatient   = "patient"
	TokenClinician = "clinician"
)

var (
	idPrefix    = map[string]string{RolePatient: "pt_", RoleClinician: "cl_"}
	tokenPrefix = map[string]string{TokenDevice: "vd_", TokenPatient: "vp_", TokenClinician: "vc_"}
	tokenRole   = map[string]string{TokenDevice: RolePatient, TokenPatient: RolePatient, TokenClinician: RoleClinician}
	// DefaultTokenTTL is how long a new token lasts unless told otherwise.
	DefaultTokenTTL = map[string]time.Duration{
		TokenDevice:    180 * 24 * time.Hour,
		TokenPatient:   30 * 24 * time.Hour,
		TokenClinician: 30 * 24 * time.Hour,
	}
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID makes an opaque id: prefix and 16 base32 characters (80 random
// bits), the form every vault id takes.
func NewID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}

// RoleOf returns the role an id's prefix names, or "".
func RoleOf(id string) string {
	for role, p := range idPrefix {
		if strings.HasPrefix(id, p) {
			return role
		}
	}
	return ""
}

// User is an account. Name, organisation and time zone are sealed under the
// master keyset at rest; only the id (and so the role) is plaintext.
type User struct {
	ID           string    `json:"id"`
	Role         string    `json:"role"`
	Name         string    `json:"name"`
	Organization string    `json:"organization,omitempty"`
	TimeZone     string    `json:"tz,omitempty"`
	Created      time.Time `json:"created"`
}

// Location is the user's IANA time zone (UTC when unset).
func (u User) Location() *time.Location {
	if l, err := time.LoadLocation(u.TimeZone); err == nil && u.TimeZone != "" {
		return l
	}
	return time.UTC
}

// InputError is a caller mistake, with a message safe to show.
type InputError struct{ Code, Message string }

func (e *InputError) Error() string { return e.Message }

func userAD(id string) []byte { return []byte("jhvault/user/v1|" + id) }

// NewUser describes an account to create.
type NewUser struct {
	Role, Name, Organization, TimeZone string
}

// CreateUser makes an account. A patient also gets fresh keys.
func (v *Vault) CreateUser(ctx context.Context, n NewUser) (User, error) {
	prefix, ok := idPrefix[n.Role]
	if !ok {
		return User{}, &InputError{"bad_role", "role must be patient or clinician"}
	}
	n.Name = strings.TrimSpace(n.Name)
	if n.Name == "" || len(n.Name) > 200 || !utf8.ValidString(n.Name) {
		return User{}, &InputError{"bad_name", "name must be 1 to 200 characters of UTF-8"}
	}
	if len(n.Organization) > 200 || !utf8.ValidString(n.Organization) {
		return User{}, &InputError{"bad_organization", "organization must be at most 200 characters of UTF-8"}
	}
	if n.TimeZone == "" {
		n.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(n.TimeZone); err != nil || n.TimeZone == "Local" {
		return User{}, &InputError{"bad_time_zone", "time zone must be an IANA name such as Europe/Berlin or America/New_York"}
	}
	u := User{ID: NewID(prefix), Role: n.Role, Name: n.Name, Organization: n.Organization, TimeZone: n.TimeZone, Created: v.now().UTC().Truncate(time.Second)}
	if n.Role == RolePatient {
		pk, blob, err := keysForPatient(v, u.ID)
		if err != nil {
			return User{}, err
		}
		if err := v.b.CreatePatientKeys(ctx, u.ID, blob); err != nil {
			return User{}, err
		}
		v.pkMu.Lock()
		v.pks[u.ID] = pk
		v.pkMu.Unlock()
	}
	if err := v.putUser(ctx, u, true); err != nil {
		return User{}, err
	}
	v.log.Info("user created", "user", u.ID, "role", u.Role)
	return u, nil
}

func (v *Vault) putUser(ctx context.Context, u User, create bool) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	sealed, err := v.master.Encrypt(b, userAD(u.ID))
	if err != nil {
		return err
	}
	if create {
		return v.b.CreateUser(ctx, u.ID, sealed)
	}
	return v.b.PutUser(ctx, u.ID, sealed)
}

// ErrNoUser is returned for an unknown user id.
var ErrNoUser = errors.New("no such user")

// User returns an account.
func (v *Vault) User(ctx context.Context, id string) (User, error) {
	blob, err := v.b.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrNoUser
	}
	if err != nil {
		return User{}, err
	}
	return v.openUser(id, blob)
}

func (v *Vault) openUser(id string, blob []byte) (User, error) {
	var u User
	b, err := v.master.Decrypt(blob, userAD(id))
	if err != nil {
		return u, fmt.Errorf("account %s does not decrypt", id)
	}
	return u, json.Unmarshal(b, &u)
}

// Users lists accounts of one role, in id order.
func (v *Vault) Users(ctx context.Context, role string) ([]User, error) {
	prefix, ok := idPrefix[role]
	if !ok {
		return nil, &InputError{"bad_role", "role must be patient or clinician"}
	}
	rows, err := v.b.Users(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(rows))
	for _, r := range rows {
		u, err := v.openUser(r.ID, r.Blob)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// Token is an authenticated API token.
type Token struct {
	ID      string
	UserID  string
	Kind    string
	Expires time.Time
}

// Token errors.
var (
	ErrTokenInvalid = errors.New("token is not valid")
	ErrTokenExpired = errors.New("token has expired")
)

const (
	tokenIDLen     = 16 // base32 of 10 random bytes
	tokenSecretLen = 32 // random bytes: 256 bits
)

// MintToken makes a token for a user and returns its secret, which is shown
// once and stored only as a SHA-256 hash. ttl <= 0 means the kind's default.
func (v *Vault) MintToken(ctx context.Context, userID, kind string, ttl time.Duration) (string, Token, error) {
	prefix, ok := tokenPrefix[kind]
	if !ok {
		return "", Token{}, &InputError{"bad_token_kind", "token kind must be device, patient or clinician"}
	}
	u, err := v.User(ctx, userID)
	if err != nil {
		return "", Token{}, err
	}
	if tokenRole[kind] != u.Role {
		return "", Token{}, &InputError{"bad_token_kind", fmt.Sprintf("a %s token needs a %s account, and %s is a %s", kind, tokenRole[kind], u.ID, u.Role)}
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL[kind]
	}
	id := NewID("")
	sec := make([]byte, tokenSecretLen)
	rand.Read(sec)
	secret := prefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec)
	sum := sha256.Sum256([]byte(secret))
	now := v.now().UTC()
	row := TokenRow{ID: id, UserID: u.ID, Kind: kind, Hash: sum[:], Created: now, Expires: now.Add(ttl)}
	if err := v.b.PutToken(ctx, row); err != nil {
		return "", Token{}, err
	}
	v.log.Info("token minted", "token_id", id, "user", u.ID, "kind", kind, "expires", row.Expires)
	return secret, Token{ID: id, UserID: u.ID, Kind: kind, Expires: row.Expires}, nil
}

// Authenticate checks a bearer token: its prefix, its hash (compared in
// constant time) and its expiry. It records the last use at most every
// five minutes.
func (v *Vault) Authenticate(ctx context.Context, secret string) (Token, error) {
	if len(secret) < 3+tokenIDLen+1 || secret[3+tokenIDLen] != '_' {
		return Token{}, ErrTokenInvalid
	}
	kind := ""
	for k, p := range tokenPrefix {
		if strings.HasPrefix(secret, p) {
			kind = k
		}
	}
	if kind == "" {
		return Token{}, ErrTokenInvalid
	}
	id := secret[3 : 3+tokenIDLen]
	row, err := v.b.Token(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Token{}, ErrTokenInvalid
	}
	if err != nil {
		return Token{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], row.Hash) != 1 || row.Kind != kind {
		return Token{}, ErrTokenInvalid
	}
	now := v.now()
	if !now.Before(row.Expires) {
		return Token{}, ErrTokenExpired
	}
	v.touch(ctx, id, now)
	return Token{ID: row.ID, UserID: row.UserID, Kind: row.Kind, Expires: row.Expires}, nil
}

func (v *Vault) touch(ctx context.Context, id string, now time.Time) {
	v.touchMu.Lock()
	last, seen := v.touched[id]
	due := !seen || now.Sub(last) >= 5*time.Minute
	if due {
		v.touched[id] = now
	}
	v.touchMu.Unlock()
	if due {
		if err := v.b.TouchToken(ctx, id, now); err != nil {
			v.log.Warn("token last-used update failed", "token_id", id, "err", err)
		}
	}
}
