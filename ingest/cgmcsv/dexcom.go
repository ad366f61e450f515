package cgmcsv

import (
	"io"
	"strings"

	"github.com/jupyterhealth/vault/ingest"
)

// Dexcom Clarity column names, in lower case: English, and German where a
// German export names the column differently.
var (
	dexTimestamp = []string{"timestamp (yyyy-mm-ddthh:mm:ss)", "zeitstempel (jjjj-mm-ttthh:mm:ss)"}
	dexEventType = []string{"event type", "ereignistyp", "ereignisart"}
	dexGlucose   = []string{"glucose value", "glukosewert"} // followed by the unit
	dexSourceID  = []string{"source device id", "quellgeräte-id"}
	dexDevice    = []string{"device info", "geräteinfo"}
)

// isDexcomHeader recognises the Clarity header row (in lower case).
func isDexcomHeader(lower string) bool {
	return containsAny(lower, dexTimestamp) && containsAny(lower, dexEventType) && containsAny(lower, dexGlucose)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isAny(s string, names []string) bool {
	for _, n := range names {
		if s == n {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(s, n) {
			return true
		}
	}
	return false
}

// SniffDexcom reports whether head, the start of a file, is a Dexcom
// Clarity CSV export: its first line is Clarity's header row.
func SniffDexcom(head []byte) bool {
	lines := headLinesOf(decodeHead(head), 1)
	return len(lines) == 1 && isDexcomHeader(strings.ToLower(fixText(lines[0])))
}

// dexEvent is what an Event Type means to the importer.
type dexEvent struct {
	name   string // Clarity's spelling, used as Skip.Type
	reason string // why it is skipped; "" for a reading
}

// The Clarity event types. Untimed rows of any type are the export's
// preamble (who the patient is, which devices and alert settings) and are
// skipped as metadata.
var dexEvents = map[string]dexEvent{
	"egv":         {name: "EGV"},
	"calibration": {name: "Calibration"},
	"firstname":   {"FirstName", reasonMetadata},
	"lastname":    {"LastName", reasonMetadata},
	"dateofbirth": {"DateOfBirth", reasonMetadata},
	"device":      {"Device", reasonMetadata},
	"alert":       {"Alert", "an alert the receiver or app raised, not a reading"},
	"insulin":     {"Insulin", "an insulin dose; the vault stores no insulin schema"},
	"carbs":       {"Carbs", "carbohydrate intake; the vault stores no nutrition schema"},
	"exercise":    {"Exercise", "an exercise event the user logged, with no measurement"},
	"health":      {"Health", "a health event the user logged (illness, stress, ...), not a reading"},
}

const (
	reasonMetadata = "export metadata (patient details, devices, alert settings), not a reading"
	reasonUnknown  = "an event type the vault does not read"
	typeUnknown    = "unrecognised event type"
	reasonNoValue  = "the row has no glucose value"
)

// ParseDexcom reads a Dexcom Clarity CSV export. EGV rows become
// blood-glucose points (interstitial fluid, sensed); Calibration rows, the
// fingerstick values the user entered, become blood-glucose points
// (capillary blood, self-reported). Every other row is skipped with a
// reason; see docs/importers/dexcom-clarity.md.
func ParseDexcom(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	t, err := openTable(r, isDexcomHeader)
	if err != nil {
		return err
	}
	if t == nil {
		return ingest.Errorf(ingest.Pos{Line: 1}, "unknown_format",
			"this is not a Dexcom Clarity CSV export: the first line must be Clarity's header row (Index, Timestamp (YYYY-MM-DDThh:mm:ss), Event Type, ..., Glucose Value (mg/dL) ...)")
	}
	d := dexcom{t: t, loc: o, em: emitter{sink: sink}, ts: -1, et: -1, glu: -1, src: -1, dev: -1}
	return d.run()
}

type dexcom struct {
	t   *table
	loc ingest.Options
	em  emitter
	// column indexes, -1 when absent
	ts, et, glu, src, dev int
	unit                  string
}

func (d *dexcom) run() error {
	if err := d.header(); err != nil {
		return err
	}
	for {
		rec, line, err := d.t.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := d.row(rec, ingest.Pos{Line: line}); err != nil {
			return err
		}
	}
}

// header reads rows up to Clarity's header row and maps its columns.
func (d *dexcom) header() error {
	for range headLines {
		rec, line, err := d.t.next()
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
		if !isDexcomHeader(strings.Join(lower, "\x00")) {
			continue
		}
		for i, n := range lower {
			switch {
			case strings.HasPrefix(n, "timestamp") || strings.HasPrefix(n, "zeitstempel"):
				setOnce(&d.ts, i)
			case isAny(n, dexEventType):
				setOnce(&d.et, i)
			case hasPrefixAny(n, dexGlucose):
				if d.glu < 0 {
					d.glu, d.unit = i, unitIn(n)
				}
			case isAny(n, dexSourceID):
				setOnce(&d.src, i)
			case isAny(n, dexDevice):
				setOnce(&d.dev, i)
			}
		}
		pos := ingest.Pos{Line: line}
		switch {
		case d.ts < 0 || d.et < 0 || d.glu < 0:
			return ingest.Errorf(pos, "unknown_format", "the header row lacks a Timestamp, Event Type or Glucose Value column")
		case d.unit == "":
			return ingest.Errorf(pos, "bad_unit", "the Glucose Value column names no unit; it must end in (mg/dL) or (mmol/L)")
		}
		return nil
	}
	return ingest.Errorf(ingest.Pos{Line: 1}, "unknown_format", "no Dexcom Clarity header row in the first lines")
}

func setOnce(p *int, i int) {
	if *p < 0 {
		*p = i
	}
}

func (d *dexcom) row(rec []string, pos ingest.Pos) error {
	if blank(rec) {
		return nil
	}
	et := strings.ToLower(cell(rec, d.et))
	ev, known := dexEvents[strings.ReplaceAll(et, " ", "")]
	ts := cell(rec, d.ts)
	switch {
	case !known:
		return d.em.skip(pos, typeUnknown, reasonUnknown)
	case ts == "" && ev.reason == "":
		return ingest.Errorf(pos, "bad_time", "an %s row has no Timestamp", ev.name)
	case ts == "":
		return d.em.skip(pos, ev.name, reasonMetadata)
	case ev.reason != "":
		return d.em.skip(pos, ev.name, ev.reason)
	}
	c, ok := parseYearFirst(ts)
	var at string
	if ok {
		at = c.text(d.loc.Loc())
	}
	if at == "" {
		msg := "the Timestamp column is not a date and time of the form YYYY-MM-DDThh:mm:ss"
		if _, dm := parseDayMonth(ts); dm {
			msg += "; the file looks re-saved by a spreadsheet, which rewrites dates: export it again from Clarity"
		}
		return ingest.Errorf(pos, "bad_time", "%s", msg)
	}
	v := cell(rec, d.glu)
	if v == "" {
		return d.em.skip(pos, ev.name, reasonNoValue)
	}
	if low, ok := rangeMarker(v); ok {
		return d.em.skip(pos, ev.name, rangeReason(low))
	}
	f, ok := number(v)
	if !ok {
		return ingest.Errorf(pos, "bad_value", "the Glucose Value column is not a number")
	}
	rd := reading{value: f, unit: d.unit, at: at, manufacturer: "Dexcom"}
	if rd.sourceName = name(cell(rec, d.src)); rd.sourceName == "" {
		rd.sourceName = name(cell(rec, d.dev))
	}
	if ev.name == "EGV" {
		rd.specimen, rd.modality = "interstitial fluid", "sensed"
	} else {
		rd.specimen, rd.modality = "capillary blood", "self-reported"
	}
	return d.em.reading(pos, &rd)
}
