package apple

import (
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/internal/calendar"
	"github.com/jupyterhealth/vault/omh"
)

// The HealthKit identifiers the mapping reads.
const (
	hkBloodGlucose     = "HKQuantityTypeIdentifierBloodGlucose"
	hkHeartRate        = "HKQuantityTypeIdentifierHeartRate"
	hkStepCount        = "HKQuantityTypeIdentifierStepCount"
	hkBodyMass         = "HKQuantityTypeIdentifierBodyMass"
	hkOxygenSaturation = "HKQuantityTypeIdentifierOxygenSaturation"
	hkRespiratoryRate  = "HKQuantityTypeIdentifierRespiratoryRate"
	hkBodyTemperature  = "HKQuantityTypeIdentifierBodyTemperature"
	hkSystolic         = "HKQuantityTypeIdentifierBloodPressureSystolic"
	hkDiastolic        = "HKQuantityTypeIdentifierBloodPressureDiastolic"
	hkBloodPressure    = "HKCorrelationTypeIdentifierBloodPressure"
	hkSleepAnalysis    = "HKCategoryTypeIdentifierSleepAnalysis"

	sleepPrefix = "HKCategoryValueSleepAnalysis"
)

const (
	reasonNoSchema = "no Open mHealth schema for this type"
	reasonBPHalf   = "a systolic or diastolic value alone is not a blood-pressure reading: blood pressure is imported from its HKCorrelationTypeIdentifierBloodPressure correlation, which Apple also lists each half of at top level"
	reasonInBed    = "time in bed is not sleep: sleep episodes come from the Asleep records of the same night"
	reasonAwake    = "an awake spell inside a night is not a sleep episode"
	reasonSleepVal = "a sleep analysis value this importer does not know"
)

// topRecord handles a Record that is a child of HealthData.
func (p *parser) topRecord(r *record) error {
	switch r.typ {
	case hkBloodGlucose, hkHeartRate, hkStepCount, hkBodyMass, hkOxygenSaturation, hkRespiratoryRate, hkBodyTemperature:
		return p.quantity(r)
	case hkSleepAnalysis:
		return p.sleep(r)
	case hkSystolic, hkDiastolic:
		return p.sink.Skipped(ingest.Skip{Pos: r.pos(), Type: r.typ, Reason: reasonBPHalf})
	case "":
		return errf(r.pos(), "bad_value", "the Record has no type attribute; the file may be damaged: "+msgReExport)
	}
	return p.sink.Skipped(ingest.Skip{Pos: r.pos(), Type: r.typ, Reason: reasonNoSchema})
}

