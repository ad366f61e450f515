package fhirobs

import (
	"errors"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

// rawResource holds the members of a resource the importer reads, each
// still JSON, so that a resource of another type (whose members of the
// same name have other types) is told apart before anything is decoded.
type rawResource struct {
	ResourceType      jsontext.Value `json:"resourceType"`
	ID                jsontext.Value `json:"id"`
	Status            jsontext.Value `json:"status"`
	Code              jsontext.Value `json:"code"`
	EffectiveDateTime jsontext.Value `json:"effectiveDateTime"`
	EffectiveInstant  jsontext.Value `json:"effectiveInstant"`
	EffectivePeriod   jsontext.Value `json:"effectivePeriod"`
	EffectiveTiming   jsontext.Value `json:"effectiveTiming"`
	ValueQuantity     jsontext.Value `json:"valueQuantity"`
	ValueInteger      jsontext.Value `json:"valueInteger"`
	ValueAttachment   jsontext.Value `json:"valueAttachment"`
	DataAbsentReason  jsontext.Value `json:"dataAbsentReason"`
	Device            jsontext.Value `json:"device"`
	Component         jsontext.Value `json:"component"`
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

type quantity struct {
	Value      jsontext.Value `json:"value"`
	Comparator string         `json:"comparator"`
	Unit       string         `json:"unit"`
	System     string         `json:"system"`
	Code       string         `json:"code"`
}

type component struct {
	Code             concept        `json:"code"`
	ValueQuantity    jsontext.Value `json:"valueQuantity"`
	DataAbsentReason jsontext.Value `json:"dataAbsentReason"`
}

// present reports whether a member was given (JSON null counts as absent).
func present(raw jsontext.Value) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// at names a member of the resource at pos.
func at(pos ingest.Pos, field string) ingest.Pos {
	return ingest.Pos{Line: pos.Line, Element: pos.Element + "." + field}
}

// decode decodes a member, refusing a wrong JSON type by the member's path.
// It decodes as encoding/json/v2 does by default: member names match
// exactly, as FHIR's do.
func decode(raw jsontext.Value, v any, pos ingest.Pos, field string) error {
	if err := jsonv2.Unmarshal(raw, v); err != nil {
		var se *jsonv2.SemanticError
		if errors.As(err, &se) {
			for tok := range se.JSONPointer.Tokens() {
				if isDigits(tok) {
					field += "[" + tok + "]"
				} else {
					field += "." + tok
				}
			}
		}
		return ingest.Errorf(at(pos, field), "bad_json", "%s has the wrong JSON type for FHIR R4", field)
	}
	return nil
}

// resource reads one resource, raw JSON, at pos.
func (p *parser) resource(raw []byte, pos ingest.Pos) error {
	if raw[0] != '{' {
		return ingest.Errorf(pos, "bad_json", "a resource must be a JSON object")
	}
	var r rawResource
	if err := jsonv2.Unmarshal(raw, &r); err != nil {
		// The decoder has checked the syntax; what is left is a member
		// name given twice in one object, or invalid UTF-8, where readers
		// disagree about the meaning.
		return ingest.Errorf(pos, "bad_json", "the resource repeats a member name in one object or is not valid UTF-8")
	}
	var rt string
	if !present(r.ResourceType) {
		return ingest.Errorf(pos, "bad_json", "a JSON object without resourceType is not a FHIR resource")
	}
	if err := decode(r.ResourceType, &rt, pos, "resourceType"); err != nil {
		return err
	}
	switch rt {
	case "Observation":
		return p.observation(&r, pos)
	case "":
		return ingest.Errorf(at(pos, "resourceType"), "bad_json", "resourceType must not be empty")
	}
	return p.skip(pos, rt, "not an Observation")
}

// typeOf is the type a skip reports: the Observation's LOINC code as a FHIR
// token (system|code), else its first coding, else "Observation".
func typeOf(c *concept) string {
	for _, cd := range c.Coding {
		if cd.System == loincSystem && cd.Code != "" {
			return loincSystem + "|" + cd.Code
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			if cd.System == "" {
				return cd.Code
			}
			return cd.System + "|" + cd.Code
		}
	}
	return "Observation"
}

// mapCode finds what the codings mean: the first LOINC coding the importer
// knows, a lone systolic or diastolic code only when there is nothing
// better, and the vault's "Glucose in <specimen>" text when there is no
// coding at all.
func mapCode(c *concept) mapping {
	var m mapping
	pulseOx := false
	for _, cd := range c.Coding {
		if cd.System != loincSystem {
			continue
		}
		x := loincMapping(cd.Code)
		pulseOx = pulseOx || x.pulseOx
		switch {
		case x.kind == kindNone:
		case m.kind == kindNone, m.kind == kindBPPart && x.kind != kindBPPart:
			m = x
		}
	}
	if m.kind == kindSpO2 {
		m.pulseOx = pulseOx
	}
	if m.kind == kindNone && len(c.Coding) == 0 {
		if sp, ok := glucoseFromText(c.Text); ok {
			m = mapping{kind: kindGlucose, specimen: sp}
		}
	}
	return m
}

func omhCoding(c *concept) (coding, bool) {
	for _, cd := range c.Coding {
		if cd.System == omhSystem {
			return cd, true
		}
	}
	return coding{}, false
}

// isFHIRID checks the R4 id datatype, [A-Za-z0-9\-.]{1,64}.
func isFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// datasheet is the point's one external_datasheets item, from
// Observation.device.
type datasheet struct{ typ, ref string }

// frame is an effective_time_frame: a date_time, or a time_interval.
type frame struct{ dt, start, end string }

func (f frame) startText() string {
	if f.dt != "" {
		return f.dt
	}
	return f.start
}

// observation maps one Observation.
func (p *parser) observation(r *rawResource, pos ingest.Pos) error {
	var code concept
	if !present(r.Code) {
		return ingest.Errorf(at(pos, "code"), "bad_value", "code is required in an Observation")
	}
	if err := decode(r.Code, &code, pos, "code"); err != nil {
		return err
	}
	typ := typeOf(&code)
	omhc, isOMH := omhCoding(&code)
	m := mapCode(&code)
	if !isOMH {
		switch m.kind {
		case kindNone:
			return p.skip(pos, typ, "no Open mHealth schema the vault stores has this code")
		case kindBPPart:
			return p.skip(pos, typ, "a systolic or diastolic pressure on its own is not a blood-pressure reading; the vault reads the panel (85354-9) with both as components")
		}
	}

	var status string
	if !present(r.Status) {
		return ingest.Errorf(at(pos, "status"), "bad_value", "status is required in an Observation")
	}
	if err := decode(r.Status, &status, pos, "status"); err != nil {
		return err
	}
	switch status {
	case "final", "amended", "corrected":
	case "registered", "preliminary", "cancelled", "entered-in-error", "unknown":
		return p.skip(pos, typ, "status "+status+": only final, amended and corrected Observations are readings")
	default:
		return ingest.Errorf(at(pos, "status"), "bad_value", "status must be an R4 observation status: registered, preliminary, final, amended, corrected, cancelled, entered-in-error or unknown")
	}

	var id string
	if present(r.ID) {
		if err := decode(r.ID, &id, pos, "id"); err != nil {
			return err
		}
		if !isFHIRID(id) {
			return ingest.Errorf(at(pos, "id"), "bad_value", "id must be an R4 id: 1 to 64 letters, digits, '-' and '.'")
		}
	}
	var ds datasheet
	if present(r.Device) {
		var dev struct {
			Reference string `json:"reference"`
			Display   string `json:"display"`
		}
		if err := decode(r.Device, &dev, pos, "device"); err != nil {
			return err
		}
		if d := strings.TrimSpace(dev.Display); d != "" {
			ds = datasheet{"source_name", d}
		} else if ref := strings.TrimSpace(dev.Reference); ref != "" {
			ds = datasheet{"device", ref}
		}
	}

	if isOMH {
		return p.omhObservation(r, pos, omhc, typ, id, ds)
	}
	return p.loincObservation(r, pos, m, typ, id, ds)
}

// loincObservation maps an Observation by its LOINC code.
func (p *parser) loincObservation(r *rawResource, pos ingest.Pos, m mapping, typ, id string, ds datasheet) error {
	f, skip, err := p.effective(r, pos, m.kind)
	if err != nil {
		return err
	}
	if skip != "" {
		return p.skip(pos, typ, skip)
	}
	s := schemaOf(m.kind)
	b := p.buf[:0]
	b = append(b, `{"header":{`...)
	if id != "" {
		// A UUID becomes the point's uuid; any other id becomes its
		// x_vault.source_id, from which the vault derives the uuid.
		b = append(b, `"uuid":`...)
		b = ingest.AppendString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"schema_id":{"namespace":"omh","name":"`...)
	b = append(b, s.name...)
	b = append(b, `","version":"`...)
	b = append(b, s.version...)
	b = append(b, `"},"source_creation_date_time":`...)
	b = ingest.AppendString(b, f.startText())
	if ds.ref != "" {
		b = append(b, `,"external_datasheets":[{"datasheet_type":`...)
		b = ingest.AppendString(b, ds.typ)
		b = append(b, `,"datasheet_reference":`...)
		b = ingest.AppendString(b, ds.ref)
		b = append(b, `}]`...)
	}
	b = append(b, `},"body":{`...)

	if m.kind == kindBP {
		b, skip, err = p.bloodPressure(b, r, pos)
	} else {
		b, skip, err = p.value(b, r, pos, m)
	}
	if err != nil {
		return err
	}
	if skip != "" {
		return p.skip(pos, typ, skip)
	}
	b = appendFrame(b, f)
	b = append(b, "}}"...)
	p.buf = b
	pt, err := omh.Parse(b)
	if err != nil {
		return ingest.PointError(pos, err)
	}
	return p.sink.Reading(ingest.Item{Point: pt, Pos: pos})
}

// value appends the body members other than effective_time_frame for a
// reading with one value.
func (p *parser) value(b []byte, r *rawResource, pos ingest.Pos, m mapping) ([]byte, string, error) {
	var num []byte
	var unit string
	switch {
	case present(r.ValueQuantity):
		var skip string
		var err error
		if num, unit, skip, err = quantityOf(r.ValueQuantity, m.kind, pos, "valueQuantity"); err != nil || skip != "" {
			return b, skip, err
		}
	case m.kind == kindSteps && present(r.ValueInteger):
		if c := r.ValueInteger[0]; c != '-' && (c < '0' || c > '9') {
			return b, "", ingest.Errorf(at(pos, "valueInteger"), "bad_json", "valueInteger must be a JSON number")
		}
		num, unit = r.ValueInteger, "steps"
	case present(r.DataAbsentReason):
		return b, "the Observation has no value (dataAbsentReason)", nil
	default:
		return b, "the Observation has no valueQuantity", nil
	}
	switch m.kind {
	case kindHeartRate:
		b = appendUnitValue(b, "heart_rate", num, unit)
	case kindRespRate:
		b = appendUnitValue(b, "respiratory_rate", num, unit)
	case kindWeight:
		b = appendUnitValue(b, "body_weight", num, unit)
	case kindTemp:
		b = appendUnitValue(b, "body_temperature", num, unit)
	case kindSteps:
		b = appendUnitValue(b, "step_count", num, unit)
	case kindSleep:
		b = appendUnitValue(b, "total_sleep_time", num, unit)
	case kindGlucose:
		b = appendUnitValue(b, "blood_glucose", num, unit)
		if m.specimen != "" {
			b = append(b, `,"specimen_source":`...)
			b = ingest.AppendString(b, m.specimen)
		}
	case kindSpO2:
		b = appendUnitValue(b, "oxygen_saturation", num, unit)
		var comps []component
		if present(r.Component) {
			if err := decode(r.Component, &comps, pos, "component"); err != nil {
				return b, "", err
			}
		}
		for i := range comps {
			if !hasLOINC(&comps[i].Code, "3151-8") || !present(comps[i].ValueQuantity) {
				continue
			}
			field := "component[" + strconv.Itoa(i) + "].valueQuantity"
			fnum, funit, skip, err := quantityOf(comps[i].ValueQuantity, unitFlow, pos, field)
			if err != nil {
				return b, "", err
			}
			if skip == "" {
				b = append(b, ',')
				b = appendUnitValue(b, "supplemental_oxygen_flow_rate", fnum, funit)
			}
			break
		}
		if m.pulseOx {
			b = append(b, `,"measurement_method":"pulse oximetry"`...)
		}
	}
	return append(b, ','), "", nil
}

// bloodPressure appends systolic and diastolic from the panel's components.
func (p *parser) bloodPressure(b []byte, r *rawResource, pos ingest.Pos) ([]byte, string, error) {
	var comps []component
	if present(r.Component) {
		if err := decode(r.Component, &comps, pos, "component"); err != nil {
			return b, "", err
		}
	}
	sys, dia := -1, -1
	for i := range comps {
		switch {
		case sys < 0 && hasLOINC(&comps[i].Code, "8480-6"):
			sys = i
		case dia < 0 && hasLOINC(&comps[i].Code, "8462-4"):
			dia = i
		}
	}
	if sys < 0 || dia < 0 {
		return b, "the blood pressure panel lacks a systolic (8480-6) or a diastolic (8462-4) component", nil
	}
	for n, i := range [2]int{sys, dia} {
		c := &comps[i]
		if !present(c.ValueQuantity) {
			return b, "a blood pressure component has no valueQuantity", nil
		}
		num, unit, skip, err := quantityOf(c.ValueQuantity, kindBP, pos, "component["+strconv.Itoa(i)+"].valueQuantity")
		if err != nil || skip != "" {
			return b, skip, err
		}
		name := "systolic_blood_pressure"
		if n == 1 {
			b = append(b, ',')
			name = "diastolic_blood_pressure"
		}
		b = appendUnitValue(b, name, num, unit)
	}
	return append(b, ','), "", nil
}

func hasLOINC(c *concept, code string) bool {
	for _, cd := range c.Coding {
		if cd.System == loincSystem && cd.Code == code {
			return true
		}
	}
	return false
}

// quantityOf reads a Quantity: its value as the JSON number written, and
// its unit as the OMH unit for kind k. The unit is the UCUM code when the
// system is UCUM, else the unit text, else a code without a system.
func quantityOf(raw jsontext.Value, k kind, pos ingest.Pos, field string) (num []byte, unit, skip string, err error) {
	var q quantity
	if err := decode(raw, &q, pos, field); err != nil {
		return nil, "", "", err
	}
	if q.Comparator != "" {
		return nil, "", field + " has a comparator: it is a bound, not a reading", nil
	}
	if !present(q.Value) {
		return nil, "", field + " has no value", nil
	}
	if c := q.Value[0]; c != '-' && (c < '0' || c > '9') {
		return nil, "", "", ingest.Errorf(at(pos, field+".value"), "bad_json", "%s.value must be a JSON number", field)
	}
	switch {
	case q.System == ucumSystem && q.Code != "":
		unit = ucumUnit(k, q.Code)
	case q.Unit != "":
		unit = textUnit(k, q.Unit)
	case q.Code != "":
		if unit = ucumUnit(k, q.Code); unit == "" {
			unit = textUnit(k, q.Code)
		}
	case k == kindSteps:
		unit = "steps" // a count needs no unit
	default:
		s := schemaOf(k)
		return nil, "", "", ingest.Errorf(at(pos, field), "bad_unit", "%s has no unit; for %s give the UCUM code %s with system %s", field, s.label, s.units, ucumSystem)
	}
	if unit == "" {
		s := schemaOf(k)
		return nil, "", "", ingest.Errorf(at(pos, field), "bad_unit", "%s has a unit the importer does not read for %s; use the UCUM code %s with system %s", field, s.label, s.units, ucumSystem)
	}
	return q.Value, unit, "", nil
}

func appendUnitValue(b []byte, name string, num []byte, unit string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":{"value":`...)
	b = append(b, num...)
	b = append(b, `,"unit":`...)
	b = ingest.AppendString(b, unit)
	return append(b, '}')
}

func appendFrame(b []byte, f frame) []byte {
	if f.dt != "" {
		b = append(b, `"effective_time_frame":{"date_time":`...)
		b = ingest.AppendString(b, f.dt)
		return append(b, '}')
	}
	b = append(b, `"effective_time_frame":{"time_interval":{"start_date_time":`...)
	b = ingest.AppendString(b, f.start)
	b = append(b, `,"end_date_time":`...)
	b = ingest.AppendString(b, f.end)
	return append(b, "}}"...)
}

// effective reads effective[x] into a time frame, or says why the
// Observation is skipped.
//
// A full date-time is the reading's time; a period with start and end its
// interval (a period with only a start, its time). A step count needs an
// interval: a period, or a date (or month, or year) alone, which stands
// for that whole span of days in the patient's zone. Any other reading
// given only a date is skipped: the vault files readings by their time.
func (p *parser) effective(r *rawResource, pos ingest.Pos, k kind) (f frame, skip string, err error) {
	n := 0
	for _, raw := range [...]jsontext.Value{r.EffectiveDateTime, r.EffectiveInstant, r.EffectivePeriod, r.EffectiveTiming} {
		if present(raw) {
			n++
		}
	}
	if n > 1 {
		return f, "", ingest.Errorf(pos, "bad_json", "an Observation has at most one effective[x] member")
	}
	needInterval := k == kindSteps || k == kindSleep
	noInterval := "a " + schemaOf(k).label + " needs an interval: give effectivePeriod with start and end"
	var field string
	var raw jsontext.Value
	switch {
	case present(r.EffectiveDateTime):
		field, raw = "effectiveDateTime", r.EffectiveDateTime
	case present(r.EffectiveInstant):
		field, raw = "effectiveInstant", r.EffectiveInstant
	case present(r.EffectivePeriod):
		return p.period(r.EffectivePeriod, pos, k)
	case present(r.EffectiveTiming):
		return f, "effectiveTiming (a schedule) is not read; give effectiveDateTime or effectivePeriod", nil
	default:
		return f, "the Observation has no effective time", nil
	}
	var s string
	if err := decode(raw, &s, pos, field); err != nil {
		return f, "", err
	}
	ft, ok := parseFHIRTime(s, p.loc)
	if !ok {
		return f, "", badTime(pos, field)
	}
	switch {
	case ft.partial && k == kindSteps:
		return frame{start: ft.text, end: ft.endText}, "", nil
	case ft.partial:
		return f, field + " is only a date; the vault needs the time of day of a " + schemaOf(k).label, nil
	case needInterval:
		return f, noInterval, nil
	}
	return frame{dt: ft.text}, "", nil
}

func (p *parser) period(raw jsontext.Value, pos ingest.Pos, k kind) (f frame, skip string, err error) {
	var per struct {
		Start *string `json:"start"`
		End   *string `json:"end"`
	}
	if err := decode(raw, &per, pos, "effectivePeriod"); err != nil {
		return f, "", err
	}
	needInterval := k == kindSteps || k == kindSleep
	if per.Start == nil {
		return f, "effectivePeriod has no start", nil
	}
	st, ok := parseFHIRTime(*per.Start, p.loc)
	if !ok {
		return f, "", badTime(pos, "effectivePeriod.start")
	}
	if per.End == nil {
		switch {
		case needInterval:
			return f, "a " + schemaOf(k).label + " needs an interval: effectivePeriod has no end", nil
		case st.partial:
			return f, "effectivePeriod.start is only a date; the vault needs the time of day of a " + schemaOf(k).label, nil
		}
		return frame{dt: st.text}, "", nil
	}
	en, ok := parseFHIRTime(*per.End, p.loc)
	if !ok {
		return f, "", badTime(pos, "effectivePeriod.end")
	}
	if (st.partial || en.partial) && k != kindSteps {
		return f, "effectivePeriod is given in dates; the vault needs the time of day of a " + schemaOf(k).label, nil
	}
	endT, endText := en.t, en.text
	if en.partial {
		// A period's end given as a date includes that whole day.
		endT, endText = en.end, en.endText
	}
	if endT.Before(st.t) {
		return f, "", ingest.Errorf(at(pos, "effectivePeriod"), "bad_time", "effectivePeriod.end is before its start")
	}
	return frame{start: st.text, end: endText}, "", nil
}

func badTime(pos ingest.Pos, field string) error {
	return ingest.Errorf(at(pos, field), "bad_time", "%s is not an R4 dateTime: give YYYY-MM-DDThh:mm:ss with an offset (Z or +hh:mm), or a date", field)
}
