package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Store is where the provider keeps its records (oauthstore.Store);
// store/boltstore's (*Store).OAuth is the one in the vault's file.
type Store = oauthstore.Store

// Users looks up accounts (vault.Vault does). A token whose user is gone
// is not active.
type Users interface {
	User(ctx context.Context, id string) (vault.User, error)
}

// GrantActiveFunc says whether a patient app's grant in the ledger is still
// active for that patient and client at the given time.
type GrantActiveFunc func(grantID, patient, client string, now time.Time) bool

// Config is what New needs.
type Config struct {
	// BaseURL is the vault's public base URL; the issuer is BaseURL/fhir,
	// and the login hand-off goes to BaseURL/oauth/authorize?id=ID.
	BaseURL *url.URL
	Store   Store
	Sealer  Sealer
	Users   Users
	// GrantActive is asked on every use of a token that carries a grant id
	// (a patient app's). Nil refuses every such token.
	GrantActive GrantActiveFunc
	// AccessTTL is an access token's life: 0 means an hour, and more than
	// an hour is refused.
	AccessTTL time.Duration
	// RefreshTTL is a refresh token's life (each rotation starts a new
	// one); 0 means 30 days.
	RefreshTTL time.Duration
	Logger     *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches clients' JWKS URLs; nil means a client with a
	// 10-second timeout.
	HTTPClient *http.Client
}

// Lifetimes the provider applies.
const (
	MaxAccessTTL      = time.Hour
	DefaultRefreshTTL = 30 * 24 * time.Hour
	requestTTL        = 10 * time.Minute
	codeTTL           = time.Minute
	sweepEvery        = time.Minute
	keepKeys          = 2 // the JWKS lists the current key and the previous one
)

// Provider is the vault's OAuth 2 authorization server and OpenID Connect
// provider: zitadel/oidc's op package with the SMART adapter of this
// package around it.
type Provider struct {
	issuer      string
	base        *url.URL
	store       Store
	sealer      Sealer
	users       Users
	grantActive GrantActiveFunc
	accessTTL   time.Duration
	refreshTTL  time.Duration
	log         *slog.Logger
	now         func() time.Time
	httpClient  *http.Client

	op      *op.Provider
	server  *server
	handler http.Handler

	keysMu sync.RWMutex
	keys   []signingKey // oldest first; the last is current

	jwksMu    sync.Mutex
	jwksCache map[string]cachedJWKS

	lastSweep atomic.Int64

	origins registeredOrigins // for CORS; reset when a client comes or goes

}

