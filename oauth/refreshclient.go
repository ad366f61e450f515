package oauth

import (
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxTokenForm bounds the token request's form that publicRefresh reads.
const maxTokenForm = 64 << 10

// publicRefresh lets a public client refresh without naming itself. RFC
// 6749 §6 asks a client to authenticate on a refresh only when it is
// confidential, and SMART's JavaScript client (fhirclient) sends no
// client_id on a refresh by default; zitadel refuses a token request
// without one. So a refresh_token request that carries no client
// identification at all (no client_id, no Authorization header, no
// assertion) is given the client_id of the refresh token's own client —
// but only when that client is public: a confidential client must still
// authenticate, and an unknown or inactive token is left for the token
// endpoint to refuse as usual. Nothing else about the request changes.
func (p *Provider) publicRefresh(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "" ||
			!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm+1))
		r.Body.Close()
		if err != nil || len(body) > maxTokenForm {
			http.Error(w, `{"error":"invalid_request","error_description":"the token request is too large or unreadable"}`, http.StatusBadRequest)
			return
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("grant_type") == "refresh_token" &&
			form.Get("client_id") == "" && form.Get("client_assertion") == "" && form.Get("refresh_token") != "" {
			if t, _, err := p.lookupToken(r.Context(), form.Get("refresh_token")); err == nil && t.Kind == "refresh" {
				if c, err := p.loadClient(r.Context(), t.ClientID); err == nil && !c.Confidential {
					form.Set("client_id", c.ID)
					body = []byte(form.Encode())
				}
			}
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}
