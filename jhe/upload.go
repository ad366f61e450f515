package jhe

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// Uploads is the native API's upload path (api.Server.IngestUpload): the
// same slots, body limits, validation, normalisation, de-duplication and
// atomic store as POST /api/v1/readings. split cuts the body into raw
// Open mHealth points; tok is the authenticated patient's or device's
// token.
type Uploads interface {
	IngestUpload(w http.ResponseWriter, r *http.Request, tok vault.Token, split func(body []byte) ([][]byte, error)) (vault.IngestResult, []*omh.Point, error)
}

// fhirObservation is what an upload reads of an R5 Observation; every
// other member is ignored (the point inside decides what is stored).
type fhirObservation struct {
	ResourceType    string `json:"resourceType"`
	ValueAttachment *struct {
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
	} `json:"valueAttachment"`
	Subject *struct {
		Reference string `json:"reference"`
	} `json:"subject"`
}

// fhirBundle is what an upload reads of a batch Bundle.
type fhirBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Request *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// createdObservation is the answer's view of a stored Observation: its id
// is the point's uuid (header.uuid; the vault derives one for a point
// without), the uuid column of the client's DataFrame.
type createdObservation struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Status       string      `json:"status"`
	Code         codeConcept `json:"code"`
	Subject      reference   `json:"subject"`
}

type codeConcept struct {
	Coding []coding `json:"coding"`
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type reference struct {
	Reference string `json:"reference"`
}

type batchResponse struct {
	ResourceType string       `json:"resourceType"`
	Type         string       `json:"type"`
	Entry        []batchEntry `json:"entry"`
}

type batchEntry struct {
	Response batchEntryResponse  `json:"response"`
	Resource *createdObservation `json:"resource,omitempty"`
}

type batchEntryResponse struct {
	Status   string            `json:"status"`
	Location string            `json:"location,omitempty"`
	Outcome  *operationOutcome `json:"outcome,omitempty"`
}

type operationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []issue `json:"issue"`
}

type issue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics"`
}

// uploader authenticates an upload: a patient's (vp_) or a device's (vd_)
// vault token, as POST /api/v1/readings takes. A clinician's token, an
// OAuth token (vo_) and anything else valid are 403 wrong_token_type.
func (s *Server) uploader(r *http.Request) (vault.Token, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return vault.Token{}, refuse(http.StatusUnauthorized, "missing_token", "send the patient's or device's vault token as Authorization: Bearer TOKEN (vp_… or vd_…)")
	}
	var (
		t   vault.Token
		err error
	)
	if strings.HasPrefix(secret, oauthPrefix) {
		_, err = s.oauth.ResourceToken(r.Context(), secret)
	} else {
		t, err = s.accounts.Authenticate(r.Context(), secret)
	}
	switch {
	case errors.Is(err, vault.ErrTokenExpired):
		return t, refuse(http.StatusUnauthorized, "token_expired", "the token has expired: ask for a new device or patient token")
	case errors.Is(err, vault.ErrTokenInvalid):
		return t, refuse(http.StatusUnauthorized, "invalid_token", "the token is not valid")
	case err != nil:
		return t, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Detail: "the token could not be checked; retry later", Cause: err}
	}
	if strings.HasPrefix(secret, oauthPrefix) || (t.Kind != vault.TokenPatient && t.Kind != vault.TokenDevice) {
		return t, refuse(http.StatusForbidden, "wrong_token_type", "uploads need a patient's or a device's vault token (vp_… or vd_…)")
	}
	return t, nil
}

// postObservation stores the Open mHealth point of one Observation: 201
// with the Observation (its id the point's uuid), or 409 duplicate when
// it was stored before (nothing changed).
func (s *Server) postObservation(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.uploader(r)
	if err != nil {
		return err
	}
	res, pts, err := s.uploads.IngestUpload(w, r, tok, func(body []byte) ([][]byte, error) {
		raw, err := observationPoint(tok, body, -1)
		if err != nil {
			return nil, err
		}
		return [][]byte{raw}, nil
	})
	if err != nil {
		return err
	}
	if !res.Stored[0] {
		return refuse(http.StatusConflict, "duplicate", "this reading is already stored (same uuid, or the same content); nothing changed")
	}
	obs := created(tok, pts[0])
	w.Header().Set("Location", s.base+"/FHIR/R5/Observation/"+obs.ID)
	writeJSON(w, http.StatusCreated, obs)
	return nil
}

