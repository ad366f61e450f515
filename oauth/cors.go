package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/rs/cors"
)

// CORS, by endpoint:
//
//   - discovery (openid-configuration, smart-configuration) and the JWKS
//     are public documents: any origin, no credentials;
//   - token, introspection, revocation and userinfo answer browser apps
//     (fhirclient) only from the exact origin of a registered client's
//     redirect URI, with Access-Control-Allow-Credentials: true (fhirclient
//     sends its refresh with credentials: "include"), on errors too; any
//     other origin gets no CORS header at all, so the browser keeps the
//     answer from the page;
//   - authorize is a browser navigation and needs none.
//
// The allowed origins are computed from the registered clients once and
// kept until a client is added or removed (both go through this
// Provider: the admin commands reach the running server by its socket).

// registeredOrigins is the set of origins of the registered clients'
// redirect URIs; nil means not computed yet.
type registeredOrigins struct {
	mu  sync.Mutex
	set map[string]bool
}

func (o *registeredOrigins) reset() {
	o.mu.Lock()
	o.set = nil
	o.mu.Unlock()
}

// originOf is the serialized origin (RFC 6454) of an absolute URL:
// lower-case scheme and host, the port only when it is not the scheme's
// default. It is what a browser sends in Origin.
func originOf(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host, true
	}
	return scheme + "://" + host + ":" + port, true
}

// allowOrigin says whether origin is a registered client's. The answer
// depends on Origin alone (rs/cors adds Vary: Origin itself), so it names
// no further Vary header.
func (p *Provider) allowOrigin(r *http.Request, origin string) (bool, []string) {
	return p.registeredOrigin(r, origin), nil
}

func (p *Provider) registeredOrigin(r *http.Request, origin string) bool {
	p.origins.mu.Lock()
	defer p.origins.mu.Unlock()
	if p.origins.set == nil {
		clients, err := p.Clients(r.Context())
		if err != nil {
			p.log.Warn("oauth cors: listing clients", "cause", err.Error())
			return false
		}
		set := map[string]bool{}
		for _, c := range clients {
			for _, u := range c.RedirectURIs {
				if o, ok := originOf(u); ok {
					set[o] = true
				}
			}
		}
		p.origins.set = set
	}
	return p.origins.set[origin]
}

// clientCORS is the policy of the endpoints browser apps call with
// tokens: the registered origins only, with credentials.
func (p *Provider) clientCORS() *cors.Cors {
	return cors.New(cors.Options{
		AllowOriginVaryRequestFunc: p.allowOrigin,
		AllowedMethods:             []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:             []string{"Authorization", "Content-Type", "Accept"},
		ExposedHeaders:             []string{"WWW-Authenticate"},
		AllowCredentials:           true,
		MaxAge:                     600,
	})
}

// publicCORS is the policy of the public documents: any origin, no
// credentials.
func publicCORS() *cors.Cors {
	return cors.New(cors.Options{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{http.MethodGet, http.MethodHead},
		AllowedHeaders: []string{"Accept"},
		MaxAge:         600,
	})
}
