package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// Introspection (RFC 7662) has two kinds of caller:
//
//   - a confidential client, authenticated by its secret or a signed
//     assertion (server.Introspect): it may introspect any token, as a
//     resource server would;
//   - a bearer of an active access token, as SMART allows ("any client
//     authorized to issue Token Introspection API calls SHALL be permitted
//     to authenticate … by providing an appropriately-scoped SMART App
//     bearer token"): any active access token, of a public or a
//     confidential client, whatever its scopes, may introspect the tokens
//     of its own client, and only those; another client's token answers
//     {"active":false}, exactly as an unknown one does, so a bearer learns
//     nothing of other clients' tokens. A refresh token is not a bearer
//     token.
//
// Anything not active answers exactly {"active":false}.

// maxIntrospectBody bounds the form a bearer sends.
const maxIntrospectBody = 16 << 10

// introspectBearer answers introspection requests that carry an
// Authorization: Bearer header; everything else goes on to zitadel's
// handler (client authentication).
func (p *Provider) introspectBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, bearer, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		if r.Method != http.MethodPost {
			h.Set("Allow", http.MethodPost)
			writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "introspection takes a POST")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxIntrospectBody)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the form does not parse (at most 16 KiB)")
			return
		}
		if r.PostForm.Has("client_secret") || r.PostForm.Has("client_assertion") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "use one authentication method: a bearer token or client credentials, not both")
			return
		}
		caller, _, err := p.lookupToken(r.Context(), strings.TrimSpace(bearer))
		if err != nil || caller.Kind != "access" || !p.active(r.Context(), caller, p.now()) {
			h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the bearer token is not an active access token"`)
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "the bearer token is not an active access token")
			return
		}
		token := r.PostForm.Get("token")
		if token == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is missing")
			return
		}
		writeJSON(w, p.introspection(r.Context(), token, caller.ClientID))
	})
}

// introspection is the answer for token: the SMART fields when it is
// active (and, when onlyClient is set, issued to that client), else
// exactly {"active":false}.
func (p *Provider) introspection(ctx context.Context, token, onlyClient string) any {
	inactive := map[string]bool{"active": false}
	t, _, err := p.lookupToken(ctx, token)
	if err != nil || (onlyClient != "" && t.ClientID != onlyClient) {
		return inactive
	}
	u, ok := p.activeUser(ctx, t, p.now())
	if !ok {
		return inactive
	}
	out := map[string]any{
		"active":     true,
		"scope":      strings.Join(t.Scopes, " "),
		"client_id":  t.ClientID,
		"exp":        t.Expires.Unix(),
		"iat":        t.Issued.Unix(),
		"iss":        p.issuer,
		"sub":        t.UserID,
		"fhirUser":   p.fhirUser(u),
		"token_type": "Bearer",
	}
	if t.Kind == "refresh" {
		out["token_type"] = "refresh_token"
	}
	if hasPatientScope(t.Scopes) {
		out["patient"] = FHIRID(t.UserID)
	}
	if t.Patient != "" { // an EHR launch's patient in context (launch.go)
		out["patient"] = FHIRID(t.Patient)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
