package omh

import "github.com/valyala/fastjson"

// UnitValue is a number with a unit (unit-value-1.0, omh and IEEE): both
// members are required, value is any JSON number, and the schema that uses
// it restricts unit to an enum. Unit is always the canonical spelling.
type UnitValue struct {
	Value float64
	Unit  string
	Extra []Extra
}

var unitValueMembers = []string{"value", "unit"}

// unitValueResult is a parsed unit-value and the note its unit earned, if
// any; the caller records the note only when it keeps the value (a member
// that a oneOf does not choose is kept verbatim instead).
type unitValueResult struct {
	UnitValue
	note string
}

// unitValue reads a unit-value at field whose unit must be in units.
func (d *decoder) unitValue(v *fastjson.Value, field string, units *unitSet) (unitValueResult, *Error) {
	var r unitValueResult
	o, e := object(v, field, "an object with value and unit")
	if e != nil {
		return r, e
	}
	var s [2]*fastjson.Value
	r.Extra = d.members(o, unitValueMembers, s[:])
	if s[0] == nil {
		return r, errRequired(field + ".value")
	}
	if r.Value, e = d.number(s[0], field, "value"); e != nil {
		return r, e
	}
	if s[1] == nil {
		return r, errRequired(field + ".unit")
	}
	b, ok := stringBytes(s[1])
	if !ok {
		return r, errUnit(field+".unit", units.units)
	}
	unit, exact, ok := units.match(b)
	if !ok {
		return r, errUnit(field+".unit", units.units)
	}
	r.Unit = unit
	if !exact {
		r.note = unitNote(string(b), unit)
	}
	return r, nil
}

// keepUnitValue reads a unit-value the caller keeps, recording its note.
func (d *decoder) keepUnitValue(v *fastjson.Value, field string, units *unitSet) (UnitValue, *Error) {
	r, e := d.unitValue(v, field, units)
	if e != nil {
		return UnitValue{}, e
	}
	if r.note != "" {
		d.note(r.note)
	}
	return r.UnitValue, nil
}

// optUnitValue reads an optional unit-value: nil when absent.
func (d *decoder) optUnitValue(v *fastjson.Value, field string, units *unitSet) (*UnitValue, *Error) {
	if v == nil {
		return nil, nil
	}
	uv, e := d.keepUnitValue(v, field, units)
	if e != nil {
		return nil, e
	}
	return &uv, nil
}

func (u *UnitValue) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("value")
	o.b = appendNumber(o.b, u.Value)
	o.str("unit", u.Unit)
	o.extras(u.Extra)
	return o.close()
}

// optEnum reads optional member name of parent, restricted to e: "" when
// absent.
func optEnum(v *fastjson.Value, parent, name string, e enum) (string, *Error) {
	if v == nil {
		return "", nil
	}
	return e.read(v, parent, name)
}
