package oauth

import (
	"encoding/json"
	"net/http"
)

// smartConfiguration serves {issuer}/.well-known/smart-configuration:
// JSON whatever the Accept header says, readable from any origin, every
// URL absolute, and only what the provider really supports (EHR launch
// with a patient in context, no encounter, no Backend Services).
func (p *Provider) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Accept, Authorization")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	doc := map[string]any{
		"issuer":                                           p.issuer,
		"jwks_uri":                                         p.issuer + pathKeys,
		"authorization_endpoint":                           p.issuer + pathAuthorize,
		"token_endpoint":                                   p.issuer + pathToken,
		"introspection_endpoint":                           p.issuer + pathIntrospect,
		"revocation_endpoint":                              p.issuer + pathRevoke,
		"userinfo_endpoint":                                p.issuer + pathUserinfo,
		"grant_types_supported":                            []string{"authorization_code", "refresh_token"},
		"response_types_supported":                         []string{"code"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"scopes_supported":                                 supportedScopes(),
		"capabilities": []string{
			"launch-standalone", "launch-ehr", "authorize-post", "client-public", "client-confidential-symmetric",
			"client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient",
			"context-ehr-patient", "context-banner",
			"permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2",
		},
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(doc)
}
