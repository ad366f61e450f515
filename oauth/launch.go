package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/jupyterhealth/vault/vault"
)

// SMART EHR launch. The vault is the EHR: a signed-in clinician opens a
// registered app (one with a launch URL) for a patient in her list, and
// the web UI asks NewLaunch for a launch id. The browser goes to the app's
// launch URL with iss (the FHIR base) and launch (the id); the app sends
// the id back in its authorization request, with the launch scope. The id
// is:
//
//   - single use: the clinician's approval spends it, and an authorization
//     request naming a spent, expired or unknown id is refused
//     (invalid_request) before anyone is asked;
//   - short-lived: LaunchTTL;
//   - bound to the clinician, her web session (a hash of the session the
//     web UI computes; the provider never sees the session id), the client
//     and the patient: an authorization request of another client, or an
//     approval by another user or from another session, is refused;
//   - kept only as its SHA-256, in memory: a restart forgets the launches
//     in flight (the clinician clicks "Open in app" again).
//
// The tokens of an EHR launch carry the patient: the token response has
// patient (her FHIR id) and need_patient_banner true, introspection has
// patient, and a refresh keeps both. The scopes stay the clinician's
// (user/): what she reads is what the patient granted her, decided by the
// ledger on every read as for any user/ token.

// Limits of the launch table.
const (
	// LaunchTTL is how long a launch id may be used.
	LaunchTTL = 5 * time.Minute
	// MaxLaunches bounds the launch ids in flight; a full table refuses a
	// new one (ErrLaunchBusy) rather than forget one.
	MaxLaunches = 10000
	// prefixLaunch marks a launch id.
	prefixLaunch = "vl_"
)

// Errors of NewLaunch.
var (
	// ErrNotLaunchable: the client has no launch URL.
	ErrNotLaunchable = errors.New("this client has no launch URL")
	// ErrLaunchBusy: too many launch ids in flight.
	ErrLaunchBusy = errors.New("too many launches in flight; try again in a few minutes")
)

// LaunchContext is what an EHR launch binds its id to.
type LaunchContext struct {
	UserID   string // the clinician (cl_…)
	Session  string // a hash of her web session, as the web UI computes it
	ClientID string
	Patient  string // the patient in context (pt_…)
}

type launchRecord struct {
	LaunchContext
	Expires time.Time
}

// launchTable holds the launch ids in flight under their SHA-256.
type launchTable struct {
	mu sync.Mutex
	m  map[[32]byte]launchRecord
}

func newLaunchTable() *launchTable { return &launchTable{m: map[[32]byte]launchRecord{}} }

func (t *launchTable) put(h [32]byte, r launchRecord, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= MaxLaunches {
		for k, v := range t.m {
			if !now.Before(v.Expires) {
				delete(t.m, k)
			}
		}
		if len(t.m) >= MaxLaunches {
			return ErrLaunchBusy
		}
	}
	t.m[h] = r
	return nil
}

// peek returns a live launch without spending it.
func (t *launchTable) peek(h [32]byte, now time.Time) (launchRecord, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.m[h]
	if ok && !now.Before(r.Expires) {
		delete(t.m, h)
		return r, false
	}
	return r, ok
}

// spend removes a live launch and returns it, once.
func (t *launchTable) spend(h [32]byte, now time.Time) (launchRecord, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.m[h]
	delete(t.m, h)
	return r, ok && now.Before(r.Expires)
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
	id := newSecret(prefixLaunch)
	if err := p.launches.put(launchHash(id), launchRecord{LaunchContext: lc, Expires: p.now().Add(LaunchTTL)}, p.now()); err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("iss", p.issuer)
	q.Set("launch", id)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func launchHash(id string) [32]byte { return sha256.Sum256([]byte("jhvault/launch/v1|" + id)) }

// errLaunch is the authorization error for a launch id that cannot be used.
func errLaunch() error {
	return oidc.ErrInvalidRequest().WithDescription("launch is unknown, expired, already used, or for another application: open the app from the vault again")
}

// checkLaunch is Authorize's part for the launch scope: the request must
// carry a live launch id issued for this client. It returns the id's hash
// for the request record; the approval spends it.
func (p *Provider) checkLaunch(r *op.ClientRequest[oidc.AuthRequest], set scopeSet) ([]byte, error) {
	id := r.Request.Form.Get("launch")
	if id == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("the launch scope needs the launch parameter the EHR sent to the app's launch URL")
	}
	if set.Patient {
		return nil, oidc.ErrInvalidScope().WithDescription("an EHR launch signs a clinician in: ask for user/ scopes, not patient/ ones")
	}
	if !strings.HasPrefix(id, prefixLaunch) || len(id) > 128 {
		return nil, errLaunch()
	}
	h := launchHash(id)
	l, ok := p.launches.peek(h, p.now())
	if !ok || l.ClientID != r.Client.GetID() {
		return nil, errLaunch()
	}
	return h[:], nil
}

// spendLaunch is Approve's part for an EHR launch: the launch is spent,
// and must have been issued to this user in this session. It returns the
// patient in context.
func (p *Provider) spendLaunch(r requestRecord, a Approval) (string, error) {
	var h [32]byte
	copy(h[:], r.Launch)
	l, ok := p.launches.spend(h, p.now())
	switch {
	case !ok:
		return "", ErrNoRequest
	case l.UserID != a.UserID || l.Session == "" || l.Session != a.Session || l.ClientID != r.ClientID:
		return "", errors.Join(ErrBadApproval, errors.New("the launch was issued to another user, session or application"))
	}
	return l.Patient, nil
}
