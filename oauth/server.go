package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The provider's paths under the issuer (BaseURL/fhir). They sit under
// auth/ so the FHIR resources (capitalised type names) later served under
// the same base cannot meet them.
const (
	pathAuthorize  = "/auth/authorize"
	pathToken      = "/auth/token"
	pathIntrospect = "/auth/introspect"
	pathRevoke     = "/auth/revoke"
	pathUserinfo   = "/auth/userinfo"
	pathKeys       = "/auth/keys"
	pathSMART      = "/.well-known/smart-configuration"
)

// server is zitadel's LegacyServer with the SMART adapter's overrides:
// authorize (PKCE S256 for every client, SMART scopes, aud), client
// authentication (private_key_jwt with RS384/ES384, the token endpoint as
// aud, exp at most 5 minutes ahead, replayed jti refused), the code
// exchange (single-use code, verifier required), refresh (bound to its
// client, rotated, reuse ends the family, grant checked), the token
// response's SMART fields, and introspection.
type server struct {
	*op.LegacyServer
	p *Provider
}

// build makes zitadel's provider and the HTTP handler.
func (p *Provider) build() error {
	cfg := &op.Config{
		CodeMethodS256:          true,
		AuthMethodPost:          true,
		AuthMethodPrivateKeyJWT: true,
		GrantTypeRefreshToken:   true,
		SupportedScopes:         supportedScopes(),
		SupportedClaims:         []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "azp", "at_hash", "c_hash", "fhirUser", "name", "preferred_username"},
	}
	endpoints := op.Endpoints{
		Authorization: op.NewEndpoint(pathAuthorize),
		Token:         op.NewEndpoint(pathToken),
		Introspection: op.NewEndpoint(pathIntrospect),
		Userinfo:      op.NewEndpoint(pathUserinfo),
		Revocation:    op.NewEndpoint(pathRevoke),
		JwksURI:       op.NewEndpoint(pathKeys),
	}
	opts := []op.Option{op.WithCrypto(tokenCrypto{}), op.WithLogger(p.log)}
	if p.base.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	prov, err := op.NewProvider(cfg, storage{p}, op.StaticIssuer(p.issuer), opts...)
	if err != nil {
		return err
	}
	p.op = prov
	p.server = &server{LegacyServer: op.NewLegacyServer(prov, endpoints), p: p}
	h := op.RegisterLegacyServer(p.server, op.AuthorizeCallbackHandler(prov),
		op.WithHTTPMiddleware(noStore),
		op.WithServerCORSOptions(nil))
	inner := http.StripPrefix("/fhir", h)
	public, withClients := publicCORS(), p.clientCORS()
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir"+pathSMART, p.smartConfiguration)
	mux.Handle("/fhir/.well-known/openid-configuration", public.Handler(inner))
	mux.Handle("/fhir"+pathKeys, public.Handler(inner))
	mux.Handle("/fhir"+pathToken, withClients.Handler(p.publicRefresh(inner)))
	mux.Handle("/fhir"+pathRevoke, withClients.Handler(inner))
	mux.Handle("/fhir"+pathUserinfo, withClients.Handler(http.StripPrefix("/fhir", bearerChallenge(h))))
	mux.Handle("/fhir"+pathIntrospect, withClients.Handler(p.introspectBearer(inner)))
	mux.Handle("/fhir/", inner)
	p.handler = mux
	return nil
}

func supportedScopes() []string {
	return []string{scopeOpenID, scopeFHIRUser, scopeProfile, scopeOffline, scopeLaunchPatient, scopeLaunch,
		"patient/Observation.rs", "patient/Patient.rs", "patient/*.rs", "user/Observation.rs", "user/Patient.rs", "user/*.rs"}
}

// noStore marks every token-endpoint answer (errors too) uncacheable, as
// SMART asks.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathToken || r.URL.Path == pathIntrospect {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
		}
		next.ServeHTTP(w, r)
	})
}

// tokenCrypto replaces zitadel's token encryption: access tokens are
// opaque random strings looked up by their hash, so "encrypting" the
// token id (the token itself) just hands it back, and the code for a
// request is a fresh random secret.
type tokenCrypto struct{}

func (tokenCrypto) Encrypt(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, prefixAccess):
		tok, _, _ := strings.Cut(s, ":")
		return tok, nil
	case strings.HasPrefix(s, prefixRequest):
		return newSecret(prefixCode), nil
	}
	return "", errors.New("nothing to encrypt")
}

