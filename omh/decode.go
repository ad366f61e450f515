package omh

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// decoder carries the state of one Parse: the normalisation notes so far
// and scratch space. Strings that outlive Parse are copied out of the
// fastjson buffer (which goes back to the pool when Parse returns) into
// arena, so that a point's strings cost one allocation between them: a
// strings.Builder only ever appends, so the strings it has handed out stay
// valid and unchanged.
type decoder struct {
	notes []string
	start time.Time // the reading's time, set by timeFrame
	// created is the header's source_creation_date_time (zero when
	// absent), createdField the member that gave it, set before the body
	// is read: an untimed schema's reading is filed by it.
	created      DateTime
	createdField string
	arena        strings.Builder
	num          [40]byte
}

// intern returns a string with the bytes of b, which may point into the
// parser's buffer.
func (d *decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := d.arena.Len()
	d.arena.Write(b)
	return d.arena.String()[start:]
}

// note records a normalisation once.
func (d *decoder) note(s string) {
	for _, n := range d.notes {
		if n == s {
			return
		}
	}
	d.notes = append(d.notes, s)
}

// members sorts the members of o into slots (slots[i] receives the member
// called names[i]) and returns every other member as an Extra, sorted by
// name.
func (d *decoder) members(o *fastjson.Object, names []string, slots []*fastjson.Value) []Extra {
	var extras []Extra
	o.Visit(func(k []byte, v *fastjson.Value) {
		for i, n := range names {
			if string(k) == n {
				slots[i] = v
				return
			}
		}
		extras = append(extras, newExtra(k, v))
	})
	if len(extras) > 1 {
		sortExtras(extras)
	}
	return extras
}

// object returns v as an object, or an invalid_value error naming what was
// expected.
func object(v *fastjson.Value, field, want string) (*fastjson.Object, *Error) {
	if v.Type() != fastjson.TypeObject {
		return nil, errType(field, want)
	}
	o, _ := v.Object()
	return o, nil
}

// stringBytes returns the unescaped bytes of a JSON string (a view into
// the parser's buffer), ok false for any other type.
func stringBytes(v *fastjson.Value) ([]byte, bool) {
	if v.Type() != fastjson.TypeString {
		return nil, false
	}
	b, _ := v.StringBytes()
	return b, true
}

// join builds the path of member name inside parent. Paths are built only
// when an error needs one, so that a valid point costs no concatenation.
func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// str reads member name of parent, which the schema types as a string.
func (d *decoder) str(v *fastjson.Value, parent, name string) (string, *Error) {
	b, ok := stringBytes(v)
	if !ok {
		return "", errType(join(parent, name), "a string")
	}
	return d.intern(b), nil
}

// isString checks a member the schema types as a string, whose value the
// caller does not need.
func isString(v *fastjson.Value, parent, name string) *Error {
	if v.Type() != fastjson.TypeString {
		return errType(join(parent, name), "a string")
	}
	return nil
}

// number reads a member the schema types as a number. JSON Schema puts no
// bound on numbers; the vault holds them as float64 and refuses the few
// beyond its range (about 1.8e308) rather than store an infinity.
func (d *decoder) number(v *fastjson.Value, parent, name string) (float64, *Error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, errType(join(parent, name), "a number")
	}
	raw := v.MarshalTo(d.num[:0])
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, errf(CodeInvalidValue, join(parent, name), name+" is too large a number to store")
	}
	return f, nil
}

// integer reads a member the schema types as an integer: a number with no
// fractional part, judged exactly on the submitted digits (1.0 and 1e2 are
// integers, 1.5 is not) as JSON Schema does.
func (d *decoder) integer(v *fastjson.Value, parent, name string) (float64, *Error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, errType(join(parent, name), "an integer")
	}
	f, e := d.number(v, parent, name)
	if e != nil {
		return 0, e
	}
	if f != math.Trunc(f) {
		return 0, errType(join(parent, name), "an integer")
	}
	// A float64 can round a fraction away (1.0000000000000001); check the
	// digits themselves when they might hold one.
	raw := v.MarshalTo(d.num[:0])
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			r, ok := new(big.Rat).SetString(string(raw))
			if !ok || !r.IsInt() {
				return 0, errType(join(parent, name), "an integer")
			}
			break
		}
	}
	return f, nil
}

// boolean reads a member the schema types as a boolean.
func boolean(v *fastjson.Value, parent, name string) (bool, *Error) {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	}
	return false, errType(join(parent, name), "true or false")
}

// enum is a closed set of string values, as a schema's "enum" lists them.
type enum []string

// match returns the canonical constant equal to b.
func (e enum) match(b []byte) (string, bool) {
	for _, s := range e {
		if string(b) == s {
			return s, true
		}
	}
	return "", false
}

// read reads a member the schema restricts to e; the result is one of e's
// constants, so it costs no allocation.
func (e enum) read(v *fastjson.Value, parent, name string) (string, *Error) {
	b, ok := stringBytes(v)
	if !ok {
		return "", errEnum(join(parent, name), e)
	}
	s, ok := e.match(b)
	if !ok {
		return "", errEnum(join(parent, name), e)
	}
	return s, nil
}

// stringMembersOK applies a legacy schema's string rule to members the
// canonical schema no longer mentions.
func stringMembersOK(o *fastjson.Object, names []string) *Error {
	for _, n := range names {
		if v := o.Get(n); v != nil && v.Type() != fastjson.TypeString {
			return errType("body."+n, "a string")
		}
	}
	return nil
}
