package export

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// The export formats.
const (
	FormatOMH  = "omh"  // NDJSON of canonical OMH data points (the default)
	FormatFHIR = "fhir" // NDJSON of FHIR R4 Observations, Bulk Data style
	FormatCSV  = "csv"  // RFC 4180 CSV with a header row
)

// Encoder renders readings in one export format. An Encoder is used by one
// goroutine; it may keep scratch buffers between calls.
type Encoder interface {
	// Header returns what precedes the first record (CSV's header row,
	// ending in "\n"), or nil.
	Header() []byte
	// AppendRecord appends one reading, given as its canonical OMH JSON point
	// (one line, no newline, as the vault stores it), as one line ending in
	// '\n', to dst. On an error it returns dst unchanged.
	AppendRecord(dst []byte, point []byte) ([]byte, error)
}

var (
	// ErrUnknownFormat is wrapped by NewEncoder's error for a format other
	// than those Formats lists.
	ErrUnknownFormat = errors.New("export: unknown format")
	// ErrUnsupported is wrapped by AppendRecord's error for a reading whose
	// schema has no form in the encoder's format (see Supports).
	ErrUnsupported = errors.New("export: schema has no form in this format")
	// ErrBadPatient is wrapped by NewEncoder's error when the patient id
	// cannot be written as the format needs (a FHIR id, for fhir).
	ErrBadPatient = errors.New("export: patient id is not usable in this format")
	// ErrBadPoint is wrapped by AppendRecord's error for bytes that are not
	// a data point omh.Parse accepts. The wrapped *omh.Error names the
	// member, never its value.
	ErrBadPoint = errors.New("export: stored point does not parse")
)

var formats = []string{FormatOMH, FormatFHIR, FormatCSV}

// Formats lists the format names, default first. The slice is a fresh copy.
func Formats() []string { return append([]string(nil), formats...) }

// Extension returns the file name extension for a format: "ndjson" for omh
// and fhir, "csv" for csv, "" for an unknown format.
func Extension(format string) string {
	switch format {
	case FormatOMH, FormatFHIR:
		return "ndjson"
	case FormatCSV:
		return "csv"
	}
	return ""
}

// NewEncoder returns the encoder for format "omh", "fhir" or "csv". patient
// is the vault patient id (like "pt_abcd..."), used for FHIR subject
// references. An unknown format is an error wrapping ErrUnknownFormat.
func NewEncoder(format, patient string) (Encoder, error) {
	switch format {
	case FormatOMH:
		return omhEncoder{}, nil
	case FormatFHIR:
		return newFHIREncoder(patient)
	case FormatCSV:
		return newCSVEncoder(), nil
	}
	return nil, fmt.Errorf("%w; use one of %s", ErrUnknownFormat, strings.Join(formats, ", "))
}

// Supports reports whether readings of schema (an id such as
// "omh:sleep-episode:1.1"; a version the vault accepts, or none, maps to
// the canonical one) can be exported in format. omh and csv carry every
// schema the vault stores; fhir carries all but omh:physical-activity,
// which has no standard Observation coding (see docs/export.md, Formats).
// An unknown format or schema is false.
func Supports(format, schema string) bool {
	id, err := omh.ParseSchemaID(schema)
	if err != nil {
		return false
	}
	canon, ok := omh.CanonicalSchema(id)
	if !ok {
		return false
	}
	switch format {
	case FormatOMH, FormatCSV:
		return true
	case FormatFHIR:
		return fhirSupports(canon)
	}
	return false
}

// omhEncoder writes the stored point as it is. It does not parse: it is the
// hot path, and the vault stores only canonical points.
type omhEncoder struct{}

func (omhEncoder) Header() []byte { return nil }

func (omhEncoder) AppendRecord(dst, point []byte) ([]byte, error) {
	dst = append(dst, point...)
	return append(dst, '\n'), nil
}

// parsePoint parses a stored point for the encoders that read it.
func parsePoint(point []byte) (*omh.Point, error) {
	p, err := omh.Parse(point)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPoint, err)
	}
	return p, nil
}

