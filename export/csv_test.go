package export_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
)

const csvHeader = "uuid,schema,time,end_time,value,unit,value2,unit2,source,body\n"

func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 10
	var out [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("encoding/csv cannot read the output: %v\n%s", err, b)
		}
		out = append(out, rec)
	}
}

func TestCSVHeader(t *testing.T) {
	enc := mustEncoder(t, "csv")
	if got := string(enc.Header()); got != csvHeader {
		t.Errorf("Header() = %q, want %q", got, csvHeader)
	}
	oneLine(t, "csv", enc.Header())
}

// TestCSVRows checks every case's row, cell by cell, as encoding/csv reads
// it back.
func TestCSVRows(t *testing.T) {
	enc := mustEncoder(t, "csv")
	for _, c := range encCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out, err := enc.AppendRecord(nil, c.point)
			if err != nil {
				t.Fatal(err)
			}
			oneLine(t, "csv", out)
			recs := readCSV(t, out)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1: %q", len(recs), out)
			}
			w := c.csv
			want := []string{c.p.UUID, c.p.Schema.String(), w.time, w.end, w.value, w.unit, w.value2, w.unit2, w.source, ""}
			for i, col := range strings.Split(strings.TrimSpace(csvHeader), ",") {
				if recs[0][i] != want[i] {
					t.Errorf("%s = %q, want %q (row %q)", col, recs[0][i], want[i], out)
				}
			}
		})
	}
}

// TestCSVRoundTrip writes a whole CSV payload (the header and every case)
// and reads it back with encoding/csv: one record per line, each the same
// as the record written alone.
func TestCSVRoundTrip(t *testing.T) {
	var points [][]byte
	for _, c := range encCases(t) {
		points = append(points, c.point)
	}
	csvRoundTrip(t, points)
}

// TestCSVExamples does the same with the official example points added.
func TestCSVExamples(t *testing.T) {
	var points [][]byte
	for _, ex := range encExamples(t) {
		points = append(points, ex.point)
	}
	for _, c := range encCases(t) {
		points = append(points, c.point)
	}
	csvRoundTrip(t, points)
}

func csvRoundTrip(t *testing.T, points [][]byte) {
	enc := mustEncoder(t, "csv")
	payload := append([]byte(nil), enc.Header()...)
	var singles [][]string
	for _, p := range points {
		var err error
		payload, err = enc.AppendRecord(payload, p)
		if err != nil {
			t.Fatal(err)
		}
		one, err := mustEncoder(t, "csv").AppendRecord(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		singles = append(singles, readCSV(t, one)[0])
	}
	if got, want := bytes.Count(payload, []byte("\n")), 1+len(points); got != want {
		t.Errorf("%d lines, want %d (header + one per record)", got, want)
	}
	recs := readCSV(t, payload)
	if len(recs) != 1+len(points) {
		t.Fatalf("%d records, want %d", len(recs), 1+len(points))
	}
	if strings.Join(recs[0], ",")+"\n" != csvHeader {
		t.Errorf("header read back as %q", recs[0])
	}
	for i, rec := range recs[1:] {
		if strings.Join(rec, "\x00") != strings.Join(singles[i], "\x00") {
			t.Errorf("record %d = %q, written alone %q", i, rec, singles[i])
		}
	}
}

// TestCSVFormulaGuard: no text cell starts with a character a spreadsheet
// would evaluate, and a guarded cell keeps its text after the quote.
func TestCSVFormulaGuard(t *testing.T) {
	enc := mustEncoder(t, "csv")
	guarded := 0
	for _, c := range encCases(t) {
		out, err := enc.AppendRecord(nil, c.point)
		if err != nil {
			t.Fatal(err)
		}
		src := readCSV(t, out)[0][8]
		if lead := strings.TrimLeft(src, " "); lead != "" && strings.ContainsRune("=+-@\t\r", rune(lead[0])) {
			t.Errorf("%s: source cell %q can be read as a formula", c.name, src)
		}
		if strings.HasPrefix(src, "'") {
			guarded++
		}
		if strings.ContainsAny(src, "\n\r\t\u0085\u2028\u2029") {
			t.Errorf("%s: source cell %q holds a line break or control", c.name, src)
		}
	}
	if guarded < 6 {
		t.Errorf("only %d guarded cells; the table has six formula-like sources", guarded)
	}
}

// TestCSVNumbersAsStored: a value cell holds the digits the stored point
// has for it.
func TestCSVNumbersAsStored(t *testing.T) {
	enc := mustEncoder(t, "csv")
	for _, c := range encCases(t) {
		out, err := enc.AppendRecord(nil, c.point)
		if err != nil {
			t.Fatal(err)
		}
		rec := readCSV(t, out)[0]
		for _, i := range []int{4, 6} {
			v := rec[i]
			if v == "" || c.p.Schema.Name == "sleep-episode" && i == 4 {
				continue // empty, or computed from the interval
			}
			if !bytes.Contains(c.point, []byte(`"value":`+v+`,`)) && !bytes.Contains(c.point, []byte(`"value":`+v+`}`)) {
				t.Errorf("%s: value %q is not the stored point's digits\n%s", c.name, v, c.point)
			}
		}
	}
}