// quantity maps a quantity record of a supported type.
func (p *parser) quantity(r *record) error {
	pos := r.pos()
	value, err := number(r.value, pos)
	if err != nil {
		return err
	}
	var name, version, member, unit string
	var extra string // an optional body member, written after the time frame
	interval := false
	switch r.typ {
	case hkBloodGlucose:
		name, version, member = "blood-glucose", "4.0", "blood_glucose"
		switch {
		case r.unit == "mg/dL":
			unit = "mg/dL"
		case r.unit == "mmol/L" || isGlucoseMolar(r.unit):
			unit = "mmol/L"
		default:
			return errUnit(pos, r.typ, "mg/dL or mmol<180.1558800000541>/L")
		}
		switch metaInt(r.meta.mealTime) {
		case 1:
			extra = `"temporal_relationship_to_meal":"before meal"`
		case 2:
			extra = `"temporal_relationship_to_meal":"after meal"`
		}
	case hkHeartRate:
		name, version, member = "heart-rate", "2.0", "heart_rate"
		if r.unit != "count/min" {
			return errUnit(pos, r.typ, "count/min")
		}
		unit = "beats/min"
		switch metaInt(r.meta.motion) {
		case 1:
			extra = `"temporal_relationship_to_physical_activity":"at rest"`
		case 2:
			extra = `"temporal_relationship_to_physical_activity":"active"`
		}
	case hkStepCount:
		name, version, member, interval = "step-count", "3.0", "step_count", true
		if r.unit != "count" {
			return errUnit(pos, r.typ, "count")
		}
		unit = "steps"
	case hkBodyMass:
		name, version, member = "body-weight", "3.0", "body_weight"
		switch r.unit {
		case "kg", "lb", "g", "oz":
			unit = r.unit
		case "st":
			// omh has no stone: 1 st is exactly 14 lb.
			if value, err = scaleDecimal(value, 14, 0, pos); err != nil {
				return err
			}
			unit = "lb"
		default:
			return errUnit(pos, r.typ, "kg, lb, st, g or oz")
		}
	case hkOxygenSaturation:
		name, version, member = "oxygen-saturation", "2.0", "oxygen_saturation"
		if r.unit != "%" {
			return errUnit(pos, r.typ, "%")
		}
		// HealthKit's percent unit holds a fraction: 0.97 is 97 %.
		if value, err = scaleDecimal(value, 1, 2, pos); err != nil {
			return err
		}
		unit = "%"
	case hkRespiratoryRate:
		name, version, member = "respiratory-rate", "2.0", "respiratory_rate"
		if r.unit != "count/min" {
			return errUnit(pos, r.typ, "count/min")
		}
		unit = "breaths/min"
	case hkBodyTemperature:
		name, version, member = "body-temperature", "4.0", "body_temperature"
		switch r.unit {
		case "degC":
			unit = "C"
		case "degF":
			unit = "F"
		case "K":
			unit = "K"
		default:
			return errUnit(pos, r.typ, "degC, degF or K")
		}
		if loc := temperatureLocation(metaInt(r.meta.tempLocation)); loc != "" {
			extra = `"measurement_location":"` + loc + `"`
		}
	}

	b, err := p.header(p.buf[:0], p.sourceID(r.typ, r.startDate, r.endDate, r.value, r.unit), name, version, r.sourceName, r.device, r.creationDate, r.meta.userEntered, pos)
	if err != nil {
		return err
	}
	b = append(b, '"')
	b = append(b, member...)
	b = append(b, `":{"value":`...)
	b = append(b, value...)
	b = append(b, `,"unit":"`...)
	b = append(b, unit...)
	b = append(b, `"},`...)
	if b, err = p.timeFrame(b, r.startDate, r.endDate, interval, pos); err != nil {
		return err
	}
	if extra != "" {
		b = append(b, ',')
		b = append(b, extra...)
	}
	b = append(b, "}}"...)
	return p.emit(b, pos)
}

// sleep maps a sleep analysis record: each Asleep* record (Asleep before
// iOS 16; AsleepUnspecified, AsleepCore, AsleepDeep, AsleepREM since) is a
// sleep episode; InBed and Awake are skipped.
func (p *parser) sleep(r *record) error {
	pos := r.pos()
	v, ok := strings.CutPrefix(r.value, sleepPrefix)
	if !ok {
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: r.typ, Reason: reasonSleepVal})
	}
	switch v {
	case "Asleep", "AsleepUnspecified", "AsleepCore", "AsleepDeep", "AsleepREM":
	case "InBed":
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: r.typ, Reason: reasonInBed})
	case "Awake":
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: r.typ, Reason: reasonAwake})
	default:
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: r.typ, Reason: reasonSleepVal})
	}
	b, err := p.header(p.buf[:0], p.sourceID(r.typ, r.startDate, r.endDate, r.value), "sleep-episode", "1.1", r.sourceName, r.device, r.creationDate, r.meta.userEntered, pos)
	if err != nil {
		return err
	}
	if b, err = p.timeFrame(b, r.startDate, r.endDate, true, pos); err != nil {
		return err
	}
	b = append(b, "}}"...)
	return p.emit(b, pos)
}

