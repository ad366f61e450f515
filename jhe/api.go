package jhe

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// List paging, as JupyterHealth Exchange pages its /api/v1 lists (page,
// page_size), with a larger default: clients before 0.4 read only the
// first page, and one clinician's grants are few.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// omhSystem is the coding system of Open mHealth schema ids; the client
// names IEEE 1752 schemas under it too.
const omhSystem = omh.CodeSystem

// The root organization's id, as JupyterHealth Exchange numbers it.
const rootOrgID = 0

// userSystem is the identifier system of vault user ids (as the FHIR API
// writes them).
const userSystem = "urn:jupyterhealth-vault:user"

type profile struct {
	ID          string  `json:"id"`
	Email       *string `json:"email"`
	FirstName   string  `json:"firstName"`
	LastName    string  `json:"lastName"`
	Patient     *string `json:"patient"`
	UserType    string  `json:"userType"`
	IsSuperuser bool    `json:"isSuperuser"`
}

type identifier struct {
	ID     string `json:"id"`
	System string `json:"system"`
	Value  string `json:"value"`
}

type patient struct {
	ID            string         `json:"id"`
	JheUserID     string         `json:"jheUserId"`
	Identifiers   []identifier   `json:"identifiers"`
	NameFamily    string         `json:"nameFamily"`
	NameGiven     string         `json:"nameGiven"`
	BirthDate     *string        `json:"birthDate"`
	TelecomPhone  *string        `json:"telecomPhone"`
	TelecomEmail  *string        `json:"telecomEmail"`
	Organizations []organization `json:"organizations"`
}

type organization struct {
	ID              any            `json:"id"` // 0 for the root, org-… otherwise
	Name            string         `json:"name"`
	Type            string         `json:"type"`
	PartOf          any            `json:"partOf"`
	CurrentUserRole *string        `json:"currentUserRole"`
	Children        []organization `json:"children"`
}