func (tokenCrypto) Decrypt(s string) (string, error) {
	if strings.HasPrefix(s, prefixAccess) && !strings.Contains(s, ":") {
		return s + ":-", nil
	}
	return "", errors.New("not an access token")
}

// Discovery is zitadel's, with what this provider really supports.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	if d, ok := resp.Data.(*oidc.DiscoveryConfiguration); ok {
		d.ResponseTypesSupported = []string{"code"}
		d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
		d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
		d.TokenEndpointAuthSigningAlgValuesSupported = slices.Clone(assertionAlgs)
		d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
		d.IntrospectionEndpointAuthSigningAlgValuesSupported = slices.Clone(assertionAlgs)
		d.RevocationEndpointAuthMethodsSupported = d.TokenEndpointAuthMethodsSupported
		d.RevocationEndpointAuthSigningAlgValuesSupported = slices.Clone(assertionAlgs)
		d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	}
	return resp, nil
}

// Authorize checks what zitadel does not, stores the request and sends
// the browser to the web UI's sign-in and consent page. Its errors go back
// to the client's (already validated) redirect URI.
func (s *server) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	p := s.p
	req := r.Data
	if req.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	if req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")
	}
	if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256 (plain is not supported)")
	}
	if req.RequestParam != "" {
		return nil, oidc.ErrRequestNotSupported()
	}
	if rm := string(req.ResponseMode); rm != "" && rm != "query" && rm != "fragment" {
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query or fragment")
	}
	set, err := parseScopes(req.Scopes)
	if err != nil {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", err.Error())
	}
	if len(set.Granted) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is supported")
	}
	aud := r.Request.Form.Get("aud")
	if aud == "" {
		aud = r.Request.Form.Get("resource")
	}
	if (len(set.Resources) > 0 || set.Launch || set.EHR) && strings.TrimSuffix(aud, "/") != p.issuer {
		return nil, oidc.ErrInvalidRequest().WithDescription("aud must be the FHIR base URL %s", p.issuer)
	}
	if aud != "" && strings.TrimSuffix(aud, "/") != p.issuer {
		return nil, oidc.ErrInvalidRequest().WithDescription("aud must be the FHIR base URL %s", p.issuer)
	}
	var launch string
	if set.EHR {
		if launch, err = p.checkLaunch(ctx, r, set); err != nil {
			return nil, err
		}
	}
	now := p.now().UTC()
	rec := requestRecord{Launch: launch,
		ID: newSecret(prefixRequest), ClientID: r.Client.GetID(), RedirectURI: req.RedirectURI, State: req.State,
		Nonce: req.Nonce, ResponseMode: string(req.ResponseMode), Scopes: set.Granted, Challenge: req.CodeChallenge,
		Patient: set.Patient, User: set.User || !set.Patient, Schemas: set.Schemas, Offline: set.Offline,
		Created: now, Expires: now.Add(requestTTL),
	}
	if err := p.saveRequest(ctx, rec); err != nil {
		return nil, oidc.ErrServerError()
	}
	p.sweep(ctx)
	return op.NewRedirect(r.Client.LoginURL(rec.ID)), nil
}

// VerifyClient authenticates the client at the token, introspection and
// revocation endpoints: a client assertion by this package's checks,
// anything else by zitadel's (public clients by id, secrets by hash).
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientAssertion != "" || r.Data.ClientAssertionType != "" {
		return s.p.verifyAssertion(ctx, r.Data.ClientAssertionType, r.Data.ClientAssertion, r.Data.ClientID)
	}
	return s.LegacyServer.VerifyClient(ctx, r)
}

// tokenResponse is the token response with SMART's fields.
type tokenResponse struct {
	*oidc.AccessTokenResponse
	Patient           string `json:"patient,omitempty"`
	NeedPatientBanner *bool  `json:"need_patient_banner,omitempty"`
}

