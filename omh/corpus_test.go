package omh

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// A deterministic generator of OMH data points for the agreement test and
// the fuzz seeds: valid bodies for every schema, and mutations of them.
// Whether a mutation is valid is never guessed here: the official schemas
// decide, and Parse must agree.

type genPoint struct {
	desc   string
	schema SchemaID // the schema_id the point declares
	header map[string]any
	body   map[string]any
}

func (g genPoint) JSON() []byte {
	b, err := json.Marshal(map[string]any{"header": g.header, "body": g.body})
	if err != nil {
		panic(err)
	}
	return b
}

func (g genPoint) bodyJSON() []byte {
	b, err := json.Marshal(g.body)
	if err != nil {
		panic(err)
	}
	return b
}

type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) maybe(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *gen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var genOffsets = []string{"Z", "+00:00", "-08:00", "-07:00", "+05:30", "+09:00", "-03:30", "+14:00", "z"}

// instant returns a random time in 2020-2026.
func (g *gen) instant() time.Time {
	return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.r.Int64N(int64(6 * 365 * 24 * time.Hour))))
}

// dateTime renders t in a random offset, sometimes with a fraction.
func (g *gen) dateTime(t time.Time) string {
	off := pick(g, genOffsets)
	loc := time.UTC
	if off != "Z" && off != "z" {
		pt, _ := time.Parse("-07:00", off)
		_, secs := pt.Zone()
		loc = time.FixedZone("", secs)
	}
	layout := "2006-01-02T15:04:05"
	if g.maybe(0.2) {
		layout += ".000"
	}
	s := t.In(loc).Format(layout)
	if off == "Z" || off == "z" {
		return s + off
	}
	return s + off
}

func (g *gen) unitValue(units []string, lo, hi float64, integral bool) map[string]any {
	v := lo + g.r.Float64()*(hi-lo)
	if integral {
		v = float64(int(v))
	} else {
		v = float64(int(v*10)) / 10
	}
	return map[string]any{"value": v, "unit": pick(g, units)}
}

func (g *gen) duration() map[string]any {
	return g.unitValue(durationUnits.units, 1, 600, g.maybe(0.5))
}

// timeFrame returns a valid effective_time_frame.
func (g *gen) timeFrame(intervalOnly bool) map[string]any {
	t := g.instant()
	if !intervalOnly && g.maybe(0.6) {
		return map[string]any{"date_time": g.dateTime(t)}
	}
	end := t.Add(time.Duration(1+g.r.IntN(600)) * time.Minute)
	var ti map[string]any
	switch g.r.IntN(3) {
	case 0:
		ti = map[string]any{"start_date_time": g.dateTime(t), "end_date_time": g.dateTime(end)}
	case 1:
		ti = map[string]any{"start_date_time": g.dateTime(t), "duration": map[string]any{"value": float64(g.r.IntN(600) + 1), "unit": pick(g, []string{"min", "h", "sec"})}}
	default:
		ti = map[string]any{"end_date_time": g.dateTime(end), "duration": map[string]any{"value": float64(g.r.IntN(600) + 1), "unit": pick(g, []string{"min", "h", "sec", "ms"})}}
	}
	return map[string]any{"time_interval": ti}
}

// extras adds members the schemas do not define, sometimes.
func (g *gen) extras(o map[string]any) {
	if g.maybe(0.15) {
		o["x_device_note"] = pick(g, []any{"calibrated", 3.5, true, nil, []any{1, "two"}, map[string]any{"b": 1, "a": "x"}})
	}
}

func (g *gen) optEnum(o map[string]any, name string, e enum, p float64) {
	if g.maybe(p) {
		o[name] = pick(g, e)
	}
}

