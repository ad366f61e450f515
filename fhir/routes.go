package fhir

import "net/http"

// routes is every route of the API. The OAuth provider's paths
// (/fhir/auth/, /fhir/.well-known/) are not here: cmd/vault mounts the
// provider beside this handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /fhir/metadata", s.serve(s.metadata))
	mux.Handle("GET /fhir/Patient/{id}", s.serve(s.readPatient))
	mux.Handle("GET /fhir/Patient", s.serve(s.searchPatients))
	mux.Handle("GET /fhir/Practitioner/{id}", s.serve(s.readPractitioner))
	mux.Handle("GET /fhir/Observation/$cgm-summary", s.serve(s.cgmSummary))
	mux.Handle("GET /fhir/Observation/{id}", s.serve(s.readObservation))
	mux.Handle("GET /fhir/Observation", s.serve(s.searchObservations))
	mux.Handle("GET /fhir/Consent", s.serve(s.searchConsents))
	mux.Handle("OPTIONS /fhir/", s.serve(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("/fhir/", s.serve(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet {
			return refuse(http.StatusMethodNotAllowed, "not-supported", "read_only", "the FHIR API is read-only: GET only")
		}
		return refuse(http.StatusNotFound, "not-supported", "unknown_resource", "no such resource type or operation; GET %s/metadata lists what is served", s.base)
	}))
	return mux
}
