// Package omhjson imports Open mHealth data points as files hold them: one
// point, a JSON array of points, or NDJSON (one point a line), the same
// bodies POST /api/v1/readings takes, but streamed, with no batch limit.
package omhjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// MaxPoint is the largest single point read, in bytes.
const MaxPoint = 1 << 20

var errTooLarge = errors.New("omhjson: point too large")

// Sniff reports whether head, the start of a file, looks like Open mHealth
// points: JSON with a header's schema_id and a body, and not a FHIR
// resource.
func Sniff(head []byte) bool {
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(head) == 0 || head[0] != '{' && head[0] != '[' {
		return false
	}
	has := func(s string) bool { return bytes.Contains(head, []byte(s)) }
	return has(`"schema_id"`) && has(`"body"`) && !has(`"resourceType"`)
}

// guard stops the decoder from holding more than MaxPoint bytes of one
// value.
type guard struct {
	r   io.Reader
	dec *json.Decoder
	n   int64
	err error // the reader's own error
}

func (g *guard) Read(b []byte) (int, error) {
	if g.dec != nil && g.n-g.dec.InputOffset() > MaxPoint {
		return 0, errTooLarge
	}
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	n, err := g.r.Read(b)
	g.n += int64(n)
	if g.dec != nil && g.n-g.dec.InputOffset() > MaxPoint {
		return 0, errTooLarge
	}
	if err != nil && err != io.EOF {
		g.err = err
	}
	return n, err
}

// Parse reads points from r into sink, in order. A point omh refuses makes
// the file malformed, naming its index (from 0) and the field.
func Parse(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	// A leading '[' means one array of points; anything else is a run of
	// top-level points (one, or one a line).
	array := false
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return ingest.Errorf(ingest.Pos{}, "empty_file", "the file holds no points")
		}
		if err != nil {
			return err
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xef || c == 0xbb || c == 0xbf { // space, or a UTF-8 BOM
			continue
		}
		array = c == '['
		br.UnreadByte()
		break
	}
	g := &guard{r: br}
	dec := json.NewDecoder(g)
	g.dec = dec
	i := 0
	at := func() ingest.Pos { return ingest.Pos{Element: fmt.Sprintf("point[%d]", i)} }
	bad := func(err error) error {
		switch {
		case errors.Is(err, errTooLarge):
			return ingest.Errorf(at(), "bad_json", "a point is larger than 1 MiB")
		case g.err != nil && errors.Is(err, g.err):
			return err // the reader's own failure
		}
		return ingest.Errorf(at(), "bad_json", "the file is not valid JSON here; it must hold Open mHealth points: one, an array of them, or one a line")
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return bad(err)
		}
	}
	for array && dec.More() || !array {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF && !array {
			if i == 0 {
				return ingest.Errorf(ingest.Pos{}, "empty_file", "the file holds no points")
			}
			return nil
		}
		if err != nil {
			return bad(err)
		}
		pos := at()
		p, err := omh.Parse(raw)
		if err != nil {
			return ingest.PointError(pos, err)
		}
		if err := sink.Reading(ingest.Item{Point: p, Pos: pos}); err != nil {
			return err
		}
		i++
	}
	if _, err := dec.Token(); err != nil {
		return bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ingest.Errorf(at(), "bad_json", "there is more after the array of points")
	}
	return nil
}
