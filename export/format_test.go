package export_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

// The tests of the three encoders share one table of data points, encCases:
// hand-written points covering every schema the vault stores, every unit
// and time-frame variant the mapping distinguishes, both header dialects,
// odd times and numbers, and hostile source texts. Each case says what the
// FHIR Observation (fhir_test.go) and the CSV row (csv_test.go) must hold.
// The official example points in ../shared/schemas/examples are run through
// every encoder too (encExamples).

const encPatient = "pt_nbswy3dpo5xxe3de"

// fhirWant is what a case's Observation must hold. A nil *fhirWant means
// the fhir encoder refuses the reading.
type fhirWant struct {
	codes    []string // LOINC codes, in order
	codeText string   // code.text when there is no LOINC coding
	category string   // observation-category code, "" for none
	profile  string   // meta.profile[0], "" for none
	value    string   // valueQuantity.value's digits, "" for no valueQuantity
	unit     string   // valueQuantity.unit
	ucum     string   // valueQuantity.code
	comps    []fhirComp
	dateTime string // effectiveDateTime, or
	start    string // effectivePeriod.start and
	end      string // effectivePeriod.end ("" when absent)
	device   string // device.display
}

type fhirComp struct{ code, value, ucum string }

// csvWant is a case's CSV row, less uuid and schema (checked against the
// point).
type csvWant struct {
	time, end, value, unit, value2, unit2, source string
}

type encCase struct {
	name  string
	raw   string // the point as submitted
	point []byte // the point as the vault stores it (canonical)
	p     *omh.Point
	fhir  *fhirWant
	csv   csvWant
}

// ieee builds a point with an IEEE 1752 header. uuid "" leaves it out;
// datasheets is the JSON of external_datasheets, or "".
func ieee(uuid, schema, body, datasheets string) string {
	name, version, _ := strings.Cut(schema, ":")
	h := `{"schema_id":{"namespace":"omh","name":"` + name + `","version":"` + version + `"},"source_creation_date_time":"2026-01-02T00:00:00Z"`
	if uuid != "" {
		h += `,"uuid":"` + uuid + `"`
	}
	if datasheets != "" {
		h += `,"external_datasheets":` + datasheets
	}
	return `{"header":` + h + `},"body":` + body + `}`
}

// omh1 builds a point with an OMH 1.x header naming sourceName in
// acquisition_provenance.
func omh1(id, schema, body, sourceName string) string {
	name, version, _ := strings.Cut(schema, ":")
	return `{"header":{"id":"` + id + `","creation_date_time":"2026-01-02T00:00:00Z","schema_id":{"namespace":"omh","name":"` + name + `","version":"` + version + `"},"acquisition_provenance":{"source_name":` + jsonString(sourceName) + `,"modality":"sensed"}},"body":` + body + `}`
}

// ds builds external_datasheets from type and reference pairs (type "" is
// left out).
func ds(pairs ...string) string {
	var items []string
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] == "" {
			items = append(items, `{"datasheet_reference":`+jsonString(pairs[i+1])+`}`)
		} else {
			items = append(items, `{"datasheet_type":`+jsonString(pairs[i])+`,"datasheet_reference":`+jsonString(pairs[i+1])+`}`)
		}
	}
	return "[" + strings.Join(items, ",") + "]"
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func dt(s string) string { return `{"date_time":"` + s + `"}` }

func uid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

const (
	vs  = "vital-signs"
	lab = "laboratory"
	act = "activity"

	pHR   = "http://hl7.org/fhir/StructureDefinition/heartrate"
	pRR   = "http://hl7.org/fhir/StructureDefinition/resprate"
	pBT   = "http://hl7.org/fhir/StructureDefinition/bodytemp"
	pBW   = "http://hl7.org/fhir/StructureDefinition/bodyweight"
	pBP   = "http://hl7.org/fhir/StructureDefinition/bp"
	pSpO2 = "http://hl7.org/fhir/StructureDefinition/oxygensat"
	pCGMm = "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-mass-per-volume"
	pCGMn = "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-moles-per-volume"

	t0  = "2026-01-02T15:04:05Z"
	bad = "=HYPERLINK(\"http://x.example\",\"y\")\nline two\u2028end\t\"q\""
)

// bpComps returns the blood pressure components.
func bpComps(sys, dia string) []fhirComp {
	return []fhirComp{{"8480-6", sys, "mm[Hg]"}, {"8462-4", dia, "mm[Hg]"}}
}

