package apple

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// synthHeader is the top of a synthetic export.xml: the XML declaration and
// a DOCTYPE with an internal subset shaped like the one the Health app
// writes (HealthKit Export Version 14), then the root, ExportDate and Me.
const synthHeader = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord|Audiogram|VisionPrescription)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Me EMPTY>
<!ATTLIST Me
  HKCharacteristicTypeIdentifierDateOfBirth                 CDATA #REQUIRED
  HKCharacteristicTypeIdentifierBiologicalSex               CDATA #REQUIRED
  HKCharacteristicTypeIdentifierBloodType                   CDATA #REQUIRED
  HKCharacteristicTypeIdentifierFitzpatrickSkinType         CDATA #REQUIRED
  HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!-- Note: Any Records that appear as children of a correlation also appear as top-level records in this document. -->
<!ELEMENT Correlation ((MetadataEntry|Record)*)>
<!ATTLIST Correlation
  type          CDATA #REQUIRED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!ELEMENT Workout ((MetadataEntry|WorkoutEvent|WorkoutRoute|WorkoutStatistics)*)>
<!ATTLIST Workout
  workoutActivityType   CDATA #REQUIRED
  duration              CDATA #IMPLIED
  durationUnit          CDATA #IMPLIED
  totalDistance         CDATA #IMPLIED
  totalDistanceUnit     CDATA #IMPLIED
  totalEnergyBurned     CDATA #IMPLIED
  totalEnergyBurnedUnit CDATA #IMPLIED
  sourceName            CDATA #REQUIRED
  sourceVersion         CDATA #IMPLIED
  device                CDATA #IMPLIED
  creationDate          CDATA #IMPLIED
  startDate             CDATA #REQUIRED
  endDate               CDATA #REQUIRED
>
<!ELEMENT WorkoutEvent ((MetadataEntry)*)>
<!ATTLIST WorkoutEvent
  type         CDATA #REQUIRED
  date         CDATA #REQUIRED
  duration     CDATA #IMPLIED
  durationUnit CDATA #IMPLIED
>
<!ELEMENT WorkoutStatistics EMPTY>
<!ATTLIST WorkoutStatistics
  type      CDATA #REQUIRED
  startDate CDATA #REQUIRED
  endDate   CDATA #REQUIRED
  average   CDATA #IMPLIED
  minimum   CDATA #IMPLIED
  maximum   CDATA #IMPLIED
  sum       CDATA #IMPLIED
  unit      CDATA #IMPLIED
>
<!ELEMENT WorkoutRoute ((MetadataEntry|FileReference)*)>
<!ATTLIST WorkoutRoute
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!ELEMENT FileReference EMPTY>
<!ATTLIST FileReference
  path CDATA #REQUIRED
>
<!ELEMENT ActivitySummary EMPTY>
<!ATTLIST ActivitySummary
  dateComponents           CDATA #IMPLIED
  activeEnergyBurned       CDATA #IMPLIED
  activeEnergyBurnedGoal   CDATA #IMPLIED
  activeEnergyBurnedUnit   CDATA #IMPLIED
  appleMoveTime            CDATA #IMPLIED
  appleMoveTimeGoal        CDATA #IMPLIED
  appleExerciseTime        CDATA #IMPLIED
  appleExerciseTimeGoal    CDATA #IMPLIED
  appleStandHours          CDATA #IMPLIED
  appleStandHoursGoal      CDATA #IMPLIED
>
<!ELEMENT MetadataEntry EMPTY>
<!ATTLIST MetadataEntry
  key   CDATA #REQUIRED
  value CDATA #REQUIRED
>
<!-- Note: Heart Rate Variability records captured by Apple Watch may include an associated list of instantaneous beats-per-minute readings. -->
<!ELEMENT HeartRateVariabilityMetadataList (InstantaneousBeatsPerMinute*)>
<!ELEMENT InstantaneousBeatsPerMinute EMPTY>
<!ATTLIST InstantaneousBeatsPerMinute
  bpm  CDATA #REQUIRED
  time CDATA #REQUIRED
