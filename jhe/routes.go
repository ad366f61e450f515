package jhe

import "net/http"

// routes is every route of the surface: what jupyterhealth-client calls.
// The FHIR paths are served under both /FHIR/R5 (JupyterHealth Exchange
// since July 2026, client 0.4) and /fhir/r5 (older clients).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /jhe/api/v1/users/profile", s.serve(s.profile))
	mux.Handle("GET /jhe/api/v1/patients", s.serve(s.listPatients))
	mux.Handle("GET /jhe/api/v1/patients/global_lookup", s.serve(s.globalLookup))
	mux.Handle("GET /jhe/api/v1/patients/{id}", s.serve(s.getPatient))
	mux.Handle("GET /jhe/api/v1/patients/{id}/consents", s.serve(s.patientConsents))
	mux.Handle("GET /jhe/api/v1/studies", s.serve(s.listStudies))
	mux.Handle("GET /jhe/api/v1/studies/{id}", s.serve(s.getStudy))
	mux.Handle("GET /jhe/api/v1/organizations", s.serve(s.listOrganizations))
	mux.Handle("GET /jhe/api/v1/organizations/{id}", s.serve(s.getOrganization))
	mux.Handle("GET /jhe/api/v1/data_sources", s.serve(s.listDataSources))
	for _, prefix := range []string{"/jhe/FHIR/R5", "/jhe/fhir/r5"} {
		mux.Handle("GET "+prefix+"/Observation", s.serve(s.searchObservations))
		mux.Handle("GET "+prefix+"/Observation/{$}", s.serve(s.searchObservations))
		mux.Handle("GET "+prefix+"/metadata", s.serve(s.metadata))
	}
	mux.Handle("/jhe/", s.serve(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return refuse(http.StatusMethodNotAllowed, "read_only", "this surface is read-only: GET only")
		}
		return refuse(http.StatusNotFound, "not_found", "no such endpoint; docs/jhe-compat.md lists what %s serves", s.base)
	}))
	return mux
}
