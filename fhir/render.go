package fhir

import (
	"bytes"
	"math"
	"slices"
	"strconv"

	"github.com/jupyterhealth/vault/export"
)

// Rendering a page of Observations fast.
//
// The export's mapping (export.ObservationWriter) parses each stored
// reading in full, validation included, before writing its Observation:
// about 5 µs a reading, most of a 1,000-reading page's CPU. But the
// readings of a page are nearly all alike: a CGM's 288 readings a day
// differ only in their uuid, their two times and their value. So a page
// renders through a renderer that, for each "shape" of stored reading (its
// canonical bytes with those four holes cut out), asks the export's
// mapping once, derives a template from it, and fills the template for
// every other reading of the same shape. There is one mapping, the
// export's: the template is what it wrote.
//
// How a template is made, and why it is exact:
//
//   - The shape's first reading is rendered by the mapping (its answer is
//     used as is), and so is a probe: the same bytes with distinct
//     sentinels in the holes. Where each sentinel shows up in the probe's
//     Observation is where the template puts that hole's text; everything
//     else is copied. A sentinel found other than exactly once (or the
//     creation time found at all) leaves the shape without a template:
//     its readings are rendered one by one, as before.
//   - The template, filled with the first reading's holes, must give
//     exactly the mapping's answer, codes included; otherwise no template.
//   - A hole's text reaches the Observation unchanged only under
//     conditions the mapping has for it: the date-time is one R4 accepts as
//     written (the export keeps it then, else it reformats the time), the
//     value is written the way the export writes numbers. A reading whose
//     holes miss a condition goes through the mapping.
//
// TestRenderMatchesExport compares the two on every reading of the omh
// package's corpus and on edge values, byte for byte.

// Sentinels for the probe: valid for omh.Parse, and text no real
// Observation holds by chance (each is looked for exactly once).
const (
	probeID       = "probe-0q9w8e7r6t5y4u3i2o1p"
	probeUUID     = "f0e1d2c3-b4a5-4968-8776-a5b4c3d2e1f0"
	probeTime     = "1999-12-31T23:58:59.123456789Z"
	probeCreated  = "1998-11-30T22:57:58.987654321Z"
	probeSourceID = "probe-source-m1n2b3v4c5x6z7"
)

// renderer renders one page's Observations: one goroutine, one request.
type renderer struct {
	ow        *export.ObservationWriter
	templates map[string]*template // by shape; nil: render one by one
	probes    int
	shape     []byte // scratch for shapeKey
}

// maxProbes bounds the templates one page makes: a page whose readings
// are all different shapes renders them one by one, at most 2×maxProbes
// extra mapping calls.
const maxProbes = 16

func newRenderer(patient string) (*renderer, error) {
	ow, err := export.NewObservationWriter(patient)
	if err != nil {
		return nil, err
	}
	return &renderer{ow: ow, templates: map[string]*template{}}, nil
}

// The holes of a stored reading, in the order of its bytes.
const (
	holeUUID     = iota // header.uuid (absent when the source sent none)
	holeCreated         // header.source_creation_date_time
	holeSourceID        // header.x_vault.source_id (the source's own id, when not a UUID; optional)
	holeValue           // the body's first unit-value's value
	holeTime            // body.effective_time_frame.date_time
	nHoles
	holeID = nHoles // the resource id, in the template only
)

// holes are where a stored reading's variable parts are: [start, end)
// offsets into its bytes; start -1 for an absent optional one.
type holes [nHoles][2]int

// template is a shape's Observation in pieces: lit[0] hole[0] lit[1] …
type template struct {
	lit   [][]byte
	hole  []int // holeID, holeUUID, …
	codes export.ObservationCodes
}

// appendObservation appends the Observation for one stored reading, with
// the export's mapping's exact bytes, and returns its codes.
func (r *renderer) appendObservation(dst []byte, id string, point []byte) ([]byte, export.ObservationCodes, error) {
	h, ok := findHoles(point)
	if !ok {
		return r.ow.Append(dst, id, point)
	}
	r.shape = shapeKey(r.shape[:0], point, h)
	t, seen := r.templates[string(r.shape)]
	if seen && t != nil {
		return t.fill(dst, id, point, h), t.codes, nil
	}
	if seen || r.probes >= maxProbes {
		return r.ow.Append(dst, id, point)
	}
	mark := len(dst)
	dst, codes, err := r.ow.Append(dst, id, point)
	if err != nil {
		return dst, codes, err
	}
	r.probes++
	t = r.makeTemplate(point, h)
	if t != nil && (!bytes.Equal(t.fill(nil, id, point, h), dst[mark:]) || !slices.Equal(t.codes.LOINC, codes.LOINC) || t.codes.Category != codes.Category) {
		t = nil
	}
	r.templates[string(r.shape)] = t
	return dst, codes, nil
}

