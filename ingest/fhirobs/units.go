package fhirobs

import "strings"

const (
	loincSystem = "http://loinc.org"
	ucumSystem  = "http://unitsofmeasure.org"
	omhSystem   = "https://w3id.org/openmhealth"
)

// kind is what an Observation's code makes of it.
type kind uint8

const (
	kindNone kind = iota
	kindHeartRate
	kindRespRate
	kindBP
	kindBPPart // a systolic or diastolic pressure on its own
	kindWeight
	kindSpO2
	kindTemp
	kindSteps
	kindGlucose
	kindSleep
)

// mapping is a code's meaning.
type mapping struct {
	kind     kind
	specimen string // blood-glucose specimen_source, "" for none
	pulseOx  bool   // oxygen saturation measured by pulse oximetry
}

// loincMapping maps a LOINC code. The codes are those of the FHIR R4 vital
// signs profiles, the HL7 CGM IG and the vault's own fhir export
// (export/fhir.go), plus a few common equivalents.
func loincMapping(code string) mapping {
	switch code {
	case "8867-4", // Heart rate
		"8889-8": // Heart rate by Pulse oximetry
		return mapping{kind: kindHeartRate}
	case "9279-1": // Respiratory rate
		return mapping{kind: kindRespRate}
	case "85354-9", // Blood pressure panel with all children optional
		"55284-4": // Blood pressure systolic and diastolic (the older panel code)
		return mapping{kind: kindBP}
	case "8480-6", "8462-4": // Systolic, Diastolic blood pressure
		return mapping{kind: kindBPPart}
	case "29463-7", // Body weight
		"3141-9": // Body weight Measured
		return mapping{kind: kindWeight}
	case "59408-5": // Oxygen saturation in Arterial blood by Pulse oximetry
		return mapping{kind: kindSpO2, pulseOx: true}
	case "2708-6": // Oxygen saturation in Arterial blood
		return mapping{kind: kindSpO2}
	case "8310-5": // Body temperature
		return mapping{kind: kindTemp}
	case "55423-8", // Number of steps in unspecified time Pedometer
		"41950-7": // Number of steps in 24 hour Measured
		return mapping{kind: kindSteps}
	case "99504-3", "105272-9": // Glucose [Mass/volume], [Moles/volume] in Interstitial fluid
		return mapping{kind: kindGlucose, specimen: "interstitial fluid"}
	case "41653-7", "14743-9": // Glucose in Capillary blood by Glucometer
		return mapping{kind: kindGlucose, specimen: "capillary blood"}
	case "2339-0", "15074-8": // Glucose in Blood
		return mapping{kind: kindGlucose}
	case "93832-4": // Sleep duration
		return mapping{kind: kindSleep}
	}
	return mapping{}
}

// glucoseFromText reads a code.text "Glucose in <specimen>", <specimen> an
// OMH specimen-source value. The vault's export writes so, with no coding,
// a glucose reading from a specimen its LOINC table has no code for
// (breath, saliva, sweat, tears, urine).
func glucoseFromText(text string) (string, bool) {
	s, ok := strings.CutPrefix(text, "Glucose in ")
	if !ok {
		return "", false
	}
	switch s {
	case "breath", "saliva", "sweat", "tears", "urine", "capillary blood", "interstitial fluid":
		return s, true
	}
	return "", false
}

// schema is the OMH schema a kind becomes, and how errors name it.
type schema struct {
	name, version, label, units string
}

func schemaOf(k kind) schema {
	switch k {
	case kindHeartRate:
		return schema{"heart-rate", "2.0", "heart rate", "/min"}
	case kindRespRate:
		return schema{"respiratory-rate", "2.0", "respiratory rate", "/min"}
	case kindBP:
		return schema{"blood-pressure", "4.0", "blood pressure", "mm[Hg]"}
	case kindWeight:
		return schema{"body-weight", "3.0", "body weight", "kg, g or [lb_av]"}
	case kindSpO2:
		return schema{"oxygen-saturation", "2.0", "oxygen saturation", "%"}
	case kindTemp:
		return schema{"body-temperature", "4.0", "body temperature", "Cel, [degF] or K"}
	case kindSteps:
		return schema{"step-count", "3.0", "step count", "{steps} or 1"}
	case kindGlucose:
		return schema{"blood-glucose", "4.0", "glucose", "mg/dL or mmol/L"}
	case kindSleep:
		return schema{"sleep-episode", "1.1", "sleep duration", "min, h or s"}
	case unitFlow:
		return schema{label: "supplemental oxygen flow rate", units: "L/min"}
	}
	return schema{}
}

