package web

import "net/http"

// The security headers. Two layers set them:
//
//   - SecureDefaults wraps the whole public listener (cmd/vault puts it
//     outermost), so every response carries the baseline whoever writes it:
//     the API, the web UI, and what no handler of ours writes, such as the
//     redirects net/http's ServeMux answers for unclean paths (//, /%2e%2e/,
//     /api). Its Content-Security-Policy, listenerCSP, allows nothing at
//     all, fit for JSON, redirects and errors; its Cache-Control is no-store.
//   - Handler's secureHeaders sets the same baseline again and then the
//     pages' own policy (csp) and caching.
//
// The outer layer sets its headers before any inner handler runs; an inner
// handler may only replace one with its own value (the web UI's page CSP,
// the static files' Cache-Control), never remove one, so no response
// leaves without each header below, and none carries two values.

// listenerCSP is the Content-Security-Policy of every response that is not
// a web page: nothing may load, frame or submit.
const listenerCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// SecureDefaults sets the security headers on every response of next,
// before next runs; see above.
func (s *Server) SecureDefaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		setBaseline(h, r.TLS != nil || s.secure)
		h.Set("Content-Security-Policy", listenerCSP)
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// setBaseline sets the headers every response carries, API or page; hsts
// when the browser reached us over TLS: directly, or through a proxy whose
// public URL is https.
func setBaseline(h http.Header, hsts bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer Chromium sends
	// "Origin: null" on form posts, and the Origin check needs the real
	// one. Other sites still get no referrer at all.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if hsts {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}
