package omh

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/valyala/fastjson"
)

// Extra is a member that the schema does not define. The schemas allow such
// members (none sets additionalProperties to false), so the vault keeps
// them: JSON holds the member's value in canonical form (objects with their
// members sorted by name, no insignificant white space, strings with minimal
// escaping, numbers exactly as submitted).
type Extra struct {
	Name string
	JSON []byte
}

// appendString appends s as a JSON string. jsontext escapes only what JSON
// requires ('"', '\\' and control characters); s is valid UTF-8 because
// Parse refuses anything else, and if it were not, jsontext would still
// append a valid string (with U+FFFD) and report an error we can ignore.
func appendString(dst []byte, s string) []byte {
	dst, _ = jsontext.AppendQuote(dst, s)
	return dst
}

// appendNumber appends f the way encoding/json does: the shortest decimal
// that parses back to f, in plain notation between 1e-6 and 1e21 and in
// exponent notation (e+21, e-7) outside.
func appendNumber(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// appendInteger appends an integral f with no fraction and no exponent.
func appendInteger(dst []byte, f float64) []byte {
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// objectWriter writes the members of one JSON object, placing the commas.
type objectWriter struct {
	b    []byte
	more bool
}

func openObject(dst []byte) objectWriter {
	return objectWriter{b: append(dst, '{')}
}

// key appends the name of the next member. name must need no escaping (it is
// one of this package's constants).
func (o *objectWriter) key(name string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

func (o *objectWriter) str(name, v string) {
	o.key(name)
	o.b = appendString(o.b, v)
}

// optStr writes the member only when v is not empty.
func (o *objectWriter) optStr(name, v string) {
	if v != "" {
		o.str(name, v)
	}
}

func (o *objectWriter) extras(xs []Extra) {
	for _, x := range xs {
		if o.more {
			o.b = append(o.b, ',')
		}
		o.more = true
		o.b = appendString(o.b, x.Name)
		o.b = append(o.b, ':')
		o.b = append(o.b, x.JSON...)
	}
}

func (o *objectWriter) close() []byte {
	return append(o.b, '}')
}

// appendCanonical appends v in canonical form: object members sorted by
// name, strings re-escaped minimally, numbers as submitted (Parse has
// checked their syntax), no white space.
func appendCanonical(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return appendCanonicalObject(dst, o)
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonical(dst, e)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendString(dst, string(b))
	default: // number, true, false, null: fastjson keeps the literal text
		return v.MarshalTo(dst)
	}
}

// appendCanonicalObject appends o in canonical form, members sorted by name.
func appendCanonicalObject(dst []byte, o *fastjson.Object) []byte {
	type member struct {
		k string
		v *fastjson.Value
	}
	ms := make([]member, 0, o.Len())
	o.Visit(func(k []byte, v *fastjson.Value) {
		ms = append(ms, member{string(k), v})
	})
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.k, b.k) })
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.k)
		dst = append(dst, ':')
		dst = appendCanonical(dst, m.v)
	}
	return append(dst, '}')
}

// newExtra copies a member into an Extra.
func newExtra(name []byte, v *fastjson.Value) Extra {
	return Extra{Name: string(name), JSON: appendCanonical(nil, v)}
}

// insertExtra adds x to xs, keeping xs sorted by name.
func insertExtra(xs []Extra, x Extra) []Extra {
	i, _ := slices.BinarySearchFunc(xs, x.Name, func(e Extra, name string) int { return strings.Compare(e.Name, name) })
	return slices.Insert(xs, i, x)
}

func sortExtras(xs []Extra) {
	slices.SortFunc(xs, func(a, b Extra) int { return strings.Compare(a.Name, b.Name) })
}
