package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is a registered client as zitadel sees it.
type client struct {
	c clientRecord
	p *Provider
}

var _ op.Client = (*client)(nil)

func (c clientRecord) authMethod() oidc.AuthMethod {
	switch {
	case !c.Confidential:
		return oidc.AuthMethodNone
	case len(c.JWKS) > 0 || c.JWKSURI != "":
		return oidc.AuthMethodPrivateKeyJWT
	default:
		return oidc.AuthMethodBasic
	}
}

func (c clientRecord) secretMatches(secret string) bool {
	if len(c.SecretHash) != sha256.Size || secret == "" {
		return false
	}
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], c.SecretHash) == 1
}

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}

// AuthMethod is what zitadel checks the secret by. A client with a secret
// may send it by Basic or in the form (both are advertised); zitadel's
// AuthMethodBasic path checks the secret from either.
func (c *client) AuthMethod() oidc.AuthMethod { return c.c.authMethod() }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string {
	return c.p.base.String() + "/oauth/authorize?id=" + url.QueryEscape(id)
}
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.p.accessTTL }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed lets every scope through zitadel's filter: the SMART
// grammar (scopes.go) decides in Authorize.
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

// NewClient is a client to register.
type NewClient struct {
	Name         string
	RedirectURIs []string
	Confidential bool
	// JWKS (a JWK Set, JSON) or JWKSURI makes a confidential client
	// authenticate with private_key_jwt instead of a secret.
	JWKS      json.RawMessage
	JWKSURI   string
	LaunchURI string
	builtin   bool // EnsureClient's registration
}

// Limits of a registration.
const (
	maxClientName   = 200
	maxRedirectURIs = 10
	maxURILength    = 2000
	maxJWKSBytes    = 64 << 10
)

// ClientInputError is a registration the provider refuses, with a message
// safe to show.
type ClientInputError struct{ Code, Message string }

func (e *ClientInputError) Error() string { return e.Message }

func badClient(code, format string, a ...any) error {
	return &ClientInputError{Code: code, Message: fmt.Sprintf(format, a...)}
}

// checkURI accepts an absolute https URL, or http on a loopback host
// (development, a JupyterHub on localhost), without a fragment.
func checkURI(what, s string) error {
	u, err := url.Parse(s)
	if err != nil || len(s) > maxURILength || u.Host == "" || u.Fragment != "" || u.User != nil {
		return badClient("bad_"+what, "%s must be an absolute URL without fragment or credentials, at most %d characters", strings.ReplaceAll(what, "_", " "), maxURILength)
	}
	host := u.Hostname()
	loopback := host == "localhost" || host == "127.0.0.1" || host == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return badClient("bad_"+what, "%s must use https (http only on localhost, 127.0.0.1 or ::1)", strings.ReplaceAll(what, "_", " "))
	}
	return nil
}

// AddClient registers a client. A confidential client without keys gets a
// secret, returned once and stored only as its SHA-256.
func (p *Provider) AddClient(ctx context.Context, n NewClient) (ClientInfo, string, error) {
	if err := checkNewClient(&n); err != nil {
		return ClientInfo{}, "", err
	}
	return p.addClient(ctx, n, vault.NewID(prefixClient))
}

// checkNewClient checks a registration (its name trimmed).
func checkNewClient(n *NewClient) error {
	n.Name = strings.TrimSpace(n.Name)
	if n.Name == "" || len(n.Name) > maxClientName {
		return badClient("bad_name", "a client needs a name of 1 to %d characters", maxClientName)
	}
	if len(n.RedirectURIs) == 0 || len(n.RedirectURIs) > maxRedirectURIs {
		return badClient("bad_redirect_uri", "a client needs 1 to %d redirect URIs", maxRedirectURIs)
	}
	for _, u := range n.RedirectURIs {
		if err := checkURI("redirect_uri", u); err != nil {
			return err
		}
	}
	if n.LaunchURI != "" {
		if err := checkURI("launch_uri", n.LaunchURI); err != nil {
			return err
		}
	}
	if (len(n.JWKS) > 0 || n.JWKSURI != "") && !n.Confidential {
		return badClient("bad_client_keys", "keys (--jwks-file, --jwks-uri) are for a confidential client: add --confidential")
	}
	if len(n.JWKS) > 0 && n.JWKSURI != "" {
		return badClient("bad_client_keys", "give either a JWK Set or its URL, not both")
	}
	if len(n.JWKS) > 0 {
		if len(n.JWKS) > maxJWKSBytes {
			return badClient("bad_client_keys", "the JWK Set is larger than %d bytes", maxJWKSBytes)
		}
		if _, err := parseClientJWKS(n.JWKS); err != nil {
			return badClient("bad_client_keys", "the JWK Set does not parse: %v", err)
		}
	}
	if n.JWKSURI != "" {
		if err := checkURI("jwks_uri", n.JWKSURI); err != nil {
			return err
		}
	}
	return nil
}

// addClient registers n, checked, under id; oauthstore.ErrExists if id is
// taken. A built-in client's record keeps its secret (EnsureClient).
func (p *Provider) addClient(ctx context.Context, n NewClient, id string) (ClientInfo, string, error) {
	rec := clientRecord{ID: id, Name: n.Name, RedirectURIs: slices.Clone(n.RedirectURIs),
		Confidential: n.Confidential, JWKS: n.JWKS, JWKSURI: n.JWKSURI, LaunchURI: n.LaunchURI, Created: p.now().UTC(), Builtin: n.builtin}
	var secret string
	if rec.authMethod() == oidc.AuthMethodBasic {
		secret = newSecret(prefixSecret)
		h := sha256.Sum256([]byte(secret))
		rec.SecretHash = h[:]
		if rec.Builtin {
			rec.Secret = secret
		}
	}
	sealed, err := p.seal(rec, clientAD(rec.ID))
	if err != nil {
		return ClientInfo{}, "", err
	}
	if err := p.store.PutClient(ctx, oauthstore.Client{ID: rec.ID, Created: rec.Created, Sealed: sealed}); err != nil {
		return ClientInfo{}, "", err
	}
	p.origins.reset()
	return rec.info(), secret, nil
}

// Clients lists the registered clients.
func (p *Provider) Clients(ctx context.Context) ([]ClientInfo, error) {
	rows, err := p.store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClientInfo, 0, len(rows))
	for _, row := range rows {
		var c clientRecord
		if err := p.open(row.Sealed, clientAD(row.ID), &c); err != nil {
			return nil, err
		}
		out = append(out, c.info())
	}
	return out, nil
}

// RemoveClient removes a client with its pending requests and every token
// it holds.
func (p *Provider) RemoveClient(ctx context.Context, id string) error {
	err := p.store.DeleteClient(ctx, id)
	p.origins.reset()
	if errors.Is(err, oauthstore.ErrNotFound) {
		return ErrNoClient
	}
	return err
}

func parseClientJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("a key is private; register public keys only")
		}
	}
	return &set, nil
}
