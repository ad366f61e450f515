package apple

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/ingest"
)

// parser holds the state of one Parse. Nothing in it outlives the call.
type parser struct {
	d    *xml.Decoder
	src  *errTracker
	o    ingest.Options
	loc  *time.Location
	sink ingest.Sink

	buf     []byte     // the point being built, reused
	scratch []byte     // for parsing times that are not written
	stack   []xml.Name // open elements while skipping a subtree

	nRecord, nCorrelation int
	nOther                map[string]int

	rec  record // the top-level record being read, reused
	corr correlation
}

// errTracker remembers the reader's own error, so that Parse can tell a
// read error (returned unchanged) from encoding/xml's refusal of the text.
//
// It also bounds what encoding/xml holds at once: a token (a run of text,
// a tag with its attributes) lies between two '<', and the decoder keeps a
// whole token in memory, so a file with megabytes without a '<' (a zip
// that inflates to whitespace, an attribute of a gigabyte) is refused
// before it can cost that much memory. Apple's records are a few hundred
// bytes each.
type errTracker struct {
	r        io.Reader
	err      error
	sinceLT  int64 // bytes read since the last '<'
	tooLarge bool
}

// maxTokenBytes is the most the importer reads without a '<'.
const maxTokenBytes = 4 << 20

func (t *errTracker) Read(b []byte) (int, error) {
	if t.tooLarge {
		return 0, t.err
	}
	n, err := t.r.Read(b)
	// The longest run without a '<' may lie inside one read.
	rest, longest := b[:n], int64(0)
	for {
		i := bytes.IndexByte(rest, '<')
		if i < 0 {
			t.sinceLT += int64(len(rest))
			break
		}
		longest = max(longest, t.sinceLT+int64(i))
		t.sinceLT = 0
		rest = rest[i+1:]
	}
	if max(longest, t.sinceLT) > maxTokenBytes {
		t.tooLarge = true
		t.err = errf(ingest.Pos{}, "bad_xml", "the file holds more than 4 MiB without an XML tag; it is not an Apple Health export")
		return 0, t.err
	}
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func newParser(r io.Reader, o ingest.Options, sink ingest.Sink) *parser {
	src := &errTracker{r: r}
	d := xml.NewDecoder(src)
	// Apple's export declares no entities and no namespaces; the defaults
	// (strict, the five predefined entities) are what it needs.
	return &parser{
		d:      d,
		src:    src,
		o:      o,
		loc:    o.Loc(),
		sink:   sink,
		buf:    make([]byte, 0, 1024),
		nOther: make(map[string]int),
	}
}

const (
	elemHealthData  = "HealthData"
	elemRecord      = "Record"
	elemCorrelation = "Correlation"
	elemMetadata    = "MetadataEntry"
	elemExportDate  = "ExportDate"
)

const (
	msgReExport = "export it again from the Health app"
	msgCutShort = "the file ends before </HealthData>: it was cut short (an interrupted export, upload or unzip); " + msgReExport
)

// next reads one token and the line it starts on.
func (p *parser) next() (xml.Token, int, error) {
	line, _ := p.d.InputPos()
	t, err := p.d.RawToken()
	if err != nil {
		return nil, line, p.tokenErr(err)
	}
	return t, line, nil
}

// tokenErr sorts a decoder error into io.EOF (left to the caller), the
// reader's own error (returned unchanged, or as the *ingest.Error a zip
// reader made of it), and malformed XML. encoding/xml's messages may quote
// the input, so none of their text is kept.
func (p *parser) tokenErr(err error) error {
	if err == io.EOF {
		return err
	}
	var ie *ingest.Error
	if errors.As(err, &ie) {
		return ie
	}
	if p.src.err != nil && err == p.src.err {
		return err
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		if se.Msg == "unexpected EOF" {
			return errf(ingest.Pos{Line: se.Line}, "bad_xml", msgCutShort)
		}
		return errf(ingest.Pos{Line: se.Line}, "bad_xml", "the file is not well-formed XML here (a broken tag, attribute, character or entity); it may be damaged: "+msgReExport)
	}
	line, _ := p.d.InputPos()
	return errf(ingest.Pos{Line: line}, "bad_xml", "the XML declaration names a version or an encoding other than XML 1.0 in UTF-8, which the Health app writes; "+msgReExport)
}

// run parses the whole document.
func (p *parser) run() error {
	if err := p.prolog(); err != nil {
		return err
	}
	for {
		t, line, err := p.next()
		if err == io.EOF {
			return errf(ingest.Pos{Line: line}, "bad_xml", msgCutShort)
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if err := p.element(t, line); err != nil {
				return err
			}
		case xml.EndElement:
			if t.Name.Space != "" || t.Name.Local != elemHealthData {
				return errMismatch(line)
			}
			return p.epilog()
		}
	}
}

// prolog reads up to the root element, which must be HealthData. The XML
// declaration, comments and the DOCTYPE with its internal subset (Apple's
// runs to a few hundred lines) come before it.
func (p *parser) prolog() error {
	for {
		t, line, err := p.next()
		if err == io.EOF {
			return errf(ingest.Pos{Line: line}, "unknown_format", "the file has no HealthData element: it is empty or not an Apple Health export.xml")
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Space != "" || t.Name.Local != elemHealthData {
				return errf(ingest.Pos{Line: line, Element: "root"}, "unknown_format", "the root element is not HealthData: this is not an Apple Health export.xml")
			}
			return nil
		case xml.EndElement:
			return errMismatch(line)
		case xml.CharData:
			if !isSpace(t) {
				return errf(ingest.Pos{Line: textLine(t, line)}, "unknown_format", "text before the root element: this is not an Apple Health export.xml")
			}
		}
	}
}

// epilog checks that nothing but white space, comments and processing
// instructions follows </HealthData>.
func (p *parser) epilog() error {
	for {
		t, line, err := p.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement:
			return errf(ingest.Pos{Line: line}, "bad_xml", "an element follows </HealthData>; the file may be two exports joined together: upload one export at a time")
		case xml.CharData:
			if !isSpace(t) {
				return errf(ingest.Pos{Line: textLine(t, line)}, "bad_xml", "text follows </HealthData>; the file may be damaged: "+msgReExport)
			}
		}
	}
}

