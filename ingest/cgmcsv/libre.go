package cgmcsv

import (
	"io"
	"strconv"
	"strings"

	"github.com/jupyterhealth/vault/ingest"
)

// DateOrder says how a LibreView Device Timestamp such as 03-04-2024 is
// read.
type DateOrder int

const (
	// DateOrderAuto finds the order from the file: the first date whose
	// first or second number is above 12 decides it.
	DateOrderAuto DateOrder = iota
	// MonthFirst reads MM-DD-YYYY (LibreView's default, with a 12-hour
	// clock, in the United States).
	MonthFirst
	// DayFirst reads DD-MM-YYYY (24-hour accounts in Europe and elsewhere).
	DayFirst
)

// maxPending bounds the rows held back while the date order is unknown.
// Any export spanning more than twelve days settles the order long before.
const maxPending = 100000

// LibreView column names in lower case, English then German, with the unit
// removed from the glucose columns.
var (
	libreTimestamp = []string{"device timestamp", "meter timestamp", "gerätezeitstempel"}
	libreType      = []string{"record type", "aufzeichnungstyp"}
	libreDevice    = []string{"device", "gerät"}
	libreHistoric  = []string{"historic glucose", "glukosewert-verlauf"}
	libreScan      = []string{"scan glucose", "glukose-scan"}
	libreStrip     = []string{"strip glucose", "glukose-teststreifen"}
)

// isLibreHeader recognises the LibreView header row (in lower case).
func isLibreHeader(lower string) bool {
	return containsAny(lower, libreTimestamp) && containsAny(lower, libreType)
}

// SniffLibre reports whether head, the start of a file, is a LibreView CSV
// export: one of its first lines is LibreView's header row.
func SniffLibre(head []byte) bool {
	for _, line := range headLinesOf(decodeHead(head), headLines) {
		if isLibreHeader(strings.ToLower(fixText(line))) {
			return true
		}
	}
	return false
}

// ParseLibre reads a LibreView (FreeStyle Libre) CSV export, finding the
// order of day and month in its dates from the dates themselves. It is
// [ParseLibreDateOrder] with [DateOrderAuto].
func ParseLibre(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	return ParseLibreDateOrder(r, o, DateOrderAuto, sink)
}

// ParseLibreDateOrder reads a LibreView CSV export. Record type 0
// (historic) and 1 (scan) become blood-glucose points (interstitial fluid,
// sensed), record type 2 (a test strip in the reader) a blood-glucose point
// (capillary blood, sensed); the other record types are skipped with a
// reason. See docs/importers/libreview.md.
//
// Device Timestamp has no offset and is read in o.Loc(). Dates written
// A-B-YYYY are read in order; with DateOrderAuto a file whose dates never
// tell the order apart (no day after the 12th) is refused with code
// "ambiguous_date" rather than guessed.
func ParseLibreDateOrder(r io.Reader, o ingest.Options, order DateOrder, sink ingest.Sink) error {
	t, err := openTable(r, isLibreHeader)
	if err != nil {
		return err
	}
	if t == nil {
		return ingest.Errorf(ingest.Pos{Line: 1}, "unknown_format",
			"this is not a LibreView CSV export: none of the first lines is LibreView's header row (Device, Serial Number, Device Timestamp, Record Type, Historic Glucose mg/dL, ...)")
	}
	l := libre{t: t, o: o, order: order, em: emitter{sink: sink}, ts: -1, typ: -1, dev: -1}
	for i := range l.glu {
		l.glu[i] = -1
	}
	return l.run()
}

type libre struct {
	t     *table
	o     ingest.Options
	order DateOrder
	em    emitter
	// column indexes, -1 when absent
	ts, typ, dev int
	glu          [3]int    // historic, scan, strip
	unit         [3]string // their units
	// rows held back, in order, until the date order is known
	pending []libreRow
	firstAt ingest.Pos // the first held-back row that needs the order
}

// libreRow is a row checked in full except for what depends on the date
// order.
type libreRow struct {
	pos        ingest.Pos
	skipType   string // set when the row is skipped
	skipReason string
	kind       int // record type 0, 1 or 2
	value      float64
	device     string
	ymd        clock // when the date is written year first (hasYMD)
	hasYMD     bool
	dm         dayMonth
}

