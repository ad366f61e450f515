// Package nightscout imports Nightscout entries: the JSON a Nightscout site
// serves at /api/v1/entries.json (an array of entries), the same entries
// one JSON object a line (NDJSON, as mongoexport writes the entries
// collection), or a single entry.
//
// [Parse] streams the input with encoding/json's Decoder, one entry at a
// time, and reads each entry's members with fastjson, so a multi-GB array
// is never held in memory (an entry larger than 16 MiB is refused). Each entry becomes at most one omh:blood-glucose:4.0
// point, built as IEEE 1752 header JSON and run through omh.Parse:
//
//	type "sgv"   sensor glucose: interstitial fluid, sensed
//	type "mbg"   meter glucose:  capillary blood, self-reported
//
// Nightscout stores both in mg/dL. An sgv below 39 is a Dexcom error code
// and 39 and 401 are Dexcom's "LOW" and "HIGH" markers, as Nightscout's own
// display reads them: none is a measured number, so those entries are
// skipped with a reason, as are "cal" entries (calibration parameters,
// not glucose) and every other type.
//
// The entry's _id (a MongoDB ObjectId) is its stable id: it becomes the
// header's uuid member, which omh keeps as the point's source id because
// it is not a UUID, and the vault derives the point's uuid from it under
// the patient's key. Importing the same entries twice stores nothing new,
// even if Nightscout rewrote other members in between. The mapping and its
// reasons are in docs/importers/nightscout.md.
package nightscout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
	"github.com/valyala/fastjson"
)

// maxEntry bounds one entry's JSON text.
const maxEntry = 16 << 20

var errTooLarge = errors.New("nightscout: entry too large")

// tracker sits under the JSON decoder: it counts the bytes the decoder
// reads, remembers where the newlines were so that an offset can be turned
// into a line, and fails once more than maxEntry bytes have gone by since
// the last complete entry.
// maxPendingNewlines bounds the newlines remembered for line numbers.
const maxPendingNewlines = 1 << 20

type tracker struct {
	r       io.Reader
	n       int64   // bytes handed out
	mark    int64   // decoder offset at the end of the last entry
	nl      []int64 // offsets of newlines not yet counted into lines
	counted int     // newlines before the offsets in nl
}

func (t *tracker) Read(p []byte) (int, error) {
	if t.n-t.mark > maxEntry {
		return 0, errTooLarge
	}
	if len(p) > 64<<10 {
		p = p[:64<<10] // so that the bound is checked often
	}
	n, err := t.r.Read(p)
	for i := 0; ; {
		k := bytes.IndexByte(p[i:n], '\n')
		if k < 0 {
			break
		}
		if len(t.nl) >= maxPendingNewlines {
			// Blank lines by the million inside one entry: no Nightscout
			// export looks like that, and each would cost 8 bytes.
			return 0, errTooLarge
		}
		t.nl = append(t.nl, t.n+int64(i+k))
		i += k + 1
	}
	t.n += int64(n)
	return n, err
}

// line returns the 1-based line of offset off. Offsets must not decrease
// from one call to the next.
func (t *tracker) line(off int64) int {
	k := 0
	for k < len(t.nl) && t.nl[k] < off {
		k++
	}
	t.counted += k
	t.nl = append(t.nl[:0], t.nl[k:]...)
	return t.counted + 1
}

// Sniff reports whether head, the start of a file, looks like Nightscout
// entries: JSON (an array or an object) with an sgv or mbg member and a
// date, and not a FHIR resource.
func Sniff(head []byte) bool {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 || head[0] != '[' && head[0] != '{' {
		return false
	}
	has := func(s string) bool { return bytes.Contains(head, []byte(s)) }
	return (has(`"sgv"`) || has(`"mbg"`)) && (has(`"date"`) || has(`"dateString"`)) && !has(`"resourceType"`)
}