>
<!ELEMENT ClinicalRecord EMPTY>
<!ATTLIST ClinicalRecord
  type              CDATA #REQUIRED
  identifier        CDATA #REQUIRED
  sourceName        CDATA #REQUIRED
  sourceURL         CDATA #REQUIRED
  fhirVersion       CDATA #REQUIRED
  receivedDate      CDATA #REQUIRED
  resourceFilePath  CDATA #REQUIRED
>
<!ELEMENT Audiogram ((MetadataEntry|SensitivityPoint)*)>
<!ATTLIST Audiogram
  type          CDATA #REQUIRED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!ELEMENT SensitivityPoint EMPTY>
<!ATTLIST SensitivityPoint
  frequencyValue   CDATA #REQUIRED
  frequencyUnit    CDATA #REQUIRED
  leftEarValue     CDATA #IMPLIED
  leftEarUnit      CDATA #IMPLIED
  rightEarValue    CDATA #IMPLIED
  rightEarUnit     CDATA #IMPLIED
>
<!ELEMENT VisionPrescription EMPTY>
<!ATTLIST VisionPrescription
  type             CDATA #REQUIRED
  dateIssued       CDATA #REQUIRED
  expirationDate   CDATA #IMPLIED
  brand            CDATA #IMPLIED
>
]>
<HealthData locale="en_US">
 <ExportDate value="2025-06-30 21:00:00 -0400"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1980-04-02" HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale" HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet" HKCharacteristicTypeIdentifierFitzpatrickSkinType="HKFitzpatrickSkinTypeNotSet" HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse="None"/>
