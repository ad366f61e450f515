package export

import (
	"encoding/csv"
	"fmt"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// csvColumns is the CSV header row.
var csvColumns = []string{"uuid", "schema", "time", "end_time", "value", "unit", "value2", "unit2", "source", "body"}

// csvEncoder writes RFC 4180 CSV through encoding/csv, one row per reading
// (LF line ends). Every cell is on one line: the free text, source, has its
// line-breaking characters replaced (see sourceCell), body is JSON with
// them escaped (see bodyCell), and the other cells are numbers, UTC times
// and fixed vocabulary.
//
// value to unit2 are the typed schemas' columns. A reading of a schema
// without a typed model (an *omh.Document) leaves them empty and has its
// body, in the canonical JSON the vault stores, in the body column; a
// typed reading's body cell is empty.
type csvEncoder struct {
	out    appendWriter
	w      *csv.Writer
	header []byte
	row    [10]string
	num    []byte // scratch for formatting numbers
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func newCSVEncoder() *csvEncoder {
	e := &csvEncoder{}
	e.w = csv.NewWriter(&e.out)
	e.header = e.writeRow(nil, csvColumns)
	return e
}

func (e *csvEncoder) Header() []byte { return e.header }

// writeRow appends one CSV record to dst. Writing to an appendWriter cannot
// fail, and the fields hold no line break, so the record is one line.
func (e *csvEncoder) writeRow(dst []byte, row []string) []byte {
	e.out.b = dst
	_ = e.w.Write(row)
	e.w.Flush()
	dst = e.out.b
	e.out.b = nil
	return dst
}

func (e *csvEncoder) AppendRecord(dst, point []byte) ([]byte, error) {
	p, err := parsePoint(point)
	if err != nil {
		return dst, err
	}
	r := &e.row
	e.num = e.num[:0]
	r[0] = p.UUID
	r[1] = p.Schema.String()
	iv := timeOf(p)
	r[2] = csvTime(iv.start)
	r[3] = ""
	if iv.isInterval && iv.hasEnd {
		r[3] = csvTime(iv.end)
	}
	r[4], r[5], r[6], r[7], r[9] = "", "", "", "", ""
	switch b := p.Body.(type) {
	case *omh.Document:
		r[9] = bodyCell(b.JSON())
	case *omh.BloodGlucose:
		r[4], r[5] = e.number(b.BloodGlucose.Value), b.BloodGlucose.Unit
	case *omh.HeartRate:
		r[4], r[5] = e.number(b.HeartRate.Value), b.HeartRate.Unit
	case *omh.StepCount:
		r[4], r[5] = e.number(b.StepCount.Value), b.StepCount.Unit
	case *omh.BloodPressure:
		r[4], r[5] = e.number(b.SystolicBloodPressure.Value), b.SystolicBloodPressure.Unit
		r[6], r[7] = e.number(b.DiastolicBloodPressure.Value), b.DiastolicBloodPressure.Unit
	case *omh.BodyWeight:
		r[4], r[5] = e.number(b.BodyWeight.Value), b.BodyWeight.Unit
	case *omh.OxygenSaturation:
		r[4], r[5] = e.number(b.OxygenSaturation.Value), b.OxygenSaturation.Unit
	case *omh.RespiratoryRate:
		r[4], r[5] = e.number(b.RespiratoryRate.Value), b.RespiratoryRate.Unit
	case *omh.BodyTemperature:
		r[4], r[5] = e.number(b.BodyTemperature.Value), b.BodyTemperature.Unit
	case *omh.PhysicalActivity:
		if b.Distance != nil {
			r[4], r[5] = e.number(b.Distance.Value), b.Distance.Unit
		}
		if b.KcalBurned != nil {
			r[6], r[7] = e.number(b.KcalBurned.Value), b.KcalBurned.Unit
		}
	case *omh.SleepEpisode:
		if iv.hasEnd {
			r[4], r[5] = e.number(minutesBetween(iv.start, iv.end)), "min"
		}
		if b.TotalSleepTime != nil {
			r[6], r[7] = e.number(b.TotalSleepTime.Value), b.TotalSleepTime.Unit
		}
	}
	r[8] = sourceCell(provenance(p.Header()))
	return e.writeRow(dst, r[:]), nil
}

// number formats f with the digits of the stored point. The strings share
// one scratch buffer (a record's cells are written before the next record
// reuses it).
func (e *csvEncoder) number(f float64) string {
	start := len(e.num)
	e.num = appendNumber(e.num, f)
	return string(e.num[start:])
}

// csvTime is t in UTC, RFC 3339, with a fraction only when it is not zero.
func csvTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// bodyCell is a body's canonical JSON on one line: the characters a line
// reader may split on (NEL, U+2028, U+2029, DEL; JSON already escapes the
// C0 controls) can occur only inside its strings, where a \u escape
// stands for the same character, so the cell is the same JSON value. It
// starts with '{', which no spreadsheet evaluates.
func bodyCell(b []byte) string {
	s := string(b)
	if !strings.ContainsFunc(s, breaksLine) {
		return s
	}
	var out strings.Builder
	out.Grow(len(s) + 16)
	for _, r := range s {
		if breaksLine(r) {
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

// sourceCell makes the source text safe for a spreadsheet and for a line
// reader:
//
//   - formula injection (OWASP "CSV injection"): a cell that starts with
//     '=', '+', '-', '@', a tab or a carriage return gets a leading single
//     quote, so a spreadsheet shows it as text instead of evaluating it;
//   - one line per record: C0 controls, DEL, NEL, U+2028 and U+2029 become
//     spaces (encoding/csv would quote a line break and keep it, splitting
//     the record across lines and the export's line count).
func sourceCell(s string) string {
	if s == "" {
		return ""
	}
	// Clean first: a control character becomes a space, and the guard then
	// looks at what a spreadsheet would see first once it trims spaces.
	clean := strings.Map(func(r rune) rune {
		if breaksLine(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if t := strings.TrimLeft(clean, " "); t != "" {
		switch t[0] {
		case '=', '+', '-', '@':
			return "'" + clean
		}
	}
	if strings.HasPrefix(s, "\t") || strings.HasPrefix(s, "\r") {
		return "'" + clean
	}
	return clean
}