// appendNumber appends f exactly as the omh package writes numbers in the
// canonical JSON the vault stores (the shortest decimal that parses back to
// f, plain between 1e-6 and 1e21, exponent form outside, as encoding/json
// does), so every value in an export has the digits of the stored point.
func appendNumber(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json does.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// provenance is the source a point's header names: its external_datasheets
// references (an OMH 1.x acquisition_provenance.source_name is one, of type
// "source_name"), each prefixed by its datasheet_type unless that is empty
// or "source_name", joined by "; ". It is "" when the header names none.
func provenance(h omh.Header) string {
	ds := h.ExternalDatasheets
	switch len(ds) {
	case 0:
		return ""
	case 1:
		if ds[0].Type == "" || ds[0].Type == "source_name" {
			return ds[0].Reference
		}
	}
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteString("; ")
		}
		if d.Type != "" && d.Type != "source_name" {
			b.WriteString(d.Type)
			b.WriteString(": ")
		}
		b.WriteString(d.Reference)
	}
	return b.String()
}

// Lengths of the duration units, as the omh package counts them: a day is
// 24 hours; whole months and years are calendar ones, fractional ones
// Gregorian averages.
var unitNanos = map[string]float64{
	"ps": 1e-3, "ns": 1, "us": 1e3, "ms": 1e6, "sec": 1e9, "min": 60e9, "h": 3600e9,
	"d": 86400e9, "wk": 7 * 86400e9,
	"Mo": 365.2425 * 86400e9 / 12, "yr": 365.2425 * 86400e9,
}

// addDuration returns start + d, false when the result is not a date-time
// RFC 3339 can write (years 0000 to 9999) or d is too long to add.
func addDuration(start time.Time, d omh.UnitValue) (time.Time, bool) {
	v := d.Value
	var t time.Time
	switch {
	case (d.Unit == "Mo" || d.Unit == "yr") && v == math.Trunc(v) && math.Abs(v) <= 12*10000:
		if d.Unit == "yr" {
			t = start.AddDate(int(v), 0, 0)
		} else {
			t = start.AddDate(0, int(v), 0)
		}
	default:
		per, ok := unitNanos[d.Unit]
		if !ok {
			return time.Time{}, false
		}
		ns := math.Round(v * per)
		if math.IsNaN(ns) || math.Abs(ns) > float64(math.MaxInt64)/2 {
			return time.Time{}, false
		}
		t = start.Add(time.Duration(ns))
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// interval is a reading's time: its start (omh.Point.Time) and, for a
// time_interval, its end.
type interval struct {
	start, end time.Time
	startText  string // the start as the point gave it, "" when computed
	endText    string // the end as the point gave it, "" when computed
	isInterval bool
	hasEnd     bool // the interval's end is known (start plus duration may not be computable)
}

// timeOf returns the reading's time frame: the date_time, or the interval
// with its end (given, or start plus duration).
func timeOf(p *omh.Point) interval {
	tf := p.Body.TimeFrame()
	if tf.TimeInterval == nil {
		return interval{start: p.Time, startText: tf.DateTime.Text}
	}
	ti := tf.TimeInterval
	iv := interval{start: p.Time, isInterval: true, startText: ti.StartDateTime.Text}
	switch {
	case !ti.EndDateTime.IsZero():
		iv.end, iv.endText, iv.hasEnd = ti.EndDateTime.Time, ti.EndDateTime.Text, true
	case ti.Duration != nil:
		iv.end, iv.hasEnd = addDuration(p.Time, *ti.Duration)
	}
	return iv
}

// minutesBetween returns end - start in minutes, without time.Duration's
// 292-year limit.
func minutesBetween(start, end time.Time) float64 {
	secs := float64(end.Unix() - start.Unix())
	nanos := float64(end.Nanosecond() - start.Nanosecond())
	return (secs + nanos/1e9) / 60
}

// breaksLine reports whether r may end or disturb a line for some reader:
// C0 controls (CR and LF among them), DEL, NEL and the Unicode line and
// paragraph separators (Python's str.splitlines splits on all of them).
func breaksLine(r rune) bool {
	return r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029
}
