package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// assertionAlgs are the client-assertion algorithms SMART names.
var assertionAlgs = []string{"RS384", "ES384"}

// maxAssertionAhead is how far ahead a client assertion may expire.
const maxAssertionAhead = 5 * time.Minute

// jwksCacheTTL is how long a client's fetched JWK Set is reused.
const jwksCacheTTL = 5 * time.Minute

type cachedJWKS struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

type assertionClaims struct {
	Issuer   string           `json:"iss"`
	Subject  string           `json:"sub"`
	Audience jsonStringOrList `json:"aud"`
	Expiry   int64            `json:"exp"`
	JTI      string           `json:"jti"`
}

// jsonStringOrList reads aud, a string or a list of strings.
type jsonStringOrList []string

func (a *jsonStringOrList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = []string{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

func invalidClient(desc string) error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription("%s", desc), http.StatusUnauthorized)
}

// verifyAssertion authenticates a client by private_key_jwt (RFC 7523, as
// SMART's asymmetric client authentication profiles it): signed RS384 or
// ES384 by a key of the client's registered JWK Set (or the set at its
// registered URL); iss and sub the client id; aud the token endpoint (the
// issuer is accepted too); exp in the future and at most 5 minutes ahead;
// a jti not seen before from this client.
func (p *Provider) verifyAssertion(ctx context.Context, typ, assertion, formClientID string) (op.Client, error) {
	if typ != oidc.ClientAssertionTypeJWTAssertion {
		return nil, invalidClient("client_assertion_type must be " + oidc.ClientAssertionTypeJWTAssertion)
	}
	jws, err := jose.ParseSignedCompact(assertion, []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalidClient("the client assertion is not a JWT signed with RS384 or ES384")
	}
	var unverified assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, invalidClient("the client assertion's claims do not parse")
	}
	if formClientID != "" && formClientID != unverified.Issuer {
		return nil, invalidClient("client_id does not match the assertion's issuer")
	}
	c, err := p.loadClient(ctx, unverified.Issuer)
	if err != nil || c.authMethod() != oidc.AuthMethodPrivateKeyJWT {
		return nil, invalidClient("no client with keys has this id")
	}
	set, err := p.clientKeys(ctx, c)
	if err != nil {
		p.log.Warn("a client's JWK Set could not be read", "client", c.ID, "cause", err.Error())
		return nil, invalidClient("the client's keys could not be read")
	}
	kid := jws.Signatures[0].Header.KeyID
	var payload []byte
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if b, err := jws.Verify(k.Key); err == nil {
			payload = b
			break
		}
	}
	if payload == nil {
		return nil, invalidClient("the client assertion's signature does not verify")
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, invalidClient("the client assertion's claims do not parse")
	}
	now := p.now()
	switch {
	case cl.Issuer != c.ID || cl.Subject != c.ID:
		return nil, invalidClient("the client assertion's iss and sub must be the client id")
	case !slices.Contains(cl.Audience, p.issuer+pathToken) && !slices.Contains(cl.Audience, p.issuer):
		return nil, invalidClient("the client assertion's aud must be the token endpoint " + p.issuer + pathToken)
	case cl.Expiry <= now.Unix():
		return nil, invalidClient("the client assertion has expired")
	case cl.Expiry > now.Add(maxAssertionAhead).Unix():
		return nil, invalidClient("the client assertion's exp is more than 5 minutes ahead")
	case cl.JTI == "" || len(cl.JTI) > 256:
		return nil, invalidClient("the client assertion needs a jti of at most 256 characters")
	}
	h := sha256.Sum256([]byte(c.ID + "\x00" + cl.JTI))
	err = p.store.SpendJTI(ctx, h, time.Unix(cl.Expiry, 0))
	if errors.Is(err, oauthstore.ErrExists) {
		return nil, invalidClient("the client assertion was used before (jti replayed)")
	}
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	return &client{c: c, p: p}, nil
}

// clientKeys is a client's registered JWK Set, or the one at its URL
// (fetched at most every 5 minutes, 64 KiB at most).
func (p *Provider) clientKeys(ctx context.Context, c clientRecord) (*jose.JSONWebKeySet, error) {
	if len(c.JWKS) > 0 {
		return parseClientJWKS(c.JWKS)
	}
	p.jwksMu.Lock()
	cached, ok := p.jwksCache[c.ID]
	p.jwksMu.Unlock()
	if ok && p.now().Sub(cached.fetched) < jwksCacheTTL {
		return cached.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.JWKSURI, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_uri answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, errors.New("the JWK Set is too large")
	}
	set, err := parseClientJWKS(b)
	if err != nil {
		return nil, err
	}
	p.jwksMu.Lock()
	p.jwksCache[c.ID] = cachedJWKS{set: set, fetched: p.now()}
	p.jwksMu.Unlock()
	return set, nil
}