// Parse reads Nightscout entries from r and hands every sgv and mbg
// reading to sink, in input order. Times come from the entry's date (epoch
// milliseconds), else its dateString or sysTime; they are written with
// the entry's utcOffset when it has one, else in o.Loc().
func Parse(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	// Skip a byte order mark and white space to see how the input starts.
	lines := 0
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	var first byte
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return ingest.Errorf(ingest.Pos{Line: lines + 1}, "bad_json", "the input is empty; it must be a JSON array of Nightscout entries")
		}
		if err != nil {
			return err
		}
		if c == '\n' {
			lines++
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			first = c
			br.UnreadByte()
			break
		}
	}
	t := &tracker{r: br, counted: lines}
	p := parser{t: t, dec: json.NewDecoder(t), o: o, sink: sink}
	switch first {
	case '[':
		return p.array()
	case '{':
		return p.stream()
	}
	return ingest.Errorf(ingest.Pos{Line: lines + 1}, "bad_json",
		"the input must be a JSON array of Nightscout entries (as /api/v1/entries.json serves), or entry objects")
}

type parser struct {
	t    *tracker
	dec  *json.Decoder
	o    ingest.Options
	sink ingest.Sink
	fj   fastjson.Parser // reads one entry
	raw  json.RawMessage // the entry's text, reused
	buf  []byte          // the point's JSON, reused
}

// array reads [entry, entry, ...].
func (p *parser) array() error {
	if _, err := p.dec.Token(); err != nil {
		return p.jsonError(err)
	}
	for i := 0; p.dec.More(); i++ {
		if err := p.dec.Decode(&p.raw); err != nil {
			return p.jsonError(err)
		}
		if err := p.entry(p.raw, i, true); err != nil {
			return err
		}
	}
	if _, err := p.dec.Token(); err != nil {
		return p.jsonError(err)
	}
	if _, err := p.dec.Token(); err != io.EOF {
		if err == nil || errors.Is(err, errTooLarge) || isSyntax(err) {
			return ingest.Errorf(ingest.Pos{Line: p.t.line(p.dec.InputOffset())}, "bad_json", "more data follows the array of entries")
		}
		return err
	}
	return nil
}

// stream reads entry objects one after another (NDJSON, or one entry).
func (p *parser) stream() error {
	for i := 0; ; i++ {
		err := p.dec.Decode(&p.raw)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return p.jsonError(err)
		}
		if err := p.entry(p.raw, i, false); err != nil {
			return err
		}
	}
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF)
}

// jsonError turns a decoder error into an *ingest.Error by position only:
// encoding/json's messages quote the text.
func (p *parser) jsonError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return ingest.Errorf(ingest.Pos{Line: p.t.line(se.Offset)}, "bad_json", "the input is not valid JSON (a syntax error)")
	case errors.Is(err, io.ErrUnexpectedEOF), err == io.EOF:
		return ingest.Errorf(ingest.Pos{Line: p.t.line(p.t.n)}, "bad_json", "the input ends in the middle of a JSON value")
	case errors.Is(err, errTooLarge):
		return ingest.Errorf(ingest.Pos{Line: p.t.line(p.t.mark)}, "bad_json", "an entry is larger than 16 MiB; this is not Nightscout entries JSON")
	}
	return err
}

// The skip reasons.
const (
	reasonCal     = "calibration parameters (slope, intercept, scale), not a glucose reading"
	reasonOther   = "an entry type the vault does not read"
	reasonNoType  = "the entry has no type"
	reasonError   = "a CGM error code, not a glucose value"
	reasonLow     = "below the sensor's range (LOW, stored as 39), no number"
	reasonHigh    = "above the sensor's range (HIGH, stored as 401), no number"
	typeUnknown   = "unrecognised type"
	typeNone      = "none"
	maxDeviceName = 200
)

