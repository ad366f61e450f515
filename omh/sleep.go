package omh

import "github.com/valyala/fastjson"

// SleepEpisode is omh:sleep-episode:1.1 (1.0 is accepted). Only an
// effective_time_frame (omh) with a time_interval member is required: the
// initial sleep onset is its start, the final awakening its end.
type SleepEpisode struct {
	LatencyToSleepOnset                  *UnitValue // duration units
	LatencyToArising                     *UnitValue // duration units
	TotalSleepTime                       *UnitValue // duration units
	WakeAfterSleepOnset                  *UnitValue // duration units
	NumberOfAwakenings                   *float64   // an integer (JSON Schema puts no bound on it)
	IsMainSleep                          *bool
	EffectiveTimeFrame                   TimeFrame
	SleepMaintenanceEfficiencyPercentage *UnitValue // %
	Extra                                []Extra
}

var sleepEpisodeMembers = []string{"latency_to_sleep_onset", "latency_to_arising", "total_sleep_time",
	"wake_after_sleep_onset", "number_of_awakenings", "is_main_sleep", "effective_time_frame",
	"sleep_maintenance_efficiency_percentage"}

func parseSleepEpisode(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
	var s [8]*fastjson.Value
	b := &SleepEpisode{Extra: d.members(o, sleepEpisodeMembers, s[:])}
	var e *Error
	if b.LatencyToSleepOnset, e = d.optUnitValue(s[0], "body.latency_to_sleep_onset", durationUnits); e != nil {
		return nil, e
	}
	if b.LatencyToArising, e = d.optUnitValue(s[1], "body.latency_to_arising", durationUnits); e != nil {
		return nil, e
	}
	if b.TotalSleepTime, e = d.optUnitValue(s[2], "body.total_sleep_time", durationUnits); e != nil {
		return nil, e
	}
	if b.WakeAfterSleepOnset, e = d.optUnitValue(s[3], "body.wake_after_sleep_onset", durationUnits); e != nil {
		return nil, e
	}
	if s[4] != nil {
		n, e := d.integer(s[4], "body", "number_of_awakenings")
		if e != nil {
			return nil, e
		}
		b.NumberOfAwakenings = &n
	}
	if s[5] != nil {
		v, e := boolean(s[5], "body", "is_main_sleep")
		if e != nil {
			return nil, e
		}
		b.IsMainSleep = &v
	}
	if b.EffectiveTimeFrame, e = d.timeFrame(s[6], "sleep-episode", timeFrameRules{omh: true, needInterval: true}); e != nil {
		return nil, e
	}
	if b.SleepMaintenanceEfficiencyPercentage, e = d.optUnitValue(s[7], "body.sleep_maintenance_efficiency_percentage", percentUnits); e != nil {
		return nil, e
	}
	return b, nil
}

// Schema returns omh:sleep-episode:1.1.
func (b *SleepEpisode) Schema() SchemaID { return idSleepEpisode }

// TimeFrame returns the effective_time_frame.
func (b *SleepEpisode) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

func (b *SleepEpisode) appendJSON(dst []byte) []byte {
	o := openObject(dst)
	optUV := func(name string, uv *UnitValue) {
		if uv != nil {
			o.key(name)
			o.b = uv.appendJSON(o.b)
		}
	}
	optUV("latency_to_sleep_onset", b.LatencyToSleepOnset)
	optUV("latency_to_arising", b.LatencyToArising)
	optUV("total_sleep_time", b.TotalSleepTime)
	optUV("wake_after_sleep_onset", b.WakeAfterSleepOnset)
	if b.NumberOfAwakenings != nil {
		o.key("number_of_awakenings")
		o.b = appendInteger(o.b, *b.NumberOfAwakenings)
	}
	if b.IsMainSleep != nil {
		o.key("is_main_sleep")
		if *b.IsMainSleep {
			o.b = append(o.b, "true"...)
		} else {
			o.b = append(o.b, "false"...)
		}
	}
	o.key("effective_time_frame")
	o.b = b.EffectiveTimeFrame.appendJSON(o.b)
	optUV("sleep_maintenance_efficiency_percentage", b.SleepMaintenanceEfficiencyPercentage)
	o.extras(b.Extra)
	return o.close()
}
