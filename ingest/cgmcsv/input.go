package cgmcsv

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jupyterhealth/vault/ingest"
)

// maxRecord bounds one CSV record (a row, with any quoted line breaks in
// it). A real row is a few hundred bytes; the bound keeps memory flat when
// a stray quote would otherwise make the rest of a huge file one field.
const maxRecord = 1 << 20

// peekSize is how much of the start of the file is looked at to find the
// header row and its delimiter.
const peekSize = 64 << 10

// headLines is how many lines the header row may be preceded by (LibreView
// writes one title line before it).
const headLines = 4

var errLongRecord = errors.New("cgmcsv: record too long")

// guard counts the bytes the CSV reader pulls and fails once more than
// maxRecord of them have gone by since the last complete record.
type guard struct {
	r    io.Reader
	n    int64 // bytes handed out
	mark int64 // input offset at the end of the last record
}

func (g *guard) Read(p []byte) (int, error) {
	if g.n-g.mark > maxRecord {
		return 0, errLongRecord
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

// utf16Reader decodes UTF-16 (after its byte order mark) to UTF-8. Older
// LibreView exports were written as UTF-16LE.
type utf16Reader struct {
	r    *bufio.Reader
	be   bool
	out  []byte // decoded, not yet returned
	err  error
	high rune // a high surrogate waiting for its pair, or 0
}

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		u.fill()
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

func (u *utf16Reader) fill() {
	u.out = u.out[:0]
	for len(u.out) < 4096 {
		var b [2]byte
		if _, err := io.ReadFull(u.r, b[:]); err != nil {
			if u.high != 0 {
				u.out = utf8.AppendRune(u.out, utf8.RuneError)
				u.high = 0
			}
			if err == io.ErrUnexpectedEOF {
				// An odd trailing byte: not a code unit.
				u.out = utf8.AppendRune(u.out, utf8.RuneError)
				err = io.EOF
			}
			u.err = err
			return
		}
		c := rune(b[0]) | rune(b[1])<<8
		if u.be {
			c = rune(b[1]) | rune(b[0])<<8
		}
		switch {
		case u.high != 0 && utf16.IsSurrogate(c) && c >= 0xDC00:
			u.out = utf8.AppendRune(u.out, utf16.DecodeRune(u.high, c))
			u.high = 0
			continue
		case u.high != 0:
			u.out = utf8.AppendRune(u.out, utf8.RuneError)
			u.high = 0
		}
		switch {
		case c >= 0xD800 && c < 0xDC00:
			u.high = c
		case utf16.IsSurrogate(c):
			u.out = utf8.AppendRune(u.out, utf8.RuneError)
		default:
			u.out = utf8.AppendRune(u.out, c)
		}
	}
}

// decodeInput strips a UTF-8 byte order mark, or decodes UTF-16 marked by
// one, and returns a buffered reader over UTF-8 text.
func decodeInput(r io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, peekSize)
	b, err := br.Peek(3)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		br.Discard(3)
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		br.Discard(2)
		return bufio.NewReaderSize(&utf16Reader{r: br, be: b[0] == 0xFE}, peekSize), nil
	}
	return br, nil
}

// decodeHead does decodeInput's work on the first bytes of a file, for
// sniffing.
func decodeHead(head []byte) []byte {
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		return head[3:]
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		be := head[0] == 0xFE
		head = head[2:]
		u := make([]uint16, len(head)/2)
		for i := range u {
			if be {
				u[i] = uint16(head[2*i])<<8 | uint16(head[2*i+1])
			} else {
				u[i] = uint16(head[2*i]) | uint16(head[2*i+1])<<8
			}
		}
		return []byte(string(utf16.Decode(u)))
	}
	return head
}

// headLinesOf returns up to n lines from the start of text.
func headLinesOf(text []byte, n int) []string {
	var out []string
	for len(out) < n && len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			out = append(out, string(text))
			break
		}
		out = append(out, string(bytes.TrimSuffix(text[:i], []byte{'\r'})))
		text = text[i+1:]
	}
	return out
}

// table is a CSV file being read row by row.
type table struct {
	cr   *csv.Reader
	g    *guard
	line int // where the last record started
}

// openTable decodes r, finds the header line among the first lines with
// isHeader (given the line in lower case) and reads the file with the
// delimiter that line uses: a comma, or the semicolon or tab a spreadsheet
// writes in some locales. It returns nil if no line is a header.
func openTable(r io.Reader, isHeader func(lower string) bool) (*table, error) {
	br, err := decodeInput(r)
	if err != nil {
		return nil, err
	}
	head, err := br.Peek(peekSize)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, err
	}
	delim := rune(0)
	for _, line := range headLinesOf(head, headLines) {
		if isHeader(strings.ToLower(fixText(line))) {
			delim = delimiterOf(line)
			break
		}
	}
	if delim == 0 {
		return nil, nil
	}
	g := &guard{r: br}
	cr := csv.NewReader(g)
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	return &table{cr: cr, g: g}, nil
}

// delimiterOf picks the most frequent of comma, semicolon and tab.
func delimiterOf(line string) rune {
	best, n := ',', strings.Count(line, ",")
	for _, c := range []rune{';', '\t'} {
		if k := strings.Count(line, string(c)); k > n {
			best, n = c, k
		}
	}
	return best
}

// next returns the next record and the line it starts on, or io.EOF.
func (t *table) next() ([]string, int, error) {
	rec, err := t.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		switch {
		case err == io.EOF:
			return nil, 0, io.EOF
		case errors.Is(err, errLongRecord):
			return nil, 0, ingest.Errorf(ingest.Pos{Line: t.line + 1}, "bad_csv",
				"a row is longer than 1 MiB; a quote may be left open, or the file is not a CSV export")
		case errors.As(err, &pe):
			return nil, 0, ingest.Errorf(ingest.Pos{Line: pe.Line}, "bad_csv", "the CSV is malformed: %s", csvReason(pe.Err))
		}
		return nil, 0, err
	}
	t.g.mark = t.cr.InputOffset()
	t.line, _ = t.cr.FieldPos(0)
	return rec, t.line, nil
}

// csvReason names a CSV syntax error without quoting the text.
func csvReason(err error) string {
	switch {
	case errors.Is(err, csv.ErrQuote):
		return "a quoted field is not closed"
	case errors.Is(err, csv.ErrBareQuote):
		return "a quote appears inside an unquoted field"
	case errors.Is(err, csv.ErrFieldCount):
		return "a row has the wrong number of fields"
	}
	return "the text is not valid CSV"
}

// fixText returns s as valid UTF-8: a cell that is not UTF-8 is read as
// Latin-1 (Windows-1252 for its printable range), which is what a
// spreadsheet that re-saved the export in a Western European locale wrote.
func fixText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// cell returns the trimmed field at i of rec, or "" when i is out of range
// (-1 for a column the file does not have, or a short row).
func cell(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// blank reports whether every field of rec is empty or spaces (a spreadsheet
// pads a file with such rows).
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