func errMismatch(line int) error {
	return errf(ingest.Pos{Line: line}, "bad_xml", "an end tag does not match the element it closes; the file is damaged: "+msgReExport)
}

// textLine is the line of the first character of text that is not white
// space, text starting on line.
func textLine(text []byte, line int) int {
	for _, c := range text {
		switch c {
		case '\n':
			line++
		case ' ', '\t', '\r':
		default:
			return line
		}
	}
	return line
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// element handles one child of HealthData.
func (p *parser) element(t xml.StartElement, line int) error {
	if t.Name.Space == "" {
		switch t.Name.Local {
		case elemRecord:
			p.nRecord++
			r := &p.rec
			r.reset(line, p.nRecord)
			r.attrs(t.Attr)
			if err := p.recordContent(t.Name, r); err != nil {
				return err
			}
			return p.topRecord(r)
		case elemCorrelation:
			p.nCorrelation++
			return p.correlation(t, line)
		case elemExportDate:
			return p.skip(t.Name)
		}
	}
	// Anything else: Me, Workout, ActivitySummary, ClinicalRecord,
	// Audiogram, VisionPrescription, and elements later versions add.
	name := t.Name.Local
	pos := ingest.Pos{Line: line, Element: name}
	// Ordinals for up to maxOtherNames element names: a hostile file of
	// ever new names must not grow the map without bound.
	if n, ok := p.nOther[name]; ok || len(p.nOther) < maxOtherNames {
		p.nOther[name] = n + 1
		pos.Element = ordinal(name, n+1)
	}
	if err := p.skip(t.Name); err != nil {
		return err
	}
	typ, reason := name, otherReason(name)
	if name == "ClinicalRecord" || name == "Audiogram" || name == "VisionPrescription" {
		if v := attr(t.Attr, "type"); v != "" {
			typ = v
		}
	}
	return p.sink.Skipped(ingest.Skip{Pos: pos, Type: typ, Reason: reason})
}

// maxOtherNames bounds the element names counted for positions.
const maxOtherNames = 256

func otherReason(name string) string {
	switch name {
	case "Me":
		return "personal characteristics (date of birth, sex, blood type) are not readings and are not imported"
	case "Workout":
		return "workouts are not imported yet (no mapping to physical-activity); their heart rate and step records are imported on their own"
	case "ActivitySummary":
		return "a daily Activity rings summary is computed from records; the records themselves are imported"
	case "ClinicalRecord":
		return "clinical records from health providers are not imported"
	}
	return "no Open mHealth schema for this element"
}

func ordinal(name string, n int) string {
	return name + "[" + strconv.Itoa(n) + "]"
}

func attr(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// maxDepth bounds the nesting skip follows below a child of HealthData
// (Apple's deepest is Workout, WorkoutRoute, FileReference), so that a
// hostile file of nested tags cannot grow the stack without bound.
const maxDepth = 32

// skip consumes the rest of the element just opened, checking that its end
// tags match.
func (p *parser) skip(name xml.Name) error {
	p.stack = append(p.stack[:0], name)
	for len(p.stack) > 0 {
		t, line, err := p.next()
		if err == io.EOF {
			return errf(ingest.Pos{Line: line}, "bad_xml", msgCutShort)
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if len(p.stack) >= maxDepth {
				return errf(ingest.Pos{Line: line}, "bad_xml", "elements nest more than "+strconv.Itoa(maxDepth)+" levels deep, far deeper than an Apple Health export does: this is not an export.xml")
			}
			p.stack = append(p.stack, t.Name)
		case xml.EndElement:
			if t.Name != p.stack[len(p.stack)-1] {
				return errMismatch(line)
			}
			p.stack = p.stack[:len(p.stack)-1]
		}
	}
	return nil
}

// recordContent reads a Record's children up to its end tag, keeping the
// MetadataEntry keys the mapping uses; HeartRateVariabilityMetadataList
// and anything else is passed over.
func (p *parser) recordContent(name xml.Name, r *record) error {
	for {
		t, line, err := p.next()
		if err == io.EOF {
			return errf(ingest.Pos{Line: line}, "bad_xml", msgCutShort)
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Space == "" && t.Name.Local == elemMetadata {
				r.meta.add(t.Attr)
			}
			if err := p.skip(t.Name); err != nil {
				return err
			}
		case xml.EndElement:
			if t.Name != name {
				return errMismatch(line)
			}
			return nil
		}
	}
}

// record is one Record element: the attributes and metadata the mapping
// reads.
type record struct {
	typ, unit, value, sourceName, device string
	creationDate, startDate, endDate     string
	meta                                 metadata

	line    int
	ordinal int
	parent  string // "Correlation[n]" for a record inside a correlation
}

func (r *record) reset(line, ordinal int) {
	*r = record{line: line, ordinal: ordinal}
}

func (r *record) attrs(attrs []xml.Attr) {
	for _, a := range attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "type":
			r.typ = a.Value
		case "unit":
			r.unit = a.Value
		case "value":
			r.value = a.Value
		case "sourceName":
			r.sourceName = a.Value
		case "device":
			r.device = a.Value
		case "creationDate":
			r.creationDate = a.Value
		case "startDate":
			r.startDate = a.Value
		case "endDate":
			r.endDate = a.Value
		}
	}
}

