package export

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jupyterhealth/vault/omh"
)

// The FHIR encoder writes one R4 Observation per reading, one per line, as
// FHIR Bulk Data NDJSON does. The mapping, and where each code comes from,
// is documented in docs/export.md (Formats); the tables below are the
// single place it is defined.

const (
	loincSystem    = "http://loinc.org"
	ucumSystem     = "http://unitsofmeasure.org"
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	absentSystem   = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

	// extObservationValue is the official cross-version extension that
	// carries an R5 Observation.value[x] in R4
	// (https://hl7.org/fhir/uv/xver-r5.r4/, ext-R5-Observation.value):
	// R4's value[x] has no Attachment, R5's (which /jhe serves) does.
	extObservationValue = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"

	// The FHIR R4 vital signs profiles
	// (https://hl7.org/fhir/R4/observation-vitalsigns.html).
	profileHeartRate  = "http://hl7.org/fhir/StructureDefinition/heartrate"
	profileRespRate   = "http://hl7.org/fhir/StructureDefinition/resprate"
	profileBodyTemp   = "http://hl7.org/fhir/StructureDefinition/bodytemp"
	profileBodyWeight = "http://hl7.org/fhir/StructureDefinition/bodyweight"
	profileBP         = "http://hl7.org/fhir/StructureDefinition/bp"
	profileOxygenSat  = "http://hl7.org/fhir/StructureDefinition/oxygensat"
	// The HL7 Continuous Glucose Monitoring IG 1.0.0 (STU 1, R4) sensor
	// reading profiles: https://hl7.org/fhir/uv/cgm/ (input/fsh/profiles.fsh
	// in github.com/HL7/cgm). They fix code 99504-3 or 105272-9, require
	// effectiveDateTime (so a reading given as an interval does not claim
	// them), and pattern valueQuantity as UCUM mg/dL with unit "mg/dl", or
	// mmol/L with unit "mmol/l".
	profileCGMMass  = "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-mass-per-volume"
	profileCGMMoles = "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-moles-per-volume"
)

// coding is a LOINC code with its display (the LOINC long common name).
type coding struct{ code, display string }

// The LOINC codes the encoder uses.
var (
	codeHeartRate  = []coding{{"8867-4", "Heart rate"}}
	codeRespRate   = []coding{{"9279-1", "Respiratory rate"}}
	codeBodyTemp   = []coding{{"8310-5", "Body temperature"}}
	codeBodyWeight = []coding{{"29463-7", "Body weight"}}
	codeBP         = []coding{{"85354-9", "Blood pressure panel with all children optional"}}
	codeSystolic   = coding{"8480-6", "Systolic blood pressure"}
	codeDiastolic  = coding{"8462-4", "Diastolic blood pressure"}
	// The R4 oxygensat profile requires 2708-6 and allows more specific
	// codings; 59408-5 says the saturation was measured by pulse oximetry,
	// the only measurement_method OMH oxygen-saturation 2.0 knows. US Core's
	// pulse oximetry profile asks for the same pair.
	codeSpO2       = []coding{{"2708-6", "Oxygen saturation in Arterial blood"}, {"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"}}
	codeO2FlowRate = coding{"3151-8", "Inhaled oxygen flow rate"}
	codeSteps      = []coding{{"55423-8", "Number of steps in unspecified time Pedometer"}}
	codeSleep      = []coding{{"93832-4", "Sleep duration"}}

	// Glucose. The specimen decides the code, the unit its property: mass
	// per volume for mg/dL, substance per volume for mmol/L. 2339-0 is
	// Glucose [Mass/volume] in Blood, so it cannot carry mmol/L; its molar
	// twin is 15074-8. Likewise 41653-7 (mass, capillary blood, glucometer)
	// pairs with 14743-9 (moles), and the CGM IG's 99504-3 with 105272-9.
	codeGlucoseISFMass       = []coding{{"99504-3", "Glucose [Mass/volume] in Interstitial fluid"}}
	codeGlucoseISFMoles      = []coding{{"105272-9", "Glucose [Moles/volume] in Interstitial fluid"}}
	codeGlucoseCapillaryMass = []coding{{"41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"}}
	codeGlucoseCapillaryMol  = []coding{{"14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"}}
	codeGlucoseBloodMass     = []coding{{"2339-0", "Glucose [Mass/volume] in Blood"}}
	codeGlucoseBloodMoles    = []coding{{"15074-8", "Glucose [Moles/volume] in Blood"}}
)

