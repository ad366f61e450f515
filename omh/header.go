package omh

import (
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// Header is the canonical (IEEE 1752 header-1.0) header of a point, less
// what Point itself carries (uuid, schema_id, x_vault).
type Header struct {
	SourceCreationDateTime DateTime
	Modality               string // "sensed", "self-reported" or "" when absent
	// AcquisitionRate is the canonical JSON of a frequency-unit-value-1.0
	// ({"value": N, "unit": "Hz"} or {"number_of_times": N, "time_window":
	// duration or duration range}), nil when absent.
	AcquisitionRate    []byte
	ExternalDatasheets []Datasheet
	// Extra keeps header members IEEE 1752 does not define (and, for an
	// OMH 1.x header, user_id and the acquisition_provenance members that
	// have no IEEE counterpart).
	Extra []Extra
}

// Datasheet is an external_datasheets item.
type Datasheet struct {
	Type      string // datasheet_type, "" when absent
	Reference string // datasheet_reference
	Extra     []Extra
}

// headerResult is everything the header yields.
type headerResult struct {
	model    *model
	legacy   *legacy
	uuid     string
	sourceID string
	hdr      Header
	// createdField names the member a missing creation time belongs in:
	// header.source_creation_date_time, or header.creation_date_time in an
	// OMH 1.x header.
	createdField string
}

var (
	ieeeHeaderMembers = []string{"uuid", "schema_id", "source_creation_date_time", "modality", "acquisition_rate", "external_datasheets", "x_vault"}
	omhHeaderMembers  = []string{"id", "schema_id", "creation_date_time", "acquisition_provenance", "user_id", "x_vault",
		"modality", "acquisition_rate", "external_datasheets"}
	schemaIDMembers   = []string{"namespace", "name", "version"}
	xVaultMembers     = []string{"normalised", "source_id"}
	datasheetMembers  = []string{"datasheet_type", "datasheet_reference"}
	provenanceMembers = []string{"source_name", "source_creation_date_time", "modality", "source_data_point_id", "source_last_modification_date_time"}
)

// The notes the header adds.
const (
	noteOMHHeader       = "header omh 1.x converted to IEEE 1752"
	noteUUIDMissing     = "header has no uuid; the vault derives one"
	noteUUIDNotUUID     = "header uuid is not a UUID; kept as x_vault.source_id"
	noteIDNotUUID       = "header id is not a UUID; kept as x_vault.source_id"
	noteCreationFilled  = "header source_creation_date_time missing; set to the reading's time"
	noteSchemaIDDropped = "header schema_id members other than namespace, name and version dropped"
)

// isOMHHeader tells the dialects apart. A header with uuid or
// source_creation_date_time is IEEE 1752 (the canonical output always has
// the latter); otherwise one with id, creation_date_time or
// acquisition_provenance is OMH 1.x; anything else is read as IEEE.
func isOMHHeader(o *fastjson.Object) bool {
	if o.Get("uuid") != nil || o.Get("source_creation_date_time") != nil {
		return false
	}
	return o.Get("id") != nil || o.Get("creation_date_time") != nil || o.Get("acquisition_provenance") != nil
}

// errMixedDialects refuses a header with members of both dialects, in
// either direction: an OMH 1.x header with an IEEE-only member, or an IEEE
// header with an OMH 1.x one. Either way one of them would be silently
// ignored or kept as an unknown member, so the point would not say what
// its sender meant.
func errMixedDialects() *Error {
	return errf(CodeInvalidHeader, "header", "header mixes OMH 1.x members (id, creation_date_time, acquisition_provenance) with IEEE 1752 ones (uuid, source_creation_date_time, modality, acquisition_rate, external_datasheets); send one dialect")
}

// hasOMHMembers reports whether an IEEE header holds a member of OMH 1.x
// that the OMH mapping would read: id, or an acquisition_provenance with a
// member the mapping moves (source_name, source_creation_date_time,
// modality). Two OMH members are not refused, as real data has them beside
// IEEE ones and nothing is lost by keeping them as they are:
// creation_date_time (JupyterHealth Exchange writes it beside
// source_creation_date_time), and an acquisition_provenance with only the
// other members, which is the vault's own canonical form of an OMH header
// (the members with no IEEE counterpart stay under their old name).
func hasOMHMembers(o *fastjson.Object) bool {
	if o.Get("id") != nil {
		return true
	}
	ap := o.Get("acquisition_provenance")
	if ap == nil {
		return false
	}
	apo, err := ap.Object()
	if err != nil {
		return false // kept as an unknown member, as any other
	}
	return apo.Get("source_name") != nil || apo.Get("source_creation_date_time") != nil || apo.Get("modality") != nil
}

// header reads a header of either dialect.
func (d *decoder) header(o *fastjson.Object) (headerResult, *Error) {
	if isOMHHeader(o) {
		return d.omhHeader(o)
	}
	r := headerResult{createdField: "header.source_creation_date_time"}
	if hasOMHMembers(o) {
		return r, errMixedDialects()
	}
	var s [7]*fastjson.Value
	r.hdr.Extra = d.members(o, ieeeHeaderMembers, s[:])
	var e *Error
	// x_vault first: its notes come before any the vault adds now, so that
	// parsing the canonical output again gives the same list.
	if s[6] != nil {
		if r.sourceID, e = d.xVault(s[6]); e != nil {
			return r, e
		}
	}
	if r.model, r.legacy, e = d.schemaID(s[1]); e != nil {
		return r, e
	}
	if r.uuid, r.sourceID, e = d.identity(s[0], "uuid", r.sourceID); e != nil {
		return r, e
	}
	if s[2] != nil {
		if r.hdr.SourceCreationDateTime, e = d.headerDateTime(s[2], "header", "source_creation_date_time"); e != nil {
			return r, e
		}
	}
	if s[3] != nil {
		if r.hdr.Modality, e = modalities.read(s[3], "header", "modality"); e != nil {
			return r, asHeaderError(e)
		}
	}
	if s[4] != nil {
		if !validFrequency(s[4]) {
			return r, errf(CodeInvalidHeader, "header.acquisition_rate", `acquisition_rate must be {"value": number, "unit": "Hz"} or {"number_of_times": number, "time_window": a duration or a duration range}`)
		}
		r.hdr.AcquisitionRate = appendCanonical(nil, s[4])
	}
	if s[5] != nil {
		if r.hdr.ExternalDatasheets, e = d.datasheets(s[5]); e != nil {
			return r, e
		}
	}
	return r, nil
}

// omhHeader reads an OMH 1.x header (omh header-1.0 to 1.2) and maps it to
// the IEEE form: id -> uuid (or x_vault.source_id), creation_date_time or
// acquisition_provenance.source_creation_date_time ->
// source_creation_date_time, acquisition_provenance.modality -> modality,
// acquisition_provenance.source_name -> an external_datasheets item of type
// "source_name".
func (d *decoder) omhHeader(o *fastjson.Object) (headerResult, *Error) {
	r := headerResult{createdField: "header.creation_date_time"}
	var s [9]*fastjson.Value
	r.hdr.Extra = d.members(o, omhHeaderMembers, s[:])
	var e *Error
	if s[5] != nil {
		if r.sourceID, e = d.xVault(s[5]); e != nil {
			return r, e
		}
	}
	d.note(noteOMHHeader)
	if s[6] != nil || s[7] != nil || s[8] != nil {
		return r, errMixedDialects()
	}
	if r.model, r.legacy, e = d.schemaID(s[1]); e != nil {
		return r, e
	}
	if r.uuid, r.sourceID, e = d.identity(s[0], "id", r.sourceID); e != nil {
		return r, e
	}
	if s[2] != nil {
		if r.hdr.SourceCreationDateTime, e = d.headerDateTime(s[2], "header", "creation_date_time"); e != nil {
			return r, e
		}
	}
	if s[4] != nil {
		if e = isString(s[4], "header", "user_id"); e != nil {
			return r, asHeaderError(e)
		}
		r.hdr.Extra = insertExtra(r.hdr.Extra, newExtra([]byte("user_id"), s[4]))
	}
	if s[3] == nil {
		return r, nil
	}
	const path = "header.acquisition_provenance"
	ap, e := object(s[3], path, "an object with source_name")
	if e != nil {
		return r, asHeaderError(e)
	}
	var p [5]*fastjson.Value
	rest := d.members(ap, provenanceMembers, p[:])
	if p[0] == nil {
		return r, errf(CodeInvalidHeader, path+".source_name", "source_name is required in acquisition_provenance")
	}
	name, e := d.str(p[0], path, "source_name")
	if e != nil {
		return r, asHeaderError(e)
	}
	r.hdr.ExternalDatasheets = []Datasheet{{Type: "source_name", Reference: name}}
	if p[1] != nil {
		// The source's own creation time is the better source_creation_date_time.
		if r.hdr.SourceCreationDateTime, e = d.headerDateTime(p[1], path, "source_creation_date_time"); e != nil {
			return r, e
		}
	}
	if p[2] != nil {
		if r.hdr.Modality, e = modalities.read(p[2], path, "modality"); e != nil {
			return r, asHeaderError(e)
		}
	}
	if p[3] != nil {
		if e = isString(p[3], path, "source_data_point_id"); e != nil {
			return r, asHeaderError(e)
		}
		rest = insertExtra(rest, newExtra([]byte("source_data_point_id"), p[3]))
	}
	if p[4] != nil {
		if _, e = d.headerDateTime(p[4], path, "source_last_modification_date_time"); e != nil {
			return r, e
		}
		rest = insertExtra(rest, newExtra([]byte("source_last_modification_date_time"), p[4]))
	}
	if len(rest) > 0 {
		// The members with no IEEE counterpart stay under their old name.
		ob := openObject(nil)
		ob.extras(rest)
		r.hdr.Extra = insertExtra(r.hdr.Extra, Extra{Name: "acquisition_provenance", JSON: ob.close()})
	}
	return r, nil
}

// asHeaderError turns a value error inside the header into invalid_header.
func asHeaderError(e *Error) *Error {
	if e.Code == CodeInvalidValue {
		e.Code = CodeInvalidHeader
	}
	return e
}

func (d *decoder) headerDateTime(v *fastjson.Value, parent, name string) (DateTime, *Error) {
	dt, e := d.dateTime(v, parent, name)
	if e != nil {
		return dt, asHeaderError(e)
	}
	return dt, nil
}

// schemaID reads header.schema_id and finds the model for it.
func (d *decoder) schemaID(v *fastjson.Value) (*model, *legacy, *Error) {
	const path = "header.schema_id"
	if v == nil {
		return nil, nil, errf(CodeInvalidHeader, path, "schema_id is required, such as {\"namespace\": \"omh\", \"name\": \"blood-glucose\", \"version\": \"4.0\"}")
	}
	o, e := object(v, path, "an object with namespace, name and version")
	if e != nil {
		return nil, nil, asHeaderError(e)
	}
	var s [3]*fastjson.Value
	if extra := d.members(o, schemaIDMembers, s[:]); len(extra) > 0 {
		d.note(noteSchemaIDDropped)
	}
	var parts [3][]byte
	for i, name := range schemaIDMembers {
		if s[i] == nil {
			return nil, nil, errf(CodeInvalidHeader, path+"."+name, name+" is required in schema_id")
		}
		b, ok := stringBytes(s[i])
		if !ok {
			return nil, nil, errf(CodeInvalidHeader, path+"."+name, name+" must be a string")
		}
		parts[i] = b
	}
	m := lookupModel(string(parts[0]), string(parts[1]))
	if m == nil || (string(parts[2]) != m.id.Version && m.legacyVersion(string(parts[2])) == nil) {
		if g := genericModel(SchemaID{string(parts[0]), string(parts[1]), string(parts[2])}); g != nil {
			return g, nil, nil
		}
	}
	if m == nil {
		return nil, nil, errf(CodeUnknownSchema, path, "schema_id names a schema the vault does not store; it stores the official OMH and IEEE 1752 schemas (see docs/api.md), with typed models for "+supportedList())
	}
	if string(parts[2]) == m.id.Version {
		return m, nil, nil
	}
	lg := m.legacyVersion(string(parts[2]))
	if lg == nil {
		return nil, nil, errf(CodeUnknownSchema, path+".version", "version is not one the vault accepts for "+m.id.Namespace+":"+m.id.Name+"; it accepts "+quoteList(AcceptedVersions(m.id.Namespace, m.id.Name)))
	}
	d.note("schema " + m.id.Namespace + ":" + m.id.Name + ":" + lg.version + " stored as " + m.id.Version)
	return m, lg, nil
}

func supportedList() string {
	var b strings.Builder
	for i := range models {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(models[i].id.String())
	}
	return b.String()
}

// identity reads the uuid (IEEE) or id (OMH 1.x) member. A UUID becomes
// the point's uuid, in lower case; any other string becomes its source id;
// an absent or empty one leaves the source id as x_vault had it. Whenever
// the point ends up without a uuid, the note says the vault derives one
// (the same note whichever way, so that parsing the output again, which
// has neither uuid nor id, adds nothing). sourceID is the
// x_vault.source_id read so far.
func (d *decoder) identity(v *fastjson.Value, name, sourceID string) (uuid, src string, e *Error) {
	if v == nil {
		d.note(noteUUIDMissing)
		return "", sourceID, nil
	}
	b, ok := stringBytes(v)
	if !ok {
		return "", "", errf(CodeInvalidHeader, "header."+name, name+" must be a string, ideally a UUID")
	}
	switch {
	case len(b) == 0:
		d.note(noteUUIDMissing)
		return "", sourceID, nil
	case isUUID(b):
		start := d.arena.Len()
		for _, c := range b {
			if 'A' <= c && c <= 'F' {
				c += 'a' - 'A'
			}
			d.arena.WriteByte(c)
		}
		return d.arena.String()[start:], sourceID, nil
	case name == "id":
		d.note(noteIDNotUUID)
	default:
		d.note(noteUUIDNotUUID)
	}
	d.note(noteUUIDMissing)
	return "", d.intern(b), nil
}

// isUUID checks the RFC 4122 text form, 8-4-4-4-12 hex digits in either
// case, as JSON Schema's "uuid" format does.
func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// xVault reads the vault's own header member (present when a point that
// the vault wrote comes back): its notes, then its source id.
func (d *decoder) xVault(v *fastjson.Value) (string, *Error) {
	const path = "header.x_vault"
	o, e := object(v, path, "an object with normalised and source_id")
	if e != nil {
		return "", asHeaderError(e)
	}
	var s [2]*fastjson.Value
	if extra := d.members(o, xVaultMembers, s[:]); len(extra) > 0 {
		return "", errf(CodeInvalidHeader, path, "x_vault belongs to the vault and may hold only normalised and source_id")
	}
	if s[0] != nil {
		if s[0].Type() != fastjson.TypeArray {
			return "", errf(CodeInvalidHeader, path+".normalised", "normalised must be an array of strings")
		}
		a, _ := s[0].Array()
		for _, n := range a {
			b, ok := stringBytes(n)
			if !ok {
				return "", errf(CodeInvalidHeader, path+".normalised", "normalised must be an array of strings")
			}
			d.note(string(b))
		}
	}
	if s[1] == nil {
		return "", nil
	}
	src, e := d.str(s[1], path, "source_id")
	if e != nil {
		return "", asHeaderError(e)
	}
	return src, nil
}

// datasheets reads external_datasheets. The schema gives
// datasheet_reference the "iri" format; the vault keeps any string there,
// because real headers (JupyterHealth's own examples among them) put a
// maker's name such as "iHealth" in it.
func (d *decoder) datasheets(v *fastjson.Value) ([]Datasheet, *Error) {
	const path = "header.external_datasheets"
	if v.Type() != fastjson.TypeArray {
		return nil, errf(CodeInvalidHeader, path, "external_datasheets must be an array of {datasheet_type, datasheet_reference} objects")
	}
	a, _ := v.Array()
	if len(a) == 0 {
		return nil, nil
	}
	out := make([]Datasheet, len(a))
	for i, item := range a {
		if item.Type() != fastjson.TypeObject {
			return nil, errf(CodeInvalidHeader, path+"["+strconv.Itoa(i)+"]", "each external_datasheets item must be an object with datasheet_reference")
		}
		o, _ := item.Object()
		var s [2]*fastjson.Value
		out[i].Extra = d.members(o, datasheetMembers, s[:])
		if s[0] != nil {
			b, ok := stringBytes(s[0])
			if !ok {
				return nil, errf(CodeInvalidHeader, path+"["+strconv.Itoa(i)+"].datasheet_type", "datasheet_type must be a string")
			}
			out[i].Type = d.intern(b)
		}
		if s[1] == nil {
			return nil, errf(CodeInvalidHeader, path+"["+strconv.Itoa(i)+"].datasheet_reference", "datasheet_reference is required in each external_datasheets item")
		}
		b, ok := stringBytes(s[1])
		if !ok {
			return nil, errf(CodeInvalidHeader, path+"["+strconv.Itoa(i)+"].datasheet_reference", "datasheet_reference must be a string")
		}
		out[i].Reference = d.intern(b)
	}
	return out, nil
}

// validFrequency checks an acquisition_rate against IEEE
// frequency-unit-value-1.0: an object that is exactly one of
// {value: number, unit: "Hz"} and {number_of_times: number, time_window:
// exactly one of a duration-unit-value and a duration-unit-value-range}.
func validFrequency(v *fastjson.Value) bool {
	if v.Type() != fastjson.TypeObject {
		return false
	}
	o, _ := v.Object()
	hz := isNumber(o.Get("value")) && unitIn(o.Get("unit"), hzUnits.units)
	times := isNumber(o.Get("number_of_times")) && o.Get("time_window") != nil
	if times {
		tw := o.Get("time_window")
		twObj, _ := tw.Object()
		if twObj == nil {
			times = false
		} else {
			dur := isNumber(twObj.Get("value")) && unitIn(twObj.Get("unit"), durationUnits.units)
			rng := isNumber(twObj.Get("low_value")) && isNumber(twObj.Get("high_value")) && unitIn(twObj.Get("unit"), durationUnits.units)
			times = dur != rng
		}
	}
	return hz != times
}

func isNumber(v *fastjson.Value) bool { return v != nil && v.Type() == fastjson.TypeNumber }

func unitIn(v *fastjson.Value, units enum) bool {
	if v == nil {
		return false
	}
	b, ok := stringBytes(v)
	if !ok {
		return false
	}
	_, ok = units.match(b)
	return ok
}

func (d *Datasheet) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.optStr("datasheet_type", d.Type)
	o.str("datasheet_reference", d.Reference)
	o.extras(d.Extra)
	return o.close()
}