// fill writes the template with one reading's holes.
func (t *template) fill(dst []byte, id string, point []byte, h holes) []byte {
	for i, l := range t.lit {
		dst = append(dst, l...)
		if i == len(t.hole) {
			break
		}
		if k := t.hole[i]; k == holeID {
			dst = append(dst, id...)
		} else {
			dst = append(dst, point[h[k][0]:h[k][1]]...)
		}
	}
	return dst
}

// makeTemplate renders the probe and cuts its Observation at the
// sentinels; nil when the shape cannot have one.
func (r *renderer) makeTemplate(point []byte, h holes) *template {
	value := probeValue(point[h[holeValue][0]:h[holeValue][1]])
	if value == "" {
		return nil
	}
	sentinel := [nHoles + 1]string{holeUUID: probeUUID, holeCreated: probeCreated, holeSourceID: probeSourceID,
		holeValue: value, holeTime: probeTime, holeID: probeID}
	// The probe: the reading with the holes replaced (they are in order).
	probe := make([]byte, 0, len(point)+64)
	prev := 0
	for k := range nHoles {
		if h[k][0] < 0 {
			continue
		}
		probe = append(probe, point[prev:h[k][0]]...)
		probe = append(probe, sentinel[k]...)
		prev = h[k][1]
	}
	probe = append(probe, point[prev:]...)
	out, codes, err := r.ow.Append(nil, probeID, probe)
	if err != nil {
		return nil
	}
	// Each sentinel is in the Observation once (that is where the hole's
	// text goes) or not at all (the hole does not show); the id must be.
	type found struct{ at, hole int }
	var fs []found
	for k, s := range sentinel {
		switch n := bytes.Count(out, []byte(s)); {
		case n == 1 && (k == holeID || h[k][0] >= 0):
			fs = append(fs, found{bytes.Index(out, []byte(s)), k})
		case n == 0 && k != holeID:
		default:
			return nil
		}
	}
	slices.SortFunc(fs, func(a, b found) int { return a.at - b.at })
	t := &template{codes: codes}
	prev = 0
	for _, f := range fs {
		if f.at < prev {
			return nil // overlapping sentinels
		}
		t.lit = append(t.lit, out[prev:f.at])
		t.hole = append(t.hole, f.hole)
		prev = f.at + len(sentinel[f.hole])
	}
	t.lit = append(t.lit, out[prev:])
	return t
}

// probeValue is a sentinel for a value: the value with a distinctive
// fraction added, so that it stays in whatever range the schema allows.
// "" when the value has no such neighbour written plainly.
func probeValue(text []byte) string {
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return ""
	}
	p := f + 0.000123457
	if math.Abs(f) >= 1e9 || p == f {
		return ""
	}
	return strconv.FormatFloat(p, 'f', -1, 64)
}

// Where the holes are in the canonical form (omh.Point.AppendJSON): the
// uuid and the creation time are the header's first members (the uuid is
// absent when the source sent none), the source id is x_vault's last
// member, the value is the body's first "value", the time its
// effective_time_frame.date_time. Quotes inside strings are escaped in
// canonical JSON, so these patterns match only members; a member of the
// same name nested elsewhere is caught by the probe.
var (
	preHeader   = []byte(`{"header":{`)
	preUUID     = []byte(`{"header":{"uuid":"`)
	preCreated  = []byte(`"source_creation_date_time":"`)
	preSourceID = []byte(`"source_id":"`)
	preBody     = []byte(`},"body":{`)
	preTime     = []byte(`"effective_time_frame":{"date_time":"`)
	preValue    = []byte(`":{"value":`)
)