// bloodPressure maps a blood pressure correlation to one point, from its
// systolic and diastolic records, at the correlation's time.
func (p *parser) bloodPressure(c *correlation, pos ingest.Pos) error {
	if !c.hasSystolic || !c.hasDiastolic {
		return p.sink.Skipped(ingest.Skip{Pos: pos, Type: hkBloodPressure, Reason: "the blood pressure correlation lacks its systolic or its diastolic record"})
	}
	sys, dia := &c.systolic, &c.diastolic
	sv, err := number(sys.value, sys.pos())
	if err != nil {
		return err
	}
	dv, err := number(dia.value, dia.pos())
	if err != nil {
		return err
	}
	if sys.unit != "mmHg" {
		return errUnit(sys.pos(), sys.typ, "mmHg")
	}
	if dia.unit != "mmHg" {
		return errUnit(dia.pos(), dia.typ, "mmHg")
	}
	userEntered := c.meta.userEntered
	if userEntered == "" {
		userEntered = sys.meta.userEntered
	}
	b, err := p.header(p.buf[:0], p.sourceID(hkBloodPressure, c.startDate, c.endDate, sys.value, dia.value), "blood-pressure", "4.0", c.sourceName, c.device, c.creationDate, userEntered, pos)
	if err != nil {
		return err
	}
	b = append(b, `"systolic_blood_pressure":{"value":`...)
	b = append(b, sv...)
	b = append(b, `,"unit":"mmHg"},"diastolic_blood_pressure":{"value":`...)
	b = append(b, dv...)
	b = append(b, `,"unit":"mmHg"},`...)
	if b, err = p.timeFrame(b, c.startDate, c.endDate, false, pos); err != nil {
		return err
	}
	b = append(b, "}}"...)
	return p.emit(b, pos)
}

// emit validates the point through omh.Parse and hands it to the sink.
func (p *parser) emit(b []byte, pos ingest.Pos) error {
	p.buf = b[:0]
	pt, err := omh.Parse(b)
	if err != nil {
		return ingest.PointError(pos, err)
	}
	return p.sink.Reading(ingest.Item{Point: pt, Pos: pos})
}

// sourceID is a reading's identity for deduplication: its type, the
// instants it starts and ends, and its values. The Health app writes every
// date in the zone the phone is in when the export is made, so two exports
// of the same reading made in different zones differ in every offset, and
// in their content; their instants do not. As the header's id (not a
// UUID), omh keeps it as the point's source id, and the vault derives the
// point's uuid from it with the patient's keyed HMAC, so the same reading
// from any export is a duplicate. The device and source names are left
// out: a renamed watch does not make its readings new. "" when a time
// doesn't parse (timeFrame then reports it).
func (p *parser) sourceID(typ, start, end string, values ...string) string {
	var su, eu int64
	var ok bool
	if p.scratch, su, ok = appendTime(p.scratch[:0], start, p.loc); !ok {
		return ""
	}
	if p.scratch, eu, ok = appendTime(p.scratch[:0], end, p.loc); !ok {
		return ""
	}
	id := make([]byte, 0, 96)
	id = append(id, "apple:"...)
	id = append(id, strings.TrimPrefix(strings.TrimPrefix(typ, "HKQuantityTypeIdentifier"), "HKCategoryTypeIdentifier")...)
	id = append(id, '/')
	id = strconv.AppendInt(id, su, 10)
	id = append(id, '/')
	id = strconv.AppendInt(id, eu, 10)
	for _, v := range values {
		id = append(id, '/')
		id = append(id, v...)
	}
	return string(id)
}