// The observation-category codes (http://terminology.hl7.org/CodeSystem/observation-category).
var (
	catVitalSigns = &coding{"vital-signs", "Vital Signs"}
	catLaboratory = &coding{"laboratory", "Laboratory"}
	catActivity   = &coding{"activity", "Activity"}
)

// fhirSchemas is, for each schema the FHIR form maps, its category and
// every LOINC coding mapObservation can give it: what the FHIR API
// searches by (FHIRSchemas). Its entries are the coding variables above,
// so a code is written once; the FHIR API's TestSchemaTableMatchesExport
// renders readings of every kind and checks the mapping against it.
var fhirSchemas = []struct {
	schema   string
	category *coding
	codes    [][]coding
}{
	{"omh:blood-glucose", catLaboratory, [][]coding{codeGlucoseISFMass, codeGlucoseISFMoles, codeGlucoseCapillaryMass, codeGlucoseCapillaryMol, codeGlucoseBloodMass, codeGlucoseBloodMoles}},
	{"omh:blood-pressure", catVitalSigns, [][]coding{codeBP}},
	{"omh:body-temperature", catVitalSigns, [][]coding{codeBodyTemp}},
	{"omh:body-weight", catVitalSigns, [][]coding{codeBodyWeight}},
	{"omh:heart-rate", catVitalSigns, [][]coding{codeHeartRate}},
	{"omh:oxygen-saturation", catVitalSigns, [][]coding{codeSpO2}},
	{"omh:respiratory-rate", catVitalSigns, [][]coding{codeRespRate}},
	{"omh:sleep-episode", nil, [][]coding{codeSleep}},
	{"omh:step-count", catActivity, [][]coding{codeSteps}},
}

// FHIRSchema is one schema's Observations: the schema (namespace:name),
// their observation-category code ("" for none) and every LOINC code
// they can carry.
type FHIRSchema struct {
	Schema   string
	Category string
	LOINC    []string
}

// FHIRSchemas lists the schemas the FHIR form maps, with their codes, in
// a fixed order: the one table the FHIR API's search reads.
func FHIRSchemas() []FHIRSchema {
	out := make([]FHIRSchema, 0, len(fhirSchemas))
	for _, f := range fhirSchemas {
		s := FHIRSchema{Schema: f.schema}
		if f.category != nil {
			s.Category = f.category.code
		}
		for _, cs := range f.codes {
			for _, c := range cs {
				s.LOINC = append(s.LOINC, c.code)
			}
		}
		out = append(out, s)
	}
	return out
}

// ucum is a UCUM code and the unit text shown beside it.
type ucum struct{ code, unit string }

// ucumUnits maps each unit the omh package can hold (its canonical
// spelling) to UCUM. The unit text is OMH's own spelling, except where a
// profile or the R4 examples show another.
var ucumUnits = map[string]ucum{
	// heart-rate, respiratory-rate: the vital signs profiles fix "/min".
	"beats/min":   {"/min", "beats/minute"},
	"breaths/min": {"/min", "breaths/minute"},
	"mmHg":        {"mm[Hg]", "mmHg"},
	"%":           {"%", "%"},
	"steps":       {"{steps}", "steps"},
	"mg/dL":       {"mg/dL", "mg/dL"},
	"mmol/L":      {"mmol/L", "mmol/L"},
	"L/min":       {"L/min", "L/min"},
	// body-temperature
	"C": {"Cel", "C"},
	"F": {"[degF]", "F"},
	"K": {"K", "K"},
	// mass-unit-value-1.0; the schema itself names the UCUM codes of metric
	// ton (t), grain ([gr]), ounce ([oz_av]), pound ([lb_av]) and Ton
	// ([ston_av]).
	"fg": {"fg", "fg"}, "pg": {"pg", "pg"}, "ng": {"ng", "ng"}, "ug": {"ug", "ug"},
	"mg": {"mg", "mg"}, "g": {"g", "g"}, "kg": {"kg", "kg"},
	"Metric Ton": {"t", "Metric Ton"}, "gr": {"[gr]", "gr"}, "oz": {"[oz_av]", "oz"},
	"lb": {"[lb_av]", "lb"}, "Ton": {"[ston_av]", "Ton"},
	// duration-unit-value-1.0
	"ps": {"ps", "ps"}, "ns": {"ns", "ns"}, "us": {"us", "us"}, "ms": {"ms", "ms"},
	"sec": {"s", "sec"}, "min": {"min", "min"}, "h": {"h", "h"}, "d": {"d", "d"},
	"wk": {"wk", "wk"}, "Mo": {"mo", "Mo"}, "yr": {"a", "yr"},
}

