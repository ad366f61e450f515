package omh

import (
	"strconv"
	"strings"
)

// unitSet is the enum of units a unit-value member allows, with the
// spellings the vault recognises for them. A submitted unit matches a unit
// exactly; or, when fold is set, case-insensitively; or matches one of the
// aliases case-insensitively. Anything else is a bad_unit.
//
// Case is folded only where it cannot change the meaning: not for mass and
// length units, where "Mg" (megagram) or "Pm" (petametre) must not become
// "mg" or "pm". Those sets list their safe case variants as aliases.
type unitSet struct {
	units   enum
	fold    bool
	aliases []alias
}

type alias struct{ from, to string }

// match returns the canonical unit for b and whether b was already
// canonical.
func (u *unitSet) match(b []byte) (unit string, exact, ok bool) {
	if s, ok := u.units.match(b); ok {
		return s, true, true
	}
	if u.fold {
		for _, s := range u.units {
			if strings.EqualFold(string(b), s) {
				return s, false, true
			}
		}
	}
	for _, a := range u.aliases {
		if strings.EqualFold(string(b), a.from) {
			return a.to, false, true
		}
	}
	return "", false, false
}

// unitNote is the note recorded when a unit is normalised.
func unitNote(from, to string) string {
	return "unit " + strconv.Quote(from) + " normalised to " + strconv.Quote(to)
}

// The unit enums of the modelled schemas, in the schemas' order.
var (
	glucoseUnits = &unitSet{
		units:   enum{"mg/dL", "mmol/L"},
		fold:    true,
		aliases: []alias{{"mgdl", "mg/dL"}, {"mg per dl", "mg/dL"}, {"mmoll", "mmol/L"}, {"mmol per l", "mmol/L"}},
	}
	heartRateUnits = &unitSet{
		units:   enum{"beats/min"},
		fold:    true,
		aliases: []alias{{"bpm", "beats/min"}, {"beats per minute", "beats/min"}},
	}
	stepUnits = &unitSet{units: enum{"steps"}, fold: true}
	mmHgUnits = &unitSet{
		units:   enum{"mmHg"},
		fold:    true,
		aliases: []alias{{"mm Hg", "mmHg"}, {"mm[Hg]", "mmHg"}},
	}
	// mass-unit-value-1.0
	massUnits = &unitSet{
		units:   enum{"fg", "pg", "ng", "ug", "mg", "g", "kg", "Metric Ton", "gr", "oz", "lb", "Ton"},
		aliases: []alias{{"kg", "kg"}, {"kgs", "kg"}, {"lb", "lb"}, {"lbs", "lb"}, {"oz", "oz"}, {"µg", "ug"}, {"μg", "ug"}},
	}
	percentUnits    = &unitSet{units: enum{"%"}}
	flowRateUnits   = &unitSet{units: enum{"L/min"}, fold: true}
	breathRateUnits = &unitSet{
		units:   enum{"breaths/min"},
		fold:    true,
		aliases: []alias{{"breaths per minute", "breaths/min"}},
	}
	// temperature-unit-value-1.0 (omh and IEEE)
	temperatureUnits = &unitSet{
		units:   enum{"K", "F", "C"},
		fold:    true,
		aliases: []alias{{"°C", "C"}, {"°F", "F"}, {"degC", "C"}, {"degF", "F"}, {"Cel", "C"}, {"[degF]", "F"}},
	}
	// length-unit-value-1.0
	lengthUnits = &unitSet{
		units:   enum{"fm", "pm", "nm", "um", "mm", "cm", "m", "km", "in", "ft", "yd", "mi"},
		aliases: []alias{{"km", "km"}, {"cm", "cm"}, {"in", "in"}, {"ft", "ft"}, {"yd", "yd"}, {"mi", "mi"}},
	}
	kcalUnits = &unitSet{units: enum{"kcal"}, fold: true}
	// duration-unit-value-1.0 (omh and IEEE)
	durationUnits = &unitSet{
		units:   enum{"ps", "ns", "us", "ms", "sec", "min", "h", "d", "wk", "Mo", "yr"},
		fold:    true,
		aliases: []alias{{"s", "sec"}, {"µs", "us"}, {"μs", "us"}},
	}
	hzUnits = &unitSet{units: enum{"Hz"}}
)

// The string enums of the modelled schemas.
var (
	// descriptive-statistic: IEEE 1.0 and omh 1.2 list the same values.
	descriptiveStatistic = enum{"average", "count", "maximum", "median", "minimum", "standard deviation", "sum", "variance",
		"20th percentile", "80th percentile", "lower quartile", "upper quartile", "quartile deviation",
		"1st quintile", "2nd quintile", "3rd quintile", "4th quintile"}
	// omh descriptive-statistic-1.0, which step-count 3.0 refers to.
	descriptiveStatistic10 = enum{"average", "maximum", "minimum", "standard deviation", "variance", "sum", "median"}
	// specimen-source-2.1
	specimenSource = enum{"breath", "capillary blood", "interstitial fluid", "saliva", "sweat", "tears", "urine"}
	// temporal-relationship-to-meal-1.2
	temporalRelationshipToMeal = enum{"fasting", "not fasting", "before meal", "after meal", "before breakfast", "after breakfast",
		"before lunch", "after lunch", "before dinner", "after dinner", "2 hours postprandial", "with meal", "with food"}
	// temporal-relationship-to-sleep-1.0
	temporalRelationshipToSleep = enum{"before sleeping", "during sleep", "on waking"}
	// temporal-relationship-to-physical-activity-1.0
	temporalRelationshipToPhysicalActivity = enum{"at rest", "active", "before exercise", "after exercise", "during exercise"}
	// body-posture-1.0 (omh and IEEE)
	bodyPosture = enum{"sitting", "lying down", "standing", "semi-recumbent"}
	// body-location-1.1
	bodyLocation = enum{"left ankle", "right ankle", "left hip", "right hip", "left thigh", "right thigh", "left thorax",
		"middle left thorax", "left upper arm", "right upper arm", "left wrist", "right wrist"}
	// body-temperature-4.0 measurement_location
	temperatureLocation = enum{"axillary", "finger", "forehead", "oral", "rectal", "temporal artery", "toe", "tympanic", "wrist", "vagina"}
	// oxygen-saturation-2.0
	oxygenSystem            = enum{"peripheral capillary"}
	oxygenTherapyMode       = enum{"nasal cannula"}
	oxygenMeasurementMethod = enum{"pulse oximetry"}
	// physical-activity-1.2
	activityIntensity = enum{"light", "moderate", "vigorous"}
	// part-of-day-1.0
	partOfDay = enum{"morning", "afternoon", "evening", "night"}
	// IEEE header modality
	modalities = enum{"sensed", "self-reported"}
)
