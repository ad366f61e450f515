package omh

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/valyala/fastjson"
)

// Point is a parsed, validated and normalised data point.
//
// A Point belongs to one goroutine at a time; Parse itself may run on many
// goroutines at once.
type Point struct {
	// Schema is the canonical schema the body was stored under (after
	// normalisation: blood-glucose 3.0 becomes 4.0).
	Schema SchemaID
	// Time is the reading's time: effective_time_frame.date_time, or the
	// start of its time_interval (end minus duration when the interval is
	// given that way), in the offset the point gave. For a schema that
	// defines no effective_time_frame ([FiledByCreationTime]) it is the
	// header's source_creation_date_time.
	Time time.Time
	// UUID is the header's uuid (or OMH 1.x id) in lower case, "" when the
	// point had none or its id is not a UUID; see SetUUID.
	UUID string
	// SourceID is the header's id (or uuid) when it is not a UUID, "" otherwise.
	SourceID string
	// Notes lists every normalisation, oldest first.
	Notes []string
	// Body is the typed body, such as *BloodGlucose.
	Body Body

	header Header
}

// Header returns the point's canonical header fields other than uuid and
// schema_id. The slices are shared with the point; do not modify them.
func (p *Point) Header() Header { return p.header }

// SetUUID sets the point's uuid, as the vault does (with a keyed derivation)
// for a point that arrived without one. It is stored in lower case.
func (p *Point) SetUUID(u string) { p.UUID = strings.ToLower(u) }

// parsers holds reusable fastjson parsers. A pool is shared by design: it is
// a cache that no caller can observe, and it makes Parse allocation-light
// and safe to call from many goroutines.
var parsers fastjson.ParserPool

// Parse parses one OMH data point {"header": ..., "body": ...}, validates
// its body against the typed model of its schema, normalises it, and
// returns it. Every error is an *Error.
func Parse(data []byte) (*Point, error) {
	// jsontext checks the text strictly (RFC 8259 and RFC 7493: valid UTF-8,
	// no repeated member names); fastjson then builds a tree to read.
	if !jsontext.Value(data).IsValid() {
		return nil, malformed(data)
	}
	fp := parsers.Get()
	defer parsers.Put(fp)
	v, err := fp.ParseBytes(data)
	if err != nil {
		return nil, errf(CodeMalformedJSON, "", "the data point nests objects or arrays more than "+strconv.Itoa(fastjson.MaxDepth)+" levels deep")
	}
	// One allocation holds the point and the decoder's state.
	st := new(struct {
		p Point
		d decoder
	})
	st.d.arena.Grow(arenaSize)
	if e := st.d.point(v, &st.p); e != nil {
		return nil, e
	}
	return &st.p, nil
}

// arenaSize fits the strings of a typical point (a uuid, two date-times and
// a datasheet); larger points grow it.
const arenaSize = 160

var pointMembers = []string{"header", "body"}

func (d *decoder) point(v *fastjson.Value, p *Point) *Error {
	if v.Type() != fastjson.TypeObject {
		return errf(CodeInvalidValue, "", "a data point must be a JSON object with header and body")
	}
	top, _ := v.Object()
	var s [2]*fastjson.Value
	rest := d.members(top, pointMembers, s[:])
	if s[0] == nil {
		return errf(CodeInvalidHeader, "header", "header is required")
	}
	ho, e := object(s[0], "header", "an object")
	if e != nil {
		return asHeaderError(e)
	}
	h, e := d.header(ho)
	if e != nil {
		return e
	}
	if len(rest) > 0 {
		d.note(droppedNote(rest))
	}
	if s[1] == nil {
		return errRequired("body")
	}
	bo, e := object(s[1], "body", "an object")
	if e != nil {
		return e
	}
	if h.legacy != nil {
		if e := stringMembersOK(bo, h.legacy.stringMembers); e != nil {
			return e
		}
	}
	d.created, d.createdField = h.hdr.SourceCreationDateTime, h.createdField
	body, e := h.model.parse(d, bo, h.legacy)
	if e != nil {
		return e
	}
	if h.hdr.SourceCreationDateTime.IsZero() {
		h.hdr.SourceCreationDateTime = DateTime{Time: d.start, Text: startText(body.TimeFrame(), d.start)}
		d.note(noteCreationFilled)
	}
	*p = Point{
		Schema:   h.model.id,
		Time:     d.start,
		UUID:     h.uuid,
		SourceID: h.sourceID,
		Notes:    d.notes,
		Body:     body,
		header:   h.hdr,
	}
	return nil
}

