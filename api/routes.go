package api

import (
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// routes registers every route of the public API.
func (s *Server) routes(e *echo.Echo) {
	e.GET("/healthz", s.healthz)

	v1 := e.Group("/api/v1")
	v1.POST("/readings", s.postReadings, s.requireToken(vault.TokenDevice, vault.TokenPatient))
	v1.GET("/readings", s.getReadings, s.requireToken(vault.TokenPatient))
	v1.POST("/imports", s.postImport, s.requireToken(vault.TokenDevice, vault.TokenPatient))
	v1.GET("/clinicians", s.getClinicians, s.requireToken(vault.TokenPatient, vault.TokenClinician))
	v1.GET("/tokens", s.getTokens, s.requireToken(vault.TokenPatient))
	v1.DELETE("/tokens/:id", s.deleteToken, s.requireToken(vault.TokenPatient))

	if s.ledger != nil {
		v1.GET("/ledger/checkpoint", s.getCheckpoint)
		v1.GET("/ledger/proof", s.getProof)
		v1.GET("/ledger/entries/:i", s.getEntry, s.requireToken(vault.TokenPatient, vault.TokenClinician))

		v1.GET("/grants", s.getGrants, s.requireToken(vault.TokenPatient))
		// Calls that append to the ledger take a per-token quota
		// (quota.go); a revoke never does.
		v1.POST("/grants", s.postGrant, s.requireToken(vault.TokenPatient), quota(s.writeQuota))
		v1.GET("/grants/:id", s.getGrant, s.requireToken(vault.TokenPatient, vault.TokenClinician))
		v1.POST("/grants/:id/revoke", s.revokeGrant, s.requireToken(vault.TokenPatient))
		v1.GET("/clinician/patients", s.getClinicianPatients, s.requireClinicianOrOAuth())
		v1.GET("/clinician/keys", s.getClinicianKeys, s.requireToken(vault.TokenClinician))
		v1.POST("/clinician/keys", s.postClinicianKey, s.requireToken(vault.TokenClinician), quota(s.writeQuota))
		v1.DELETE("/clinician/keys/:fingerprint", s.deleteClinicianKey, s.requireToken(vault.TokenClinician), quota(s.writeQuota))
		v1.GET("/patients/:id/export", s.getExport, s.requireClinicianOrOAuth(), quota(s.exportQuota), stallLimit(s.exportStall))
		v1.GET("/access-log", s.getAccessLog, s.requireToken(vault.TokenPatient))
	}
}