`

// The devices of the synthetic export, written as the Health app writes
// them (the memory address changes from one export to the next).
const (
	synthWatch  = `&lt;&lt;HKDevice: 0x28123a4b0&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:10.5&gt;`
	synthPhone  = `&lt;&lt;HKDevice: 0x28123a5c0&gt;, name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2, software:17.5.1&gt;`
	synthCGM    = `&lt;&lt;HKDevice: 0x28123a6d0&gt;, name:CGM, manufacturer:Dexcom, model:G7, software:2.3.1&gt;`
	synthCuff   = `&lt;&lt;HKDevice: 0x28123a7e0&gt;, name:BPM Connect, manufacturer:Withings, model:BPM Connect&gt;`
	synthWatchN = `Ada’s Apple Watch`
	synthPhoneN = `Ada’s iPhone`
)

// WriteSynthetic writes a synthetic Apple Health export.xml of about
// records top-level elements, the same bytes for the same seed: the
// DOCTYPE header, ExportDate and Me, then a mix like a watch-and-CGM
// wearer's export (mostly heart rate, steps, CGM glucose and active energy,
// with MetadataEntry children; some blood pressure correlations, each with
// its two halves also listed at top level as Apple does; nights of sleep
// stages; HRV records with beat-to-beat lists; a few SpO2, respiratory
// rate, weight and temperature records; workouts and activity summaries).
// A top-level element averages about 480 bytes, so 2.1 million make 1 GB.
func WriteSynthetic(w io.Writer, records int, seed int64) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(synthHeader); err != nil {
		return err
	}
	g := synthGen{
		rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		t:   time.Date(2023, 1, 1, 6, 0, 0, 0, time.FixedZone("", -5*3600)),
	}
	for n := 0; n < records; {
		g.b = g.b[:0]
		n += g.one()
		if _, err := bw.Write(g.b); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("</HealthData>\n"); err != nil {
		return err
	}
	return bw.Flush()
}

type synthGen struct {
	rng *rand.Rand
	t   time.Time
	b   []byte
}

// one writes one top-level element (three for a blood pressure: its halves
// and the correlation) and returns how many it wrote.
func (g *synthGen) one() int {
	g.t = g.t.Add(time.Duration(20+g.rng.IntN(100)) * time.Second)
	t := g.t
	switch k := g.rng.IntN(1000); {
	case k < 380:
		g.record("HKQuantityTypeIdentifierHeartRate", synthWatchN, "10.5", synthWatch, "count/min", t.Add(90*time.Second), t, t, strconv.Itoa(55+g.rng.IntN(70)))
		g.meta("HKMetadataKeyHeartRateMotionContext", strconv.Itoa(g.rng.IntN(3)))
		g.closeRecord()
	case k < 580:
		end := t.Add(time.Duration(60+g.rng.IntN(540)) * time.Second)
		if g.rng.IntN(2) == 0 {
			g.record("HKQuantityTypeIdentifierStepCount", synthPhoneN, "17.5.1", synthPhone, "count", end.Add(time.Minute), t, end, strconv.Itoa(10+g.rng.IntN(900)))
		} else {
			g.record("HKQuantityTypeIdentifierStepCount", synthWatchN, "10.5", synthWatch, "count", end.Add(time.Minute), t, end, strconv.Itoa(10+g.rng.IntN(900)))
		}
		g.b = append(g.b, "/>\n"...)
	case k < 720:
		end := t.Add(time.Duration(60+g.rng.IntN(300)) * time.Second)
		g.record("HKQuantityTypeIdentifierActiveEnergyBurned", synthWatchN, "10.5", synthWatch, "Cal", end.Add(time.Minute), t, end, g.decimal(0, 40, 3))
		g.b = append(g.b, "/>\n"...)
	case k < 850:
		unit := "mg/dL"
		value := strconv.Itoa(60 + g.rng.IntN(180))
		if k < 735 {
			unit = "mmol&lt;180.1558800000541&gt;/L"
			value = g.decimal(3, 12, 1)
		}
		g.record("HKQuantityTypeIdentifierBloodGlucose", "Dexcom G7", "2.3.1", synthCGM, unit, t.Add(5*time.Minute), t, t, value)
		g.meta("HKMetadataKeySyncIdentifier", "DX7-"+strconv.FormatUint(g.rng.Uint64()>>16, 16))
		g.meta("HKMetadataKeySyncVersion", "1")
		if k%7 == 0 {
			g.meta("HKBloodGlucoseMealTime", strconv.Itoa(1+g.rng.IntN(2)))
		}
		g.closeRecord()
	case k < 900:
		end := t.Add(time.Duration(60+g.rng.IntN(300)) * time.Second)
		g.record("HKQuantityTypeIdentifierDistanceWalkingRunning", synthPhoneN, "17.5.1", synthPhone, "km", end.Add(time.Minute), t, end, g.decimal(0, 1, 5))
		g.b = append(g.b, "/>\n"...)
	case k < 935:
		g.sleepNight()
	case k < 950:
		g.record("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", synthWatchN, "10.5", synthWatch, "ms", t.Add(time.Minute), t, t.Add(time.Minute), g.decimal(20, 90, 4))
		g.b = append(g.b, ">\n  <HeartRateVariabilityMetadataList>\n"...)
		for i := 0; i < 40; i++ {
			g.b = append(g.b, `   <InstantaneousBeatsPerMinute bpm="`...)
			g.b = strconv.AppendInt(g.b, int64(55+g.rng.IntN(30)), 10)
			g.b = append(g.b, `" time="`...)
			g.b = t.Add(time.Duration(i)*1500*time.Millisecond).AppendFormat(g.b, "3:04:05.00 PM")
			g.b = append(g.b, "\"/>\n"...)
		}
		g.b = append(g.b, "  </HeartRateVariabilityMetadataList>\n </Record>\n"...)
	case k < 960:
		return g.bloodPressure(t)
	case k < 972:
		g.record("HKQuantityTypeIdentifierOxygenSaturation", synthWatchN, "10.5", synthWatch, "%", t.Add(time.Minute), t, t, "0."+strconv.Itoa(92+g.rng.IntN(8)))
		g.meta("HKMetadataKeyBarometricPressure", g.decimal(99, 103, 3)+" kPa")
		g.closeRecord()
	case k < 984:
		g.record("HKQuantityTypeIdentifierRespiratoryRate", synthWatchN, "10.5", synthWatch, "count/min", t.Add(time.Minute), t, t, g.decimal(11, 20, 1))
		g.b = append(g.b, "/>\n"...)
	case k < 989:
		g.record("HKQuantityTypeIdentifierBodyMass", "Health", "17.5.1", "", "kg", t, t, t, g.decimal(60, 80, 1))
		g.meta("HKWasUserEntered", "1")
		g.closeRecord()
	case k < 994:
		g.record("HKQuantityTypeIdentifierBodyTemperature", "Health", "17.5.1", "", "degC", t, t, t, g.decimal(36, 38, 1))
		g.meta("HKWasUserEntered", "1")
		g.meta("HKBodyTemperatureSensorLocation", strconv.Itoa(g.rng.IntN(12)))
		g.closeRecord()
	case k < 997:
		g.workout(t)
	default:
		g.b = append(g.b, ` <ActivitySummary dateComponents="`...)
		g.b = t.AppendFormat(g.b, "2006-01-02")
		g.b = append(g.b, `" activeEnergyBurned="`...)
		g.b = append(g.b, g.decimal(200, 700, 3)...)
		g.b = append(g.b, `" activeEnergyBurnedGoal="450" activeEnergyBurnedUnit="Cal" appleMoveTime="0" appleMoveTimeGoal="0" appleExerciseTime="`...)
		g.b = strconv.AppendInt(g.b, int64(g.rng.IntN(90)), 10)
		g.b = append(g.b, `" appleExerciseTimeGoal="30" appleStandHours="`...)
		g.b = strconv.AppendInt(g.b, int64(g.rng.IntN(16)), 10)
		g.b = append(g.b, "\" appleStandHoursGoal=\"12\"/>\n"...)
	}
	return 1
}

