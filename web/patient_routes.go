package web

import "net/http"

// patientRoutes registers the patient's ledger, tokens and account pages,
// and sign-in with a recovery code (docs/web.md).
func (s *Server) patientRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /ledger", s.requireSession(s.patientOnly(s.ledgerPage)))
	m.HandleFunc("GET /tokens", s.requireSession(s.patientOnly(s.tokensPage)))
	m.HandleFunc("POST /tokens", s.requireSession(s.patientOnly(s.recent(s.createToken))))
	m.HandleFunc("POST /tokens/{id}/revoke", s.requireSession(s.patientOnly(s.revokeToken)))
	m.HandleFunc("GET /account", s.requireSession(s.patientOnly(s.accountPage)))
	m.HandleFunc("POST /account/recovery-codes", s.requireSession(s.patientOnly(s.recent(s.newRecoveryCodes))))
	m.HandleFunc("GET /account/deleted", s.accountDeletedPage)
	m.HandleFunc("POST /webauthn/account/delete/begin", s.jsonOnly(s.requireSession(s.patientOnly(s.deleteBegin))))
	m.HandleFunc("POST /webauthn/account/delete/finish", s.jsonOnly(s.requireSession(s.patientOnly(s.deleteFinish))))
	m.HandleFunc("GET /signin/recovery", s.limited(s.recoverySigninPage))
	m.HandleFunc("POST /signin/recovery", s.limited(s.recoverySignin))
}