// pos names the record: "Record[12]", or "Correlation[3]/Record[1]".
func (r *record) pos() ingest.Pos {
	el := ordinal(elemRecord, r.ordinal)
	if r.parent != "" {
		el = r.parent + "/" + el
	}
	return ingest.Pos{Line: r.line, Element: el}
}

// metadata holds the MetadataEntry values the mapping uses.
type metadata struct {
	userEntered  string // HKWasUserEntered: "1" for a value typed in by hand
	mealTime     string // HKBloodGlucoseMealTime: 1 preprandial, 2 postprandial
	motion       string // HKMetadataKeyHeartRateMotionContext: 1 sedentary, 2 active
	tempLocation string // HKBodyTemperatureSensorLocation
}

func (m *metadata) add(attrs []xml.Attr) {
	var key, value string
	for _, a := range attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "key":
			key = a.Value
		case "value":
			value = a.Value
		}
	}
	switch key {
	case "HKWasUserEntered", "HKMetadataKeyWasUserEntered":
		m.userEntered = value
	case "HKBloodGlucoseMealTime", "HKMetadataKeyBloodGlucoseMealTime":
		m.mealTime = value
	case "HKMetadataKeyHeartRateMotionContext", "HKHeartRateMotionContext":
		m.motion = value
	case "HKBodyTemperatureSensorLocation", "HKMetadataKeyBodyTemperatureSensorLocation":
		m.tempLocation = value
	}
}