// New builds the provider and makes its first signing key if the store has
// none.
func New(ctx context.Context, c Config) (*Provider, error) {
	if c.BaseURL == nil || c.Store == nil || c.Sealer == nil || c.Users == nil {
		return nil, errors.New("oauth: BaseURL, Store, Sealer and Users are required")
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = MaxAccessTTL
	}
	if c.AccessTTL < 0 || c.AccessTTL > MaxAccessTTL {
		return nil, fmt.Errorf("oauth: access tokens live at most %s", MaxAccessTTL)
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = DefaultRefreshTTL
	}
	if c.RefreshTTL < 0 {
		return nil, errors.New("oauth: negative refresh token life")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	base := *c.BaseURL
	base.Path = strings.TrimSuffix(base.Path, "/")
	p := &Provider{
		issuer:      base.String() + "/fhir",
		base:        &base,
		store:       c.Store,
		sealer:      c.Sealer,
		users:       c.Users,
		grantActive: c.GrantActive,
		accessTTL:   c.AccessTTL,
		refreshTTL:  c.RefreshTTL,
		log:         c.Logger,
		now:         c.Now,
		httpClient:  c.HTTPClient,
		jwksCache:   map[string]cachedJWKS{},
	}
	if err := p.loadKeys(ctx, true); err != nil {
		return nil, err
	}
	if err := p.build(); err != nil {
		return nil, err
	}
	return p, nil
}

// Issuer is the provider's issuer: the FHIR base, BaseURL/fhir.
func (p *Provider) Issuer() string { return p.issuer }

// Handler serves the provider's endpoints; mount it at /fhir/ (it expects
// the full path, /fhir/... ).
func (p *Provider) Handler() http.Handler { return p.handler }

// ClientInfo is a registered client as the web UI and the admin see it.
type ClientInfo struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"name"`
	RedirectURIs []string  `json:"redirect_uris"`
	Confidential bool      `json:"confidential"`
	AuthMethod   string    `json:"token_endpoint_auth_method"`
	JWKSURI      string    `json:"jwks_uri,omitempty"`
	LaunchURI    string    `json:"launch_uri,omitempty"`
	Created      time.Time `json:"created"`
	Builtin      bool      `json:"builtin,omitempty"` // an app the vault itself serves (EnsureClient)
}

func (c clientRecord) info() ClientInfo {
	return ClientInfo{ID: c.ID, Name: c.Name, RedirectURIs: slices.Clone(c.RedirectURIs), Confidential: c.Confidential,
		AuthMethod: string(c.authMethod()), JWKSURI: c.JWKSURI, LaunchURI: c.LaunchURI, Created: c.Created, Builtin: c.Builtin}
}

// Pending is an authorization request waiting for the signed-in user's answer.
type Pending struct {
	ID      string
	Client  ClientInfo
	Scopes  []string // as requested, validated
	Patient bool     // patient/ scopes: a patient authorizing an app
	User    bool     // user/ scopes or a pure OpenID login: a clinician signing in
	Schemas []string // vault schema ids (namespace:name) the resource scopes reach, stable order
	Offline bool     // offline_access was asked
	Expires time.Time
}

// Approval is the signed-in user's yes to a pending request.
type Approval struct {
	UserID  string   // pt_… or cl_… (the web session's user)
	GrantID string   // patient apps: the app grant's id in the ledger (web appended it)
	Schemas []string // patient apps: the schemas she kept; the granted scope narrows to these
	// Session is a hash of the user's web session (an EHR launch is
	// bound to the session that opened it).
	Session string
}

// Errors of the login hand-off; callers test them with errors.Is.
var (
	// ErrNoRequest: the request id is unknown, expired or answered already.
	ErrNoRequest = errors.New("no such authorization request (it may have expired or been answered)")
	// ErrWrongRole: the user's role does not fit the scopes (patient/
	// scopes need a patient; user/ scopes and a pure sign-in need a
	// clinician).
	ErrWrongRole = errors.New("this account cannot answer this request")
	// ErrBadApproval: the approval lacks what it needs (a patient app's
	// grant id, kept schemas among those asked).
	ErrBadApproval = errors.New("the approval does not fit the request")
	// ErrNoClient: no such client.
	ErrNoClient = errors.New("no such client")
)

// Pending returns a request waiting for an answer.
func (p *Provider) Pending(ctx context.Context, id string) (Pending, error) {
	r, err := p.liveRequest(ctx, id)
	if err != nil {
		return Pending{}, err
	}
	c, err := p.loadClient(ctx, r.ClientID)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return Pending{}, ErrNoRequest
	}
	if err != nil {
		return Pending{}, err
	}
	return Pending{ID: r.ID, Client: c.info(), Scopes: slices.Clone(r.Scopes), Patient: r.Patient, User: r.User,
		Schemas: slices.Clone(r.Schemas), Offline: r.Offline, Expires: r.Expires}, nil
}

// liveRequest loads a request not yet answered and not expired.
func (p *Provider) liveRequest(ctx context.Context, id string) (requestRecord, error) {
	r, err := p.loadRequest(ctx, id)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return r, ErrNoRequest
	}
	if err != nil {
		return r, err
	}
	if r.Done || !p.now().Before(r.Expires) {
		return r, ErrNoRequest
	}
	return r, nil
}

// Approve records the user's yes and returns where to send the browser:
// the provider's callback, which sends it on to the client with a code.
func (p *Provider) Approve(ctx context.Context, id string, a Approval) (string, error) {
	r, err := p.liveRequest(ctx, id)
	if err != nil {
		return "", err
	}
	role := vault.RoleOf(a.UserID)
	if _, err := p.users.User(ctx, a.UserID); err != nil {
		return "", ErrWrongRole
	}
	set, err := parseScopes(r.Scopes)
	if err != nil {
		return "", err
	}
	granted := set.Granted
	switch {
	case r.Patient:
		if role != vault.RolePatient {
			return "", ErrWrongRole
		}
		if a.GrantID == "" {
			return "", fmt.Errorf("%w: a patient app needs its grant id", ErrBadApproval)
		}
		if len(r.Schemas) > 0 && len(a.Schemas) == 0 {
			return "", fmt.Errorf("%w: keep at least one data type", ErrBadApproval)
		}
		for _, s := range a.Schemas {
			if !slices.Contains(r.Schemas, s) {
				return "", fmt.Errorf("%w: %s was not asked for", ErrBadApproval, s)
			}
		}
		granted = narrowTo(set, a.Schemas)
		r.Kept = slices.Clone(a.Schemas)
		r.GrantID = a.GrantID
	default:
		if role != vault.RoleClinician {
			return "", ErrWrongRole
		}
		if a.GrantID != "" || len(a.Schemas) > 0 {
			return "", fmt.Errorf("%w: a clinician's sign-in carries no grant", ErrBadApproval)
		}
		r.Kept = slices.Clone(r.Schemas)
		if len(r.Launch) > 0 {
			pt, err := p.spendLaunch(ctx, r, a)
			if err != nil {
				return "", err
			}
			r.LaunchPatient = pt
		}
	}
	r.Done, r.UserID, r.Granted, r.AuthTime = true, a.UserID, granted, p.now()
	if err := p.saveRequest(ctx, r); err != nil {
		return "", err
	}
	return p.issuer + pathAuthorize + "/callback?id=" + url.QueryEscape(r.ID), nil
}

// Deny records the user's no: the request goes, and the browser goes back
// to the client with error=access_denied.
func (p *Provider) Deny(ctx context.Context, id string) (string, error) {
	r, err := p.liveRequest(ctx, id)
	if err != nil {
		return "", err
	}
	if err := p.store.DeleteRequest(ctx, hashOf(r.ID)); err != nil {
		return "", err
	}
	return errorRedirect(r.RedirectURI, r.ResponseMode, r.State, "access_denied", "the user denied the request"), nil
}

// errorRedirect builds an authorization error response (RFC 6749 4.1.2.1)
// in the query, or the fragment when the request asked for it.
func errorRedirect(redirect, mode, state, code, desc string) string {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	if mode == "fragment" {
		return redirect + "#" + v.Encode()
	}
	sep := "?"
	if strings.Contains(redirect, "?") {
		sep = "&"
	}
	return redirect + sep + v.Encode()
}

// Client returns a registered client.
func (p *Provider) Client(ctx context.Context, id string) (ClientInfo, error) {
	c, err := p.loadClient(ctx, id)
	if errors.Is(err, oauthstore.ErrNotFound) {
		return ClientInfo{}, ErrNoClient
	}
	if err != nil {
		return ClientInfo{}, err
	}
	return c.info(), nil
}

// RevokeUserClient ends every token (access and refresh) of that user for
// that client.
func (p *Provider) RevokeUserClient(ctx context.Context, userID, clientID string) error {
	if userID == "" || clientID == "" {
		return errors.New("oauth: a user and a client are required")
	}
	_, err := p.store.DeleteTokens(ctx, oauthstore.Filter{UserID: userID, ClientID: clientID})
	return err
}

// RevokeUser ends every token of a user (a deleted account's, say).
func (p *Provider) RevokeUser(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("oauth: a user is required")
	}
	_, err := p.store.DeleteTokens(ctx, oauthstore.Filter{UserID: userID})
	return err
}

// sweep drops expired rows, at most once a minute, inline.
func (p *Provider) sweep(ctx context.Context) {
	now := p.now()
	last := p.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !p.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := p.store.Sweep(ctx, now); err != nil {
		p.log.Warn("oauth sweep", "cause", err.Error())
	}
}