// record opens a Record element with its attributes; the caller closes it.
func (g *synthGen) record(typ, source, version, device, unit string, created, start, end time.Time, value string) {
	g.b = append(g.b, ` <Record type="`...)
	g.b = append(g.b, typ...)
	g.b = append(g.b, `" sourceName="`...)
	g.b = append(g.b, source...)
	g.b = append(g.b, `" sourceVersion="`...)
	g.b = append(g.b, version...)
	if device != "" {
		g.b = append(g.b, `" device="`...)
		g.b = append(g.b, device...)
	}
	if unit != "" {
		g.b = append(g.b, `" unit="`...)
		g.b = append(g.b, unit...)
	}
	g.b = append(g.b, `" creationDate="`...)
	g.b = appendAppleTime(g.b, created)
	g.b = append(g.b, `" startDate="`...)
	g.b = appendAppleTime(g.b, start)
	g.b = append(g.b, `" endDate="`...)
	g.b = appendAppleTime(g.b, end)
	g.b = append(g.b, `" value="`...)
	g.b = append(g.b, value...)
	g.b = append(g.b, '"')
}

func (g *synthGen) meta(key, value string) {
	if g.b[len(g.b)-1] == '"' {
		g.b = append(g.b, ">\n"...)
	}
	g.b = append(g.b, `  <MetadataEntry key="`...)
	g.b = append(g.b, key...)
	g.b = append(g.b, `" value="`...)
	g.b = append(g.b, value...)
	g.b = append(g.b, "\"/>\n"...)
}

func (g *synthGen) closeRecord() { g.b = append(g.b, " </Record>\n"...) }

// decimal is a number in [lo, hi) with up to frac decimals, trailing zeros
// dropped, as HealthKit writes them.
func (g *synthGen) decimal(lo, hi float64, frac int) string {
	return strconv.FormatFloat(lo+(hi-lo)*g.rng.Float64(), 'f', frac, 64)
}