type orgRef struct {
	ID   any    `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

type study struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	Organization orgRef   `json:"organization"`
	IconURL      *string  `json:"iconUrl"`
	grant        string   // the vault grant id
	patient      string   // the vault patient id
	codes        []string // canonical schema ids
	created      time.Time
}

// studyConsents is a study as a patient's consents list it.
type studyConsents struct {
	study
	DataSources   []dataSource `json:"dataSources"`
	ScopeConsents []scope      `json:"scopeConsents"`
}

type code struct {
	ID           string `json:"id"`
	CodingSystem string `json:"codingSystem"`
	CodingCode   string `json:"codingCode"`
	Text         string `json:"text"`
}

type scope struct {
	Code          code   `json:"code"`
	Consented     bool   `json:"consented"`
	ConsentedTime string `json:"consentedTime"`
}

type consents struct {
	Patient                     patient         `json:"patient"`
	ConsolidatedConsentedScopes []code          `json:"consolidatedConsentedScopes"`
	StudiesPendingConsent       []study         `json:"studiesPendingConsent"`
	Studies                     []studyConsents `json:"studies"`
}

type dataSource struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Type            string `json:"type"`
	SupportedScopes []code `json:"supportedScopes"`
}

// listPage is a JupyterHealth Exchange (DRF) page: next and previous are
// absolute URLs or null.
type listPage[T any] struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// caller authenticates the request and reads the clinician.
func (s *Server) caller(r *http.Request) (oauth.AccessToken, vault.User, error) {
	t, err := s.bearer(r)
	if err != nil {
		return t, vault.User{}, err
	}
	u, err := s.accounts.User(r.Context(), t.UserID)
	if err != nil {
		return t, u, refuse(http.StatusUnauthorized, "invalid_token", "the token's clinician is no longer in the vault")
	}
	return t, u, nil
}

// checkParams refuses a query parameter the route does not read: a filter
// the surface ignored would read more widely than written.
func checkParams(r *http.Request, allowed ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			return refuse(http.StatusBadRequest, "unknown_parameter", "query parameter %q is not supported here; this endpoint reads %s", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func splitName(name string) (given, family string) {
	name = strings.TrimSpace(name)
	if i := strings.LastIndexByte(name, ' '); i >= 0 {
		return strings.TrimSpace(name[:i]), name[i+1:]
	}
	return "", name
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) error {
	_, u, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r); err != nil {
		return err
	}
	first, last := splitName(u.Name)
	writeJSON(w, http.StatusOK, profile{ID: u.ID, FirstName: first, LastName: last, UserType: "practitioner"})
	return nil
}

// orgs are the organizations the clinician sees: the root, and her own
// under it.
func orgs(clin vault.User) (root, own organization) {
	role := "member"
	name := clin.Organization
	if name == "" {
		name = clin.Name
	}
	root = organization{ID: rootOrgID, Name: "ROOT", Type: "root", PartOf: nil, Children: []organization{}}
	own = organization{ID: "org-" + strings.TrimPrefix(clin.ID, "cl_"), Name: name, Type: "prov", PartOf: rootOrgID,
		CurrentUserRole: &role, Children: []organization{}}
	root.Children = []organization{own}
	return root, own
}

func ref(o organization) orgRef { return orgRef{ID: o.ID, Name: o.Name, Type: o.Type} }

// orgMatches reads organization_id: the root (0) or her own organization
// holds her patients and studies; any other holds none.
func orgMatches(v string, clin vault.User) bool {
	root, own := orgs(clin)
	return v == strconv.Itoa(root.ID.(int)) || v == own.ID
}

func patientOf(u vault.User, own organization) patient {
	given, family := splitName(u.Name)
	fid := oauth.FHIRID(u.ID)
	return patient{ID: fid, JheUserID: fid, Identifiers: []identifier{{ID: fid, System: userSystem, Value: u.ID}},
		NameFamily: family, NameGiven: given, Organizations: []organization{own}}
}

// patientID reads a patient id in either form (pt-… or pt_…).
func patientID(v string) string {
	id := strings.ReplaceAll(strings.TrimPrefix(v, "Patient/"), "-", "_")
	if vault.RoleOf(id) != vault.RolePatient || strings.ContainsAny(id, "/?#") {
		return ""
	}
	return id
}

// grantID reads a study id (gr-…, or the vault's gr_…).
func grantID(v string) string {
	id := strings.ReplaceAll(v, "-", "_")
	if !strings.HasPrefix(id, "gr_") || len(id) < 4 {
		return ""
	}
	return id
}

// patientsOf lists the patients of the clinician's readable grants, in id
// order, skipping any no longer in the vault.
func (s *Server) patientsOf(r *http.Request, grants []consent.GrantState, own organization) []patient {
	var ids []string
	for _, g := range grants {
		if !slices.Contains(ids, g.Patient) {
			ids = append(ids, g.Patient)
		}
	}
	slices.Sort(ids)
	var out []patient
	for _, id := range ids {
		u, err := s.accounts.User(r.Context(), id)
		if err != nil {
			continue
		}
		out = append(out, patientOf(u, own))
	}
	return out
}

func (s *Server) listPatients(w http.ResponseWriter, r *http.Request) error {
	t, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r, "organization_id", "study_id", "page", "page_size"); err != nil {
		return err
	}
	q := r.URL.Query()
	grants, err := s.reads.ReadableGrants(t, "")
	if err != nil {
		return err
	}
	if v := q.Get("organization_id"); q.Has("organization_id") && !orgMatches(v, clin) {
		grants = nil
	}
	if q.Has("study_id") {
		id := grantID(q.Get("study_id"))
		grants = slices.DeleteFunc(grants, func(g consent.GrantState) bool { return g.ID != id })
	}
	_, own := orgs(clin)
	return writePage(s, w, r, s.patientsOf(r, grants, own))
}

func (s *Server) globalLookup(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.caller(r); err != nil {
		return err
	}
	if err := checkParams(r, "email"); err != nil {
		return err
	}
	// The vault keeps no email addresses: nobody is found by one.
	writeJSON(w, http.StatusOK, []patient{})
	return nil
}

// readablePatient is a patient with a grant to the caller that allows
// reads through the API: 404 for no such id, 403 no_grant otherwise.
func (s *Server) readablePatient(r *http.Request, t oauth.AccessToken) (vault.User, []consent.GrantState, error) {
	id := patientID(r.PathValue("id"))
	if id == "" {
		return vault.User{}, nil, refuse(http.StatusNotFound, "not_found", "no such patient: patient ids are pt-… (GET /api/v1/patients lists yours)")
	}
	grants, err := s.reads.ReadableGrants(t, id)
	if err != nil {
		return vault.User{}, nil, err
	}
	if len(grants) == 0 {
		return vault.User{}, nil, refuse(http.StatusForbidden, "no_grant", "no active grant from this patient lets you read through this API; she can allow it on her consent page")
	}
	u, err := s.accounts.User(r.Context(), id)
	if err != nil {
		return u, nil, refuse(http.StatusNotFound, "not_found", "no such patient")
	}
	return u, grants, nil
}

func (s *Server) getPatient(w http.ResponseWriter, r *http.Request) error {
	t, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r); err != nil {
		return err
	}
	u, _, err := s.readablePatient(r, t)
	if err != nil {
		return err
	}
	_, own := orgs(clin)
	writeJSON(w, http.StatusOK, patientOf(u, own))
	return nil
}

// codeOf is a schema as a JupyterHealth Exchange CodeableConcept: its
// canonical id (omh:blood-glucose:4.0) and a readable name.
func codeOf(schema string) code {
	c := schema
	if id, err := omh.ParseSchemaID(schema); err == nil {
		if can, ok := omh.CanonicalSchema(id); ok {
			c = can.String()
		}
	}
	text := schema
	if id, err := omh.ParseSchemaID(c); err == nil {
		text = strings.ReplaceAll(id.Name, "-", " ")
		text = strings.ToUpper(text[:1]) + text[1:]
	}
	return code{ID: c, CodingSystem: omhSystem, CodingCode: c, Text: text}
}

// studyOf is a grant as a single-patient study.
func studyOf(g consent.GrantState, patientName string, own organization) study {
	window := "all her data"
	switch {
	case !g.DataFrom.IsZero() && !g.DataTo.IsZero():
		window = "her data from " + g.DataFrom.UTC().Format(time.RFC3339) + " to " + g.DataTo.UTC().Format(time.RFC3339)
	case !g.DataFrom.IsZero():
		window = "her data from " + g.DataFrom.UTC().Format(time.RFC3339)
	case !g.DataTo.IsZero():
		window = "her data until " + g.DataTo.UTC().Format(time.RFC3339)
	}
	signed := "not signed with her passkey"
	if g.Signed {
		signed = "signed with her passkey"
	}
	st := study{ID: oauth.FHIRID(g.ID), Name: patientName + ": " + g.Purpose + " grant",
		Description:  "Vault grant " + g.ID + " (" + signed + "): " + window + ", until " + g.Expires.UTC().Format(time.RFC3339) + ".",
		Organization: ref(own), grant: g.ID, patient: g.Patient, created: g.Created}
	for _, sc := range g.Schemas {
		st.codes = append(st.codes, codeOf(sc).CodingCode)
	}
	return st
}

// studiesOf lists the readable grants as studies, newest first.
func (s *Server) studiesOf(r *http.Request, grants []consent.GrantState, own organization) []study {
	names := map[string]string{}
	var out []study
	for _, g := range grants {
		name, ok := names[g.Patient]
		if !ok {
			u, err := s.accounts.User(r.Context(), g.Patient)
			if err != nil {
				continue
			}
			name, names[g.Patient] = u.Name, u.Name
		}
		out = append(out, studyOf(g, name, own))
	}
	return out
}

func (s *Server) patientConsents(w http.ResponseWriter, r *http.Request) error {
	t, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r); err != nil {
		return err
	}
	u, grants, err := s.readablePatient(r, t)
	if err != nil {
		return err
	}
	_, own := orgs(clin)
	c := consents{Patient: patientOf(u, own), ConsolidatedConsentedScopes: []code{}, StudiesPendingConsent: []study{}, Studies: []studyConsents{}}
	seen := map[string]bool{}
	for _, st := range s.studiesOf(r, grants, own) {
		sc := studyConsents{study: st, DataSources: []dataSource{}, ScopeConsents: []scope{}}
		for _, cc := range st.codes {
			sc.ScopeConsents = append(sc.ScopeConsents, scope{Code: codeOf(cc), Consented: true, ConsentedTime: st.created.UTC().Format(time.RFC3339)})
			if !seen[cc] {
				seen[cc] = true
				c.ConsolidatedConsentedScopes = append(c.ConsolidatedConsentedScopes, codeOf(cc))
			}
		}
		c.Studies = append(c.Studies, sc)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) listStudies(w http.ResponseWriter, r *http.Request) error {
	t, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r, "organization_id", "page", "page_size"); err != nil {
		return err
	}
	q := r.URL.Query()
	grants, err := s.reads.ReadableGrants(t, "")
	if err != nil {
		return err
	}
	if q.Has("organization_id") && !orgMatches(q.Get("organization_id"), clin) {
		grants = nil
	}
	_, own := orgs(clin)
	return writePage(s, w, r, s.studiesOf(r, grants, own))
}

func (s *Server) getStudy(w http.ResponseWriter, r *http.Request) error {
	t, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r); err != nil {
		return err
	}
	id := grantID(r.PathValue("id"))
	_, own := orgs(clin)
	grants, err := s.reads.ReadableGrants(t, "")
	if err != nil {
		return err
	}
	for _, st := range s.studiesOf(r, grants, own) {
		if st.grant == id {
			writeJSON(w, http.StatusOK, st)
			return nil
		}
	}
	return refuse(http.StatusNotFound, "not_found", "no such study: a study is one of your active grants (gr-…) that allows reading through this API")
}

func (s *Server) listOrganizations(w http.ResponseWriter, r *http.Request) error {
	_, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r, "page", "page_size"); err != nil {
		return err
	}
	root, own := orgs(clin)
	return writePage(s, w, r, []organization{root, own})
}

func (s *Server) getOrganization(w http.ResponseWriter, r *http.Request) error {
	_, clin, err := s.caller(r)
	if err != nil {
		return err
	}
	if err := checkParams(r); err != nil {
		return err
	}
	root, own := orgs(clin)
	switch r.PathValue("id") {
	case strconv.Itoa(rootOrgID):
		writeJSON(w, http.StatusOK, root)
	case own.ID:
		writeJSON(w, http.StatusOK, own)
	default:
		return refuse(http.StatusNotFound, "not_found", "no such organization: yours are 0 (the root) and %s", own.ID)
	}
	return nil
}

func (s *Server) listDataSources(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.caller(r); err != nil {
		return err
	}
	if err := checkParams(r, "page", "page_size"); err != nil {
		return err
	}
	// The vault does not register devices as data sources.
	return writePage(s, w, r, []dataSource{})
}

// writePage answers one page of items (page from 1, page_size up to
// MaxPageSize), with absolute next and previous links.
func writePage[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T) error {
	q := r.URL.Query()
	size, pg := DefaultPageSize, 1
	if v := q.Get("page_size"); q.Has("page_size") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return refuse(http.StatusBadRequest, "bad_page_size", "page_size is a whole number from 1 to %d", MaxPageSize)
		}
		size = n
	}
	if v := q.Get("page"); q.Has("page") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return refuse(http.StatusBadRequest, "bad_page", "page is a whole number from 1")
		}
		pg = n
	}
	from := (pg - 1) * size
	if pg > 1 && from >= len(items) {
		return refuse(http.StatusNotFound, "bad_page", "invalid page: there are %d results, %d a page", len(items), size)
	}
	p := listPage[T]{Count: len(items), Results: items[from:min(from+size, len(items))]}
	if p.Results == nil {
		p.Results = []T{}
	}
	link := func(n int) *string {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("page", strconv.Itoa(n))
		u := s.base + strings.TrimPrefix(r.URL.Path, "/jhe") + "?" + nq.Encode()
		return &u
	}
	if from+size < len(items) {
		p.Next = link(pg + 1)
	}
	if pg > 1 {
		p.Previous = link(pg - 1)
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