// header appends `{"header":{...},"body":{` for the omh schema name and
// version, with id as the header's id when it is set.
func (p *parser) header(b []byte, id, name, version, sourceName, device, creationDate, userEntered string, pos ingest.Pos) ([]byte, error) {
	b = append(b, `{"header":{`...)
	if id != "" {
		b = append(b, `"uuid":`...)
		b = ingest.AppendString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"schema_id":{"namespace":"omh","name":"`...)
	b = append(b, name...)
	b = append(b, `","version":"`...)
	b = append(b, version...)
	b = append(b, `"}`...)
	if creationDate != "" {
		b = append(b, `,"source_creation_date_time":"`...)
		var ok bool
		if b, _, ok = appendTime(b, creationDate, p.loc); !ok {
			return b, errTime(pos, "creationDate")
		}
		b = append(b, '"')
	}
	device = cleanDevice(device)
	switch {
	case metaInt(userEntered) == 1:
		b = append(b, `,"modality":"self-reported"`...)
	case device != "":
		b = append(b, `,"modality":"sensed"`...)
	}
	if sourceName != "" || device != "" {
		b = append(b, `,"external_datasheets":[`...)
		if sourceName != "" {
			b = append(b, `{"datasheet_type":"source_name","datasheet_reference":`...)
			b = ingest.AppendString(b, sourceName)
			b = append(b, '}')
		}
		if device != "" {
			if sourceName != "" {
				b = append(b, ',')
			}
			b = append(b, `{"datasheet_type":"device","datasheet_reference":`...)
			b = ingest.AppendString(b, device)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, `},"body":{`...), nil
}

// timeFrame appends "effective_time_frame": a date_time when the record
// starts and ends at the same moment, else a time_interval; interval forces
// the latter (step-count and sleep-episode require it).
func (p *parser) timeFrame(b []byte, start, end string, interval bool, pos ingest.Pos) ([]byte, error) {
	if start == "" {
		return b, errf(pos, "bad_time", "startDate is missing; the file may be damaged: "+msgReExport)
	}
	if end == "" {
		return b, errf(pos, "bad_time", "endDate is missing; the file may be damaged: "+msgReExport)
	}
	b = append(b, `"effective_time_frame":`...)
	if !interval && start == end {
		b = append(b, `{"date_time":"`...)
		var ok bool
		if b, _, ok = appendTime(b, start, p.loc); !ok {
			return b, errTime(pos, "startDate")
		}
		return append(b, `"}`...), nil
	}
	b = append(b, `{"time_interval":{"start_date_time":"`...)
	b, st, ok := appendTime(b, start, p.loc)
	if !ok {
		return b, errTime(pos, "startDate")
	}
	b = append(b, `","end_date_time":"`...)
	b, et, ok := appendTime(b, end, p.loc)
	if !ok {
		return b, errTime(pos, "endDate")
	}
	if et < st {
		return b, errf(pos, "bad_time", "endDate is before startDate; the file may be damaged: "+msgReExport)
	}
	return append(b, `"}}`...), nil
}

func errTime(pos ingest.Pos, attr string) error {
	return errf(pos, "bad_time", attr+" is not a date such as 2024-01-31 08:00:00 -0500, as the Health app writes it; the file may be damaged: "+msgReExport)
}

func errUnit(pos ingest.Pos, typ, want string) error {
	return errf(pos, "bad_unit", "unit is not one this importer reads for "+typ+" (expected "+want+")")
}

// number checks that a record's value is a JSON number, as HealthKit writes
// them, and returns it unchanged.
func number(s string, pos ingest.Pos) (string, error) {
	if s == "" {
		return "", errf(pos, "bad_value", "value is missing; the file may be damaged: "+msgReExport)
	}
	if !isJSONNumber(s) {
		return "", errf(pos, "bad_value", "value is not a number such as 72 or 5.4; the file may be damaged: "+msgReExport)
	}
	return s, nil
}

// isJSONNumber reports whether s is a number in RFC 8259's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

// scaleDecimal multiplies the JSON number s by mul·10^shift exactly, in
// decimal, and writes the result as a JSON number (digits and an
// exponent): 0.97 × 10² is 97e0, not 97.00000000000001.
func scaleDecimal(s string, mul int64, shift int, pos ingest.Pos) (string, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 1e6 || e < -1e6 {
			return "", errf(pos, "bad_value", "value is out of range")
		}
		exp = e
	}
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		exp -= len(mant) - i - 1
		mant = mant[:i] + mant[i+1:]
	}
	exp += shift
	if mul != 1 {
		var n big.Int
		n.SetString(mant, 10)
		n.Mul(&n, big.NewInt(mul))
		mant = n.String()
	}
	mant = strings.TrimLeft(mant, "0")
	if mant == "" {
		mant = "0"
	}
	out := mant + "e" + strconv.Itoa(exp)
	if neg {
		out = "-" + out
	}
	return out, nil
}

// isGlucoseMolar reports whether unit is HealthKit's millimoles of glucose
// per litre, written with glucose's molar mass: "mmol<180.1558800000541>/L".
func isGlucoseMolar(unit string) bool {
	m, ok := strings.CutPrefix(unit, "mmol<")
	if !ok {
		return false
	}
	m, ok = strings.CutSuffix(m, ">/L")
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(m, 64)
	return err == nil && f > 180.15 && f < 180.16
}

// metaInt reads an integer metadata value ("1", or "1.0"); 0 when absent
// or not an integer.
func metaInt(s string) int {
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int(f)) {
		return int(f)
	}
	return 0
}