func weight(n int, value, unit, ucum, profile string) encCase {
	return encCase{
		name: "body weight " + unit,
		raw:  ieee(uid(n), "body-weight:3.0", `{"body_weight":{"value":`+value+`,"unit":"`+unit+`"},"effective_time_frame":`+dt(t0)+`}`, ""),
		fhir: &fhirWant{codes: []string{"29463-7"}, category: vs, profile: profile, value: value, unit: unit, ucum: ucum, dateTime: t0},
		csv:  csvWant{time: t0, value: value, unit: unit},
	}
}

func temperature(n int, value, unit, ucum, profile string) encCase {
	return encCase{
		name: "body temperature " + unit,
		raw:  ieee(uid(n), "body-temperature:4.0", `{"body_temperature":{"value":`+value+`,"unit":"`+unit+`"},"measurement_location":"oral","effective_time_frame":`+dt(t0)+`}`, ""),
		fhir: &fhirWant{codes: []string{"8310-5"}, category: vs, profile: profile, value: value, unit: unit, ucum: ucum, dateTime: t0},
		csv:  csvWant{time: t0, value: value, unit: unit},
	}
}

func glucose(n int, name, specimen, value, unit string, fw fhirWant) encCase {
	sp := ""
	if specimen != "" {
		sp = `,"specimen_source":"` + specimen + `"`
	}
	fw.category, fw.value, fw.dateTime = lab, value, t0
	if fw.ucum == "" {
		fw.ucum = unit
	}
	if fw.unit == "" {
		fw.unit = unit
	}
	return encCase{
		name: name,
		raw:  ieee(uid(n), "blood-glucose:4.0", `{"blood_glucose":{"value":`+value+`,"unit":"`+unit+`"}`+sp+`,"effective_time_frame":`+dt(t0)+`}`, ""),
		fhir: &fw,
		csv:  csvWant{time: t0, value: value, unit: unit},
	}
}

func withSource(n int, name, source, want string) encCase {
	return encCase{
		name: name,
		raw:  ieee(uid(n), "heart-rate:2.0", `{"heart_rate":{"value":61,"unit":"beats/min"},"effective_time_frame":`+dt(t0)+`}`, ds("", source)),
		fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "61", unit: "beats/minute", ucum: "/min", dateTime: t0, device: source},
		csv:  csvWant{time: t0, value: "61", unit: "beats/min", source: want},
	}
}