var gluNames = [3]string{"Historic Glucose", "Scan Glucose", "Strip Glucose"}

func (l *libre) run() error {
	if err := l.header(); err != nil {
		return err
	}
	for {
		rec, line, err := l.t.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if blank(rec) {
			continue
		}
		row, needsOrder, err := l.classify(rec, ingest.Pos{Line: line})
		if err != nil {
			return err
		}
		if l.order == DateOrderAuto && (needsOrder || len(l.pending) > 0) {
			if len(l.pending) == 0 {
				l.firstAt = row.pos
			}
			if len(l.pending) == maxPending {
				return ingest.Errorf(l.firstAt, "ambiguous_date",
					"the Device Timestamp dates of the first %d rows could be read day-first or month-first (none has a day after the 12th); set the date order for this import", maxPending)
			}
			l.pending = append(l.pending, row)
			continue
		}
		if err := l.flush(); err != nil {
			return err
		}
		if err := l.emit(&row); err != nil {
			return err
		}
	}
	if l.order == DateOrderAuto && len(l.pending) > 0 {
		return ingest.Errorf(l.firstAt, "ambiguous_date",
			"the Device Timestamp dates could be read day-first or month-first (none has a day after the 12th); set the date order for this import")
	}
	return l.flush()
}

// header reads rows up to LibreView's header row (the title line before
// it, which names the patient, is never looked at) and maps its columns.
func (l *libre) header() error {
	for range headLines {
		rec, line, err := l.t.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		lower := make([]string, len(rec))
		for i := range rec {
			lower[i] = strings.ToLower(strings.TrimSpace(fixText(rec[i])))
		}
		if !isLibreHeader(strings.Join(lower, "\x00")) {
			continue
		}
		for i, n := range lower {
			unit := unitIn(n)
			base := n
			if unit != "" {
				base = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(n, ")"), strings.ToLower(unit)))
				base = strings.TrimSpace(strings.TrimSuffix(base, "("))
			}
			switch {
			case isAny(n, libreTimestamp):
				setOnce(&l.ts, i)
			case isAny(n, libreType):
				setOnce(&l.typ, i)
			case isAny(n, libreDevice):
				setOnce(&l.dev, i)
			default:
				for k, names := range [3][]string{libreHistoric, libreScan, libreStrip} {
					if isAny(base, names) && l.glu[k] < 0 {
						if unit == "" {
							return ingest.Errorf(ingest.Pos{Line: line}, "bad_unit",
								"the %s column names no unit; it must end in mg/dL or mmol/L", gluNames[k])
						}
						l.glu[k], l.unit[k] = i, unit
					}
				}
			}
		}
		if l.ts < 0 || l.typ < 0 || l.glu[0] < 0 && l.glu[1] < 0 && l.glu[2] < 0 {
			return ingest.Errorf(ingest.Pos{Line: line}, "unknown_format",
				"the header row lacks a Device Timestamp, Record Type or glucose column (Historic, Scan or Strip Glucose)")
		}
		return nil
	}
	return ingest.Errorf(ingest.Pos{Line: 1}, "unknown_format", "no LibreView header row in the first lines")
}

// The reasons other record types are skipped.
var libreSkips = map[int]string{
	3: "a blood ketone reading; the vault stores no ketone schema",
	4: "an insulin dose; the vault stores no insulin schema",
	5: "food the user logged; the vault stores no nutrition schema",
	6: "a note or event (such as a sensor start or a time change), not a reading",
}