// temperatureLocation maps HKBodyTemperatureSensorLocation to the
// measurement_location values of body-temperature 4.0; "" for locations
// it has no value for (other, body, ear, gastro-intestinal).
func temperatureLocation(n int) string {
	switch n {
	case 1:
		return "axillary" // armpit
	case 4:
		return "finger"
	case 6:
		return "oral" // mouth
	case 7:
		return "rectal"
	case 8:
		return "toe"
	case 9:
		return "tympanic" // ear drum
	case 10:
		return "temporal artery"
	case 11:
		return "forehead"
	}
	return ""
}

// appendTime appends the RFC 3339 form of an Apple date, "2024-01-31
// 08:00:00 -0500" (also accepted: a "+05:00" style offset, or none, when
// the time is read in loc), and returns its Unix time.
func appendTime(b []byte, s string, loc *time.Location) ([]byte, int64, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return b, 0, false
	}
	w, valid := calendar.ParseWall(s)
	if !valid || w.Second > 59 {
		return b, 0, false
	}
	year, month, day, hour, minute, sec := w.Year, w.Month, w.Day, w.Hour, w.Minute, w.Second
	rest := s[19:]
	if rest == "" {
		// No offset: the patient's zone. A wall time that the zone skips
		// (a spring-forward gap) is moved as time.Date moves it, and the
		// text written is that of the instant.
		t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc)
		if t.Year() < 0 || t.Year() > 9999 {
			return b, 0, false
		}
		_, off := t.Zone()
		if off%60 != 0 {
			t = t.UTC()
		}
		return t.AppendFormat(b, time.RFC3339), t.Unix(), true
	}
	rest = strings.TrimPrefix(rest, " ")
	var oh, om int
	var ok bool
	switch {
	case len(rest) == 5 && (rest[0] == '+' || rest[0] == '-'):
		var okh, okm bool
		oh, okh = calendar.Digits(rest[1:3])
		om, okm = calendar.Digits(rest[3:5])
		ok = okh && okm
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		var okh, okm bool
		oh, okh = calendar.Digits(rest[1:3])
		om, okm = calendar.Digits(rest[4:6])
		ok = okh && okm
	}
	if !ok || oh > 23 || om > 59 {
		return b, 0, false
	}
	off := (oh*60 + om) * 60
	if rest[0] == '-' {
		off = -off
	}
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:19]...)
	b = append(b, rest[0], rest[1], rest[2], ':')
	b = append(b, rest[len(rest)-2:]...)
	unix := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Unix() - int64(off)
	return b, unix, true
}
