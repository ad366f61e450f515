// Package fhirobs reads FHIR R4 Observations into Open mHealth points: a
// single Observation, a Bundle of any type whose entries hold Observations,
// or NDJSON of Observations as FHIR Bulk Data writes it (and as the vault's
// own fhir export writes it).
//
// Vital signs and glucose Observations are mapped by their LOINC code (see
// docs/importers/fhir.md for the table). An Observation coded in the
// https://w3id.org/openmhealth system, as JupyterHealth Exchange stores
// them, carries the whole OMH point base64-encoded in valueAttachment.data;
// that point is read as it is, with its own header.
//
// Parse streams: a Bundle is walked with encoding/json's token API and read
// one entry at a time, so memory stays bounded by the largest entry (at
// most [MaxResource] bytes), not by the Bundle.
package fhirobs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/ingest"
)

// MaxResource is the largest resource or Bundle entry Parse reads, in
// bytes. A vital signs Observation is well under 10 KiB.
const MaxResource = 16 << 20

// Sniff reports whether head, the first bytes of a file, looks like FHIR
// JSON: a JSON object (after an optional byte order mark and white space)
// with a resourceType member.
func Sniff(head []byte) bool {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	return len(head) > 0 && head[0] == '{' && bytes.Contains(head, []byte(`"resourceType"`))
}

// Parse reads FHIR R4 JSON from r: one resource, a Bundle, or NDJSON (one
// resource a line); in fact any sequence of top-level JSON objects. Every
// Observation the vault has a schema for becomes a reading; other resources
// and Observations are reported to sink.Skipped. Malformed input is an
// *ingest.Error whose Pos gives the line where the resource starts and,
// inside a Bundle, its element ("entry[3].resource", counting from 0).
func Parse(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	p := &parser{loc: o.Loc(), sink: sink, lr: &lineReader{r: br}}
	p.dec = json.NewDecoder(p.lr)
	p.lr.dec = p.dec
	return p.run()
}

type parser struct {
	loc  *time.Location
	sink ingest.Sink
	lr   *lineReader
	dec  *json.Decoder
	buf  []byte // scratch for the point being built
}

// errTooLarge is returned by lineReader when one JSON value outgrows
// MaxResource.
var errTooLarge = errors.New("fhirobs: value too large")

// maxPendingNewlines bounds the newlines remembered for line numbers
// within the input not yet decoded.
const maxPendingNewlines = 1 << 20

// lineReader counts lines as the decoder reads, so that a value's starting
// offset can be turned into a line number, and stops a decoder whose
// current value grows past MaxResource.
type lineReader struct {
	r    io.Reader
	dec  *json.Decoder
	off  int64   // bytes read so far
	nl   []int64 // offsets of newlines read but not yet passed by lineAt
	line int     // newlines before nl[0]
	err  error   // a read error from r, to return it unchanged
}

func (lr *lineReader) Read(b []byte) (int, error) {
	if lr.dec != nil {
		// The decoder reads only when the value it is on is incomplete, so
		// all it holds unconsumed belongs to that value. Reading at most one
		// byte past MaxResource makes the check exact.
		pending := lr.off - lr.dec.InputOffset()
		if pending > MaxResource {
			return 0, errTooLarge
		}
		if room := MaxResource + 1 - pending; int64(len(b)) > room {
			b = b[:room]
		}
	}
	n, err := lr.r.Read(b)
	for i := 0; i < n; {
		j := bytes.IndexByte(b[i:n], '\n')
		if j < 0 {
			break
		}
		if len(lr.nl) >= maxPendingNewlines {
			// A value spread over a million lines is no FHIR resource a
			// server writes; remembering each line would cost 8 bytes a
			// newline.
			return 0, errTooLarge
		}
		lr.nl = append(lr.nl, lr.off+int64(i+j))
		i += j + 1
	}
	lr.off += int64(n)
	if err != nil && err != io.EOF {
		lr.err = err
	}
	return n, err
}

