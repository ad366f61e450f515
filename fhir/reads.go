package fhir

import (
	"context"
	"net/url"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
)

// Reads for another surface. Package jhe serves JupyterHealth Exchange's
// read API (docs/jhe-compat.md) with this API's consent decision, access
// log and paging, not a copy of them: it asks Read for a page and renders
// the readings its own way.

// CursorParam is the query parameter that carries a page's sealed cursor.
const CursorParam = "_cursor"

// ReadRequest is one page of one patient's readings.
type ReadRequest struct {
	// Token is who reads; a clinician's (Context "user") is decided by
	// consent.Ledger.Decide under the grants that allow FHIR reads.
	Token   oauth.AccessToken
	Patient string   // vault id, pt_…
	Schemas []string // schema names from SchemaNames
	Window  consent.Window
	Count   int  // readings per page, 1 to MaxCount
	Desc    bool // newest first
	// Query is the search's parameters: the cursor is bound to them (its
	// own parameter, CursorParam, left out), to the token's family and to
	// Desc.
	Query  url.Values
	Cursor string // "" for the first page
	// Format names the surface in the patient's access log.
	Format string
}

// Reading is one reading of a page.
type Reading struct {
	ID     string // the FHIR API's Observation id for it
	Schema string // the canonical schema id it is stored under (omh:blood-glucose:4.0)
	Time   time.Time
	JSON   []byte // its canonical OMH point
}

// SchemaNames are the schemas the API serves: namespace:name for the
// typed ones, then namespace:name:version for each schema the vault
// stores without a typed model (its Observations carry the point alone).
func SchemaNames() []string {
	out := make([]string, len(schemaTable))
	for i, s := range schemaTable {
		out[i] = s.name
	}
	return out
}

// StoredSchema is the canonical schema id readings of name are stored
// under ("" for a name SchemaNames does not list).
func StoredSchema(name string) string {
	if i := schemaByName(name); i >= 0 {
		return schemaTable[i].stored()
	}
	return ""
}

// SchemaOf is the name (in SchemaNames) of the schema whose readings are
// stored under the canonical schema id stored, or "" when the API does
// not serve it.
func SchemaOf(stored string) string {
	if i := schemaByStored(stored); i >= 0 {
		return schemaTable[i].name
	}
	return ""
}

// Read decides, reads and logs one page as the Observation search does:
// the ledger decides (403 *Error with the reason when nothing is left,
// windows clipped to the grants), render turns the page and the next
// page's sealed cursor ("" on the last page) into the body, the
// access-start and access-end (format req.Format) are appended in one
// ledger transaction with the decision made again inside it, and only
// then is the body returned. Every refusal is an *Error.
func (s *Server) Read(ctx context.Context, req ReadRequest, render func(page []Reading, next string) ([]byte, error)) ([]byte, error) {
	if req.Count < 1 || req.Count > MaxCount {
		return nil, badParam("_count is a whole number from 1 to %d", MaxCount)
	}
	var want []int
	for _, n := range req.Schemas {
		i := schemaByName(n)
		if i < 0 {
			return nil, badParam("unknown schema %q", n)
		}
		want = append(want, i)
	}
	after, err := s.openCursor(req.Cursor, req.Token, req.Query, req.Desc)
	if err != nil {
		return nil, err
	}
	p, err := s.decide(req.Token, req.Patient, want, req.Window, s.now())
	if err != nil {
		return nil, err
	}
	return s.logAccess(req.Token, req.Patient, want, req.Window, p, req.Format, func() ([]byte, int64, error) {
		page, last, more, err := s.readPage(ctx, req.Patient, p, after, req.Desc, req.Count)
		if err != nil {
			return nil, int64(len(page)), err
		}
		next := ""
		if more {
			c := cursor{Family: req.Token.Family, Query: queryDigest(req.Query), Desc: req.Desc, T: last.t, Schema: last.schema, Tag: last.tag[:], Expires: s.now().Add(cursorLife)}
			if next, err = s.sealCursor(c); err != nil {
				return nil, int64(len(page)), err
			}
		}
		body, err := render(page, next)
		return body, int64(len(page)), err
	})
}

// readPage reads up to count readings the permit allows, after the
// cursor, in the search's order; more says whether any remain.
func (s *Server) readPage(ctx context.Context, patient string, p permit, after *key, desc bool, count int) (page []Reading, last key, more bool, err error) {
	srcs, err := s.sources(ctx, patient, p, after, desc)
	if err != nil {
		return nil, last, false, errUnreadable(err)
	}
	page = make([]Reading, 0, min(count, 1024))
	for it, err := range merge(srcs, desc) {
		if err != nil {
			return page, last, false, errUnreadable(err)
		}
		if len(page) == count {
			return page, last, true, nil
		}
		page = append(page, Reading{ID: obsID(patient, it.k), Schema: schemaTable[it.k.schema].stored(), Time: time.Unix(0, it.k.t).UTC(), JSON: it.json})
		last = it.k
	}
	return page, last, false, nil
}

// ReadableGrants are the active grants from patient ("": from anyone) to
// the token's clinician under which she may read through this API: they
// allow FHIR reads and, with RequireSignedGrants, are signed. The Patient
// search lists their patients. It fails when the grant index cannot be
// brought up to date: none would be a guess.
func (s *Server) ReadableGrants(t oauth.AccessToken, patient string) ([]consent.GrantState, error) {
	if t.Context != "user" {
		return nil, nil
	}
	gs, err := s.ledger.Grants(patient, t.UserID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []consent.GrantState
	for _, g := range gs {
		if g.Active(now) && g.FHIR && (!s.requireSigned || g.Signed) {
			out = append(out, g)
		}
	}
	return out, nil
}
