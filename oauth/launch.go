package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
)

// SMART EHR launch. The vault is the EHR: a signed-in clinician opens a
// registered app (one with a launch URL) for a patient in her list, and
// the web UI asks NewLaunch for a launch id. The browser goes to the app's
// launch URL with iss (the FHIR base) and launch (the id); the app sends
// the id back in its authorization request, with the launch scope.
//
// The id is sealed, not stored: "vl_" and, base64url, the master keyset's
// AEAD (associated data naming its purpose) over a random 128-bit part,
// the expiry, the clinician, a SHA-256 of her web session hash, the client
// and the patient. Nothing is written when it is made, and any replica on
// the same database opens it; what travels in the app's URL shows neither
// the patient nor the session. The id is:
//
//   - single use: the clinician's approval spends it, as a spent-once mark
//     in the store (Store.SpendJTI, the primitive client-assertion ids use,
//     keyed by a hash of the random part under its own prefix, kept until
//     the launch expires and then swept), so a second approval on any
//     replica fails however the two race; an authorization request naming
//     a spent, expired, unknown or tampered id (one that does not open) is
//     refused (invalid_request) before anyone is asked;
//   - short-lived: LaunchTTL;
//   - bound to the clinician, her web session (a hash of the session the
//     web UI computes; the provider never sees the session id), the client
//     and the patient, all inside the seal: an authorization request of
//     another client, or an approval by another user or from another
//     session, is refused (the approval spends the id all the same).
//
// Issuing stores nothing, so nothing fills: the only rows are the spent
// marks, one per approval by a signed-in clinician, each expiring with its
// launch (at most LaunchTTL after it was made) and dropped by the next
// sweep. A restart forgets nothing; after a master key rotation, ids
// sealed under the old key still open (it stays in the keyset), and a
// replica meeting an id under a key it has not loaded yet reloads the
// keyset.
//
// The tokens of an EHR launch carry the patient: the token response has
// patient (her FHIR id) and need_patient_banner true, introspection has
// patient, and a refresh keeps both. The scopes stay the clinician's
// (user/): what she reads is what the patient granted her, decided by the
// ledger on every read as for any user/ token.

// Limits of launch ids.
const (
	// LaunchTTL is how long a launch id may be used.
	LaunchTTL = 5 * time.Minute
	// maxLaunchID bounds a launch id's length (the care report app takes
	// launch ids of up to 256 characters).
	maxLaunchID = 256
	// prefixLaunch marks a launch id.
	prefixLaunch = "vl_"
)

// ErrNotLaunchable: the client has no launch URL (NewLaunch).
var ErrNotLaunchable = errors.New("this client has no launch URL")

// LaunchContext is what an EHR launch binds its id to.
type LaunchContext struct {
	UserID   string // the clinician (cl_…)
	Session  string // a hash of her web session, as the web UI computes it
	ClientID string
	Patient  string // the patient in context (pt_…)
}

// launch is what a launch id seals.
type launch struct {
	Nonce                     [16]byte  // random: what the spent mark is keyed by
	Expires                   time.Time // to the second
	Session                   [32]byte  // SHA-256 of LaunchContext.Session
	UserID, ClientID, Patient string
}

// launchAD is the associated data of a launch id's seal.
var launchAD = []byte("jhvault/oauth-launch/v1")

// marshal is the sealed plaintext: nonce, expiry (Unix seconds, big
// endian), session hash, then user, client and patient, each a length
// byte and its bytes.
func (l launch) marshal() ([]byte, bool) {
	b := make([]byte, 0, 16+8+32+3+len(l.UserID)+len(l.ClientID)+len(l.Patient))
	b = append(b, l.Nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Expires.Unix()))
	b = append(b, l.Session[:]...)
	for _, s := range []string{l.UserID, l.ClientID, l.Patient} {
		if len(s) > 255 {
			return nil, false
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b, true
}

func unmarshalLaunch(b []byte) (launch, bool) {
	var l launch
	if len(b) < 16+8+32 {
		return l, false
	}
	copy(l.Nonce[:], b)
	l.Expires = time.Unix(int64(binary.BigEndian.Uint64(b[16:])), 0)
	copy(l.Session[:], b[24:])
	b = b[56:]
	var f [3]string
	for i := range f {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return l, false
		}
		f[i], b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	}
	l.UserID, l.ClientID, l.Patient = f[0], f[1], f[2]
	return l, len(b) == 0
}

// spentMark is the key of a launch's spent-once mark: its own prefix, so
// it never meets a client-assertion id's (a hash of client id and jti).
func (l launch) spentMark() [32]byte {
	return sha256.Sum256(append([]byte("jhvault/launch-spent/v1|"), l.Nonce[:]...))
}

