package omh

import "github.com/valyala/fastjson"

// HeartRate is omh:heart-rate:2.0 (1.0 and 1.1 are accepted; their
// user_notes must be a string and is kept as an extra). heart_rate
// (beats/min) and effective_time_frame (omh) are required.
type HeartRate struct {
	HeartRate                              UnitValue
	EffectiveTimeFrame                     TimeFrame
	DescriptiveStatistic                   string // omh descriptive-statistic-1.2
	TemporalRelationshipToPhysicalActivity string // temporal-relationship-to-physical-activity-1.0
	TemporalRelationshipToSleep            string // temporal-relationship-to-sleep-1.0
	Extra                                  []Extra
}

var heartRateMembers = []string{"heart_rate", "effective_time_frame", "descriptive_statistic",
	"temporal_relationship_to_physical_activity", "temporal_relationship_to_sleep"}

func parseHeartRate(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [5]*fastjson.Value
	b := &HeartRate{Extra: d.members(o, heartRateMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.heart_rate")
	}
	if b.HeartRate, e = d.keepUnitValue(s[0], "body.heart_rate", heartRateUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "heart-rate", timeFrameRules{omh: true}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[2], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToPhysicalActivity, e = optEnum(s[3], "body", "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToSleep, e = optEnum(s[4], "body", "temporal_relationship_to_sleep", temporalRelationshipToSleep); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:heart-rate:2.0.
func (b *HeartRate) Schema() SchemaID { return idHeartRate }

// TimeFrame returns the effective_time_frame.
func (b *HeartRate) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *HeartRate) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("heart_rate")
	o.b = b.HeartRate.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.optStr("temporal_relationship_to_physical_activity", b.TemporalRelationshipToPhysicalActivity)
	o.optStr("temporal_relationship_to_sleep", b.TemporalRelationshipToSleep)
	o.extras(b.Extra)
	return o.close()
}

// BloodPressure is omh:blood-pressure:4.0 (2.0, 3.0 and 3.1 are accepted;
// 2.0's user_notes must be a string and is kept as an extra).
// systolic_blood_pressure and diastolic_blood_pressure (mmHg) and
// effective_time_frame (IEEE) are required.
type BloodPressure struct {
	SystolicBloodPressure                  UnitValue // systolic-blood-pressure-1.1
	DiastolicBloodPressure                 UnitValue // diastolic-blood-pressure-1.1
	EffectiveTimeFrame                     TimeFrame
	BodyPosture                            string // IEEE body-posture-1.0
	DescriptiveStatistic                   string // IEEE descriptive-statistic-1.0
	MeasurementLocation                    string // body-location-1.1
	TemporalRelationshipToPhysicalActivity string // temporal-relationship-to-physical-activity-1.0
	Extra                                  []Extra
}

var bloodPressureMembers = []string{"systolic_blood_pressure", "diastolic_blood_pressure", "effective_time_frame",
	"body_posture", "descriptive_statistic", "measurement_location", "temporal_relationship_to_physical_activity"}

func parseBloodPressure(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [7]*fastjson.Value
	b := &BloodPressure{Extra: d.members(o, bloodPressureMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.systolic_blood_pressure")
	}
	if b.SystolicBloodPressure, e = d.keepUnitValue(s[0], "body.systolic_blood_pressure", mmHgUnits); e != nil {
		return nil, e
	}
	if s[1] == nil {
		return nil, errRequired("body.diastolic_blood_pressure")
	}
	if b.DiastolicBloodPressure, e = d.keepUnitValue(s[1], "body.diastolic_blood_pressure", mmHgUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[2], "blood-pressure", timeFrameRules{}); e != nil {
		return nil, e
	}
	if b.BodyPosture, e = optEnum(s[3], "body", "body_posture", bodyPosture); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[4], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	if b.MeasurementLocation, e = optEnum(s[5], "body", "measurement_location", bodyLocation); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToPhysicalActivity, e = optEnum(s[6], "body", "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:blood-pressure:4.0.
func (b *BloodPressure) Schema() SchemaID { return idBloodPressure }

// TimeFrame returns the effective_time_frame.
func (b *BloodPressure) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *BloodPressure) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("systolic_blood_pressure")
	o.b = b.SystolicBloodPressure.appendJSON(o.b)
	o.key("diastolic_blood_pressure")
	o.b = b.DiastolicBloodPressure.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("body_posture", b.BodyPosture)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.optStr("measurement_location", b.MeasurementLocation)
	o.optStr("temporal_relationship_to_physical_activity", b.TemporalRelationshipToPhysicalActivity)
	o.extras(b.Extra)
	return o.close()
}

// BodyWeight is omh:body-weight:3.0 (1.0 and 2.0 are accepted). body_weight
// (a mass-unit-value-1.0 unit) and effective_time_frame (IEEE) are required.
type BodyWeight struct {
	BodyWeight           UnitValue
	EffectiveTimeFrame   TimeFrame
	DescriptiveStatistic string // IEEE descriptive-statistic-1.0
	Extra                []Extra
}

var bodyWeightMembers = []string{"body_weight", "effective_time_frame", "descriptive_statistic"}

func parseBodyWeight(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [3]*fastjson.Value
	b := &BodyWeight{Extra: d.members(o, bodyWeightMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.body_weight")
	}
	if b.BodyWeight, e = d.keepUnitValue(s[0], "body.body_weight", massUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "body-weight", timeFrameRules{}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[2], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:body-weight:3.0.
func (b *BodyWeight) Schema() SchemaID { return idBodyWeight }

// TimeFrame returns the effective_time_frame.
func (b *BodyWeight) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *BodyWeight) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("body_weight")
	o.b = b.BodyWeight.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.extras(b.Extra)
	return o.close()
}

// OxygenSaturation is omh:oxygen-saturation:2.0 (1.0 is accepted).
// oxygen_saturation (%) and effective_time_frame (omh) are required.
type OxygenSaturation struct {
	OxygenSaturation                  UnitValue
	System                            string     // "peripheral capillary"
	SupplementalOxygenFlowRate        *UnitValue // L/min; 0 means room air
	OxygenTherapyModeOfAdministration string     // "nasal cannula"
	MeasurementMethod                 string     // "pulse oximetry"
	EffectiveTimeFrame                TimeFrame
	DescriptiveStatistic              string // omh descriptive-statistic-1.2
	Extra                             []Extra
}

var oxygenSaturationMembers = []string{"oxygen_saturation", "system", "supplemental_oxygen_flow_rate",
	"oxygen_therapy_mode_of_administration", "measurement_method", "effective_time_frame", "descriptive_statistic"}

func parseOxygenSaturation(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [7]*fastjson.Value
	b := &OxygenSaturation{Extra: d.members(o, oxygenSaturationMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.oxygen_saturation")
	}
	if b.OxygenSaturation, e = d.keepUnitValue(s[0], "body.oxygen_saturation", percentUnits); e != nil {
		return nil, e
	}
	if b.System, e = optEnum(s[1], "body", "system", oxygenSystem); e != nil {
		return nil, e
	}
	if b.SupplementalOxygenFlowRate, e = d.optUnitValue(s[2], "body.supplemental_oxygen_flow_rate", flowRateUnits); e != nil {
		return nil, e
	}
	if b.OxygenTherapyModeOfAdministration, e = optEnum(s[3], "body", "oxygen_therapy_mode_of_administration", oxygenTherapyMode); e != nil {
		return nil, e
	}
	if b.MeasurementMethod, e = optEnum(s[4], "body", "measurement_method", oxygenMeasurementMethod); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[5], "oxygen-saturation", timeFrameRules{omh: true}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[6], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:oxygen-saturation:2.0.
func (b *OxygenSaturation) Schema() SchemaID { return idOxygenSaturation }

// TimeFrame returns the effective_time_frame.
func (b *OxygenSaturation) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *OxygenSaturation) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("oxygen_saturation")
	o.b = b.OxygenSaturation.appendJSON(o.b)
	o.optStr("system", b.System)
	if b.SupplementalOxygenFlowRate != nil {
		o.key("supplemental_oxygen_flow_rate")
		o.b = b.SupplementalOxygenFlowRate.appendJSON(o.b)
	}
	o.optStr("oxygen_therapy_mode_of_administration", b.OxygenTherapyModeOfAdministration)
	o.optStr("measurement_method", b.MeasurementMethod)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.extras(b.Extra)
	return o.close()
}

// RespiratoryRate is omh:respiratory-rate:2.0 (1.0 is accepted).
// respiratory_rate (breaths/min) and effective_time_frame (omh) are
// required.
type RespiratoryRate struct {
	RespiratoryRate                        UnitValue
	EffectiveTimeFrame                     TimeFrame
	DescriptiveStatistic                   string // omh descriptive-statistic-1.2
	TemporalRelationshipToPhysicalActivity string // temporal-relationship-to-physical-activity-1.0
	Extra                                  []Extra
}

var respiratoryRateMembers = []string{"respiratory_rate", "effective_time_frame", "descriptive_statistic",
	"temporal_relationship_to_physical_activity"}

func parseRespiratoryRate(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [4]*fastjson.Value
	b := &RespiratoryRate{Extra: d.members(o, respiratoryRateMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.respiratory_rate")
	}
	if b.RespiratoryRate, e = d.keepUnitValue(s[0], "body.respiratory_rate", breathRateUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "respiratory-rate", timeFrameRules{omh: true}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[2], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToPhysicalActivity, e = optEnum(s[3], "body", "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:respiratory-rate:2.0.
func (b *RespiratoryRate) Schema() SchemaID { return idRespiratoryRate }

// TimeFrame returns the effective_time_frame.
func (b *RespiratoryRate) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *RespiratoryRate) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("respiratory_rate")
	o.b = b.RespiratoryRate.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.optStr("temporal_relationship_to_physical_activity", b.TemporalRelationshipToPhysicalActivity)
	o.extras(b.Extra)
	return o.close()
}

// BodyTemperature is omh:body-temperature:4.0 (2.0 and 3.0 are accepted).
// body_temperature (K, F or C) and effective_time_frame (IEEE) are
// required.
type BodyTemperature struct {
	BodyTemperature             UnitValue
	EffectiveTimeFrame          TimeFrame
	DescriptiveStatistic        string // IEEE descriptive-statistic-1.0
	MeasurementLocation         string // axillary, finger, forehead, ...
	TemporalRelationshipToSleep string // temporal-relationship-to-sleep-1.0
	Extra                       []Extra
}

var bodyTemperatureMembers = []string{"body_temperature", "effective_time_frame", "descriptive_statistic",
	"measurement_location", "temporal_relationship_to_sleep"}

func parseBodyTemperature(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [5]*fastjson.Value
	b := &BodyTemperature{Extra: d.members(o, bodyTemperatureMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.body_temperature")
	}
	if b.BodyTemperature, e = d.keepUnitValue(s[0], "body.body_temperature", temperatureUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "body-temperature", timeFrameRules{}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[2], "body", "descriptive_statistic", descriptiveStatistic); e != nil {
		return nil, e
	}
	if b.MeasurementLocation, e = optEnum(s[3], "body", "measurement_location", temperatureLocation); e != nil {
		return nil, e
	}
	if b.TemporalRelationshipToSleep, e = optEnum(s[4], "body", "temporal_relationship_to_sleep", temporalRelationshipToSleep); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:body-temperature:4.0.
func (b *BodyTemperature) Schema() SchemaID { return idBodyTemperature }

// TimeFrame returns the effective_time_frame.
func (b *BodyTemperature) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *BodyTemperature) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("body_temperature")
	o.b = b.BodyTemperature.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.optStr("measurement_location", b.MeasurementLocation)
	o.optStr("temporal_relationship_to_sleep", b.TemporalRelationshipToSleep)
	o.extras(b.Extra)
	return o.close()
}