// findHoles finds the holes of a reading in canonical form, and checks
// the conditions under which the mapping copies them unchanged; false
// sends the reading through the mapping.
func findHoles(b []byte) (h holes, ok bool) {
	if !bytes.HasPrefix(b, preHeader) {
		return h, false
	}
	h[holeUUID][0] = -1
	from := len(preHeader)
	if bytes.HasPrefix(b, preUUID) {
		h[holeUUID] = [2]int{len(preUUID), len(preUUID) + 36}
		if len(b) < h[holeUUID][1]+1 || b[h[holeUUID][1]] != '"' || !isLowerUUID(b[h[holeUUID][0]:h[holeUUID][1]]) {
			return h, false
		}
		from = h[holeUUID][1]
	}
	var found bool
	if h[holeCreated], found = stringAfter(b, from, preCreated); !found {
		return h, false
	}
	body := bytes.Index(b[h[holeCreated][1]:], preBody)
	if body < 0 {
		return h, false
	}
	body += h[holeCreated][1]
	h[holeSourceID][0] = -1
	if i := bytes.LastIndex(b[h[holeCreated][1]:body], preSourceID); i >= 0 {
		if h[holeSourceID], found = stringAfter(b, h[holeCreated][1]+i, preSourceID); !found || h[holeSourceID][1] > body {
			return h, false
		}
	}
	body += len(preBody)
	v := bytes.Index(b[body:], preValue)
	if v < 0 {
		return h, false
	}
	start := body + v + len(preValue)
	end := start
	for end < len(b) && (b[end] >= '0' && b[end] <= '9' || b[end] == '-' || b[end] == '.') {
		end++
	}
	h[holeValue] = [2]int{start, end}
	if end == start || end >= len(b) || (b[end] != ',' && b[end] != '}') || !plainNumber(b[start:end]) {
		return h, false
	}
	if h[holeTime], found = stringAfter(b, end, preTime); !found || !fhirDateTimeAsIs(b[h[holeTime][0]:h[holeTime][1]]) {
		return h, false
	}
	return h, true
}

// stringAfter finds pre at or after from and the JSON string it opens
// (without quotes); the string may hold no escape.
func stringAfter(b []byte, from int, pre []byte) ([2]int, bool) {
	i := bytes.Index(b[from:], pre)
	if i < 0 {
		return [2]int{}, false
	}
	start := from + i + len(pre)
	n := bytes.IndexByte(b[start:], '"')
	if n < 0 || bytes.IndexByte(b[start:start+n], '\\') >= 0 {
		return [2]int{}, false
	}
	return [2]int{start, start + n}, true
}

func isLowerUUID(u []byte) bool {
	for i, c := range u {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// fhirDateTimeAsIs is the export's rule for keeping a point's date-time
// text in an Observation (R4's dateTime, less a leap second, an offset
// beyond 14 hours and the year 0000), narrowed to the RFC 3339 texts the
// omh package stores: yyyy-mm-ddThh:mm:ss[.f…](Z|±hh:mm).
// TestRenderMatchesExport checks it against the mapping.
func fhirDateTimeAsIs(s []byte) bool {
	if len(s) < 20 || len(s) > 35 || s[10] != 'T' || string(s[:4]) == "0000" || string(s[17:19]) == "60" {
		return false
	}
	if s[len(s)-1] == 'Z' {
		return true
	}
	if len(s) < 25 {
		return false
	}
	off := s[len(s)-6:]
	if (off[0] != '+' && off[0] != '-') || off[3] != ':' {
		return false
	}
	hh := int(off[1]-'0')*10 + int(off[2]-'0')
	mm := int(off[4]-'0')*10 + int(off[5]-'0')
	return hh*60+mm <= 14*60
}

// plainNumber reports whether a stored number is written as the export
// writes it (the shortest round-trip decimal, plain between 1e-6 and
// 1e21), so copying its text writes what the mapping would.
func plainNumber(s []byte) bool {
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return false
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return false
	}
	var buf [32]byte
	return bytes.Equal(strconv.AppendFloat(buf[:0], f, 'f', -1, 64), s)
}

// shapeKey appends the reading with its holes emptied to k.
func shapeKey(k, b []byte, h holes) []byte {
	prev := 0
	for _, c := range h {
		if c[0] < 0 {
			continue
		}
		k = append(k, b[prev:c[0]]...)
		k = append(k, 0)
		prev = c[1]
	}
	return append(k, b[prev:]...)
}