// unitFlow selects the unit table of the supplemental oxygen flow rate
// component, beside the kinds' own.
const unitFlow = kindSleep + 1

// ucumUnit maps a UCUM code (case-sensitive, as UCUM is) to the OMH unit.
func ucumUnit(k kind, code string) string {
	switch k {
	case kindHeartRate:
		switch code {
		case "/min", "{beats}/min", "{beat}/min", "1/min", "{Beats}/min":
			return "beats/min"
		}
	case kindRespRate:
		switch code {
		case "/min", "{breaths}/min", "{breath}/min", "1/min", "{Breaths}/min":
			return "breaths/min"
		}
	case kindBP:
		if code == "mm[Hg]" {
			return "mmHg"
		}
	case kindWeight:
		// The export's table (export/fhir.go) in reverse: the mass units
		// OMH's mass-unit-value-1.0 knows.
		switch code {
		case "kg", "g", "mg", "ug", "ng", "pg", "fg":
			return code
		case "t":
			return "Metric Ton"
		case "[gr]":
			return "gr"
		case "[oz_av]":
			return "oz"
		case "[lb_av]":
			return "lb"
		case "[ston_av]":
			return "Ton"
		}
	case kindSpO2:
		if code == "%" {
			return "%"
		}
	case kindTemp:
		switch code {
		case "Cel":
			return "C"
		case "[degF]":
			return "F"
		case "K":
			return "K"
		}
	case kindSteps:
		switch code {
		case "{steps}", "{step}", "{Steps}", "1", "{count}":
			return "steps"
		}
	case kindGlucose:
		switch code {
		case "mg/dL", "mmol/L":
			return code
		}
	case kindSleep:
		switch code {
		case "s":
			return "sec"
		case "min", "h", "d", "wk", "ms", "us", "ns", "ps":
			return code
		case "mo":
			return "Mo"
		case "a":
			return "yr"
		}
	case unitFlow:
		if code == "L/min" {
			return "L/min"
		}
	}
	return ""
}

// textUnit maps a Quantity's unit text, read without regard to case, to the
// OMH unit. It is used when the Quantity has no UCUM code.
func textUnit(k kind, unit string) string {
	u := strings.ToLower(strings.TrimSpace(unit))
	switch k {
	case kindHeartRate:
		switch u {
		case "/min", "1/min", "{beats}/min", "beats/min", "beats/minute", "beats per minute", "beat/min", "bpm":
			return "beats/min"
		}
	case kindRespRate:
		switch u {
		case "/min", "1/min", "{breaths}/min", "breaths/min", "breaths/minute", "breaths per minute", "breath/min", "br/min", "rpm":
			return "breaths/min"
		}
	case kindBP:
		switch u {
		case "mm[hg]", "mmhg", "mm hg":
			return "mmHg"
		}
	case kindWeight:
		switch u {
		case "kg", "kgs", "kilogram", "kilograms":
			return "kg"
		case "g", "gram", "grams":
			return "g"
		case "lb", "lbs", "[lb_av]", "pound", "pounds":
			return "lb"
		case "oz", "[oz_av]":
			return "oz"
		}
	case kindSpO2:
		if u == "%" || u == "percent" {
			return "%"
		}
	case kindTemp:
		switch u {
		case "cel", "c", "°c", "degc", "celsius":
			return "C"
		case "[degf]", "f", "°f", "degf", "fahrenheit":
			return "F"
		case "k", "kelvin":
			return "K"
		}
	case kindSteps:
		switch u {
		case "steps", "step", "{steps}", "{step}", "count":
			return "steps"
		}
	case kindGlucose:
		switch u {
		case "mg/dl":
			return "mg/dL"
		case "mmol/l":
			return "mmol/L"
		}
	case kindSleep:
		switch u {
		case "min", "mins", "minute", "minutes":
			return "min"
		case "h", "hr", "hrs", "hour", "hours":
			return "h"
		case "s", "sec", "second", "seconds":
			return "sec"
		}
	case unitFlow:
		if u == "l/min" {
			return "L/min"
		}
	}
	return ""
}