// lineAt returns the 1-based line of byte offset off. Calls must come with
// offsets that do not decrease (a smaller one gets the last line found).
func (lr *lineReader) lineAt(off int64) int {
	i := 0
	for i < len(lr.nl) && lr.nl[i] < off {
		i++
	}
	lr.line += i
	lr.nl = lr.nl[i:]
	if len(lr.nl) == 0 {
		lr.nl = lr.nl[:0:0] // let the consumed array go
	}
	return lr.line + 1
}

// jsonErr turns a decoder error into an *ingest.Error at the decoder's
// position, or returns a read error unchanged. The decoder's own message
// quotes input characters, so it is not used.
func (p *parser) jsonErr(err error, element string) error {
	if p.lr.err != nil && errors.Is(err, p.lr.err) {
		return err
	}
	pos := ingest.Pos{Line: p.lr.lineAt(p.dec.InputOffset()), Element: element}
	switch {
	case errors.Is(err, errTooLarge):
		return ingest.Errorf(pos, "bad_json", "a resource is larger than %d MiB; the importer reads resources up to that size", MaxResource>>20)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ingest.Errorf(pos, "bad_json", "the input ends inside a JSON value; the file may be cut short")
	}
	return ingest.Errorf(pos, "bad_json", "the input is not valid JSON (a syntax error in or after the value that starts here)")
}

// run reads top-level values until the end of the input.
func (p *parser) run() error {
	n := 0
	for {
		if p.dec.More() {
			// Most resources name their type first; one that is not a
			// Bundle is read whole, in one step.
			if rt, ok := p.peekResourceType(); ok && rt != "Bundle" {
				var raw json.RawMessage
				if err := p.dec.Decode(&raw); err != nil {
					return p.jsonErr(err, "")
				}
				n++
				line := p.lr.lineAt(p.dec.InputOffset() - int64(len(raw)))
				if err := p.resource(raw, ingest.Pos{Line: line, Element: typeName(rt)}); err != nil {
					return err
				}
				continue
			}
		}
		tok, err := p.dec.Token()
		if err == io.EOF {
			if n == 0 {
				return ingest.Errorf(ingest.Pos{}, "bad_json", "the input holds no FHIR resource")
			}
			return nil
		}
		if err != nil {
			return p.jsonErr(err, "")
		}
		line := p.lr.lineAt(p.dec.InputOffset() - 1)
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return ingest.Errorf(ingest.Pos{Line: line}, "bad_json", "each top-level JSON value must be a FHIR resource (a JSON object with resourceType)")
		}
		n++
		if err := p.topLevel(line); err != nil {
			return err
		}
	}
}

