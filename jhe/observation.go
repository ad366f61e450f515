package jhe

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/fhir"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
)

// Observation search paging: the client asks _count=1000.
const (
	DefaultCount = 100
	MaxCount     = fhir.MaxCount
)

// accessFormat names this surface in the patient's access log.
const accessFormat = "jhe"

// The Observation search's parameters, as the client writes them.
const (
	paramPatient = "patient"
	paramStudy   = "patient._has:Group:member:_id"
	paramCode    = "code"
	paramCount   = "_count"
)

// obsSearch is an Observation search, read and checked.
type obsSearch struct {
	patient string   // vault id
	study   string   // vault grant id, or ""
	schemas []string // names (namespace:name) the codes reach; nil: no code given
	coded   bool     // a code was given
	count   int
}

func parseSearch(q url.Values) (obsSearch, error) {
	o := obsSearch{count: DefaultCount}
	for k, vs := range q {
		if len(vs) != 1 && k != paramCode {
			return o, refuse(http.StatusBadRequest, "bad_search", "give %s once", k)
		}
		switch k {
		case paramPatient:
			if o.patient = patientID(vs[0]); o.patient == "" {
				return o, refuse(http.StatusNotFound, "not_found", "no such patient: patient ids are pt-… (GET /api/v1/patients lists yours)")
			}
		case paramStudy:
			if o.study = grantID(vs[0]); o.study == "" {
				return o, refuse(http.StatusNotFound, "not_found", "no such study: study ids are gr-… (GET /api/v1/studies lists yours)")
			}
		case paramCode:
			o.coded = true
			for _, v := range vs {
				for _, tok := range strings.Split(v, ",") {
					if name, ok := schemaOfCode(tok); ok && !slices.Contains(o.schemas, name) {
						o.schemas = append(o.schemas, name)
					}
				}
			}
		case paramCount:
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 1 || n > MaxCount {
				return o, refuse(http.StatusBadRequest, "bad_search", "_count is a whole number from 1 to %d", MaxCount)
			}
			o.count = n
		case fhir.CursorParam:
		default:
			return o, refuse(http.StatusBadRequest, "unknown_parameter",
				"search parameter %q is not supported; Observation is searched by patient, %s, code and _count", k, paramStudy)
		}
	}
	if o.patient == "" && o.study == "" {
		return o, refuse(http.StatusBadRequest, "patient_required", "name the patient (patient=pt-…) or the study (%s=gr-…)", paramStudy)
	}
	return o, nil
}

// schemaOfCode reads one code token, [system|]namespace:name[:version],
// as the FHIR API's name (fhir.SchemaNames) of the schema its readings are
// stored under: omh:blood-glucose:4.0 and :3.0 reach the typed
// omh:blood-glucose, ieee:food-entry:0.1 and omh:blood-glucose:2.0 (stored
// without a typed model) themselves. A code of another system or an
// unknown schema reaches nothing.
func schemaOfCode(tok string) (string, bool) {
	sys, c, hasSys := strings.Cut(tok, "|")
	if !hasSys {
		c, sys = sys, omhSystem
	}
	if sys != omhSystem {
		return "", false
	}
	id, err := omh.ParseSchemaID(c)
	if err != nil {
		return "", false
	}
	can, ok := omh.CanonicalSchema(id)
	if !ok {
		return "", false
	}
	name := fhir.SchemaOf(can.String())
	return name, name != ""
}

// searchObservations is GET /FHIR/R5/Observation: one page of a
// searchset, decided, read and logged by fhir.Server.Read.
func (s *Server) searchObservations(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	o, err := parseSearch(q)
	if err != nil {
		return err
	}
	req := fhir.ReadRequest{Token: t, Patient: o.patient, Count: o.count, Desc: true, Query: q, Cursor: q.Get(fhir.CursorParam), Format: accessFormat}
	schemas := fhir.SchemaNames()
	if o.coded {
		schemas = o.schemas
	}
	if o.study != "" {
		// A study is one grant: its patient, its schemas, its window.
		grants, err := s.reads.ReadableGrants(t, "")
		if err != nil {
			return err
		}
		i := slices.IndexFunc(grants, func(g consent.GrantState) bool { return g.ID == o.study })
		if i < 0 {
			return refuse(http.StatusForbidden, "no_grant", "no active grant %s to you allows reading through this API (revoked, expired, or not yours)", oauth.FHIRID(o.study))
		}
		g := grants[i]
		if o.patient != "" && o.patient != g.Patient {
			return s.writeBundle(w, r)
		}
		req.Patient = g.Patient
		req.Window = consent.Window{From: g.DataFrom, To: g.DataTo}
		var inGrant []string
		for _, name := range schemas {
			if g.Covers(fhir.StoredSchema(name)) {
				inGrant = append(inGrant, name)
			}
		}
		if o.coded && len(inGrant) == 0 && len(schemas) > 0 {
			return refuse(http.StatusForbidden, "schema_not_granted", "study %s does not cover this data type", oauth.FHIRID(o.study))
		}
		schemas = inGrant
	}
	if len(schemas) == 0 {
		// An unknown code (or one outside the study) reaches nothing: an
		// empty page, no data read, nothing to log.
		return s.writeBundle(w, r)
	}
	req.Schemas = schemas
	body, err := s.reads.Read(r.Context(), req, func(page []fhir.Reading, next string) ([]byte, error) {
		return s.renderPage(r, o.patientOr(req.Patient), page, next)
	})
	if err != nil {
		return err
	}
	writeBytes(w, http.StatusOK, "application/fhir+json", body)
	return nil
}

