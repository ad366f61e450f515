package apple

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/internal/calendar/calendartest"
	"github.com/jupyterhealth/vault/omh"
)

// Where the shapes of the test inputs come from: Apple publishes no
// specification of export.xml beyond the DTD it embeds in the file. The
// element and attribute names, the DOCTYPE, the HKDevice description, the
// date format and the unit strings follow that DTD (HealthKit Export
// Version 11 and 14, as reproduced in public parsers' READMEs and tests)
// and rows quoted in public READMEs, issues and blog posts about the
// export (tdda/applehealthdata issue 2 for Correlation and ExportDate,
// Apple Watch heart-rate rows with HKMetadataKeyHeartRateMotionContext,
// Dexcom rows in mmol<180.1558800000541>/L with HKBloodGlucoseMealTime, a
// blood-oxygen CSV made from an export showing SpO2 as 0.98). HealthKit's
// metadata enums (HKBloodGlucoseMealTime, HKHeartRateMotionContext,
// HKBodyTemperatureSensorLocation) follow Apple's HKMetadataEnums.h. The
// values and names are made up.

func parseString(s string, o ingest.Options) (*ingesttest.Sink, error) {
	return ingesttest.Parse(Parse, []byte(s), o)
}

// doc wraps records in a minimal export.xml: the declaration, a DOCTYPE
// with an internal subset (as Apple's), and the root. The first body line
// is line 6.
func doc(body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate?,Me?,(Record|Correlation|Workout|ActivitySummary)*)>
]>
<HealthData locale="en_US">
` + body + "</HealthData>\n"
}

// split returns a point's canonical header and body.
func split(t *testing.T, p *omh.Point) (header, body string) {
	t.Helper()
	var m struct{ Header, Body json.RawMessage }
	if err := json.Unmarshal(p.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	return string(m.Header), string(m.Body)
}

const (
	watch    = `&lt;&lt;HKDevice: 0x2803d9810&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:10.3&gt;`
	watchRef = `name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:10.3`
)

// rec writes a one-line Record; extra is written inside the start tag.
func rec(typ, unit, value, start, end, extra string) string {
	s := ` <Record type="` + typ + `" sourceName="Ada’s Apple Watch" sourceVersion="10.3" device="` + watch + `"`
	if unit != "" {
		s += ` unit="` + unit + `"`
	}
	s += ` creationDate="2024-03-14 17:28:52 -0400" startDate="` + start + `" endDate="` + end + `"`
	if value != "" {
		s += ` value="` + value + `"`
	}
	return s + extra + "/>\n"
}

// withMeta writes a Record with MetadataEntry children.
func withMeta(typ, unit, value, start string, meta ...string) string {
	s := strings.TrimSuffix(rec(typ, unit, value, start, start, ""), "/>\n") + ">\n"
	for i := 0; i+1 < len(meta); i += 2 {
		s += `  <MetadataEntry key="` + meta[i] + `" value="` + meta[i+1] + `"/>` + "\n"
	}
	return s + " </Record>\n"
}

const t0 = "2024-03-14 17:22:58 -0400"

func TestMapping(t *testing.T) {
	const dt = `"effective_time_frame":{"date_time":"2024-03-14T17:22:58-04:00"}`
	tests := []struct {
		name   string
		xml    string
		schema string
		body   string
	}{
		{"heart rate", rec(hkHeartRate, "count/min", "73", t0, t0, ""), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":73,"unit":"beats/min"},` + dt + `}`},
		{"heart rate sedentary", withMeta(hkHeartRate, "count/min", "61", t0, "HKMetadataKeyHeartRateMotionContext", "1"), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":61,"unit":"beats/min"},` + dt + `,"temporal_relationship_to_physical_activity":"at rest"}`},
		{"heart rate active", withMeta(hkHeartRate, "count/min", "128", t0, "HKMetadataKeyHeartRateMotionContext", "2"), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":128,"unit":"beats/min"},` + dt + `,"temporal_relationship_to_physical_activity":"active"}`},
		{"heart rate motion not set", withMeta(hkHeartRate, "count/min", "70.5", t0, "HKMetadataKeyHeartRateMotionContext", "0"), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":70.5,"unit":"beats/min"},` + dt + `}`},
		{"heart rate interval", rec(hkHeartRate, "count/min", "73", t0, "2024-03-14 17:23:58 -0400", ""), "omh:heart-rate:2.0",
			`{"heart_rate":{"value":73,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-14T17:22:58-04:00","end_date_time":"2024-03-14T17:23:58-04:00"}}}`},
		{"glucose mg/dL", rec(hkBloodGlucose, "mg/dL", "142", t0, t0, ""), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":142,"unit":"mg/dL"},` + dt + `}`},
		{"glucose mmol with molar mass", rec(hkBloodGlucose, "mmol&lt;180.1558800000541&gt;/L", "5.6", t0, t0, ""), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":5.6,"unit":"mmol/L"},` + dt + `}`},
		{"glucose mmol/L", rec(hkBloodGlucose, "mmol/L", "4.59", t0, t0, ""), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":4.59,"unit":"mmol/L"},` + dt + `}`},
		{"glucose before meal", withMeta(hkBloodGlucose, "mg/dL", "90", t0, "HKBloodGlucoseMealTime", "1"), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":90,"unit":"mg/dL"},` + dt + `,"temporal_relationship_to_meal":"before meal"}`},
		{"glucose after meal", withMeta(hkBloodGlucose, "mg/dL", "160", t0, "HKBloodGlucoseMealTime", "2"), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":160,"unit":"mg/dL"},` + dt + `,"temporal_relationship_to_meal":"after meal"}`},
		{"glucose unknown meal time", withMeta(hkBloodGlucose, "mg/dL", "160", t0, "HKBloodGlucoseMealTime", "7"), "omh:blood-glucose:4.0",
			`{"blood_glucose":{"value":160,"unit":"mg/dL"},` + dt + `}`},
		{"steps", rec(hkStepCount, "count", "612", "2024-03-14 08:00:00 -0400", "2024-03-14 08:10:00 -0400", ""), "omh:step-count:3.0",
			`{"step_count":{"value":612,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-14T08:00:00-04:00","end_date_time":"2024-03-14T08:10:00-04:00"}}}`},
		{"steps zero length", rec(hkStepCount, "count", "3", t0, t0, ""), "omh:step-count:3.0",
			`{"step_count":{"value":3,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-14T17:22:58-04:00","end_date_time":"2024-03-14T17:22:58-04:00"}}}`},
		{"weight kg", rec(hkBodyMass, "kg", "68.2", t0, t0, ""), "omh:body-weight:3.0",
			`{"body_weight":{"value":68.2,"unit":"kg"},` + dt + `}`},
		{"weight lb", rec(hkBodyMass, "lb", "152.4", t0, t0, ""), "omh:body-weight:3.0",
			`{"body_weight":{"value":152.4,"unit":"lb"},` + dt + `}`},
		{"weight stone", rec(hkBodyMass, "st", "11.1", t0, t0, ""), "omh:body-weight:3.0",
			`{"body_weight":{"value":155.4,"unit":"lb"},` + dt + `}`},
		{"weight g", rec(hkBodyMass, "g", "68200", t0, t0, ""), "omh:body-weight:3.0",
			`{"body_weight":{"value":68200,"unit":"g"},` + dt + `}`},
		{"spo2 fraction", rec(hkOxygenSaturation, "%", "0.97", t0, t0, ""), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":97,"unit":"%"},` + dt + `}`},
		{"spo2 fraction three places", rec(hkOxygenSaturation, "%", "0.975", t0, t0, ""), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":97.5,"unit":"%"},` + dt + `}`},
		{"spo2 one", rec(hkOxygenSaturation, "%", "1", t0, t0, ""), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":100,"unit":"%"},` + dt + `}`},
		{"spo2 exponent", rec(hkOxygenSaturation, "%", "9.6e-1", t0, t0, ""), "omh:oxygen-saturation:2.0",
			`{"oxygen_saturation":{"value":96,"unit":"%"},` + dt + `}`},
		{"respiratory rate", rec(hkRespiratoryRate, "count/min", "14.5", t0, t0, ""), "omh:respiratory-rate:2.0",
			`{"respiratory_rate":{"value":14.5,"unit":"breaths/min"},` + dt + `}`},
		{"temperature C", rec(hkBodyTemperature, "degC", "36.8", t0, t0, ""), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":36.8,"unit":"C"},` + dt + `}`},
		{"temperature F oral", withMeta(hkBodyTemperature, "degF", "99.1", t0, "HKBodyTemperatureSensorLocation", "6"), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":99.1,"unit":"F"},` + dt + `,"measurement_location":"oral"}`},
		{"temperature K ear drum", withMeta(hkBodyTemperature, "K", "310.1", t0, "HKBodyTemperatureSensorLocation", "9"), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":310.1,"unit":"K"},` + dt + `,"measurement_location":"tympanic"}`},
		{"temperature body location unmapped", withMeta(hkBodyTemperature, "degC", "36.8", t0, "HKBodyTemperatureSensorLocation", "2"), "omh:body-temperature:4.0",
			`{"body_temperature":{"value":36.8,"unit":"C"},` + dt + `}`},
		{"sleep core", rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisAsleepCore", "2024-03-13 23:20:00 -0400", "2024-03-14 01:05:30 -0400", ""), "omh:sleep-episode:1.1",
			`{"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-13T23:20:00-04:00","end_date_time":"2024-03-14T01:05:30-04:00"}}}`},
		{"sleep legacy asleep", rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisAsleep", "2024-03-13 23:20:00 -0400", "2024-03-14 06:00:00 -0400", ""), "omh:sleep-episode:1.1",
			`{"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-13T23:20:00-04:00","end_date_time":"2024-03-14T06:00:00-04:00"}}}`},
	}
	for _, sleepValue := range []string{"AsleepUnspecified", "AsleepDeep", "AsleepREM"} {
		tests = append(tests, struct{ name, xml, schema, body string }{"sleep " + sleepValue,
			rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysis"+sleepValue, "2024-03-14 01:00:00 -0400", "2024-03-14 01:30:00 -0400", ""), "omh:sleep-episode:1.1",
			`{"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-14T01:00:00-04:00","end_date_time":"2024-03-14T01:30:00-04:00"}}}`})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(doc(tc.xml)), ingest.Options{})
			if len(c.Items) != 1 || len(c.Skips) != 0 {
				t.Fatalf("got %d readings and %d skips, want one reading", len(c.Items), len(c.Skips))
			}
			it := c.Items[0]
			if got := it.Point.Schema.String(); got != tc.schema {
				t.Errorf("schema %s, want %s", got, tc.schema)
			}
			if _, body := split(t, it.Point); body != tc.body {
				t.Errorf("body\n got %s\nwant %s", body, tc.body)
			}
			if it.Pos != (ingest.Pos{Line: 6, Element: "Record[1]"}) {
				t.Errorf("pos %+v", it.Pos)
			}
			if it.Point.UUID != "" {
				t.Errorf("uuid %q set; the source has no id", it.Point.UUID)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name, xml, header string
	}{
		{"watch: sensed, source name and device without its address",
			rec(hkHeartRate, "count/min", "73", t0, t0, ""),
			`{"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":"2024-03-14T17:28:52-04:00","modality":"sensed","external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Ada’s Apple Watch"},{"datasheet_type":"device","datasheet_reference":"` + watchRef + `"}],"x_vault":{"normalised":["header has no uuid; the vault derives one"]}}`},
		{"typed in by hand: self-reported, no device",
			` <Record type="HKQuantityTypeIdentifierBloodGlucose" sourceName="Health" sourceVersion="17.3" unit="mg/dL" creationDate="2024-03-14 12:32:54 -0400" startDate="2024-03-14 12:30:00 -0400" endDate="2024-03-14 12:30:00 -0400" value="142">
  <MetadataEntry key="HKWasUserEntered" value="1"/>
 </Record>
`,
			`{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2024-03-14T12:32:54-04:00","modality":"self-reported","external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Health"}],"x_vault":{"normalised":["header has no uuid; the vault derives one"]}}`},
		{"an app without a device and no creationDate: no modality, creation time filled by omh",
			` <Record type="HKQuantityTypeIdentifierBodyMass" sourceName="Scale &amp; &quot;Co&quot;" unit="kg" startDate="2024-03-14 07:00:40 -0400" endDate="2024-03-14 07:00:40 -0400" value="68"/>
`,
			`{"schema_id":{"namespace":"omh","name":"body-weight","version":"3.0"},"source_creation_date_time":"2024-03-14T07:00:40-04:00","external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Scale \u0026 \"Co\""}],"x_vault":{"normalised":["header has no uuid; the vault derives one","header source_creation_date_time missing; set to the reading's time"]}}`},
		{"a device string in another form is kept",
			` <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Polar" device="Polar H10 (strap)" unit="count/min" startDate="` + t0 + `" endDate="` + t0 + `" value="80"/>
`,
			`{"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":"2024-03-14T17:22:58-04:00","modality":"sensed","external_datasheets":[{"datasheet_type":"source_name","datasheet_reference":"Polar"},{"datasheet_type":"device","datasheet_reference":"Polar H10 (strap)"}],"x_vault":{"normalised":["header has no uuid; the vault derives one","header source_creation_date_time missing; set to the reading's time"]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(doc(tc.xml)), ingest.Options{})
			if len(c.Items) != 1 {
				t.Fatalf("got %d readings", len(c.Items))
			}
			// The source id (the dedup identity, tested in TestSourceID) is
			// checked apart: the rest of the header is as written here.
			p := c.Items[0].Point
			if !strings.HasPrefix(p.SourceID, "apple:") || strings.Contains(p.SourceID, "Watch") || strings.Contains(p.SourceID, "Polar") {
				t.Errorf("source id %q", p.SourceID)
			}
			h, _ := split(t, p)
			h = strings.Replace(h, `"header uuid is not a UUID; kept as x_vault.source_id",`, "", 1)
			h = strings.Replace(h, `,"source_id":`+strconv.Quote(p.SourceID), "", 1)
			if h != tc.header {
				// encoding/json's RawMessage keeps the text; compare
				// semantically so \u0026 and & are the same.
				if semantic(t, h) != semantic(t, tc.header) {
					t.Errorf("header\n got %s\nwant %s", h, tc.header)
				}
			}
		})
	}
}

// semantic is the JSON text s as encoding/json writes it again.
func semantic(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCleanDevice(t *testing.T) {
	tests := map[string]string{
		"<<HKDevice: 0x281d7c0f0>, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch5,4, software:7.0>": "name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch5,4, software:7.0",
		"<<HKDevice: 0x1>>":              "",
		"<<HKDevice: 0x1>, name:iPhone>": "name:iPhone",
		"<<HKDevice: broken":             "<<HKDevice: broken",
		"  Polar H10  ":                  "Polar H10",
		"":                               "",
	}
	for in, want := range tests {
		if got := cleanDevice(in); got != want {
			t.Errorf("cleanDevice(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBloodPressure: one point per correlation; the halves Apple also
// lists at top level are skipped, so nothing is imported twice.
func TestBloodPressure(t *testing.T) {
	const cuff = `&lt;&lt;HKDevice: 0x2803dbb40&gt;, name:BPM Connect, manufacturer:Withings, model:BPM Connect&gt;`
	half := func(indent, typ, v string) string {
		return indent + ` <Record type="` + typ + `" sourceName="Health Mate" device="` + cuff + `" unit="mmHg" creationDate="2024-03-14 07:05:30 -0400" startDate="2024-03-14 07:05:00 -0400" endDate="2024-03-14 07:05:00 -0400" value="` + v + `"/>` + "\n"
	}
	body := half("", hkSystolic, "121") + half("", hkDiastolic, "79") +
		` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Health Mate" device="` + cuff + `" creationDate="2024-03-14 07:05:30 -0400" startDate="2024-03-14 07:05:00 -0400" endDate="2024-03-14 07:05:00 -0400">` + "\n" +
		`  <MetadataEntry key="HKWasUserEntered" value="0"/>` + "\n" +
		half(" ", hkDiastolic, "79") + half(" ", hkSystolic, "121") +
		" </Correlation>\n" +
		// A correlation with one half only is skipped.
		` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Health Mate" startDate="2024-03-15 07:05:00 -0400" endDate="2024-03-15 07:05:00 -0400">` + "\n" +
		half(" ", hkSystolic, "130") +
		" </Correlation>\n"
	c := ingesttest.MustParse(t, Parse, []byte(doc(body)), ingest.Options{})
	if len(c.Items) != 1 {
		t.Fatalf("got %d readings, want 1", len(c.Items))
	}
	it := c.Items[0]
	h, b := split(t, it.Point)
	if want := `{"systolic_blood_pressure":{"value":121,"unit":"mmHg"},"diastolic_blood_pressure":{"value":79,"unit":"mmHg"},"effective_time_frame":{"date_time":"2024-03-14T07:05:00-04:00"}}`; b != want {
		t.Errorf("body\n got %s\nwant %s", b, want)
	}
	if !strings.Contains(h, `"modality":"sensed"`) || !strings.Contains(h, `"datasheet_reference":"name:BPM Connect, manufacturer:Withings, model:BPM Connect"`) {
		t.Errorf("header %s", h)
	}
	if it.Pos != (ingest.Pos{Line: 8, Element: "Correlation[1]"}) {
		t.Errorf("pos %+v", it.Pos)
	}
	want := []ingest.Skip{
		{Pos: ingest.Pos{Line: 6, Element: "Record[1]"}, Type: hkSystolic, Reason: reasonBPHalf},
		{Pos: ingest.Pos{Line: 7, Element: "Record[2]"}, Type: hkDiastolic, Reason: reasonBPHalf},
		{Pos: ingest.Pos{Line: 13, Element: "Correlation[2]"}, Type: hkBloodPressure, Reason: "the blood pressure correlation lacks its systolic or its diastolic record"},
	}
	ingesttest.CheckSkips(t, c.Skips, want)
}

func TestSkips(t *testing.T) {
	body := ` <ExportDate value="2024-03-16 09:00:00 -0400"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1980-04-02"/>
` + rec("HKQuantityTypeIdentifierActiveEnergyBurned", "Cal", "12.3", t0, t0, "") +
		rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisInBed", t0, t0, "") +
		rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisAwake", t0, t0, "") +
		rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisDaydreaming", t0, t0, "") +
		rec(hkSleepAnalysis, "", "2", t0, t0, "") +
		` <Workout workoutActivityType="HKWorkoutActivityTypeRunning" sourceName="Watch" startDate="` + t0 + `" endDate="` + t0 + `">
  <WorkoutEvent type="HKWorkoutEventTypePause" date="` + t0 + `"/>
 </Workout>
 <ActivitySummary dateComponents="2024-03-14"/>
 <Audiogram type="HKDataTypeIdentifierAudiogram" sourceName="Health" startDate="` + t0 + `" endDate="` + t0 + `"/>
 <SomethingNew a="b"><Child/></SomethingNew>
 <Correlation type="HKCorrelationTypeIdentifierFood" sourceName="App" startDate="` + t0 + `" endDate="` + t0 + `">
` + rec("HKQuantityTypeIdentifierDietaryEnergyConsumed", "Cal", "540", t0, t0, "") +
		` </Correlation>
`
	c := ingesttest.MustParse(t, Parse, []byte(doc(body)), ingest.Options{})
	if len(c.Items) != 0 {
		t.Fatalf("got %d readings", len(c.Items))
	}
	want := []ingest.Skip{
		{Pos: ingest.Pos{Line: 7, Element: "Me[1]"}, Type: "Me", Reason: otherReason("Me")},
		{Pos: ingest.Pos{Line: 8, Element: "Record[1]"}, Type: "HKQuantityTypeIdentifierActiveEnergyBurned", Reason: reasonNoSchema},
		{Pos: ingest.Pos{Line: 9, Element: "Record[2]"}, Type: hkSleepAnalysis, Reason: reasonInBed},
		{Pos: ingest.Pos{Line: 10, Element: "Record[3]"}, Type: hkSleepAnalysis, Reason: reasonAwake},
		{Pos: ingest.Pos{Line: 11, Element: "Record[4]"}, Type: hkSleepAnalysis, Reason: reasonSleepVal},
		{Pos: ingest.Pos{Line: 12, Element: "Record[5]"}, Type: hkSleepAnalysis, Reason: reasonSleepVal},
		{Pos: ingest.Pos{Line: 13, Element: "Workout[1]"}, Type: "Workout", Reason: otherReason("Workout")},
		{Pos: ingest.Pos{Line: 16, Element: "ActivitySummary[1]"}, Type: "ActivitySummary", Reason: otherReason("ActivitySummary")},
		{Pos: ingest.Pos{Line: 17, Element: "Audiogram[1]"}, Type: "HKDataTypeIdentifierAudiogram", Reason: otherReason("Audiogram")},
		{Pos: ingest.Pos{Line: 18, Element: "SomethingNew[1]"}, Type: "SomethingNew", Reason: otherReason("SomethingNew")},
		{Pos: ingest.Pos{Line: 19, Element: "Correlation[1]"}, Type: "HKCorrelationTypeIdentifierFood", Reason: "no Open mHealth schema for this correlation; its records are listed at top level and handled there"},
	}
	ingesttest.CheckSkips(t, c.Skips, want)
}

// TestExportSmall reads a whole export shaped like the Health app's.
func TestExportSmall(t *testing.T) {
	c := ingesttest.MustParse(t, Parse, ingesttest.ReadFile(t, "export_small.xml"), ingest.Options{})
	var got []string
	for _, it := range c.Items {
		got = append(got, it.Pos.Element+" "+it.Point.Schema.String())
	}
	want := []string{
		"Record[1] omh:heart-rate:2.0",
		"Record[3] omh:step-count:3.0",
		"Record[4] omh:blood-glucose:4.0",
		"Record[5] omh:blood-glucose:4.0",
		"Record[8] omh:body-weight:3.0",
		"Record[9] omh:oxygen-saturation:2.0",
		"Record[10] omh:respiratory-rate:2.0",
		"Record[11] omh:body-temperature:4.0",
		"Record[14] omh:sleep-episode:1.1",
		"Record[16] omh:sleep-episode:1.1",
		"Correlation[1] omh:blood-pressure:4.0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("readings\n got %q\nwant %q", got, want)
	}
	var skipped []string
	for _, s := range c.Skips {
		skipped = append(skipped, s.Pos.Element+" "+s.Type)
	}
	wantSkips := []string{
		"Me[1] Me",
		"Record[2] HKQuantityTypeIdentifierHeartRateVariabilitySDNN",
		"Record[6] HKQuantityTypeIdentifierBloodPressureSystolic",
		"Record[7] HKQuantityTypeIdentifierBloodPressureDiastolic",
		"Record[12] HKQuantityTypeIdentifierActiveEnergyBurned",
		"Record[13] HKCategoryTypeIdentifierSleepAnalysis",
		"Record[15] HKCategoryTypeIdentifierSleepAnalysis",
		"Correlation[2] HKCorrelationTypeIdentifierFood",
		"Workout[1] Workout",
		"ActivitySummary[1] ActivitySummary",
		"ClinicalRecord[1] HKClinicalTypeIdentifierLabResultRecord",
	}
	if strings.Join(skipped, "\n") != strings.Join(wantSkips, "\n") {
		t.Errorf("skips\n got %q\nwant %q", skipped, wantSkips)
	}
	// The glucose reading in mmol, with its line.
	if it := c.Items[2]; it.Pos.Line != 138 {
		t.Errorf("glucose at line %d", it.Pos.Line)
	} else if _, b := split(t, it.Point); b != `{"blood_glucose":{"value":5.6,"unit":"mmol/L"},"effective_time_frame":{"date_time":"2024-03-14T10:25:00-04:00"}}` {
		t.Errorf("glucose body %s", b)
	}
	if _, b := split(t, c.Items[5].Point); b != `{"oxygen_saturation":{"value":97,"unit":"%"},"effective_time_frame":{"date_time":"2024-03-14T15:01:40-04:00"}}` {
		t.Errorf("spo2 body %s", b)
	}
}

// TestDeterminism: parsing twice gives identical canonical bytes, and every
// point survives omh.Parse of its own output unchanged.
func TestDeterminism(t *testing.T) {
	var synth bytes.Buffer
	if err := WriteSynthetic(&synth, 3000, 7); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"small": ingesttest.ReadFile(t, "export_small.xml"), "synthetic": synth.Bytes()} {
		t.Run(name, func(t *testing.T) {
			ingesttest.CheckDeterministic(t, Parse, in, ingest.Options{Location: calendartest.Location(t, "Europe/Berlin")})
		})
	}
}

func TestTimestamps(t *testing.T) {
	ny := ingesttest.NewYork(t)
	tests := []struct {
		name       string
		start, end string
		loc        *time.Location
		frame      string
	}{
		{"offset kept", "2024-01-01 10:00:00 -0400", "2024-01-01 10:00:00 -0400", nil,
			`{"date_time":"2024-01-01T10:00:00-04:00"}`},
		{"positive offset with minutes", "2024-01-01 10:00:00 +0530", "2024-01-01 10:00:00 +0530", ny,
			`{"date_time":"2024-01-01T10:00:00+05:30"}`},
		{"offset with colon", "2024-01-01 10:00:00 +01:00", "2024-01-01 10:00:00 +01:00", ny,
			`{"date_time":"2024-01-01T10:00:00+01:00"}`},
		{"UTC offset", "2024-01-01 10:00:00 +0000", "2024-01-01 10:00:00 +0000", ny,
			`{"date_time":"2024-01-01T10:00:00+00:00"}`},
		{"no offset, UTC by default", "2024-01-01 10:00:00", "2024-01-01 10:00:00", nil,
			`{"date_time":"2024-01-01T10:00:00Z"}`},
		{"no offset, patient's zone in winter", "2024-01-01 10:00:00", "2024-01-01 10:00:00", ny,
			`{"date_time":"2024-01-01T10:00:00-05:00"}`},
		{"no offset, patient's zone in summer", "2024-07-01 10:00:00", "2024-07-01 10:00:00", ny,
			`{"date_time":"2024-07-01T10:00:00-04:00"}`},
		{"no offset across the autumn change", "2024-11-03 00:30:00", "2024-11-03 03:30:00", ny,
			`{"time_interval":{"start_date_time":"2024-11-03T00:30:00-04:00","end_date_time":"2024-11-03T03:30:00-05:00"}}`},
		{"T separator", "2024-01-01T10:00:00 -0400", "2024-01-01T10:00:00 -0400", nil,
			`{"date_time":"2024-01-01T10:00:00-04:00"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(doc(rec(hkHeartRate, "count/min", "70", tc.start, tc.end, ""))), ingest.Options{Location: tc.loc})
			_, b := split(t, c.Items[0].Point)
			want := `{"heart_rate":{"value":70,"unit":"beats/min"},"effective_time_frame":` + tc.frame + `}`
			if b != want {
				t.Errorf("body\n got %s\nwant %s", b, want)
			}
		})
	}
}

// TestSpringGap: a wall time without an offset that the patient's zone
// skips is placed where time.Date places it (Go leaves the side
// unspecified), and the text written is that instant's, never the skipped
// wall time with an offset that contradicts it.
func TestSpringGap(t *testing.T) {
	ny := ingesttest.NewYork(t)
	c := ingesttest.MustParse(t, Parse, []byte(doc(rec(hkHeartRate, "count/min", "70", "2024-03-10 02:30:00", "2024-03-10 02:30:00", ""))), ingest.Options{Location: ny})
	_, b := split(t, c.Items[0].Point)
	ok := false
	for _, dt := range []string{"2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00"} {
		ok = ok || b == `{"heart_rate":{"value":70,"unit":"beats/min"},"effective_time_frame":{"date_time":"`+dt+`"}}`
	}
	if !ok {
		t.Errorf("body %s", b)
	}
}

// canary is a value that must never appear in an error message.
const canary = "987654.321"

func TestMalformed(t *testing.T) {
	good := rec(hkHeartRate, "count/min", "70", t0, t0, "")
	tests := []struct {
		name string
		in   string
		code string
		pos  ingest.Pos
	}{
		{"value not a number", doc(rec(hkHeartRate, "count/min", canary+"x", t0, t0, "")), "bad_value", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"value missing", doc(rec(hkHeartRate, "count/min", "", t0, t0, "")), "bad_value", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"value NaN", doc(rec(hkBloodGlucose, "mg/dL", "NaN", t0, t0, "")), "bad_value", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"value too large", doc(rec(hkBloodGlucose, "mg/dL", "1e999", t0, t0, "")), "invalid_value", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"unit unknown", doc(good + rec(hkHeartRate, "count/s", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 7, Element: "Record[2]"}},
		{"glucose unit of another molar mass", doc(rec(hkBloodGlucose, "mmol&lt;18.0153&gt;/L", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"spo2 not in %", doc(rec(hkOxygenSaturation, "count", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"weight unit", doc(rec(hkBodyMass, "stone", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"temperature unit", doc(rec(hkBodyTemperature, "°C", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"steps unit", doc(rec(hkStepCount, "steps", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"respiratory unit", doc(rec(hkRespiratoryRate, "breaths/min", canary, t0, t0, "")), "bad_unit", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"start date garbage", doc(rec(hkHeartRate, "count/min", canary, "2024-13-01 10:00:00 -0400", "2024-13-01 10:00:00 -0400", "")), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"start date 31 April", doc(rec(hkStepCount, "count", canary, "2024-04-31 10:00:00 -0400", "2024-05-01 10:00:00 -0400", "")), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"end date bad offset", doc(rec(hkStepCount, "count", canary, t0, "2024-03-14 17:22:58 -2500", "")), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"end before start", doc(rec(hkStepCount, "count", canary, "2024-03-14 17:22:58 -0400", "2024-03-14 17:22:58 +0000", "")), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"end missing", doc(` <Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" startDate="` + t0 + `" value="` + canary + `"/>` + "\n"), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"start missing", doc(` <Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" endDate="` + t0 + `" value="` + canary + `"/>` + "\n"), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"creation date bad", doc(` <Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" creationDate="yesterday" startDate="` + t0 + `" endDate="` + t0 + `" value="` + canary + `"/>` + "\n"), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"sleep bad dates", doc(rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisAsleepCore", "2024-03-14 25:00:00 -0400", t0, "")), "bad_time", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"record without type", doc(` <Record unit="count/min" value="` + canary + `" startDate="` + t0 + `" endDate="` + t0 + `"/>` + "\n"), "bad_value", ingest.Pos{Line: 6, Element: "Record[1]"}},
		{"blood pressure half bad value", doc(` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Cuff" startDate="` + t0 + `" endDate="` + t0 + `">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="` + canary + `x"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="80"/>
 </Correlation>
`), "bad_value", ingest.Pos{Line: 7, Element: "Correlation[1]/Record[1]"}},
		{"blood pressure unit", doc(` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Cuff" startDate="` + t0 + `" endDate="` + t0 + `">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="120"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" unit="kPa" startDate="` + t0 + `" endDate="` + t0 + `" value="` + canary + `"/>
 </Correlation>
`), "bad_unit", ingest.Pos{Line: 8, Element: "Correlation[1]/Record[2]"}},
		{"blood pressure date", doc(` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Cuff" startDate="` + canary + `" endDate="` + t0 + `">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="120"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="80"/>
 </Correlation>
`), "bad_time", ingest.Pos{Line: 6, Element: "Correlation[1]"}},
		{"multi-line start tag names its first line", doc(good + ` <Record
   type="HKQuantityTypeIdentifierHeartRate"
   unit="count/min"
   startDate="` + t0 + `" endDate="` + t0 + `"
   value="` + canary + `!"/>
`), "bad_value", ingest.Pos{Line: 7, Element: "Record[2]"}},

		// The XML itself.
		{"empty", "", "unknown_format", ingest.Pos{Line: 1}},
		{"white space only", "  \n\n", "unknown_format", ingest.Pos{Line: 3}},
		{"another root", `<?xml version="1.0"?>` + "\n<ClinicalDocument>" + canary + "</ClinicalDocument>", "unknown_format", ingest.Pos{Line: 2, Element: "root"}},
		{"json", `{"value": ` + canary + `}`, "unknown_format", ingest.Pos{Line: 1}},
		{"cut short after a record", doc(good)[:len(doc(good))-len("</HealthData>\n")], "bad_xml", ingest.Pos{Line: 7}},
		{"cut short inside a tag", doc(good)[:len(doc(good))-40], "bad_xml", ingest.Pos{Line: 6}},
		{"cut short inside a correlation", doc(` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="x" startDate="` + t0 + `" endDate="` + t0 + `">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="` + canary + `"/>
`)[:len(doc(""))+300], "bad_xml", ingest.Pos{Line: 7}},
		{"mismatched end tag", doc(` <Record type="HKQuantityTypeIdentifierHeartRate" value="` + canary + `">
 </Correlation>
`), "bad_xml", ingest.Pos{Line: 7}},
		{"mismatched end tag deeper", doc(` <Workout sourceName="x"><WorkoutEvent type="` + canary + `"></Workout></WorkoutEvent>
`), "bad_xml", ingest.Pos{Line: 6}},
		{"nested too deep", doc(" <Workout>" + strings.Repeat("<a>", 40) + canary + "\n"), "bad_xml", ingest.Pos{Line: 6}},
		{"unknown entity", doc(` <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="&` + canary + `;" value="1"/>` + "\n"), "bad_xml", ingest.Pos{Line: 6}},
		{"bad character", doc(" <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"\x01" + canary + "\"/>\n"), "bad_xml", ingest.Pos{Line: 6}},
		{"invalid UTF-8", doc(" <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"\xff" + canary + "\"/>\n"), "bad_xml", ingest.Pos{Line: 6}},
		{"attribute without quotes", doc(` <Record type=HKQuantityTypeIdentifierHeartRate value=` + canary + `/>` + "\n"), "bad_xml", ingest.Pos{Line: 6}},
		{"element after the root", doc(good) + `<HealthData locale="` + canary + `"/>`, "bad_xml", ingest.Pos{Line: 8}},
		{"text after the root", doc(good) + canary, "bad_xml", ingest.Pos{Line: 8}},
		{"text before the root", canary + doc(good), "unknown_format", ingest.Pos{Line: 1}},
		{"end tag before the root", "</HealthData>", "bad_xml", ingest.Pos{Line: 1}},
		{"encoding other than UTF-8", `<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n" + `<HealthData locale="` + canary + `"/>`, "bad_xml", ingest.Pos{Line: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(tc.in, ingest.Options{})
			ingesttest.CheckErr(t, err, tc.code, tc.pos, canary, "987654")
		})
	}
}

// TestStops: a sink's error (on any of the small export's 11 readings and
// 11 skips) or a read error stops the parse and comes back unchanged.
func TestStops(t *testing.T) {
	ingesttest.CheckStops(t, Parse, ingesttest.ReadFile(t, "export_small.xml"), 0, 10, 5000, 9000)
}

func TestSniff(t *testing.T) {
	small := ingesttest.ReadFile(t, "export_small.xml")
	zipped := ingesttest.Zip(t, map[string]string{"apple_health_export/export.xml": string(small)}, "apple_health_export/export.xml")
	other := ingesttest.Zip(t, map[string]string{"data/readings.csv": "a,b\n"}, "data/readings.csv")
	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"export.xml", small[:512], true},
		{"export.xml with BOM and a comment", []byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- x -->\n<HealthData locale=\"en_US\">"), true},
		{"bare root", []byte(`<HealthData locale="en_US">`), true},
		{"export.zip", zipped[:512], true},
		{"another zip", other, false},
		{"CDA document", []byte(`<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3">`), false},
		{"HealthDataX root", []byte(`<HealthDataX>`), false},
		{"json", []byte(`{"resourceType":"Bundle"}`), false},
		{"csv", []byte("Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type\n"), false},
		{"empty", nil, false},
		{"short zip", []byte("PK\x03\x04"), false},
	}
	for _, tc := range tests {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("%s: Sniff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWriteSynthetic(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteSynthetic(&a, 2000, 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteSynthetic(&b, 2000, 42); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different bytes")
	}
	c := ingesttest.MustParse(t, Parse, a.Bytes(), ingest.Options{})
	schemas := map[string]int{}
	for _, it := range c.Items {
		schemas[it.Point.Schema.Name]++
	}
	for _, s := range []string{"heart-rate", "step-count", "blood-glucose", "blood-pressure", "sleep-episode", "oxygen-saturation", "respiratory-rate", "body-weight", "body-temperature"} {
		if schemas[s] == 0 {
			t.Errorf("no %s reading in the synthetic export", s)
		}
	}
	if n := len(c.Items) + len(c.Skips); n < 2000 {
		t.Errorf("%d top-level elements handled, want at least 2000", n)
	}
	t.Logf("%d bytes, %d readings, %d skips, %v", a.Len(), len(c.Items), len(c.Skips), schemas)
}

// TestSourceID: the same reading exported from phones in two time zones
// (every offset differs) and from a renamed watch has one identity; a
// different value or time has another.
func TestSourceID(t *testing.T) {
	one := func(start, end, value, source string) string {
		t.Helper()
		c, err := parseString(doc(rec(hkHeartRate, "count/min", value, start, end, source)), ingest.Options{})
		if err != nil || len(c.Items) != 1 {
			t.Fatalf("%v %d", err, len(c.Items))
		}
		return c.Items[0].Point.SourceID
	}
	a := one("2024-03-14 17:22:58 -0400", "2024-03-14 17:22:58 -0400", "73", "")
	for name, other := range map[string]string{
		"exported in Berlin": one("2024-03-14 22:22:58 +0100", "2024-03-14 22:22:58 +0100", "73", ""),
		"exported in UTC":    one("2024-03-14 21:22:58 +0000", "2024-03-14 21:22:58 +0000", "73", ""),
	} {
		if other != a {
			t.Errorf("%s: %q, want %q", name, other, a)
		}
	}
	if one("2024-03-14 17:22:58 -0400", "2024-03-14 17:22:58 -0400", "74", "") == a {
		t.Error("another value has the same identity")
	}
	if one("2024-03-14 17:22:59 -0400", "2024-03-14 17:22:59 -0400", "73", "") == a {
		t.Error("another time has the same identity")
	}
}

// TestHugeTokenRefused: megabytes without a tag (whitespace a zip inflates
// to, a giant attribute) are refused before encoding/xml holds them whole.
func TestHugeTokenRefused(t *testing.T) {
	for name, body := range map[string]string{
		"text":      "<HealthData locale=\"en_US\">" + strings.Repeat(" ", maxTokenBytes+10) + "</HealthData>",
		"attribute": "<HealthData locale=\"en_US\"><Record type=\"" + strings.Repeat("x", maxTokenBytes+10) + "\"/></HealthData>",
	} {
		_, err := parseString(body, ingest.Options{})
		var ie *ingest.Error
		if !errors.As(err, &ie) || ie.Code != "bad_xml" || !strings.Contains(ie.Message, "4 MiB") {
			t.Errorf("%s: %v, want a bad_xml refusal", name, err)
		}
	}
}
