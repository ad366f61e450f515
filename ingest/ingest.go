// Package ingest turns the files patients actually have (an Apple Health
// export, a CGM maker's CSV download, Nightscout entries, FHIR R4
// Observations) into Open mHealth points the vault stores.
//
// Each format lives in its own package (ingest/apple, ingest/cgmcsv,
// ingest/nightscout, ingest/fhirobs) as a [Parser]: it streams its input,
// token by token or row by row, and hands every reading to a [Sink] as an
// *omh.Point built through omh.Parse, so an imported reading is validated
// and normalised exactly as one posted to the API. A parser never sets a
// uuid the source does not have: the vault derives one under the patient's
// dedup key from the point's content, so importing the same file twice
// stores nothing new. Where the source has a stable id of its own
// (Nightscout's _id, a FHIR Observation's id), it is the point's header id,
// which omh keeps as the source id and the vault derives the uuid from.
//
// A parser reports rows it deliberately leaves out (a CGM calibration
// event, an Apple record type the vault has no schema for) to
// [Sink.Skipped], and refuses malformed input with an [*Error] naming the
// line or element, never the value found there.
package ingest

import (
	"fmt"
	"io"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// Format names, as ?format= and --format take them.
const (
	FormatApple      = "apple-health"   // export.zip, or the export.xml inside it
	FormatDexcom     = "dexcom-clarity" // Dexcom Clarity CSV export
	FormatLibre      = "libreview"      // LibreView (FreeStyle Libre) CSV export
	FormatNightscout = "nightscout"     // Nightscout entries JSON
	FormatFHIR       = "fhir"           // FHIR R4 Observation or Bundle (JSON)
	FormatOMH        = "omh"            // Open mHealth points: one, an array, or NDJSON
)

// Options for one parse.
type Options struct {
	// Location reads timestamps that carry no offset: the patient's time
	// zone. Nil means UTC.
	Location *time.Location
	// DateOrder says how to read a date such as 03-04-2025 in a format
	// whose dates don't say (LibreView's CSV): "" finds it from the file,
	// or DateMonthFirst, DateDayFirst.
	DateOrder string
}

// Date orders for Options.DateOrder.
const (
	DateMonthFirst = "month-first"
	DateDayFirst   = "day-first"
)

// Loc returns o.Location, or UTC when it is nil.
func (o Options) Loc() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// Pos says where in the input something is: a 1-based line (CSV, XML,
// NDJSON), and for structured input the element (an XML element name with
// its ordinal, a JSON path such as "entry[3].resource"). Either may be zero.
type Pos struct {
	Line    int    `json:"line,omitempty"`
	Element string `json:"element,omitempty"`
}

func (p Pos) String() string {
	switch {
	case p.Line > 0 && p.Element != "":
		return fmt.Sprintf("line %d (%s)", p.Line, p.Element)
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	case p.Element != "":
		return p.Element
	}
	return "the input"
}

// Item is one reading found in the input.
type Item struct {
	Point *omh.Point
	Pos   Pos
}

// Skip is a record left out on purpose, with the reason a person reads.
type Skip struct {
	Pos    Pos    `json:"pos"`
	Type   string `json:"type"`   // the source's own type, such as "HKQuantityTypeIdentifierBodyFatPercentage" or "Calibration"
	Reason string `json:"reason"` // such as "no Open mHealth schema for this type"
}

// Sink receives what a parser finds, in input order. An error it returns
// stops the parse and is returned by the parser unchanged.
type Sink interface {
	Reading(Item) error
	Skipped(Skip) error
}

// Parser reads one format from r into sink. It returns an [*Error] for
// malformed input, the sink's error, or a read error.
type Parser func(r io.Reader, o Options, sink Sink) error

// Error is malformed input: the import is refused as a whole.
type Error struct {
	Pos     Pos
	Code    string // stable, such as "bad_csv", "bad_xml", "bad_value", "bad_time"
	Message string // names the field or column, never the value found there
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Message }

// Errorf makes an *Error.
func Errorf(pos Pos, code, format string, args ...any) *Error {
	return &Error{Pos: pos, Code: code, Message: fmt.Sprintf(format, args...)}
}

// PointError wraps an omh.Parse refusal of a point a parser built, keeping
// omh's code and field (never the value).
func PointError(pos Pos, err error) *Error {
	if oe, ok := err.(*omh.Error); ok {
		msg := oe.Message
		if oe.Field != "" {
			msg = oe.Field + ": " + msg
		}
		return &Error{Pos: pos, Code: oe.Code, Message: msg}
	}
	return &Error{Pos: pos, Code: "bad_point", Message: "the reading is not a valid Open mHealth point"}
}