// validBody returns a random valid body of the canonical schema m.
func (g *gen) validBody(m *model) map[string]any {
	b := map[string]any{}
	switch m.id.Name {
	case "blood-glucose":
		if g.maybe(0.7) {
			b["blood_glucose"] = g.unitValue([]string{"mg/dL"}, 40, 400, true)
		} else {
			b["blood_glucose"] = g.unitValue([]string{"mmol/L"}, 2, 22, false)
		}
		g.optEnum(b, "specimen_source", specimenSource, 0.4)
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "temporal_relationship_to_meal", temporalRelationshipToMeal, 0.3)
		g.optEnum(b, "temporal_relationship_to_sleep", temporalRelationshipToSleep, 0.2)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
	case "heart-rate":
		b["heart_rate"] = g.unitValue(heartRateUnits.units, 40, 180, g.maybe(0.5))
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
		g.optEnum(b, "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity, 0.3)
		g.optEnum(b, "temporal_relationship_to_sleep", temporalRelationshipToSleep, 0.2)
	case "step-count":
		b["step_count"] = g.unitValue(stepUnits.units, 0, 20000, true)
		b["effective_time_frame"] = g.timeFrame(true)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic10, 0.2)
		if g.maybe(0.15) {
			b["descriptive_statistic_denominator"] = pick(g, []string{"d", "wk", "session", "per hour"})
		}
	case "blood-pressure":
		b["systolic_blood_pressure"] = g.unitValue(mmHgUnits.units, 90, 180, true)
		b["diastolic_blood_pressure"] = g.unitValue(mmHgUnits.units, 50, 110, true)
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "body_posture", bodyPosture, 0.4)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
		g.optEnum(b, "measurement_location", bodyLocation, 0.3)
		g.optEnum(b, "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity, 0.2)
	case "body-weight":
		b["body_weight"] = g.unitValue(pick(g, [][]string{{"kg"}, {"lb"}, massUnits.units}), 3, 200, false)
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
	case "oxygen-saturation":
		b["oxygen_saturation"] = g.unitValue(percentUnits.units, 80, 100, g.maybe(0.7))
		g.optEnum(b, "system", oxygenSystem, 0.3)
		if g.maybe(0.2) {
			b["supplemental_oxygen_flow_rate"] = g.unitValue(flowRateUnits.units, 0, 6, false)
		}
		g.optEnum(b, "oxygen_therapy_mode_of_administration", oxygenTherapyMode, 0.2)
		g.optEnum(b, "measurement_method", oxygenMeasurementMethod, 0.3)
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
	case "respiratory-rate":
		b["respiratory_rate"] = g.unitValue(breathRateUnits.units, 8, 30, g.maybe(0.7))
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
		g.optEnum(b, "temporal_relationship_to_physical_activity", temporalRelationshipToPhysicalActivity, 0.2)
	case "body-temperature":
		b["body_temperature"] = pick(g, []map[string]any{
			g.unitValue([]string{"C"}, 35, 41, false), g.unitValue([]string{"F"}, 95, 105, false), g.unitValue([]string{"K"}, 308, 314, false)})
		b["effective_time_frame"] = g.timeFrame(false)
		g.optEnum(b, "descriptive_statistic", descriptiveStatistic, 0.2)
		g.optEnum(b, "measurement_location", temperatureLocation, 0.4)
		g.optEnum(b, "temporal_relationship_to_sleep", temporalRelationshipToSleep, 0.2)
	case "physical-activity":
		b["activity_name"] = pick(g, []string{"walking", "running", "cycling", "swimming", "yoga", ""})
		b["effective_time_frame"] = g.timeFrame(false)
		if g.maybe(0.4) {
			b["distance"] = g.unitValue(lengthUnits.units, 0, 20, false)
		}
		if g.maybe(0.4) {
			b["kcal_burned"] = g.unitValue(kcalUnits.units, 10, 900, true)
		}
		g.optEnum(b, "reported_activity_intensity", activityIntensity, 0.3)
		if g.maybe(0.2) {
			b["met_value"] = float64(g.r.IntN(120)) / 10
		}
	case "sleep-episode":
		for _, n := range []string{"latency_to_sleep_onset", "latency_to_arising", "total_sleep_time", "wake_after_sleep_onset"} {
			if g.maybe(0.4) {
				b[n] = g.duration()
			}
		}
		if g.maybe(0.4) {
			b["number_of_awakenings"] = float64(g.r.IntN(8))
		}
		if g.maybe(0.4) {
			b["is_main_sleep"] = g.maybe(0.5)
		}
		b["effective_time_frame"] = g.timeFrame(true)
		if g.maybe(0.3) {
			b["sleep_maintenance_efficiency_percentage"] = g.unitValue(percentUnits.units, 60, 100, false)
		}
	default:
		panic("no generator for " + m.id.Name)
	}
	g.extras(b)
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys) // map order is random; the corpus must not be
	for _, k := range keys {
		if o, ok := b[k].(map[string]any); ok && g.maybe(0.1) {
			g.extras(o)
		}
	}
	return b
}