func (o obsSearch) patientOr(p string) string {
	if o.patient != "" {
		return o.patient
	}
	return p
}

// renderPage is a page as an R5 searchset: each reading an Observation
// whose valueAttachment is its canonical OMH point in base64, with its
// schema id as the OMH code, as JupyterHealth Exchange serves them.
//
// The Bundle is built by appending bytes (a year of CGM is 106 pages of
// 1,000): the stored canonical bytes are base64-encoded straight into
// the page, and every string is quoted as encoding/json quotes it, so
// the bytes are those json.Marshal gives for the same Bundle
// (TestRenderPageBytes keeps that true).
func (s *Server) renderPage(r *http.Request, patient string, page []fhir.Reading, next string) ([]byte, error) {
	prefix := s.base + strings.TrimPrefix(r.URL.Path, "/jhe")
	prefix = strings.TrimSuffix(prefix, "/")
	nextURL := ""
	if next != "" {
		nq := url.Values{}
		for k, v := range r.URL.Query() {
			if k != fhir.CursorParam {
				nq[k] = v
			}
		}
		nq.Set(fhir.CursorParam, next)
		nextURL = prefix + "?" + nq.Encode()
	}
	// The parts every entry shares, quoted once.
	plainPrefix := plainJSON(prefix)
	subject := appendJSONString(nil, "Patient/"+oauth.FHIRID(patient))
	size := 0
	for _, rd := range page {
		size += len(prefix) + 2*len(rd.ID) + len(rd.Schema) + base64.StdEncoding.EncodedLen(len(rd.JSON)) + len(subject) + 320
	}
	return s.bundle(r, size, nextURL, func(b []byte) []byte {
		for i, rd := range page {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"fullUrl":`...)
			if plainPrefix && plainJSON(rd.ID) {
				b = append(b, '"')
				b = append(b, prefix...)
				b = append(b, '/')
				b = append(b, rd.ID...)
				b = append(b, '"')
			} else {
				b = appendJSONString(b, prefix+"/"+rd.ID)
			}
			b = append(b, `,"resource":{"resourceType":"Observation","id":`...)
			b = appendJSONString(b, rd.ID)
			b = append(b, `,"status":"final","code":{"coding":[{"system":"`+omhSystem+`","code":`...)
			b = appendJSONString(b, rd.Schema)
			b = append(b, `}]},"subject":{"reference":`...)
			b = append(b, subject...)
			b = append(b, `},"effectiveDateTime":"`...)
			b = rd.Time.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `","valueAttachment":{"contentType":"application/json","data":"`...)
			b = base64.StdEncoding.AppendEncode(b, rd.JSON)
			b = append(b, `"}}}`...)
		}
		return b
	}), nil
}

// bundle is a searchset Bundle: its self link, the next link if any, and
// the entries appendEntries writes (none: an empty entry array; entry and
// link are always there, the client reads both). size is a hint for the
// entries' bytes.
func (s *Server) bundle(r *http.Request, size int, next string, appendEntries func([]byte) []byte) []byte {
	self := s.base + strings.TrimPrefix(r.URL.Path, "/jhe")
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	b := make([]byte, 0, size+2*(len(self)+len(next))+128)
	b = append(b, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":`...)
	b = appendJSONString(b, self)
	if next != "" {
		b = append(b, `},{"relation":"next","url":`...)
		b = appendJSONString(b, next)
	}
	b = append(b, `}],"entry":[`...)
	if appendEntries != nil {
		b = appendEntries(b)
	}
	return append(b, "]}"...)
}

// appendJSONString appends s quoted as encoding/json quotes it (HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced). The
// plain ASCII the pages are made of is copied as is.
func appendJSONString(b []byte, s string) []byte {
	if !plainJSON(s) {
		q, _ := json.Marshal(s) // a string cannot fail
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON says s is printable ASCII that encoding/json writes as is.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// writeBundle answers an empty searchset: entry and link are there all
// the same (the client reads both).
func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request) error {
	writeBytes(w, http.StatusOK, "application/fhir+json", s.bundle(r, 0, "", nil))
	return nil
}

// metadata is GET /FHIR/R5/metadata: what this surface serves, open to
// anyone (as JupyterHealth Exchange's).
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-12-06",
		"kind":         "instance",
		"software":     map[string]string{"name": "JupyterHealth Vault (JupyterHealth Exchange–compatible read API)"},
		"implementation": map[string]string{
			"description": "the JupyterHealth Exchange read surface of a JupyterHealth Vault",
			"url":         s.base + "/FHIR/R5",
		},
		"fhirVersion": "5.0.0",
		"format":      []string{"json"},
		"rest": []map[string]any{{
			"mode": "server",
			"resource": []map[string]any{{
				"type":        "Observation",
				"interaction": []map[string]string{{"code": "search-type"}},
				"searchParam": []map[string]string{
					{"name": "patient", "type": "reference"},
					{"name": "code", "type": "token"},
					{"name": "_count", "type": "number"},
				},
			}},
		}},
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}