// startText is the text of the reading's time: the submitted text where
// there is one, else the computed start of an end-and-duration interval.
func startText(tf TimeFrame, start time.Time) string {
	switch {
	case tf.TimeInterval == nil:
		return tf.DateTime.Text
	case !tf.TimeInterval.StartDateTime.IsZero():
		return tf.TimeInterval.StartDateTime.Text
	}
	return formatDateTime(start)
}

func droppedNote(rest []Extra) string {
	var b strings.Builder
	b.WriteString("members other than header and body dropped:")
	for i, x := range rest {
		if i == 5 {
			b.WriteString(" and " + strconv.Itoa(len(rest)-5) + " more")
			break
		}
		b.WriteString(" ")
		b.WriteString(strconv.Quote(x.Name))
	}
	return b.String()
}

// malformed explains why data is not valid JSON, by position only: the
// text may hold health data, so no part of it is quoted.
func malformed(data []byte) *Error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	_, err := dec.ReadValue()
	if err == nil {
		if _, err2 := dec.ReadToken(); err2 == nil {
			return errf(CodeMalformedJSON, "", "the data point must be one JSON value; more data follows it at byte offset "+strconv.FormatInt(dec.InputOffset(), 10))
		}
		return errf(CodeMalformedJSON, "", "the data point is not valid JSON")
	}
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return errf(CodeMalformedJSON, "", "the data point is not valid JSON (it may be empty or cut short)")
	}
	at := " at byte offset " + strconv.FormatInt(se.ByteOffset, 10)
	switch {
	case errors.Is(se.Err, jsontext.ErrDuplicateName):
		return errf(CodeMalformedJSON, "", "the data point repeats a member name"+at+"; each name may appear once per object")
	case strings.Contains(se.Err.Error(), "UTF-8"):
		return errf(CodeMalformedJSON, "", "the data point is not valid UTF-8"+at)
	case errors.Is(se.Err, io.ErrUnexpectedEOF):
		return errf(CodeMalformedJSON, "", "the data point ends too early"+at)
	}
	return errf(CodeMalformedJSON, "", "the data point is not valid JSON: syntax error"+at)
}

// AppendJSON appends the point's canonical JSON to dst: members in a fixed
// order (extras sorted by name), no insignificant white space, no trailing
// newline. The same point always gives the same bytes, and parsing them
// gives the same point back. p must come from Parse.
func (p *Point) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"header":`...)
	h := &p.header
	o := openObject(dst)
	if p.UUID != "" {
		o.str("uuid", p.UUID)
	}
	o.key("schema_id")
	s := openObject(o.b)
	s.str("namespace", p.Schema.Namespace)
	s.str("name", p.Schema.Name)
	s.str("version", p.Schema.Version)
	o.b = s.close()
	o.str("source_creation_date_time", h.SourceCreationDateTime.Text)
	o.optStr("modality", h.Modality)
	if h.AcquisitionRate != nil {
		o.key("acquisition_rate")
		o.b = append(o.b, h.AcquisitionRate...)
	}
	if len(h.ExternalDatasheets) > 0 {
		o.key("external_datasheets")
		o.b = append(o.b, '[')
		for i := range h.ExternalDatasheets {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = h.ExternalDatasheets[i].appendJSON(o.b)
		}
		o.b = append(o.b, ']')
	}
	o.extras(h.Extra)
	if len(p.Notes) > 0 || p.SourceID != "" {
		o.key("x_vault")
		x := openObject(o.b)
		if len(p.Notes) > 0 {
			x.key("normalised")
			x.b = append(x.b, '[')
			for i, n := range p.Notes {
				if i > 0 {
					x.b = append(x.b, ',')
				}
				x.b = appendString(x.b, n)
			}
			x.b = append(x.b, ']')
		}
		x.optStr("source_id", p.SourceID)
		o.b = x.close()
	}
	dst = o.close()
	dst = append(dst, `,"body":`...)
	dst = p.Body.appendJSON(dst)
	return append(dst, '}')
}