func sessionHash(s string) [32]byte {
	return sha256.Sum256([]byte("jhvault/oauth-launch-session/v1|" + s))
}

// sealLaunch makes a launch id.
func (p *Provider) sealLaunch(l launch) (string, error) {
	b, ok := l.marshal()
	if !ok {
		return "", errors.New("oauth: a launch's ids are too long")
	}
	ct, err := p.sealer.Encrypt(b, launchAD)
	if err != nil {
		return "", err
	}
	id := prefixLaunch + base64.RawURLEncoding.EncodeToString(ct)
	if len(id) > maxLaunchID {
		return "", errors.New("oauth: a launch id would be too long")
	}
	return id, nil
}

// openLaunch opens a launch id: false if it is not one this vault sealed
// (malformed, tampered, or from another vault).
func (p *Provider) openLaunch(id string) (launch, bool) {
	if !strings.HasPrefix(id, prefixLaunch) || len(id) > maxLaunchID {
		return launch{}, false
	}
	ct, err := base64.RawURLEncoding.DecodeString(id[len(prefixLaunch):])
	if err != nil {
		return launch{}, false
	}
	b, err := p.sealer.Decrypt(ct, launchAD)
	if err != nil {
		return launch{}, false
	}
	return unmarshalLaunch(b)
}

// NewLaunch issues a launch id for a clinician opening a registered app for
// a patient, and returns the URL to open: the client's launch URL with iss
// and launch. The caller (the web UI) has checked that the patient granted
// this clinician access; every read the app then makes is decided by the
// ledger anyway.
func (p *Provider) NewLaunch(ctx context.Context, lc LaunchContext) (string, error) {
	if vault.RoleOf(lc.UserID) != vault.RoleClinician || vault.RoleOf(lc.Patient) != vault.RolePatient || lc.Session == "" {
		return "", errors.New("oauth: a launch needs a clinician, her session and a patient")
	}
	c, err := p.Client(ctx, lc.ClientID)
	if err != nil {
		return "", err
	}
	if c.LaunchURI == "" {
		return "", ErrNotLaunchable
	}
	u, err := url.Parse(c.LaunchURI)
	if err != nil {
		return "", ErrNotLaunchable
	}
	l := launch{Expires: p.now().Add(LaunchTTL), Session: sessionHash(lc.Session), UserID: lc.UserID, ClientID: lc.ClientID, Patient: lc.Patient}
	rand.Read(l.Nonce[:])
	id, err := p.sealLaunch(l)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("iss", p.issuer)
	q.Set("launch", id)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// errLaunch is the authorization error for a launch id that cannot be used.
func errLaunch() error {
	return oidc.ErrInvalidRequest().WithDescription("launch is unknown, expired, already used, or for another application: open the app from the vault again")
}

// checkLaunch is Authorize's part for the launch scope: the request must
// carry a launch id this vault sealed for this client, not expired and not
// spent. It returns the id for the (sealed) request record; the approval
// spends it.
func (p *Provider) checkLaunch(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest], set scopeSet) (string, error) {
	id := r.Request.Form.Get("launch")
	if id == "" {
		return "", oidc.ErrInvalidRequest().WithDescription("the launch scope needs the launch parameter the EHR sent to the app's launch URL")
	}
	if set.Patient {
		return "", oidc.ErrInvalidScope().WithDescription("an EHR launch signs a clinician in: ask for user/ scopes, not patient/ ones")
	}
	l, ok := p.openLaunch(id)
	if !ok || !p.now().Before(l.Expires) || l.ClientID != r.Client.GetID() {
		return "", errLaunch()
	}
	spent, err := p.store.JTISpent(ctx, l.spentMark())
	if err != nil {
		return "", oidc.ErrServerError()
	}
	if spent {
		return "", errLaunch()
	}
	return id, nil
}

// spendLaunch is Approve's part for an EHR launch: the launch is spent
// (once, on whichever replica), and must have been issued to this user in
// this session, for this client, and not have expired. It returns the
// patient in context.
func (p *Provider) spendLaunch(ctx context.Context, r requestRecord, a Approval) (string, error) {
	l, ok := p.openLaunch(r.Launch)
	if !ok || !p.now().Before(l.Expires) {
		return "", ErrNoRequest
	}
	err := p.store.SpendJTI(ctx, l.spentMark(), l.Expires)
	switch {
	case errors.Is(err, oauthstore.ErrExists):
		return "", ErrNoRequest
	case err != nil:
		return "", err
	}
	sh := sessionHash(a.Session)
	if l.UserID != a.UserID || a.Session == "" || subtle.ConstantTimeCompare(l.Session[:], sh[:]) != 1 || l.ClientID != r.ClientID {
		return "", errors.Join(ErrBadApproval, errors.New("the launch was issued to another user, session or application"))
	}
	return l.Patient, nil
}
