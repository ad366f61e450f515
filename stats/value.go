package stats

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Point is one reading of a series: when it was taken and its value in the
// series' unit (mg/dL for glucose).
type Point struct {
	Time  time.Time
	Value float64
}

// MgDLPerMmolL converts glucose in mmol/L to mg/dL.
const MgDLPerMmolL = 18.0156

// UnitValue returns the value and unit of the unit-value under key in a
// stored reading's body, as in {"body": {"heart_rate": {"value": 72,
// "unit": "beats/min"}}}. It is false when the key is missing, the value
// is not a finite number, or the reading is not JSON.
//
// The canonical form the vault stores, `"key":{"value":NUMBER,"unit":"UNIT"}`
// with the key once in the document, is read straight from the bytes:
// a cold dashboard reads about 8,000 readings, and a JSON decode of each
// would cost several times more. The bytes are the vault's own
// (authenticated by the decryption), and a quoted key can only be a key
// (quotes in strings are escaped). Anything else (the key twice, the
// members in another order, an escape in the unit) is decoded as JSON.
func UnitValue(reading []byte, key string) (value float64, unit string, ok bool) {
	if v, u, ok := quickUnitValue(reading, key); ok {
		return v, u, true
	}
	return decodeUnitValue(reading, key)
}

// GlucoseMgDL reads a blood-glucose reading in mg/dL, converting mmol/L.
func GlucoseMgDL(reading []byte) (float64, bool) {
	v, unit, ok := UnitValue(reading, "blood_glucose")
	if !ok {
		return 0, false
	}
	return ToMgDL(v, unit)
}

// ToMgDL converts a glucose value in mg/dL or mmol/L to mg/dL; any other
// unit is false.
func ToMgDL(value float64, unit string) (float64, bool) {
	switch unit {
	case "mg/dL":
		return value, true
	case "mmol/L":
		return value * MgDLPerMmolL, true
	}
	return 0, false
}

// HeartRate reads a heart-rate reading (beats/min, the only unit omh
// allows).
func HeartRate(reading []byte) (float64, bool) {
	v, _, ok := UnitValue(reading, "heart_rate")
	return v, ok
}

// Steps reads a step-count reading (steps, the only unit omh allows).
func Steps(reading []byte) (float64, bool) {
	v, _, ok := UnitValue(reading, "step_count")
	return v, ok
}

// quickUnitValue is UnitValue on the canonical form, false on anything
// else.
func quickUnitValue(b []byte, key string) (v float64, unit string, ok bool) {
	k := []byte(`"` + key + `":{"value":`)
	i := bytes.Index(b, k)
	if i < 0 || bytes.Contains(b[i+len(k):], k) {
		return 0, "", false
	}
	rest := b[i+len(k):]
	j := bytes.IndexByte(rest, ',')
	if j <= 0 || !bytes.HasPrefix(rest[j:], []byte(`,"unit":"`)) {
		return 0, "", false
	}
	f, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "", false
	}
	u := rest[j+len(`,"unit":"`):]
	e := bytes.IndexByte(u, '"')
	if e < 0 || bytes.IndexByte(u[:e], '\\') >= 0 || !bytes.HasPrefix(u[e:], []byte(`"}`)) {
		return 0, "", false
	}
	return f, string(u[:e]), true
}

// decodeUnitValue is UnitValue by a JSON decode.
func decodeUnitValue(b []byte, key string) (float64, string, bool) {
	var r struct {
		Body map[string]json.RawMessage `json:"body"`
	}
	if json.Unmarshal(b, &r) != nil {
		return 0, "", false
	}
	raw, ok := r.Body[key]
	if !ok {
		return 0, "", false
	}
	var uv struct {
		Value json.Number `json:"value"`
		Unit  string      `json:"unit"`
	}
	if json.Unmarshal(raw, &uv) != nil || uv.Value == "" {
		return 0, "", false
	}
	f, err := uv.Value.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "", false
	}
	return f, uv.Unit, true
}
