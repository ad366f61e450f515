package omh

// Body is the typed body of a data point. It is implemented by
// *BloodGlucose, *HeartRate, *StepCount, *BloodPressure, *BodyWeight,
// *OxygenSaturation, *RespiratoryRate, *BodyTemperature, *PhysicalActivity
// and *SleepEpisode; switch on the type to read the values.
//
// Every body type lists the schema's members as fields (optional strings
// are "" and optional objects nil when absent) and keeps members the schema
// does not define in Extra, sorted by name.
type Body interface {
	// Schema returns the canonical schema of the body.
	Schema() SchemaID
	// TimeFrame returns the body's effective_time_frame.
	TimeFrame() TimeFrame
	appendJSON(dst []byte) []byte
}

// Compile-time checks that every body type implements Body.
var (
	_ Body = (*BloodGlucose)(nil)
	_ Body = (*HeartRate)(nil)
	_ Body = (*StepCount)(nil)
	_ Body = (*BloodPressure)(nil)
	_ Body = (*BodyWeight)(nil)
	_ Body = (*OxygenSaturation)(nil)
	_ Body = (*RespiratoryRate)(nil)
	_ Body = (*BodyTemperature)(nil)
	_ Body = (*PhysicalActivity)(nil)
	_ Body = (*SleepEpisode)(nil)
)