func (g *gen) header(id SchemaID, t time.Time) map[string]any {
	h := map[string]any{
		"uuid":                      g.uuid(),
		"schema_id":                 map[string]any{"namespace": id.Namespace, "name": id.Name, "version": id.Version},
		"source_creation_date_time": g.dateTime(t),
	}
	if g.maybe(0.6) {
		h["modality"] = pick(g, []string{"sensed", "self-reported"})
	}
	if g.maybe(0.5) {
		h["external_datasheets"] = []any{map[string]any{"datasheet_type": "manufacturer", "datasheet_reference": pick(g, []string{"iHealth", "https://example.com/device"})}}
	}
	return h
}

// relabel moves a canonical body to a legacy version of its schema, as an
// uploader of that version would have written it.
func relabel(body map[string]any, lg legacy) map[string]any {
	if lg.bareStepCount {
		if uv, ok := body["step_count"].(map[string]any); ok {
			body["step_count"] = uv["value"]
		}
	}
	return body
}

// canonicalBody undoes relabel on a copy, for checking a legacy body against
// the canonical schema.
func canonicalBody(body map[string]any, lg *legacy) map[string]any {
	if lg == nil || !lg.bareStepCount {
		return body
	}
	c := cloneJSON(body).(map[string]any)
	if v, ok := c["step_count"].(float64); ok {
		c["step_count"] = map[string]any{"value": v, "unit": "steps"}
	}
	return c
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = cloneJSON(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cloneJSON(e)
		}
		return c
	}
	return v
}

// validPoints returns n valid points per schema; about a quarter declare a
// legacy version.
func (g *gen) validPoints(n int) []genPoint {
	var out []genPoint
	for i := range models {
		m := &models[i]
		for j := range n {
			body := g.validBody(m)
			id := m.id
			if len(m.legacy) > 0 && g.maybe(0.25) {
				lg := pick(g, m.legacy)
				id.Version = lg.version
				body = relabel(body, lg)
			}
			out = append(out, genPoint{
				desc:   fmt.Sprintf("%s valid #%d", id, j),
				schema: id,
				header: g.header(id, g.instant()),
				body:   body,
			})
		}
	}
	return out
}

// Strings that mutations put in place of other strings: values of other
// enums, units of other sets, date-times good and bad. None is a spelling
// the vault normalises (TestMutationPoolHasNoAliases checks it), so that
// every disagreement with the schemas is a bug.
var mutationStrings = func() []string {
	var s []string
	for _, e := range []enum{descriptiveStatistic, specimenSource, temporalRelationshipToMeal, bodyPosture, bodyLocation,
		temperatureLocation, activityIntensity, temporalRelationshipToPhysicalActivity} {
		s = append(s, e[0], e[len(e)-1])
	}
	for _, u := range []*unitSet{glucoseUnits, heartRateUnits, mmHgUnits, massUnits, temperatureUnits, durationUnits, lengthUnits, kcalUnits, percentUnits} {
		s = append(s, u.units...)
	}
	s = append(s, "", " ", "bogus", "furlongs", "mg/dL/min", "beats", "sitting down",
		"2025-01-01T00:00:00", "2025-01-01", "2025-13-01T00:00:00Z", "2025-02-30T10:00:00Z", "2025-01-01t08:00:00z",
		"2025-06-30T23:59:60Z", "2025-06-30T12:59:60Z", "2025-01-01T00:00:00.123456789123+05:30", "2025-01-01T00:00:00,5Z",
		"2025-01-01T00:00:00+24:00", "2025-01-01 00:00:00Z", "2024-02-29T10:00:00-07:00", "2023-02-29T10:00:00-07:00",
		"0000-01-01T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T10:00Z", "2025-01-01T10:00:00.Z")
	return s
}()

var mutationValues = []any{"a string", 42.0, -17.5, 0.0, 1e300, -1e-7, true, false, nil, []any{}, []any{1.0}, map[string]any{},
	map[string]any{"value": 1.0}, map[string]any{"unit": "mg/dL"}}

var extraNames = []string{"x_note", "unit", "value", "date_time", "time_interval", "duration", "start_date_time",
	"end_date_time", "descriptive_statistic", "effective_time_frame", "user_notes"}