// CodeExchange redeems a code: once, by the client it was issued to, with
// the redirect URI and the PKCE verifier of its request.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	p := s.p
	if !strings.HasPrefix(r.Data.Code, prefixCode) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is not valid")
	}
	row, err := p.store.ClaimCode(ctx, hashOf(r.Data.Code))
	if errors.Is(err, oauthstore.ErrNotFound) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is not valid (unknown, expired or used)")
	}
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	var rec requestRecord
	if err := p.openRequest(row, &rec); err != nil {
		return nil, oidc.ErrServerError()
	}
	if !rec.Done || !p.now().Before(rec.Expires) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is not valid (expired)")
	}
	if rec.ClientID != r.Client.GetID() {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	}
	if r.Data.RedirectURI != rec.RedirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request's")
	}
	if r.Data.CodeVerifier == "" {
		return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier is required")
	}
	if !oidc.VerifyCodeChallenge(&oidc.CodeChallenge{Challenge: rec.Challenge, Method: oidc.CodeChallengeMethodS256}, r.Data.CodeVerifier) {
		return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier does not match the code_challenge")
	}
	t := tokenRecord{UserID: rec.UserID, ClientID: rec.ClientID, GrantID: rec.GrantID, Expires: rec.Expires}
	if !p.active(ctx, t, p.now()) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the grant behind this code has ended")
	}
	resp, err := op.CreateTokenResponse(ctx, authRequest{rec}, r.Client, p.op, true, r.Data.Code, "")
	if err != nil {
		return nil, err
	}
	return p.tokenResponse(resp, rec.Granted, rec.UserID, rec.LaunchPatient), nil
}

// RefreshToken exchanges a refresh token for new tokens: only by the
// client it was issued to, only while its grant and user last; the old
// token is rotated, and presenting a rotated one again ends its family.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	p := s.p
	invalid := oidc.ErrInvalidGrant().WithDescription("the refresh token is not valid")
	t, row, err := p.lookupToken(ctx, r.Data.RefreshToken)
	if errors.Is(err, errNotActive) || (err == nil && t.Kind != "refresh") {
		return nil, invalid
	}
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	if row.Rotated {
		if _, err := p.store.DeleteTokens(ctx, oauthstore.Filter{Family: t.Family}); err != nil {
			return nil, oidc.ErrServerError()
		}
		p.log.Warn("a rotated refresh token was presented again; its family is revoked", "client", t.ClientID)
		return nil, invalid
	}
	if t.ClientID != r.Client.GetID() {
		return nil, invalid
	}
	if !p.active(ctx, t, p.now()) {
		return nil, invalid
	}
	scopes := t.Scopes
	if len(r.Data.Scopes) > 0 {
		for _, sc := range r.Data.Scopes {
			if !slices.Contains(t.Scopes, sc) {
				return nil, oidc.ErrInvalidScope().WithDescription("a refresh may only narrow the granted scopes")
			}
		}
		scopes = r.Data.Scopes
	}
	resp, err := op.CreateTokenResponse(ctx, &refreshRequest{t: t, secret: r.Data.RefreshToken, scopes: scopes}, r.Client, p.op, true, "", r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	return p.tokenResponse(resp, scopes, t.UserID, t.Patient), nil
}

// tokenResponse adds SMART's fields: patient when patient scopes were
// granted (the user) or an EHR launch put a patient in context (with
// need_patient_banner); an ID token only when openid was.
func (p *Provider) tokenResponse(resp *oidc.AccessTokenResponse, scopes []string, userID, launchPatient string) *op.Response {
	if !slices.Contains(scopes, scopeOpenID) {
		resp.IDToken = ""
	}
	out := tokenResponse{AccessTokenResponse: resp}
	for _, sc := range scopes {
		if strings.HasPrefix(sc, "patient/") || sc == scopeLaunchPatient {
			out.Patient = FHIRID(userID)
		}
	}
	if launchPatient != "" {
		out.Patient = FHIRID(launchPatient)
		banner := true
		out.NeedPatientBanner = &banner
	}
	res := op.NewResponse(out)
	res.Header.Set("Cache-Control", "no-store")
	res.Header.Set("Pragma", "no-cache")
	return res
}

// Introspect answers RFC 7662 for an authenticated confidential client:
// the SMART fields for an active token, exactly {"active":false} for
// anything else. A bearer's introspection never reaches it (see
// introspectBearer).
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	p := s.p
	cc := r.Data.ClientCredentials
	if cc.ClientAssertion != "" {
		if _, err := p.verifyAssertion(ctx, cc.ClientAssertionType, cc.ClientAssertion, cc.ClientID); err != nil {
			return nil, err
		}
	} else if err := (storage{p}).AuthorizeClientIDSecret(ctx, cc.ClientID, cc.ClientSecret); err != nil {
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("client authentication failed"), http.StatusUnauthorized)
	}
	return op.NewResponse(p.introspection(ctx, r.Data.Token, "")), nil
}

func hasPatientScope(scopes []string) bool {
	return slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, "patient/") || s == scopeLaunchPatient })
}
