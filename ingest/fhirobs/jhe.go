package fhirobs

import (
	"bytes"
	"encoding/base64"
	"mime"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// omhObservation reads an Observation as JupyterHealth Exchange stores
// one: code.coding {system https://w3id.org/openmhealth, code
// omh:blood-glucose:4.0}, and the whole OMH data point, header and body,
// as base64 JSON in valueAttachment.data. The point is read by omh.Parse as
// it is, with its own header (uuid, source_creation_date_time,
// external_datasheets): id and device are not used.
//
// JHE's README also shows an upload whose attachment holds the body alone.
// Such a point gets the header a LOINC-coded Observation would: the schema
// code names, id as uuid, device as datasheet.
func (p *parser) omhObservation(r *rawResource, pos ingest.Pos, c coding, typ, id string, ds datasheet) error {
	sid, err := omh.ParseSchemaID(c.Code)
	if err != nil || sid.Version == "" {
		return p.skip(pos, typ, "the code is not an Open mHealth schema id (namespace:name:version)")
	}
	canon, ok := omh.CanonicalSchema(sid)
	if !ok {
		return p.skip(pos, typ, "the vault stores no Open mHealth schema of this name and version")
	}
	const field = "valueAttachment"
	if !present(r.ValueAttachment) {
		return ingest.Errorf(at(pos, field), "bad_value", "an Observation coded with an Open mHealth schema must hold the data point in valueAttachment.data")
	}
	var att struct {
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
		URL         string `json:"url"`
	}
	if err := decode(r.ValueAttachment, &att, pos, field); err != nil {
		return err
	}
	if att.ContentType != "" {
		if mt, _, err := mime.ParseMediaType(att.ContentType); err != nil || mt != "application/json" {
			return p.skip(pos, typ, "valueAttachment.contentType is not application/json")
		}
	}
	if att.Data == "" {
		if att.URL != "" {
			return p.skip(pos, typ, "the data point is at valueAttachment.url, which the importer does not fetch")
		}
		return ingest.Errorf(at(pos, field+".data"), "bad_value", "an Observation coded with an Open mHealth schema must hold the data point in valueAttachment.data")
	}
	data, ok := decodeBase64(att.Data)
	if !ok {
		return ingest.Errorf(at(pos, field+".data"), "bad_value", "valueAttachment.data is not base64")
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimSpace(data)
	var top struct {
		Header jsontext.Value `json:"header"`
		Body   jsontext.Value `json:"body"`
	}
	if len(data) == 0 || data[0] != '{' || jsonv2.Unmarshal(data, &top) != nil {
		return ingest.Errorf(at(pos, field+".data"), "bad_json", "valueAttachment.data does not hold a JSON object (an Open mHealth data point) of valid UTF-8 with each member name once")
	}
	if top.Header == nil && top.Body == nil {
		b := p.buf[:0]
		b = append(b, `{"header":{`...)
		if id != "" {
			b = append(b, `"uuid":`...)
			b = ingest.AppendString(b, id)
			b = append(b, ',')
		}
		b = append(b, `"schema_id":{"namespace":`...)
		b = ingest.AppendString(b, sid.Namespace)
		b = append(b, `,"name":`...)
		b = ingest.AppendString(b, sid.Name)
		b = append(b, `,"version":`...)
		b = ingest.AppendString(b, sid.Version)
		b = append(b, '}')
		if ds.ref != "" {
			b = append(b, `,"external_datasheets":[{"datasheet_type":`...)
			b = ingest.AppendString(b, ds.typ)
			b = append(b, `,"datasheet_reference":`...)
			b = ingest.AppendString(b, ds.ref)
			b = append(b, `}]`...)
		}
		b = append(b, `},"body":`...)
		b = append(b, data...)
		b = append(b, '}')
		p.buf = b
		data = b
	}
	pt, err := omh.Parse(data)
	if err != nil {
		return ingest.PointError(at(pos, field+".data"), err)
	}
	if pt.Schema.Namespace != canon.Namespace || pt.Schema.Name != canon.Name {
		return ingest.Errorf(at(pos, "code"), "bad_value", "the data point in valueAttachment.data is not of the schema code names")
	}
	return p.sink.Reading(ingest.Item{Point: pt, Pos: pos})
}

// decodeBase64 decodes FHIR base64Binary, which may hold white space (as
// Python's base64.encodebytes puts a newline every 76 characters) and may
// lack its padding.
func decodeBase64(s string) ([]byte, bool) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean))) // at least StdEncoding's
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		if n, err = base64.RawStdEncoding.Decode(out, clean); err != nil {
			return nil, false
		}
	}
	return out[:n], true
}