func (p *parser) entry(raw []byte, i int, inArray bool) error {
	end := p.dec.InputOffset()
	p.t.mark = end
	pos := ingest.Pos{Line: p.t.line(end - int64(len(raw)))}
	if inArray {
		pos.Element = "[" + strconv.Itoa(i) + "]"
	}
	if len(raw) == 0 || raw[0] != '{' {
		return ingest.Errorf(pos, "bad_json", "each entry must be a JSON object")
	}
	v, err := p.fj.ParseBytes(raw)
	if err != nil {
		return ingest.Errorf(pos, "bad_json", "the entry nests objects or arrays too deeply")
	}
	e, _ := v.Object()
	typ, ok, err := str(e.Get("type"), pos, "type")
	if err != nil {
		return err
	}
	var value *fastjson.Value
	var rd reading
	switch {
	case !ok && e.Get("result") != nil && e.Get("sgv") == nil && e.Get("mbg") == nil:
		return ingest.Errorf(pos, "unknown_format",
			"this is a Nightscout API v3 response; export the entries from /api/v1/entries.json instead")
	case !ok:
		return p.skip(pos, typeNone, reasonNoType)
	case typ == "sgv":
		value, rd.specimen, rd.modality = e.Get("sgv"), "interstitial fluid", "sensed"
	case typ == "mbg":
		value, rd.specimen, rd.modality = e.Get("mbg"), "capillary blood", "self-reported"
	case typ == "cal":
		return p.skip(pos, typ, reasonCal)
	default:
		return p.skip(pos, skipType(typ), reasonOther)
	}
	val, ok, err := num(value, pos, typ)
	if err != nil {
		return err
	}
	if !ok {
		return ingest.Errorf(pos, "bad_value", "the %s entry has no %s member", typ, typ)
	}
	if val < 0 {
		return ingest.Errorf(pos, "bad_value", "%s must be a glucose value in mg/dL, not negative", typ)
	}
	if typ == "sgv" {
		switch {
		case val < 39:
			return p.skip(pos, typ, reasonError)
		case val == 39:
			return p.skip(pos, typ, reasonLow)
		case val == 401:
			return p.skip(pos, typ, reasonHigh)
		}
	}
	rd.value = val
	if rd.at, err = when(e, pos, p.o.Loc()); err != nil {
		return err
	}
	id, ok, err := str(e.Get("_id"), pos, "_id")
	if err != nil {
		oid := e.Get("_id").Get("$oid")
		if oid == nil || oid.Type() != fastjson.TypeString {
			return err
		}
		id, ok = string(oid.GetStringBytes()), true
	}
	if !ok {
		if id, _, err = str(e.Get("identifier"), pos, "identifier"); err != nil {
			return err
		}
	}
	rd.id = id
	dev, _, err := str(e.Get("device"), pos, "device")
	if err != nil {
		return err
	}
	rd.device = deviceName(dev)
	p.buf = rd.appendJSON(p.buf[:0])
	pt, err := omh.Parse(p.buf)
	if err != nil {
		return ingest.PointError(pos, err)
	}
	return p.sink.Reading(ingest.Item{Point: pt, Pos: pos})
}

func (p *parser) skip(pos ingest.Pos, typ, reason string) error {
	return p.sink.Skipped(ingest.Skip{Pos: pos, Type: typ, Reason: reason})
}

// skipType is the entry's own type for a skip when it is a plain word (the
// known ones are: sgv, mbg, cal, etc), else a fixed label: whatever the
// member holds is not copied out.
func skipType(t string) string {
	if len(t) == 0 || len(t) > 20 {
		return typeUnknown
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return typeUnknown
		}
	}
	return t
}

// str reads an optional string member: ok is false when it is absent,
// null or empty.
func str(v *fastjson.Value, pos ingest.Pos, name string) (s string, ok bool, err error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", false, nil
	}
	if v.Type() != fastjson.TypeString {
		return "", false, ingest.Errorf(pos, "bad_value", "%s must be a string", name)
	}
	s = string(v.GetStringBytes())
	return s, s != "", nil
}

// num reads an optional number member, also given as a numeric string or
// as mongoexport's {"$numberLong": "..."}: ok is false when it is absent or
// null.
func num(v *fastjson.Value, pos ingest.Pos, name string) (float64, bool, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return 0, false, nil
	}
	var text []byte
	switch v.Type() {
	case fastjson.TypeNumber:
		text = v.MarshalTo(nil)
	case fastjson.TypeString:
		text = bytes.TrimSpace(v.GetStringBytes())
	case fastjson.TypeObject:
		if l := v.Get("$numberLong"); l != nil && l.Type() == fastjson.TypeString {
			text = l.GetStringBytes()
		}
	}
	if len(text) == 0 || !(text[0] >= '0' && text[0] <= '9' || text[0] == '-') {
		return 0, false, ingest.Errorf(pos, "bad_value", "%s must be a number", name)
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, ingest.Errorf(pos, "bad_value", "%s must be a number", name)
	}
	return f, true, nil
}

