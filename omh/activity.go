package omh

import "github.com/valyala/fastjson"

// StepCount is omh:step-count:3.0. step_count (steps) and an
// effective_time_frame (omh) with a time_interval member are required.
// Versions 1.0 and 2.0, which write step_count as a bare number, are
// accepted and stored as 3.0 with step_count wrapped into
// {"value": N, "unit": "steps"}.
type StepCount struct {
	StepCount                       UnitValue
	EffectiveTimeFrame              TimeFrame
	DescriptiveStatistic            string // omh descriptive-statistic-1.0
	DescriptiveStatisticDenominator string // any string; descriptive-statistic-denominator-1.1 lists the usual ones
	Extra                           []Extra
}

var stepCountMembers = []string{"step_count", "effective_time_frame", "descriptive_statistic", "descriptive_statistic_denominator"}

func parseStepCount(d *decoder, o *fastjson.Object, lg *legacy) (Body, *Error) {
	var s [4]*fastjson.Value
	b := &StepCount{Extra: d.members(o, stepCountMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.step_count")
	}
	if lg != nil && lg.bareStepCount {
		if b.StepCount.Value, e = d.number(s[0], "body", "step_count"); e != nil {
			return nil, e
		}
		b.StepCount.Unit = "steps"
		d.note("step_count given as a bare number (omh:step-count:" + lg.version + ") wrapped as {\"value\", \"unit\": \"steps\"}")
	} else if b.StepCount, e = d.keepUnitValue(s[0], "body.step_count", stepUnits); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "step-count", timeFrameRules{omh: true, needInterval: true}); e != nil {
		return nil, e
	}
	if b.DescriptiveStatistic, e = optEnum(s[2], "body", "descriptive_statistic", descriptiveStatistic10); e != nil {
		return nil, e
	}
	if s[3] != nil {
		if b.DescriptiveStatisticDenominator, e = d.str(s[3], "body", "descriptive_statistic_denominator"); e != nil {
			return nil, e
		}
	}
	return b, nil
}

// Schema returns omh:step-count:3.0.
func (b *StepCount) Schema() SchemaID { return idStepCount }

// TimeFrame returns the effective_time_frame.
func (b *StepCount) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *StepCount) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.key("step_count")
	o.b = b.StepCount.appendJSON(o.b)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	o.optStr("descriptive_statistic", b.DescriptiveStatistic)
	o.optStr("descriptive_statistic_denominator", b.DescriptiveStatisticDenominator)
	o.extras(b.Extra)
	return o.close()
}

// PhysicalActivity is omh:physical-activity:1.2 (1.0 and 1.1 are
// accepted). The schema requires only activity_name; the vault also
// requires effective_time_frame (omh), because it files every reading by
// its time.
type PhysicalActivity struct {
	ActivityName              string
	EffectiveTimeFrame        TimeFrame
	Distance                  *UnitValue // length-unit-value-1.0
	KcalBurned                *UnitValue // kcal
	ReportedActivityIntensity string     // light, moderate or vigorous
	METValue                  *float64
	Extra                     []Extra
}

var physicalActivityMembers = []string{"activity_name", "effective_time_frame", "distance", "kcal_burned",
	"reported_activity_intensity", "met_value"}

func parsePhysicalActivity(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [6]*fastjson.Value
	b := &PhysicalActivity{Extra: d.members(o, physicalActivityMembers, s[:])}
	var e *Error
	if s[0] == nil {
		return nil, errRequired("body.activity_name")
	}
	if b.ActivityName, e = d.str(s[0], "body", "activity_name"); e != nil {
		return nil, e
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[1], "physical-activity", timeFrameRules{omh: true}); e != nil {
		return nil, e
	}
	if b.Distance, e = d.optUnitValue(s[2], "body.distance", lengthUnits); e != nil {
		return nil, e
	}
	if b.KcalBurned, e = d.optUnitValue(s[3], "body.kcal_burned", kcalUnits); e != nil {
		return nil, e
	}
	if b.ReportedActivityIntensity, e = optEnum(s[4], "body", "reported_activity_intensity", activityIntensity); e != nil {
		return nil, e
	}
	if s[5] != nil {
		f, e := d.number(s[5], "body", "met_value")
		if e != nil {
			return nil, e
		}
		b.METValue = &f
	}
	return b, nil
}

// Schema returns omh:physical-activity:1.2.
func (b *PhysicalActivity) Schema() SchemaID { return idPhysicalActivity }

// TimeFrame returns the effective_time_frame.
func (b *PhysicalActivity) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *PhysicalActivity) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	o.str("activity_name", b.ActivityName)
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	if b.Distance != nil {
		o.key("distance")
		o.b = b.Distance.appendJSON(o.b)
	}
	if b.KcalBurned != nil {
		o.key("kcal_burned")
		o.b = b.KcalBurned.appendJSON(o.b)
	}
	o.optStr("reported_activity_intensity", b.ReportedActivityIntensity)
	if b.METValue != nil {
		o.key("met_value")
		o.b = appendNumber(o.b, *b.METValue)
	}
	o.extras(b.Extra)
	return o.close()
}