func encCaseTable() []encCase {
	return []encCase{
		// Blood glucose: the specimen and the unit choose the code.
		{
			name: "cgm mg/dL with manufacturer",
			raw:  ieee(uid(1), "blood-glucose:4.0", `{"blood_glucose":{"value":104,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":`+dt(t0)+`}`, ds("manufacturer", "Dexcom G7")),
			fhir: &fhirWant{codes: []string{"99504-3"}, category: lab, profile: pCGMm, value: "104", unit: "mg/dl", ucum: "mg/dL", dateTime: t0, device: "manufacturer: Dexcom G7"},
			csv:  csvWant{time: t0, value: "104", unit: "mg/dL", source: "manufacturer: Dexcom G7"},
		},
		{
			name: "cgm mmol/L with an offset and a fraction",
			raw:  ieee(uid(2), "blood-glucose:4.0", `{"blood_glucose":{"value":5.8,"unit":"mmol/L"},"specimen_source":"interstitial fluid","effective_time_frame":`+dt("2026-01-02T15:04:05.250+01:00")+`}`, ""),
			fhir: &fhirWant{codes: []string{"105272-9"}, category: lab, profile: pCGMn, value: "5.8", unit: "mmol/l", ucum: "mmol/L", dateTime: "2026-01-02T15:04:05.250+01:00"},
			csv:  csvWant{time: "2026-01-02T14:04:05.25Z", value: "5.8", unit: "mmol/L"},
		},
		{
			name: "cgm as an interval claims no profile",
			raw:  ieee(uid(3), "blood-glucose:4.0", `{"blood_glucose":{"value":99.5,"unit":"mg/dL"},"specimen_source":"interstitial fluid","effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T15:00:00Z","end_date_time":"2026-01-02T15:05:00Z"}}}`, ""),
			fhir: &fhirWant{codes: []string{"99504-3"}, category: lab, value: "99.5", unit: "mg/dl", ucum: "mg/dL", start: "2026-01-02T15:00:00Z", end: "2026-01-02T15:05:00Z"},
			csv:  csvWant{time: "2026-01-02T15:00:00Z", end: "2026-01-02T15:05:00Z", value: "99.5", unit: "mg/dL"},
		},
		{
			name: "fingerstick mg/dL, OMH 1.x header with source_name",
			raw:  omh1(uid(4), "blood-glucose:4.0", `{"blood_glucose":{"value":131,"unit":"mg/dL"},"specimen_source":"capillary blood","temporal_relationship_to_meal":"fasting","effective_time_frame":`+dt(t0)+`}`, "Contour Next One"),
			fhir: &fhirWant{codes: []string{"41653-7"}, category: lab, value: "131", unit: "mg/dL", ucum: "mg/dL", dateTime: t0, device: "Contour Next One"},
			csv:  csvWant{time: t0, value: "131", unit: "mg/dL", source: "Contour Next One"},
		},
		glucose(5, "fingerstick mmol/L", "capillary blood", "7.25", "mmol/L", fhirWant{codes: []string{"14743-9"}}),
		glucose(6, "glucose without specimen mg/dL", "", "129", "mg/dL", fhirWant{codes: []string{"2339-0"}}),
		glucose(7, "glucose without specimen mmol/L", "", "6.1", "mmol/L", fhirWant{codes: []string{"15074-8"}}),
		glucose(8, "glucose in urine has no LOINC coding", "urine", "15", "mg/dL", fhirWant{codeText: "Glucose in urine"}),
		{
			name: "glucose normalised from MGDL",
			raw:  ieee(uid(9), "blood-glucose:4.0", `{"blood_glucose":{"value":250,"unit":"MGDL"},"specimen_source":"interstitial fluid","effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"99504-3"}, category: lab, profile: pCGMm, value: "250", unit: "mg/dl", ucum: "mg/dL", dateTime: t0},
			csv:  csvWant{time: t0, value: "250", unit: "mg/dL"},
		},

		// Vital signs.
		{
			name: "heart rate over an interval given as start and duration",
			raw:  ieee(uid(10), "heart-rate:2.0", `{"heart_rate":{"value":72,"unit":"beats/min"},"descriptive_statistic":"average","effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T08:00:00-05:00","duration":{"value":10,"unit":"min"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "72", unit: "beats/minute", ucum: "/min", start: "2026-01-02T08:00:00-05:00", end: "2026-01-02T08:10:00-05:00"},
			csv:  csvWant{time: "2026-01-02T13:00:00Z", end: "2026-01-02T13:10:00Z", value: "72", unit: "beats/min"},
		},
		{
			name: "heart rate 1.1, OMH 1.x header",
			raw:  omh1(uid(11), "heart-rate:1.1", `{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":`+dt(t0)+`}`, "Polar H10"),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "60", unit: "beats/minute", ucum: "/min", dateTime: t0, device: "Polar H10"},
			csv:  csvWant{time: t0, value: "60", unit: "beats/min", source: "Polar H10"},
		},
		{
			name: "blood pressure",
			raw:  ieee(uid(12), "blood-pressure:4.0", `{"systolic_blood_pressure":{"value":122,"unit":"mmHg"},"diastolic_blood_pressure":{"value":78.5,"unit":"mmHg"},"body_posture":"sitting","effective_time_frame":`+dt(t0)+`}`, ds("manufacturer", "Omron")),
			fhir: &fhirWant{codes: []string{"85354-9"}, category: vs, profile: pBP, comps: bpComps("122", "78.5"), dateTime: t0, device: "manufacturer: Omron"},
			csv:  csvWant{time: t0, value: "122", unit: "mmHg", value2: "78.5", unit2: "mmHg", source: "manufacturer: Omron"},
		},
		{
			name: "oxygen saturation on supplemental oxygen",
			raw:  ieee(uid(13), "oxygen-saturation:2.0", `{"oxygen_saturation":{"value":97,"unit":"%"},"supplemental_oxygen_flow_rate":{"value":2,"unit":"L/min"},"measurement_method":"pulse oximetry","effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"2708-6", "59408-5"}, category: vs, profile: pSpO2, value: "97", unit: "%", ucum: "%", comps: []fhirComp{{"3151-8", "2", "L/min"}}, dateTime: t0},
			csv:  csvWant{time: t0, value: "97", unit: "%"},
		},
		{
			name: "oxygen saturation",
			raw:  ieee(uid(14), "oxygen-saturation:2.0", `{"oxygen_saturation":{"value":94.5,"unit":"%"},"effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"2708-6", "59408-5"}, category: vs, profile: pSpO2, value: "94.5", unit: "%", ucum: "%", dateTime: t0},
			csv:  csvWant{time: t0, value: "94.5", unit: "%"},
		},
		{
			name: "respiratory rate",
			raw:  ieee(uid(15), "respiratory-rate:2.0", `{"respiratory_rate":{"value":16,"unit":"breaths/min"},"effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"9279-1"}, category: vs, profile: pRR, value: "16", unit: "breaths/minute", ucum: "/min", dateTime: t0},
			csv:  csvWant{time: t0, value: "16", unit: "breaths/min"},
		},
		temperature(16, "36.6", "C", "Cel", pBT),
		temperature(17, "98.6", "F", "[degF]", pBT),
		temperature(18, "309.75", "K", "K", ""),
		weight(20, "70.25", "kg", "kg", pBW),
		weight(21, "154.5", "lb", "[lb_av]", pBW),
		weight(22, "70250", "g", "g", pBW),
		weight(23, "2480", "oz", "[oz_av]", ""),
		weight(24, "0.08", "Ton", "[ston_av]", ""),
		weight(25, "0.07", "Metric Ton", "t", ""),
		weight(26, "70250000", "mg", "mg", ""),
		weight(27, "70250000000", "ug", "ug", ""),
		weight(29, "1e+21", "fg", "fg", ""),
		weight(28, "1084000", "gr", "[gr]", ""),

		// Activity and sleep.
		{
			name: "step count",
			raw:  ieee(uid(30), "step-count:3.0", `{"step_count":{"value":1234,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T00:00:00Z","end_date_time":"2026-01-03T00:00:00Z"}}}`, ds("source_name", "Apple Watch")),
			fhir: &fhirWant{codes: []string{"55423-8"}, category: act, value: "1234", unit: "steps", ucum: "{steps}", start: "2026-01-02T00:00:00Z", end: "2026-01-03T00:00:00Z", device: "Apple Watch"},
			csv:  csvWant{time: "2026-01-02T00:00:00Z", end: "2026-01-03T00:00:00Z", value: "1234", unit: "steps", source: "Apple Watch"},
		},
		{
			name: "step count 2.0 with a bare number",
			raw:  ieee(uid(31), "step-count:2.0", `{"step_count":9876,"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T00:00:00Z","duration":{"value":1,"unit":"d"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"55423-8"}, category: act, value: "9876", unit: "steps", ucum: "{steps}", start: "2026-01-02T00:00:00Z", end: "2026-01-03T00:00:00Z"},
			csv:  csvWant{time: "2026-01-02T00:00:00Z", end: "2026-01-03T00:00:00Z", value: "9876", unit: "steps"},
		},
		{
			name: "sleep episode with total sleep time",
			raw:  ieee(uid(32), "sleep-episode:1.1", `{"total_sleep_time":{"value":420,"unit":"min"},"number_of_awakenings":2,"is_main_sleep":true,"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-01T23:00:00+01:00","end_date_time":"2026-01-02T07:00:00+01:00"}}}`, ""),
			fhir: &fhirWant{codes: []string{"93832-4"}, value: "420", unit: "min", ucum: "min", start: "2026-01-01T23:00:00+01:00", end: "2026-01-02T07:00:00+01:00"},
			csv:  csvWant{time: "2026-01-01T22:00:00Z", end: "2026-01-02T06:00:00Z", value: "480", unit: "min", value2: "420", unit2: "min"},
		},
		{
			name: "sleep episode given as end and duration, no total",
			raw:  ieee(uid(33), "sleep-episode:1.1", `{"effective_time_frame":{"time_interval":{"end_date_time":"2026-01-02T07:00:00Z","duration":{"value":7.5,"unit":"h"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"93832-4"}, value: "450", unit: "min", ucum: "min", start: "2026-01-01T23:30:00Z", end: "2026-01-02T07:00:00Z"},
			csv:  csvWant{time: "2026-01-01T23:30:00Z", end: "2026-01-02T07:00:00Z", value: "450", unit: "min"},
		},
		{
			name: "sleep episode total in hours",
			raw:  ieee(uid(34), "sleep-episode:1.0", `{"total_sleep_time":{"value":6.75,"unit":"h"},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-01T23:00:00Z","duration":{"value":30,"unit":"s"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"93832-4"}, value: "6.75", unit: "h", ucum: "h", start: "2026-01-01T23:00:00Z", end: "2026-01-01T23:00:30Z"},
			csv:  csvWant{time: "2026-01-01T23:00:00Z", end: "2026-01-01T23:00:30Z", value: "0.5", unit: "min", value2: "6.75", unit2: "h"},
		},
		{
			name: "physical activity with distance and energy",
			raw:  ieee(uid(35), "physical-activity:1.2", `{"activity_name":"walking","distance":{"value":3.2,"unit":"km"},"kcal_burned":{"value":210,"unit":"kcal"},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T07:00:00Z","duration":{"value":45,"unit":"min"}}}}`, ""),
			csv:  csvWant{time: "2026-01-02T07:00:00Z", end: "2026-01-02T07:45:00Z", value: "3.2", unit: "km", value2: "210", unit2: "kcal"},
		},
		{
			name: "physical activity with neither",
			raw:  ieee(uid(36), "physical-activity:1.2", `{"activity_name":"yoga","effective_time_frame":`+dt(t0)+`}`, ""),
			csv:  csvWant{time: t0},
		},

		// Times and numbers.
		{
			name: "leap second",
			raw:  ieee(uid(40), "heart-rate:2.0", `{"heart_rate":{"value":58,"unit":"beats/min"},"effective_time_frame":`+dt("2016-12-31T23:59:60Z")+`}`, ""),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "58", unit: "beats/minute", ucum: "/min", dateTime: "2017-01-01T00:00:00Z"},
			csv:  csvWant{time: "2017-01-01T00:00:00Z", value: "58", unit: "beats/min"},
		},
		{
			name: "offset beyond 14 hours",
			raw:  ieee(uid(41), "heart-rate:2.0", `{"heart_rate":{"value":59,"unit":"beats/min"},"effective_time_frame":`+dt("2026-01-02T15:04:05.5+14:30")+`}`, ""),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "59", unit: "beats/minute", ucum: "/min", dateTime: "2026-01-02T00:34:05.5Z"},
			csv:  csvWant{time: "2026-01-02T00:34:05.5Z", value: "59", unit: "beats/min"},
		},
		{
			name: "offset -00:00 and lower-case t",
			raw:  ieee(uid(42), "heart-rate:2.0", `{"heart_rate":{"value":62,"unit":"beats/min"},"effective_time_frame":`+dt("2026-01-02t15:04:05-00:00")+`}`, ""),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "62", unit: "beats/minute", ucum: "/min", dateTime: "2026-01-02T15:04:05-00:00"},
			csv:  csvWant{time: t0, value: "62", unit: "beats/min"},
		},
		{
			name: "nanoseconds",
			raw:  ieee(uid(43), "heart-rate:2.0", `{"heart_rate":{"value":63,"unit":"beats/min"},"effective_time_frame":`+dt("2026-01-02T15:04:05.123456789Z")+`}`, ""),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "63", unit: "beats/minute", ucum: "/min", dateTime: "2026-01-02T15:04:05.123456789Z"},
			csv:  csvWant{time: "2026-01-02T15:04:05.123456789Z", value: "63", unit: "beats/min"},
		},
		{
			name: "a number written 120.000 and -0.5",
			raw:  ieee(uid(44), "blood-pressure:4.0", `{"systolic_blood_pressure":{"value":120.000,"unit":"mmHg"},"diastolic_blood_pressure":{"value":-0.5,"unit":"mmHg"},"effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"85354-9"}, category: vs, profile: pBP, comps: bpComps("120", "-0.5"), dateTime: t0},
			csv:  csvWant{time: t0, value: "120", unit: "mmHg", value2: "-0.5", unit2: "mmHg"},
		},
		{
			name: "tiny and huge numbers",
			raw:  ieee(uid(45), "step-count:3.0", `{"step_count":{"value":12345678901234567890,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T00:00:00Z","duration":{"value":1e-7,"unit":"sec"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"55423-8"}, category: act, value: "12345678901234567000", unit: "steps", ucum: "{steps}", start: "2026-01-02T00:00:00Z", end: "2026-01-02T00:00:00.0000001Z"},
			csv:  csvWant{time: "2026-01-02T00:00:00Z", end: "2026-01-02T00:00:00.0000001Z", value: "12345678901234567000", unit: "steps"},
		},
		{
			name: "a very long step interval",
			raw:  ieee(uid(46), "step-count:3.0", `{"step_count":{"value":5,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2026-01-02T00:00:00Z","duration":{"value":1e300,"unit":"yr"}}}}`, ""),
			fhir: &fhirWant{codes: []string{"55423-8"}, category: act, value: "5", unit: "steps", ucum: "{steps}", start: "2026-01-02T00:00:00Z"},
			csv:  csvWant{time: "2026-01-02T00:00:00Z", value: "5", unit: "steps"},
		},

		// Sources: JSON escaping in FHIR, the formula guard in CSV.
		withSource(50, "source with a formula, quotes and line breaks", bad, "'=HYPERLINK(\"http://x.example\",\"y\") line two end \"q\""),
		withSource(51, "source starting with +", "+1 555 0100", "'+1 555 0100"),
		withSource(52, "source starting with -", "-2+3", "'-2+3"),
		withSource(53, "source starting with @", "@SUM(A1:A9)", "'@SUM(A1:A9)"),
		withSource(54, "source starting with a tab", "\t=cmd", "' =cmd"),
		withSource(55, "source starting with a carriage return", "\r=cmd", "' =cmd"),
		withSource(56, "source with a comma, not a formula", "Withings, Body+", "Withings, Body+"),
		withSource(57, "source in another script", "血糖仪 ✓", "血糖仪 ✓"),
		{
			name: "source with a control character R4 strings may not hold",
			raw:  ieee(uid(59), "heart-rate:2.0", `{"heart_rate":{"value":64,"unit":"beats/min"},"effective_time_frame":`+dt(t0)+`}`, ds("", "Acme\u0011Meter\u007f")),
			fhir: &fhirWant{codes: []string{"8867-4"}, category: vs, profile: pHR, value: "64", unit: "beats/minute", ucum: "/min", dateTime: t0, device: "Acme Meter\u007f"},
			csv:  csvWant{time: t0, value: "64", unit: "beats/min", source: "Acme Meter "},
		},
		{
			name: "several datasheets",
			raw:  ieee(uid(58), "body-weight:3.0", `{"body_weight":{"value":70,"unit":"kg"},"effective_time_frame":`+dt(t0)+`}`, ds("manufacturer", "Withings", "", "Body+", "source_name", "Health Mate")),
			fhir: &fhirWant{codes: []string{"29463-7"}, category: vs, profile: pBW, value: "70", unit: "kg", ucum: "kg", dateTime: t0, device: "manufacturer: Withings; Body+; Health Mate"},
			csv:  csvWant{time: t0, value: "70", unit: "kg", source: "manufacturer: Withings; Body+; Health Mate"},
		},
		{
			name: "no uuid",
			raw:  ieee("", "respiratory-rate:2.0", `{"respiratory_rate":{"value":14,"unit":"breaths/min"},"effective_time_frame":`+dt(t0)+`}`, ""),
			fhir: &fhirWant{codes: []string{"9279-1"}, category: vs, profile: pRR, value: "14", unit: "breaths/minute", ucum: "/min", dateTime: t0},
			csv:  csvWant{time: t0, value: "14", unit: "breaths/min"},
		},
	}
}

// encCases returns the table with each point parsed and stored as the vault
// stores it (canonical JSON).
func encCases(t testing.TB) []encCase {
	t.Helper()
	cs := encCaseTable()
	for i := range cs {
		p, err := omh.Parse([]byte(cs[i].raw))
		if err != nil {
			t.Fatalf("case %q: omh.Parse refuses the point: %v\n%s", cs[i].name, err, cs[i].raw)
		}
		cs[i].p = p
		cs[i].point = p.AppendJSON(nil)
	}
	return cs
}

// encSharedDir returns the directory holding schemas/ (VAULT_SHARED_DIR,
// else ../../shared from this package). When it is missing the test is
// skipped loudly, or fails when CI=true.
func encSharedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VAULT_SHARED_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(abs, "schemas", "examples")); err != nil || !st.IsDir() {
		msg := fmt.Sprintf("!!! example points not found under %s/schemas/examples (set VAULT_SHARED_DIR): the example-point tests did NOT run !!!", abs)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return abs
}

// encExample is an official example point, as the vault would store it.
type encExample struct {
	name  string
	point []byte
	p     *omh.Point
}

// encExamples reads the official example points that omh.Parse accepts
// (rr-interval is not a schema the vault stores) in canonical form.
func encExamples(t testing.TB) []encExample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(encSharedDir(t), "schemas", "examples", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []encExample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := omh.Parse(b)
		if err != nil {
			var oe *omh.Error
			if errors.As(err, &oe) && oe.Code == omh.CodeUnknownSchema {
				t.Logf("example %s: not a schema the vault stores, skipped", filepath.Base(f))
				continue
			}
			t.Fatalf("example %s: %v", filepath.Base(f), err)
		}
		out = append(out, encExample{filepath.Base(f), p.AppendJSON(nil), p})
	}
	if len(out) < 6 {
		t.Fatalf("only %d example points parsed, want at least 6", len(out))
	}
	return out
}

func mustEncoder(t testing.TB, format string) export.Encoder {
	t.Helper()
	enc, err := export.NewEncoder(format, encPatient)
	if err != nil {
		t.Fatalf("NewEncoder(%q): %v", format, err)
	}
	return enc
}

// oneLine checks that out is exactly one line ending in '\n', with no other
// LF or CR in it. For fhir and csv it also checks that no NEL, U+2028 or
// U+2029 is in it, so that no line reader (Python's str.splitlines among
// them) cuts a record. The omh format writes the stored point as it is, and
// canonical OMH JSON keeps those three characters unescaped, as JSON allows.
func oneLine(t testing.TB, format string, out []byte) {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != '\n' {
		t.Fatalf("%s record does not end in a newline: %q", format, out)
	}
	breaks := "\n\r\u0085\u2028\u2029"
	if format == "omh" {
		breaks = "\n\r"
	}
	if i := strings.IndexAny(string(out[:len(out)-1]), breaks); i >= 0 {
		t.Fatalf("%s record has a line break at byte %d: %q", format, i, out)
	}
}

func TestFormats(t *testing.T) {
	if got := export.Formats(); !slices.Equal(got, []string{"omh", "fhir", "csv"}) {
		t.Errorf("Formats() = %v", got)
	}
	export.Formats()[0] = "changed"
	if export.Formats()[0] != "omh" {
		t.Error("Formats returns a shared slice")
	}
	for format, want := range map[string]string{"omh": "ndjson", "fhir": "ndjson", "csv": "csv", "xml": "", "": ""} {
		if got := export.Extension(format); got != want {
			t.Errorf("Extension(%q) = %q, want %q", format, got, want)
		}
	}
	for _, format := range export.Formats() {
		if _, err := export.NewEncoder(format, encPatient); err != nil {
			t.Errorf("NewEncoder(%q): %v", format, err)
		}
	}
	for _, format := range []string{"", "OMH", "json", "fhir ", "ndjson"} {
		enc, err := export.NewEncoder(format, encPatient)
		if enc != nil || !errors.Is(err, export.ErrUnknownFormat) {
			t.Errorf("NewEncoder(%q) = %v, %v; want an error wrapping ErrUnknownFormat", format, enc, err)
		}
	}
}

func TestNewEncoderPatient(t *testing.T) {
	for _, patient := range []string{"", "pt_a/b", "pt_" + strings.Repeat("a", 62), "pt_é"} {
		_, err := export.NewEncoder("fhir", patient)
		if !errors.Is(err, export.ErrBadPatient) {
			t.Errorf("NewEncoder(fhir, %q) = %v, want ErrBadPatient", patient, err)
		}
		// omh and csv do not write the patient.
		if _, err := export.NewEncoder("csv", patient); err != nil {
			t.Errorf("NewEncoder(csv, %q): %v", patient, err)
		}
	}
	if _, err := export.NewEncoder("fhir", "pt_"+strings.Repeat("a", 61)); err != nil {
		t.Errorf("a 64-character id: %v", err)
	}
}

func TestSupports(t *testing.T) {
	for _, id := range omh.Supported() {
		s := id.String()
		for _, format := range []string{"omh", "csv"} {
			if !export.Supports(format, s) {
				t.Errorf("Supports(%s, %s) = false", format, s)
			}
		}
		if got, want := export.Supports("fhir", s), id.Name != "physical-activity"; got != want {
			t.Errorf("Supports(fhir, %s) = %v, want %v", s, got, want)
		}
	}
	for _, c := range []struct {
		format, schema string
		want           bool
	}{
		{"fhir", "omh:physical-activity", false},
		{"fhir", "omh:physical-activity:1.0", false},
		{"fhir", "omh:blood-glucose", true},
		{"fhir", "omh:blood-glucose:3.0", true},
		{"fhir", "omh:sleep-episode:1.0", true},
		{"csv", "omh:physical-activity:1.1", true},
		{"fhir", "omh:blood-glucose:9.9", false},
		{"omh", "omh:rr-interval:1.0", true},
		{"csv", "omh:rr-interval:1.0", true},
		{"fhir", "omh:rr-interval:1.0", true},
		{"fhir", "ieee:physical-activity:1.0", true},
		{"fhir", "omh:blood-glucose:2.0", true},
		{"omh", "omh:unit-value:1.0", false},
		{"omh", "ieee:blood-glucose:4.0", false},
		{"omh", "not a schema", false},
		{"xml", "omh:blood-glucose:4.0", false},
	} {
		if got := export.Supports(c.format, c.schema); got != c.want {
			t.Errorf("Supports(%q, %q) = %v, want %v", c.format, c.schema, got, c.want)
		}
	}
}

// TestOMHEncoder: the omh encoder copies the stored point and adds '\n'.
func TestOMHEncoder(t *testing.T) {
	enc := mustEncoder(t, "omh")
	if h := enc.Header(); h != nil {
		t.Errorf("Header() = %q, want nil", h)
	}
	dst := []byte("prefix\n")
	for _, c := range encCases(t) {
		n := len(dst)
		var err error
		dst, err = enc.AppendRecord(dst, c.point)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := dst[n:]; !bytes.Equal(got, append(slices.Clone(c.point), '\n')) {
			t.Fatalf("%s: wrote %q", c.name, got)
		}
	}
}

// TestAppendRecordErrors: a point that does not parse is an error that
// names no value and leaves dst as it was.
func TestAppendRecordErrors(t *testing.T) {
	const canary = "987654321"
	bad := []string{
		`{"header":{"uuid":"` + uid(1) + `","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":"` + canary + `","unit":"mg/dL"},"effective_time_frame":{"date_time":"2026-01-02T15:04:05Z"}}}`,
		`{"header":{"uuid":"` + uid(1) + `","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"}},"body":{"blood_glucose":{"value":` + canary + `,"unit":"mg/` + canary + `"},"effective_time_frame":{"date_time":"2026-01-02T15:04:05Z"}}}`,
		`{"header":` + canary,
		``,
	}
	for _, format := range []string{"fhir", "csv"} {
		enc := mustEncoder(t, format)
		for _, in := range bad {
			dst := []byte("kept")
			out, err := enc.AppendRecord(dst, []byte(in))
			if !errors.Is(err, export.ErrBadPoint) {
				t.Errorf("%s: error %v, want ErrBadPoint", format, err)
				continue
			}
			var oe *omh.Error
			if !errors.As(err, &oe) {
				t.Errorf("%s: error %v does not wrap an *omh.Error", format, err)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("%s: error repeats a value: %v", format, err)
			}
			if string(out) != "kept" {
				t.Errorf("%s: dst changed to %q", format, out)
			}
			checkErrorStyle(t, err)
		}
	}
}

// checkErrorStyle: errors start in lower case.
func checkErrorStyle(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ToLower(msg[:1]) != msg[:1] {
		t.Errorf("error %q does not start in lower case", msg)
	}
}

func TestErrorStyle(t *testing.T) {
	for _, err := range []error{export.ErrUnknownFormat, export.ErrUnsupported, export.ErrBadPatient, export.ErrBadPoint} {
		checkErrorStyle(t, err)
	}
	_, err := export.NewEncoder("xml", encPatient)
	checkErrorStyle(t, err)
	_, err = export.NewEncoder("fhir", "pt_a/b")
	checkErrorStyle(t, err)
}

// TestOneLinePerRecord: every encoder writes each case as exactly one line.
func TestOneLinePerRecord(t *testing.T) {
	cs := encCases(t)
	for _, format := range export.Formats() {
		enc := mustEncoder(t, format)
		for _, c := range cs {
			out, err := enc.AppendRecord(nil, c.point)
			if format == "fhir" && c.fhir == nil {
				if !errors.Is(err, export.ErrUnsupported) || out != nil {
					t.Errorf("%s %s: %q, %v; want ErrUnsupported and nothing written", format, c.name, out, err)
				}
				checkErrorStyle(t, err)
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", format, c.name, err)
			}
			oneLine(t, format, out)
		}
	}
}

// BenchmarkEncoders measures one record per op, per format: "cgm" is the
// vault's most common reading (a CGM glucose point as the demo and bench
// store it), "mix" cycles through every case in the table.
//
//	go test ./export -run '^$' -bench Encoders -benchmem
func BenchmarkEncoders(b *testing.B) {
	cs := encCases(b)
	var mix [][]byte
	for _, c := range cs {
		if c.p.Schema.Name != "physical-activity" {
			mix = append(mix, c.point) // fhir refuses it
		}
	}
	cgm := [][]byte{cs[0].point}
	for _, format := range export.Formats() {
		for _, set := range []struct {
			name   string
			points [][]byte
		}{{"cgm", cgm}, {"mix", mix}} {
			b.Run(format+"/"+set.name, func(b *testing.B) {
				enc := mustEncoder(b, format)
				buf := make([]byte, 0, 4096)
				var n int64
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					p := set.points[i%len(set.points)]
					out, err := enc.AppendRecord(buf[:0], p)
					if err != nil {
						b.Fatal(err)
					}
					n += int64(len(out))
				}
				b.SetBytes(n / int64(max(b.N, 1)))
			})
		}
	}
}