// quantity is a valueQuantity. code "" writes a unit without system and
// code (only for a unit the table lacks, which the omh models never give).
type quantity struct {
	value      float64
	unit, code string
}

func quantityOf(uv omh.UnitValue) quantity {
	u, ok := ucumUnits[uv.Unit]
	if !ok {
		return quantity{value: uv.Value, unit: uv.Unit}
	}
	return quantity{value: uv.Value, unit: u.unit, code: u.code}
}

// observation is what one reading becomes, before it is written.
type observation struct {
	profile  string
	category *coding
	codes    []coding
	codeText string // when there is no LOINC coding
	value    quantity
	hasValue bool
	comps    [2]struct {
		code  coding
		value quantity
	}
	ncomp int
	// attach is the stored point, for a schema without a typed mapping:
	// the Observation is coded with the schema id (omh.CodeSystem) and
	// carries the point, base64, as an R5 valueAttachment (see
	// extObservationValue), as /jhe serves every reading.
	attach []byte
}

func (o *observation) component(c coding, q quantity) {
	o.comps[o.ncomp].code, o.comps[o.ncomp].value = c, q
	o.ncomp++
}

// fhirSupports reports whether a canonical schema has a FHIR form: every
// one but omh:physical-activity. A schema without a typed model goes out
// in the generic form (see observation.attach). An OMH
// physical-activity is a named session with optional distance, energy and
// intensity: there is no one standard Observation coding that carries it
// without dropping members (LOINC has no code for the session's distance in
// the HL7 Physical Activity IG's value sets), so fhir refuses it.
func fhirSupports(id omh.SchemaID) bool {
	return !(id.Namespace == "omh" && id.Name == "physical-activity" && omh.Typed(id))
}

type fhirEncoder struct {
	subject []byte // the "subject" member, written once
}