// classify checks a row. needsOrder says whether its date can only be read
// once the date order is known. A row whose date settles the order sets it.
func (l *libre) classify(rec []string, pos ingest.Pos) (row libreRow, needsOrder bool, err error) {
	row.pos = pos
	ts := cell(rec, l.ts)
	rt := cell(rec, l.typ)
	kind, ok := recordType(rt)
	if !ok {
		return row, false, ingest.Errorf(pos, "bad_value", "the Record Type column is not a record type number")
	}
	row.kind = kind
	if kind > 2 {
		row.skipType = "record type " + strconv.Itoa(kind)
		if row.skipReason = libreSkips[kind]; row.skipReason == "" {
			row.skipReason = "a record type the vault does not read"
		}
		return row, false, l.evidence(ts, pos, false)
	}
	row.skipType = "record type " + strconv.Itoa(kind)
	col := l.glu[kind]
	v := cell(rec, col)
	switch {
	case col < 0:
		row.skipReason = "the export has no " + gluNames[kind] + " column"
		return row, false, l.evidence(ts, pos, false)
	case v == "":
		row.skipReason = reasonNoValue
		return row, false, l.evidence(ts, pos, false)
	}
	if low, ok := rangeMarker(v); ok {
		row.skipReason = rangeReason(low)
		return row, false, l.evidence(ts, pos, false)
	}
	if row.value, ok = number(v); !ok {
		return row, false, ingest.Errorf(pos, "bad_value", "the %s column is not a number", gluNames[kind])
	}
	row.skipType = ""
	row.device = name(cell(rec, l.dev))
	if row.ymd, row.hasYMD = parseYearFirst(ts); row.hasYMD {
		return row, false, nil
	}
	if row.dm, ok = parseDayMonth(ts); !ok {
		if ts == "" {
			return row, false, ingest.Errorf(pos, "bad_time", "the Device Timestamp column is empty")
		}
		return row, false, ingest.Errorf(pos, "bad_time",
			"the Device Timestamp column is not a date and time such as MM-DD-YYYY hh:mm AM or DD-MM-YYYY HH:mm")
	}
	if err := l.evidence(ts, pos, true); err != nil {
		return row, false, err
	}
	if _, dayOK := row.dm.as(true); !dayOK {
		if _, monthOK := row.dm.as(false); !monthOK {
			return row, false, ingest.Errorf(pos, "bad_time", "the Device Timestamp column is not a valid date in either day-month or month-day order")
		}
	}
	return row, l.order == DateOrderAuto && row.dm.a != row.dm.b, nil
}

// evidence settles the date order from a date that only one order reads:
// its first number above 12 means day first, its second month first. A
// reading's date that contradicts the order settled before is an error;
// other rows' dates only count while the order is open.
func (l *libre) evidence(ts string, pos ingest.Pos, reading bool) error {
	dm, ok := parseDayMonth(ts)
	if !ok || (dm.a > 12) == (dm.b > 12) {
		return nil
	}
	order := MonthFirst
	if dm.a > 12 {
		order = DayFirst
	}
	if _, valid := dm.as(order == DayFirst); !valid {
		if reading {
			return ingest.Errorf(pos, "bad_time", "the Device Timestamp column is not a valid date in either day-month or month-day order")
		}
		return nil
	}
	switch {
	case l.order == DateOrderAuto:
		l.order = order
	case l.order != order && reading:
		return ingest.Errorf(pos, "bad_time",
			"the Device Timestamp column is not a valid date in the %s order the rest of the file uses", orderName(l.order))
	}
	return nil
}

func orderName(o DateOrder) string {
	if o == DayFirst {
		return "day-month-year"
	}
	return "month-day-year"
}

// recordType reads a record type: one to three digits.
func recordType(s string) (int, bool) {
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// flush emits the held-back rows, once the order is known.
func (l *libre) flush() error {
	for i := range l.pending {
		if err := l.emit(&l.pending[i]); err != nil {
			return err
		}
	}
	l.pending = l.pending[:0]
	return nil
}

func (l *libre) emit(row *libreRow) error {
	if row.skipType != "" {
		return l.em.skip(row.pos, row.skipType, row.skipReason)
	}
	c := row.ymd
	if !row.hasYMD {
		var ok bool
		if c, ok = row.dm.as(l.order == DayFirst || row.dm.a == row.dm.b); !ok {
			return ingest.Errorf(row.pos, "bad_time",
				"the Device Timestamp column is not a valid date in the %s order the rest of the file uses", orderName(l.order))
		}
	}
	at := c.text(l.o.Loc())
	if at == "" {
		return ingest.Errorf(row.pos, "bad_time", "the Device Timestamp is out of range")
	}
	rd := reading{value: row.value, unit: l.unit[row.kind], at: at, manufacturer: "Abbott", sourceName: row.device,
		specimen: "interstitial fluid", modality: "sensed"}
	if row.kind == 2 {
		rd.specimen = "capillary blood"
	}
	return l.em.reading(row.pos, &rd)
}