// mutate applies one random mutation somewhere in body (in place) and
// describes it.
func (g *gen) mutate(body map[string]any) string {
	// Collect every object in the body and every member path.
	type slot struct {
		obj  map[string]any
		key  string
		path string
	}
	var objs []slot
	var members []slot
	var walk func(o map[string]any, path string)
	walk = func(o map[string]any, path string) {
		objs = append(objs, slot{obj: o, path: path})
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			members = append(members, slot{obj: o, key: k, path: path + "." + k})
			if c, ok := o[k].(map[string]any); ok {
				walk(c, path+"."+k)
			}
		}
	}
	walk(body, "body")
	if len(members) == 0 {
		body["x"] = 1.0
		return "add body.x"
	}
	m := pick(g, members)
	switch op := g.r.IntN(9); op {
	case 0, 1:
		delete(m.obj, m.key)
		return "drop " + m.path
	case 2:
		v := pick(g, mutationValues)
		m.obj[m.key] = cloneJSON(v)
		return fmt.Sprintf("set %s to %v", m.path, v)
	case 3, 4:
		if _, ok := m.obj[m.key].(string); ok || g.maybe(0.3) {
			s := pick(g, mutationStrings)
			m.obj[m.key] = s
			return fmt.Sprintf("set %s to %q", m.path, s)
		}
		m.obj[m.key] = pick(g, mutationStrings)
		return "set " + m.path + " to a string"
	case 5:
		if f, ok := m.obj[m.key].(float64); ok {
			m.obj[m.key] = -f - 1
			return "negate " + m.path
		}
		m.obj[m.key] = -3.0
		return "set " + m.path + " to -3"
	case 6:
		o := pick(g, objs)
		name := pick(g, extraNames)
		v := cloneJSON(pick(g, []any{"2025-01-01T00:00:00Z", 5.0, map[string]any{"value": 5.0, "unit": "min"},
			map[string]any{"start_date_time": "2025-01-01T00:00:00Z", "end_date_time": "2025-01-01T01:00:00Z"}, "x"}))
		o.obj[name] = v
		return fmt.Sprintf("add %s.%s", o.path, name)
	case 7:
		// Both date_time and time_interval, or a time frame emptied.
		if tf, ok := body["effective_time_frame"].(map[string]any); ok {
			switch {
			case tf["date_time"] != nil && g.maybe(0.5):
				tf["time_interval"] = map[string]any{"start_date_time": "2025-01-01T00:00:00Z", "end_date_time": "2025-01-01T01:00:00Z"}
				return "date_time and time_interval"
			case tf["time_interval"] != nil && g.maybe(0.5):
				tf["date_time"] = "2025-01-01T00:00:00Z"
				return "time_interval and date_time"
			case tf["time_interval"] != nil:
				tf["time_interval"] = map[string]any{}
				return "empty time_interval"
			}
			clear(tf)
			return "empty effective_time_frame"
		}
		body["effective_time_frame"] = map[string]any{}
		return "empty effective_time_frame"
	default:
		// Over-full or under-full time interval.
		if tf, ok := body["effective_time_frame"].(map[string]any); ok {
			if ti, ok := tf["time_interval"].(map[string]any); ok {
				switch g.r.IntN(3) {
				case 0:
					ti["start_date_time"], ti["end_date_time"], ti["duration"] = "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", map[string]any{"value": 60.0, "unit": "min"}
					return "time_interval with start, end and duration"
				case 1:
					delete(ti, "end_date_time")
					delete(ti, "duration")
					return "time_interval with start only"
				default:
					ti["duration"] = map[string]any{"value": 1.0, "unit": "fortnight"}
					return "time_interval duration with a bad unit"
				}
			}
		}
		delete(m.obj, m.key)
		return "drop " + m.path
	}
}

// mutatedPoints derives from each valid point k mutants, each with one or
// two mutations.
func (g *gen) mutatedPoints(valid []genPoint, k int) []genPoint {
	var out []genPoint
	for _, p := range valid {
		for range k {
			body := cloneJSON(p.body).(map[string]any)
			desc := g.mutate(body)
			if g.maybe(0.3) {
				desc += "; " + g.mutate(body)
			}
			out = append(out, genPoint{desc: p.desc + ": " + desc, schema: p.schema, header: p.header, body: body})
		}
	}
	return out
}

// corpus is the deterministic corpus shared by the agreement test and the
// fuzz seeds.
func corpus() (valid, mutated []genPoint) {
	g := newGen(20250101)
	valid = g.validPoints(30)
	mutated = g.mutatedPoints(valid, 3)
	return valid, mutated
}