// postBundle stores the points of a batch Bundle of Observations, all or
// none: 200 with a batch-response Bundle, an entry per Observation in
// order, "201 Created" or "409 Conflict" (stored before). One bad entry
// refuses the whole Bundle and nothing is stored.
func (s *Server) postBundle(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.uploader(r)
	if err != nil {
		return err
	}
	res, pts, err := s.uploads.IngestUpload(w, r, tok, func(body []byte) ([][]byte, error) {
		var b fhirBundle
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, refuse(http.StatusBadRequest, "malformed_json", "the body is not a JSON Bundle")
		}
		if b.ResourceType != "Bundle" || b.Type != "batch" {
			return nil, refuse(http.StatusBadRequest, "bad_bundle", "post a Bundle of type batch here (resourceType Bundle, type batch), or one Observation to /FHIR/R5/Observation")
		}
		if len(b.Entry) == 0 {
			return nil, refuse(http.StatusBadRequest, "empty_batch", "the Bundle has no entry")
		}
		raws := make([][]byte, len(b.Entry))
		for i, e := range b.Entry {
			if e.Request == nil || e.Request.Method != http.MethodPost || strings.Trim(e.Request.URL, "/") != "Observation" {
				return nil, indexed(refuse(http.StatusBadRequest, "bad_entry", "entry %d: every entry is a create, request {method: POST, url: Observation}", i), i, "entry.request")
			}
			if raws[i], err = observationPoint(tok, e.Resource, i); err != nil {
				return nil, err
			}
		}
		return raws, nil
	})
	if err != nil {
		return err
	}
	out := batchResponse{ResourceType: "Bundle", Type: "batch-response", Entry: make([]batchEntry, len(pts))}
	for i, p := range pts {
		obs := created(tok, p)
		if res.Stored[i] {
			out.Entry[i] = batchEntry{Response: batchEntryResponse{Status: "201 Created", Location: "Observation/" + obs.ID}, Resource: &obs}
			continue
		}
		out.Entry[i] = batchEntry{Response: batchEntryResponse{Status: "409 Conflict", Outcome: &operationOutcome{ResourceType: "OperationOutcome",
			Issue: []issue{{Severity: "information", Code: "duplicate", Diagnostics: "this reading is already stored; nothing changed"}}}}, Resource: &obs}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// observationPoint reads one Observation and returns the Open mHealth
// point in its valueAttachment, base64-decoded. i is the entry's index in
// a Bundle, or -1 for a lone Observation.
func observationPoint(tok vault.Token, body []byte, i int) ([]byte, error) {
	where := func(e *Error, field string) *Error {
		if i < 0 {
			e.Field = field
			return e
		}
		e.Detail = "entry " + strconv.Itoa(i) + ": " + e.Detail
		return indexed(e, i, "entry.resource."+field)
	}
	var o fhirObservation
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, where(refuse(http.StatusBadRequest, "malformed_json", "not a JSON Observation"), "")
	}
	if o.ResourceType != "Observation" {
		return nil, where(refuse(http.StatusBadRequest, "not_observation", "only Observations are taken (resourceType Observation)"), "resourceType")
	}
	if o.Subject != nil && o.Subject.Reference != "" && patientID(o.Subject.Reference) != tok.UserID {
		return nil, where(refuse(http.StatusForbidden, "wrong_patient", "subject names another patient than the token's: leave it out, or name Patient/%s", oauth.FHIRID(tok.UserID)), "subject.reference")
	}
	a := o.ValueAttachment
	if a == nil || a.Data == "" {
		return nil, where(refuse(http.StatusBadRequest, "missing_attachment", "the Open mHealth point goes base64-encoded in valueAttachment.data, with contentType application/json"), "valueAttachment.data")
	}
	if mt, _, err := mime.ParseMediaType(a.ContentType); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, where(refuse(http.StatusBadRequest, "attachment_not_json", "valueAttachment.contentType must be application/json"), "valueAttachment.contentType")
	}
	data := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, a.Data)
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(data)
	}
	if err != nil {
		return nil, where(refuse(http.StatusBadRequest, "bad_base64", "valueAttachment.data is not standard base64"), "valueAttachment.data")
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, where(refuse(http.StatusBadRequest, "malformed_json", "valueAttachment.data does not hold one JSON Open mHealth point"), "valueAttachment.data")
	}
	return raw, nil
}

// created is a stored point as an Observation in an upload's answer.
func created(tok vault.Token, p *omh.Point) createdObservation {
	return createdObservation{ResourceType: "Observation", ID: p.UUID, Status: "final",
		Code:    codeConcept{Coding: []coding{{System: omhSystem, Code: p.Schema.String()}}},
		Subject: reference{Reference: "Patient/" + oauth.FHIRID(tok.UserID)}}
}

func indexed(e *Error, i int, field string) *Error {
	e.Index = &i
	e.Field = field
	return e
}
