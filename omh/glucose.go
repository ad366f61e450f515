package omh

import "github.com/valyala/fastjson"

// BloodGlucose is omh:blood-glucose:4.0 (3.0 is accepted and stored as
// 4.0). blood_glucose (mg/dL or mmol/L) and effective_time_frame (IEEE:
// date_time or an interval) are required. The value may not be negative,
// which the official schema allows (see the package documentation).
type BloodGlucose struct {
	BloodGlucose                UnitValue
	SpecimenSource              string // specimen-source-2.1
	EffectiveTimeFrame          TimeFrame
	TemporalRelationshipToMeal  string // temporal-relationship-to-meal-1.2
	TemporalRelationshipToSleep string // temporal-relationship-to-sleep-1.0
	DescriptiveStatistic        string // IEEE descriptive-statistic-1.0
	Extra                       []Extra
}

var bloodGlucoseMembers = []string{"blood_glucose", "specimen_source", "effective_time_frame",
	"temporal_relationship_to_meal", "temporal_relationship_to_sleep", "descriptive_statistic"}

// msgNegativeGlucose refuses a negative blood_glucose value.
const msgNegativeGlucose = "blood_glucose value must not be negative: no glucose concentration is below zero"

func parseBloodGlucose(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [6]*fastjson.Value
	b := &BloodGlucose{Extra: d.members(o, bloodGlucoseMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.blood_glucose")
	}
	if b.BloodGlucose, e = d.keepUnitValue(s[0], "body.blood_glucose", glucoseUnits); e != nil {
		return nil, e
	}
	// The official schema (IEEE unit-value) puts no minimum on the value,
	// but no concentration is below zero: the vault computes on this
	// model (statistics, the AGP), so a negative one is refused.
	if b.BloodGlucose.Value < 0 {
		return nil, errf(CodeInvalidValue, "body.blood_glucose.value", msgNegativeGlucose)
	}
	if b.SpecimenSource, e = optEnum(s[1], "body", "specimen_source", specimenSource); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[2], "blood-glucose", timeFrameRules{}); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToMeal, e = optEnum(s[3], "body", "temporal_relationship_to_meal", temporalRelationshipToMeal); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToSleep, e = optEnum(s[4], "body", "temporal_relationship_to_sleep", temporalRelationshipToSleep); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[5], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:blood-glucose:4.0.
func (b *BloodGlucose) Schema() SchemaID { return idBloodGlucose }

// TimeFrame returns the effective_time_frame.
func (b *BloodGlucose) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *BloodGlucose) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("blood_glucose")
	o.b = b.BloodGlucose.appendJSON(o.b)
	o.optStr("specimen_source", b.SpecimenSource)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("temporal_relationship_to_meal", b.TemporalRelationshipToMeal)
	o.optStr("temporal_relationship_to_sleep", b.TemporalRelationshipToSleep)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.extras(b.Extra)
	return o.close()
}