// correlation is a Correlation element and the blood pressure halves in it.
type correlation struct {
	typ, sourceName, device          string
	creationDate, startDate, endDate string
	meta                             metadata
	systolic, diastolic              record
	hasSystolic, hasDiastolic        bool
	ordinal                          int
	child                            record
}

func (p *parser) correlation(t xml.StartElement, line int) error {
	c := &p.corr
	*c = correlation{ordinal: p.nCorrelation}
	for _, a := range t.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "type":
			c.typ = a.Value
		case "sourceName":
			c.sourceName = a.Value
		case "device":
			c.device = a.Value
		case "creationDate":
			c.creationDate = a.Value
		case "startDate":
			c.startDate = a.Value
		case "endDate":
			c.endDate = a.Value
		}
	}
	pos := ingest.Pos{Line: line, Element: ordinal(elemCorrelation, c.ordinal)}
	if c.typ != hkBloodPressure {
		// A food correlation, say: its records are also listed at top
		// level, where each is handled (and skipped) on its own.
		if err := p.skip(t.Name); err != nil {
			return err
		}
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: typeOr(c.typ, elemCorrelation), Reason: "no Open mHealth schema for this correlation; its records are listed at top level and handled there"})
	}
	n := 0
	for {
		tok, tline, err := p.next()
		if err == io.EOF {
			return errf(ingest.Pos{Line: tline}, "bad_xml", msgCutShort)
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space == "" && tok.Name.Local == elemMetadata {
				c.meta.add(tok.Attr)
				if err := p.skip(tok.Name); err != nil {
					return err
				}
				continue
			}
			if tok.Name.Space != "" || tok.Name.Local != elemRecord {
				if err := p.skip(tok.Name); err != nil {
					return err
				}
				continue
			}
			n++
			r := &c.child
			r.reset(tline, n)
			r.parent = pos.Element
			r.attrs(tok.Attr)
			if err := p.recordContent(tok.Name, r); err != nil {
				return err
			}
			switch {
			case r.typ == hkSystolic && !c.hasSystolic:
				c.systolic, c.hasSystolic = *r, true
			case r.typ == hkDiastolic && !c.hasDiastolic:
				c.diastolic, c.hasDiastolic = *r, true
			}
		case xml.EndElement:
			if tok.Name != t.Name {
				return errMismatch(tline)
			}
			return p.bloodPressure(c, pos)
		}
	}
}

func typeOr(typ, fallback string) string {
	if typ == "" {
		return fallback
	}
	return typ
}

// isHKDevicePrefix tells whether s starts like Apple's device description,
// "<<HKDevice: 0x283e2c4b0>, name:Apple Watch, manufacturer:Apple Inc., ...>".
func isHKDevicePrefix(s string) bool { return strings.HasPrefix(s, "<<HKDevice:") }

// cleanDevice removes what changes from one export to the next from
// Apple's device description: the object's memory address, "<<HKDevice:
// 0x...>, ". What remains, "name:Apple Watch, manufacturer:Apple Inc.,
// model:Watch, hardware:Watch6,1, software:9.1", is stable. A description
// in another form is kept as it is, trimmed; "" means no device.
func cleanDevice(s string) string {
	s = strings.TrimSpace(s)
	if !isHKDevicePrefix(s) {
		return s
	}
	rest := s[len("<<HKDevice:"):]
	i := strings.IndexByte(rest, '>')
	if i < 0 {
		return s
	}
	rest = rest[i+1:]
	rest = strings.TrimPrefix(rest, ",")
	rest = strings.TrimSuffix(rest, ">")
	return strings.TrimSpace(rest)
}

// errf makes an *ingest.Error. Messages are plain text (a unit such as "%"
// may appear in one), never a format.
func errf(pos ingest.Pos, code, msg string) *ingest.Error {
	return &ingest.Error{Pos: pos, Code: code, Message: msg}
}