func newFHIREncoder(patient string) (*fhirEncoder, error) {
	id := strings.ReplaceAll(patient, "_", "-")
	if !isFHIRID(id) {
		return nil, fmt.Errorf("%w: a FHIR id is 1 to 64 letters, digits, '-' and '.' once '_' becomes '-'", ErrBadPatient)
	}
	return &fhirEncoder{subject: []byte(`"subject":{"reference":"Patient/` + id + `"}`)}, nil
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

func (e *fhirEncoder) Header() []byte { return nil }

func (e *fhirEncoder) AppendRecord(dst, point []byte) ([]byte, error) {
	p, err := parsePoint(point)
	if err != nil {
		return dst, err
	}
	var o observation
	if !mapObservation(p, &o) {
		return dst, fmt.Errorf("%w: %s readings have no fhir form", ErrUnsupported, p.Schema)
	}
	return append(e.appendObservation(dst, p, &o, p.UUID), '\n'), nil
}

// ObservationWriter writes single readings as R4 Observations, with the
// export's mapping, for the FHIR API (package fhir). It is used by one
// goroutine.
type ObservationWriter struct{ e *fhirEncoder }

// NewObservationWriter returns a writer for one patient's readings (the
// vault patient id, for the subject reference).
func NewObservationWriter(patient string) (*ObservationWriter, error) {
	e, err := newFHIREncoder(patient)
	if err != nil {
		return nil, err
	}
	return &ObservationWriter{e}, nil
}

// ObservationCodes is what an Observation was coded with: its category
// code (observation-category; "" for none) and its LOINC codes.
type ObservationCodes struct {
	Category string
	LOINC    []string
}

// Append appends the Observation for one stored point (canonical OMH
// JSON) with the given resource id, and no newline, and returns its codes.
// An unsupported schema is ErrUnsupported; bytes that do not parse are
// ErrBadPoint.
func (w *ObservationWriter) Append(dst []byte, id string, point []byte) ([]byte, ObservationCodes, error) {
	p, err := parsePoint(point)
	if err != nil {
		return dst, ObservationCodes{}, err
	}
	var o observation
	if !mapObservation(p, &o) {
		return dst, ObservationCodes{}, fmt.Errorf("%w: %s readings have no fhir form", ErrUnsupported, p.Schema)
	}
	var c ObservationCodes
	if o.category != nil {
		c.Category = o.category.code
	}
	for _, code := range o.codes {
		c.LOINC = append(c.LOINC, code.code)
	}
	return w.e.appendObservation(dst, p, &o, id), c, nil
}

// mapObservation fills o for p; false when p's schema has no FHIR form.
func mapObservation(p *omh.Point, o *observation) bool {
	switch b := p.Body.(type) {
	case *omh.Document:
		// The point in canonical form, as the vault stores it: the
		// attachment depends on the reading, not its spelling.
		o.attach = p.AppendJSON(nil)
	case *omh.HeartRate:
		o.profile, o.category, o.codes = profileHeartRate, catVitalSigns, codeHeartRate
		o.value, o.hasValue = quantityOf(b.HeartRate), true
	case *omh.RespiratoryRate:
		o.profile, o.category, o.codes = profileRespRate, catVitalSigns, codeRespRate
		o.value, o.hasValue = quantityOf(b.RespiratoryRate), true
	case *omh.BloodPressure:
		o.profile, o.category, o.codes = profileBP, catVitalSigns, codeBP
		o.component(codeSystolic, quantityOf(b.SystolicBloodPressure))
		o.component(codeDiastolic, quantityOf(b.DiastolicBloodPressure))
	case *omh.OxygenSaturation:
		o.profile, o.category, o.codes = profileOxygenSat, catVitalSigns, codeSpO2
		o.value, o.hasValue = quantityOf(b.OxygenSaturation), true
		if b.SupplementalOxygenFlowRate != nil {
			o.component(codeO2FlowRate, quantityOf(*b.SupplementalOxygenFlowRate))
		}
	case *omh.BodyWeight:
		o.category, o.codes = catVitalSigns, codeBodyWeight
		o.value, o.hasValue = quantityOf(b.BodyWeight), true
		// The bodyweight profile binds the unit to kg, g or [lb_av] (required).
		if c := o.value.code; c == "kg" || c == "g" || c == "[lb_av]" {
			o.profile = profileBodyWeight
		}
	case *omh.BodyTemperature:
		o.category, o.codes = catVitalSigns, codeBodyTemp
		o.value, o.hasValue = quantityOf(b.BodyTemperature), true
		// The bodytemp profile binds the unit to Cel or [degF] (required).
		if c := o.value.code; c == "Cel" || c == "[degF]" {
			o.profile = profileBodyTemp
		}
	case *omh.BloodGlucose:
		mapGlucose(b, o)
	case *omh.StepCount:
		o.category, o.codes = catActivity, codeSteps
		o.value, o.hasValue = quantityOf(b.StepCount), true
	case *omh.SleepEpisode:
		// No observation-category fits sleep (activity is for fitness), so
		// the Observation has none.
		o.codes = codeSleep
		if b.TotalSleepTime != nil {
			o.value, o.hasValue = quantityOf(*b.TotalSleepTime), true
		} else if iv := timeOf(p); iv.hasEnd {
			o.value, o.hasValue = quantity{value: minutesBetween(iv.start, iv.end), unit: "min", code: "min"}, true
		}
	default:
		return false
	}
	return true
}

// mapGlucose chooses the glucose coding from specimen_source:
//
//   - "interstitial fluid" is a CGM sensor reading: 99504-3 (mg/dL) or
//     105272-9 (mmol/L), with the CGM IG profile when the time is a
//     date_time;
//   - "capillary blood" is a fingerstick meter reading: 41653-7 (mg/dL) or
//     14743-9 (mmol/L);
//   - absent is glucose in blood, method unknown: 2339-0 (mg/dL) or
//     15074-8 (mmol/L). The schema is blood-glucose, so blood is the
//     specimen it implies; the code claims no method;
//   - any other specimen (breath, saliva, sweat, tears, urine) has no LOINC
//     code here: the Observation says "Glucose in <specimen>" as code.text.
//
// All are category laboratory, as in the CGM IG's examples.
func mapGlucose(b *omh.BloodGlucose, o *observation) {
	o.category = catLaboratory
	o.value, o.hasValue = quantityOf(b.BloodGlucose), true
	molar := b.BloodGlucose.Unit == "mmol/L"
	switch b.SpecimenSource {
	case "interstitial fluid":
		o.codes, o.profile = codeGlucoseISFMass, profileCGMMass
		o.value.unit = "mg/dl" // the CGM IG's pattern
		if molar {
			o.codes, o.profile = codeGlucoseISFMoles, profileCGMMoles
			o.value.unit = "mmol/l"
		}
		if b.EffectiveTimeFrame.TimeInterval != nil {
			o.profile = "" // the profiles require effectiveDateTime
		}
	case "capillary blood":
		o.codes = codeGlucoseCapillaryMass
		if molar {
			o.codes = codeGlucoseCapillaryMol
		}
	case "":
		o.codes = codeGlucoseBloodMass
		if molar {
			o.codes = codeGlucoseBloodMoles
		}
	default:
		o.codeText = "Glucose in " + b.SpecimenSource
	}
}

// appendObservation writes o as one line of JSON.
// appendObservation writes o, with resource id id (none when empty; the
// export passes the point's UUID: lower-case hex and '-', 36 characters,
// a valid R4 id), and no newline.
func (e *fhirEncoder) appendObservation(dst []byte, p *omh.Point, o *observation, id string) []byte {
	dst = append(dst, `{"resourceType":"Observation"`...)
	if id != "" {
		dst = append(dst, `,"id":"`...)
		dst = append(dst, id...)
		dst = append(dst, '"')
	}
	if o.profile != "" {
		dst = append(dst, `,"meta":{"profile":["`...)
		dst = append(dst, o.profile...)
		dst = append(dst, `"]}`...)
	}
	if p.UUID != "" {
		dst = append(dst, `,"identifier":[{"system":"urn:ietf:rfc:3986","value":"urn:uuid:`...)
		dst = append(dst, p.UUID...)
		dst = append(dst, `"}]`...)
	}
	if o.attach != nil {
		dst = append(dst, `,"extension":[{"url":"`+extObservationValue+`","valueAttachment":{"contentType":"application/json","data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, o.attach)
		dst = append(dst, `"}}]`...)
	}
	dst = append(dst, `,"status":"final"`...)
	if o.category != nil {
		dst = append(dst, `,"category":[{"coding":[{"system":"`+categorySystem+`","code":"`...)
		dst = append(dst, o.category.code...)
		dst = append(dst, `","display":"`...)
		dst = append(dst, o.category.display...)
		dst = append(dst, `"}]}]`...)
	}
	dst = append(dst, `,"code":`...)
	if o.attach != nil {
		dst = append(dst, `{"coding":[{"system":"`+omh.CodeSystem+`","code":"`...)
		dst = append(dst, p.Schema.String()...) // namespace:name:version of the embedded set: no character to escape
		dst = append(dst, `"}],"text":"`...)
		dst = append(dst, p.Schema.String()...)
		dst = append(dst, `"}`...)
	} else {
		dst = appendConcept(dst, o.codes, o.codeText)
	}
	dst = append(dst, ',')
	dst = append(dst, e.subject...)

	iv := timeOf(p)
	if !iv.isInterval {
		dst = append(dst, `,"effectiveDateTime":"`...)
		dst = appendFHIRDateTime(dst, iv.start, iv.startText)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `,"effectivePeriod":{"start":"`...)
		dst = appendFHIRDateTime(dst, iv.start, iv.startText)
		dst = append(dst, '"')
		if iv.hasEnd {
			dst = append(dst, `,"end":"`...)
			dst = appendFHIRDateTime(dst, iv.end, iv.endText)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	switch {
	case o.hasValue:
		dst = append(dst, `,"valueQuantity":`...)
		dst = appendQuantity(dst, o.value)
	case o.ncomp == 0 && o.attach == nil:
		// Only a sleep episode whose end cannot be computed gets here.
		dst = append(dst, `,"dataAbsentReason":{"coding":[{"system":"`+absentSystem+`","code":"unknown","display":"Unknown"}]}`...)
	}
	if src := provenance(p.Header()); src != "" {
		dst = append(dst, `,"device":{"display":`...)
		dst = appendJSONString(dst, src)
		dst = append(dst, '}')
	}
	if o.ncomp > 0 {
		dst = append(dst, `,"component":[`...)
		for i := range o.ncomp {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"code":`...)
			dst = appendConcept(dst, []coding{o.comps[i].code}, "")
			dst = append(dst, `,"valueQuantity":`...)
			dst = appendQuantity(dst, o.comps[i].value)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendConcept writes a CodeableConcept of LOINC codings, with text: the
// first coding's display, or text when there is no coding.
func appendConcept(dst []byte, codes []coding, text string) []byte {
	dst = append(dst, '{')
	if len(codes) > 0 {
		dst = append(dst, `"coding":[`...)
		for i, c := range codes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"system":"`+loincSystem+`","code":"`...)
			dst = append(dst, c.code...)
			dst = append(dst, `","display":"`...)
			dst = append(dst, c.display...)
			dst = append(dst, `"}`...)
		}
		dst = append(dst, `],`...)
		text = codes[0].display
	}
	dst = append(dst, `"text":`...)
	dst = appendJSONString(dst, text)
	return append(dst, '}')
}

func appendQuantity(dst []byte, q quantity) []byte {
	dst = append(dst, `{"value":`...)
	dst = appendNumber(dst, q.value)
	dst = append(dst, `,"unit":`...)
	dst = appendJSONString(dst, q.unit)
	if q.code != "" {
		dst = append(dst, `,"system":"`+ucumSystem+`","code":`...)
		dst = appendJSONString(dst, q.code)
	}
	return append(dst, '}')
}

// appendFHIRDateTime writes a dateTime: the text the point gave when R4's
// dateTime accepts it (it keeps the offset and precision as given), else t
// formatted, in UTC when its offset is outside R4's -14:00 to +14:00. The
// point's text is refused for a leap second (R4's regex allows ":60", but
// libraries do not), an offset beyond 14 hours, and the year 0000.
func appendFHIRDateTime(dst []byte, t time.Time, text string) []byte {
	if text != "" && fhirDateTimeOK(text) {
		return append(dst, text...)
	}
	if _, off := t.Zone(); off < -14*3600 || off > 14*3600 {
		t = t.UTC()
	}
	return t.AppendFormat(dst, time.RFC3339Nano)
}

// fhirDateTimeOK checks an RFC 3339 date-time the omh package accepted
// (upper-case T and Z) against what R4's dateTime adds.
func fhirDateTimeOK(s string) bool {
	if len(s) < 20 || s[:4] == "0000" || s[17:19] == "60" {
		return false
	}
	if s[len(s)-1] == 'Z' {
		return true
	}
	if len(s) < 25 { // yyyy-mm-ddThh:mm:ss+hh:mm
		return false
	}
	off := s[len(s)-6:]
	h := int(off[1]-'0')*10 + int(off[2]-'0')
	m := int(off[4]-'0')*10 + int(off[5]-'0')
	return h*60+m <= 14*60
}

// appendJSONString writes s as a JSON string holding a valid FHIR string.
// Tab, CR and LF are escaped; the other C0 controls, which R4 strings may
// not hold, become spaces; DEL, NEL, U+2028 and U+2029 are escaped, so that
// no reader splitting lines on them cuts a record; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x7f {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20:
			dst = append(dst, ' ')
		case breaksLine(r):
			dst = append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r) // U+FFFD for invalid UTF-8
		}
	}
	return append(dst, '"')
}