// peekResourceType looks at what the decoder holds for the next value,
// without consuming it, for an object whose first member is resourceType,
// and returns the type.
func (p *parser) peekResourceType() (string, bool) {
	var buf [96]byte
	n, _ := p.dec.Buffered().Read(buf[:])
	b := skipSpace(buf[:n])
	if len(b) == 0 || b[0] != '{' {
		return "", false
	}
	b, ok := bytes.CutPrefix(skipSpace(b[1:]), []byte(`"resourceType"`))
	if b = skipSpace(b); !ok || len(b) == 0 || b[0] != ':' {
		return "", false
	}
	if b = skipSpace(b[1:]); len(b) == 0 || b[0] != '"' {
		return "", false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end <= 0 || bytes.IndexByte(b[1:end+1], '\\') >= 0 {
		return "", false
	}
	return string(b[1 : end+1]), true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

type member struct {
	key string
	raw json.RawMessage
}

// topLevel reads the members of a top-level object whose '{' has been
// read. A Bundle's entry array is streamed entry by entry; any other
// resource is gathered and read whole.
func (p *parser) topLevel(line int) error {
	var members []member
	var rt string
	rtSet, streamed := false, false
	size := 2
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return p.jsonErr(err, "")
		}
		key, _ := tok.(string)
		if key == "entry" && (!rtSet || rt == "Bundle") {
			if err := p.entries(); err != nil {
				return err
			}
			streamed = true
			continue
		}
		var raw json.RawMessage
		if err := p.dec.Decode(&raw); err != nil {
			return p.jsonErr(err, "")
		}
		if key == "resourceType" {
			if err := json.Unmarshal(raw, &rt); err != nil || rt == "" {
				return ingest.Errorf(ingest.Pos{Line: line, Element: "resourceType"}, "bad_json", "resourceType must be a non-empty string")
			}
			rtSet = true
		}
		if size += len(key) + len(raw) + 8; size > MaxResource {
			return p.jsonErr(errTooLarge, "")
		}
		members = append(members, member{key, raw})
	}
	if _, err := p.dec.Token(); err != nil { // the closing '}'
		return p.jsonErr(err, "")
	}
	if !rtSet {
		return ingest.Errorf(ingest.Pos{Line: line}, "bad_json", "a JSON object without resourceType is not a FHIR resource")
	}
	if rt == "Bundle" {
		return nil
	}
	if streamed {
		// Only Bundle and List have a top-level entry array; a List's
		// entries hold references, which were reported as entries without
		// a resource.
		return p.skip(ingest.Pos{Line: line}, rt, "not an Observation")
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = ingest.AppendString(b, m.key)
		b = append(b, ':')
		b = append(b, m.raw...)
	}
	b = append(b, '}')
	return p.resource(b, ingest.Pos{Line: line, Element: typeName(rt)})
}

// entries streams a Bundle's entry array, one entry at a time, and of each
// entry reads only the resource.
func (p *parser) entries() error {
	tok, err := p.dec.Token()
	if err != nil {
		return p.jsonErr(err, "entry")
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return ingest.Errorf(ingest.Pos{Line: p.lr.lineAt(p.dec.InputOffset())}, "bad_json", "entry in a Bundle must be an array")
	}
	for i := 0; p.dec.More(); i++ {
		el := "entry[" + strconv.Itoa(i) + "]"
		tok, err := p.dec.Token()
		if err != nil {
			return p.jsonErr(err, el)
		}
		pos := ingest.Pos{Line: p.lr.lineAt(p.dec.InputOffset() - 1), Element: el}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return ingest.Errorf(pos, "bad_json", "a Bundle entry must be a JSON object")
		}
		var resource json.RawMessage
		for p.dec.More() {
			tok, err := p.dec.Token()
			if err != nil {
				return p.jsonErr(err, el)
			}
			var raw json.RawMessage
			if err := p.dec.Decode(&raw); err != nil {
				return p.jsonErr(err, el)
			}
			if key, _ := tok.(string); key == "resource" {
				if resource != nil {
					return ingest.Errorf(pos, "bad_json", "a Bundle entry repeats its resource member")
				}
				resource = raw
			}
		}
		if _, err := p.dec.Token(); err != nil { // the entry's closing '}'
			return p.jsonErr(err, el)
		}
		if len(resource) == 0 || string(resource) == "null" {
			if err := p.skip(pos, "entry", "the entry holds no resource"); err != nil {
				return err
			}
			continue
		}
		pos.Element += ".resource"
		if err := p.resource(resource, pos); err != nil {
			return err
		}
	}
	if _, err := p.dec.Token(); err != nil { // the closing ']'
		return p.jsonErr(err, "entry")
	}
	return nil
}

func (p *parser) skip(pos ingest.Pos, typ, reason string) error {
	return p.sink.Skipped(ingest.Skip{Pos: pos, Type: typ, Reason: reason})
}

// typeName is a resourceType fit to name an element in a message: FHIR's
// type names are letters; anything else in the file is not repeated back.
func typeName(rt string) string {
	if len(rt) == 0 || len(rt) > 64 {
		return "resource"
	}
	for i := 0; i < len(rt); i++ {
		if c := rt[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "resource"
		}
	}
	return rt
}