// sleepNight writes one sleep record of a night: in bed, a stage or awake.
func (g *synthGen) sleepNight() {
	values := [...]string{"InBed", "AsleepCore", "AsleepCore", "AsleepDeep", "AsleepREM", "Awake", "AsleepUnspecified"}
	v := values[g.rng.IntN(len(values))]
	start := g.t
	end := start.Add(time.Duration(5+g.rng.IntN(80)) * time.Minute)
	g.record("HKCategoryTypeIdentifierSleepAnalysis", synthWatchN, "10.5", synthWatch, "", end.Add(2*time.Hour), start, end, "HKCategoryValueSleepAnalysis"+v)
	g.meta("HKTimeZone", "America/New_York")
	g.closeRecord()
}

// bloodPressure writes a cuff reading as Apple does: both halves at top
// level, then the correlation holding them again.
func (g *synthGen) bloodPressure(t time.Time) int {
	sys := strconv.Itoa(105 + g.rng.IntN(40))
	dia := strconv.Itoa(60 + g.rng.IntN(30))
	created := t.Add(30 * time.Second)
	half := func(indent, typ, v string) {
		g.b = append(g.b, indent...)
		g.record(typ, "Health Mate", "6.4.0", synthCuff, "mmHg", created, t, t, v)
		g.b = append(g.b, "/>\n"...)
	}
	half("", "HKQuantityTypeIdentifierBloodPressureSystolic", sys)
	half("", "HKQuantityTypeIdentifierBloodPressureDiastolic", dia)
	g.b = append(g.b, ` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Health Mate" sourceVersion="6.4.0" device="`...)
	g.b = append(g.b, synthCuff...)
	g.b = append(g.b, `" creationDate="`...)
	g.b = appendAppleTime(g.b, created)
	g.b = append(g.b, `" startDate="`...)
	g.b = appendAppleTime(g.b, t)
	g.b = append(g.b, `" endDate="`...)
	g.b = appendAppleTime(g.b, t)
	g.b = append(g.b, "\">\n  <MetadataEntry key=\"Measurement ID\" value=\""...)
	g.b = strconv.AppendUint(g.b, g.rng.Uint64()>>24, 10)
	g.b = append(g.b, "\"/>\n"...)
	half(" ", "HKQuantityTypeIdentifierBloodPressureSystolic", sys)
	half(" ", "HKQuantityTypeIdentifierBloodPressureDiastolic", dia)
	g.b = append(g.b, " </Correlation>\n"...)
	return 3
}

func (g *synthGen) workout(t time.Time) {
	end := t.Add(time.Duration(20+g.rng.IntN(60)) * time.Minute)
	g.b = append(g.b, ` <Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="`...)
	g.b = append(g.b, strconv.FormatFloat(end.Sub(t).Minutes(), 'f', -1, 64)...)
	g.b = append(g.b, `" durationUnit="min" sourceName="`...)
	g.b = append(g.b, synthWatchN...)
	g.b = append(g.b, `" sourceVersion="10.5" device="`...)
	g.b = append(g.b, synthWatch...)
	g.b = append(g.b, `" creationDate="`...)
	g.b = appendAppleTime(g.b, end)
	g.b = append(g.b, `" startDate="`...)
	g.b = appendAppleTime(g.b, t)
	g.b = append(g.b, `" endDate="`...)
	g.b = appendAppleTime(g.b, end)
	g.b = append(g.b, "\">\n  <MetadataEntry key=\"HKIndoorWorkout\" value=\"0\"/>\n  <WorkoutEvent type=\"HKWorkoutEventTypeSegment\" date=\""...)
	g.b = appendAppleTime(g.b, t)
	g.b = append(g.b, "\" duration=\"10\" durationUnit=\"min\"/>\n  <WorkoutStatistics type=\"HKQuantityTypeIdentifierHeartRate\" startDate=\""...)
	g.b = appendAppleTime(g.b, t)
	g.b = append(g.b, `" endDate="`...)
	g.b = appendAppleTime(g.b, end)
	g.b = append(g.b, "\" average=\"112\" minimum=\"84\" maximum=\"141\" unit=\"count/min\"/>\n </Workout>\n"...)
}

// appendAppleTime writes t as the Health app does: 2024-01-31 08:00:00 -0500.
func appendAppleTime(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "2006-01-02 15:04:05 -0700")
}