// when finds the entry's time, as RFC 3339 text with an offset: the
// instant from date (epoch milliseconds), else dateString, else sysTime;
// the offset from utcOffset, else loc's.
func when(e *fastjson.Object, pos ingest.Pos, loc *time.Location) (string, error) {
	var t time.Time
	ms, ok, err := num(e.Get("date"), pos, "date")
	if err != nil {
		return "", err
	}
	switch {
	case ok:
		// Years 1 to 9999 in milliseconds, with a day to spare either side.
		if ms < -62135510400000 || ms > 253402214400000 {
			return "", ingest.Errorf(pos, "bad_time", "date is out of range")
		}
		t = time.UnixMilli(int64(ms))
	default:
		s, ok, err := str(e.Get("dateString"), pos, "dateString")
		if err != nil {
			return "", err
		}
		if !ok {
			if s, ok, err = str(e.Get("sysTime"), pos, "sysTime"); err != nil {
				return "", err
			}
		}
		if !ok {
			return "", ingest.Errorf(pos, "bad_time", "the entry has no date, dateString or sysTime")
		}
		if t, ok = parseDateString(s); !ok {
			return "", ingest.Errorf(pos, "bad_time", "dateString is not an ISO 8601 date and time with an offset")
		}
	}
	zone := loc
	if off, ok, err := num(e.Get("utcOffset"), pos, "utcOffset"); err != nil {
		return "", err
	} else if ok {
		if off != math.Trunc(off) || off < -18*60 || off > 18*60 {
			return "", ingest.Errorf(pos, "bad_time", "utcOffset must be whole minutes between -1080 and 1080")
		}
		zone = time.FixedZone("", int(off)*60)
	}
	t = t.In(zone)
	if _, off := t.Zone(); off%60 != 0 {
		t = t.UTC() // RFC 3339 cannot write an offset with seconds
	}
	if y := t.Year(); y < 1 || y > 9999 {
		return "", ingest.Errorf(pos, "bad_time", "date is out of range")
	}
	return t.Format("2006-01-02T15:04:05.999999999Z07:00"), nil
}

// parseDateString reads the forms uploaders write: RFC 3339, or an offset
// without a colon.
func parseDateString(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// deviceName cleans the device member for a datasheet: trimmed, bounded.
func deviceName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxDeviceName {
		s = strings.TrimSpace(strings.ToValidUTF8(s[:maxDeviceName], ""))
	}
	return s
}

// reading is one blood-glucose point to build.
type reading struct {
	id       string // the entry's _id, or ""
	value    float64
	specimen string
	modality string
	at       string
	device   string
}

// appendJSON writes the point as IEEE 1752 header JSON.
func (r *reading) appendJSON(b []byte) []byte {
	b = append(b, `{"header":{`...)
	if r.id != "" {
		b = append(b, `"uuid":`...)
		b = ingest.AppendString(b, r.id)
		b = append(b, ',')
	}
	b = append(b, `"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":`...)
	b = ingest.AppendString(b, r.at)
	b = append(b, `,"modality":`...)
	b = ingest.AppendString(b, r.modality)
	if r.device != "" {
		b = append(b, `,"external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":`...)
		b = ingest.AppendString(b, r.device)
		b = append(b, `}]`...)
	}
	b = append(b, `},"body":{"blood_glucose":{"value":`...)
	b = strconv.AppendFloat(b, r.value, 'g', -1, 64)
	b = append(b, `,"unit":"mg/dL"},"specimen_source":`...)
	b = ingest.AppendString(b, r.specimen)
	b = append(b, `,"effective_time_frame":{"date_time":`...)
	b = ingest.AppendString(b, r.at)
	return append(b, `}}}`...)
}
