package web

import "net/http"

// clinicianRoutes adds the clinician's pages: hub keys (registered and
// confirmed with a passkey), API tokens and the export builder.
func (s *Server) clinicianRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /clinician/keys", s.requireSession(s.clinicianOnly(s.clinicianKeysPage)))
	m.HandleFunc("POST /clinician/keys/{fingerprint}/remove", s.requireSession(s.clinicianOnly(s.removeClinicianKey)))
	m.HandleFunc("POST /webauthn/clinician/keys/begin", s.jsonOnly(s.requireSession(s.clinicianOnly(s.keyBegin))))
	m.HandleFunc("POST /webauthn/clinician/keys/finish", s.jsonOnly(s.requireSession(s.clinicianOnly(s.keyFinish))))
	m.HandleFunc("GET /clinician/export", s.requireSession(s.clinicianOnly(s.clinicianExportPage)))
	m.HandleFunc("GET /clinician/tokens", s.requireSession(s.clinicianOnly(s.clinicianTokensPage)))
	m.HandleFunc("POST /clinician/tokens", s.requireSession(s.clinicianOnly(s.recent(s.createClinicianToken))))
	m.HandleFunc("POST /clinician/tokens/{id}/revoke", s.requireSession(s.clinicianOnly(s.revokeClinicianToken)))
}
