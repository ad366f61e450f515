package apple

import (
	"bytes"
	"encoding/xml"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// fuzzProlog is a short prolog with what Apple's DOCTYPE holds that a
// parser can trip on: a comment, quoted text with ">" and "[" in it, an
// ATTLIST spread over lines.
const fuzzProlog = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout)*)>
<!ATTLIST Record
  type  CDATA #REQUIRED
  value CDATA "a>[b]">
<!-- Note: Any Records that appear as children of a correlation also appear as top-level records in this document. -->
]>
<HealthData locale="en_US">
`

// fuzzSeeds are the test files and table inputs, cut small: Go's fuzzer
// minimises every new interesting input by trying to remove each span of
// its bytes, which takes the whole run for inputs of a few KB. So each top-
// level element of testdata/export_small.xml becomes its own seed, behind
// a short prolog; the file's own DOCTYPE is a seed with one record.
func fuzzSeeds(t testing.TB) [][]byte {
	small := ingesttest.ReadFile(t, "export_small.xml")
	var seeds [][]byte
	add := func(s string) {
		if len(s) <= 1500 {
			seeds = append(seeds, []byte(s))
		}
	}
	// Apple's DOCTYPE, shortened: its first declarations and the Record
	// ATTLIST.
	from := bytes.Index(small, []byte("<!-- HealthKit Export Version"))
	to := bytes.Index(small, []byte("<!ELEMENT Me"))
	att := bytes.Index(small, []byte("<!ATTLIST Record"))
	att2 := att + bytes.Index(small[att:], []byte(">\n")) + 2
	add(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<!DOCTYPE HealthData [\n" + string(small[from:to]) + string(small[att:att2]) + "]>\n<HealthData locale=\"en_US\">\n" + rec(hkHeartRate, "count/min", "73", t0, t0, "") + "</HealthData>\n")
	// Each top-level element of the file.
	d := xml.NewDecoder(bytes.NewReader(small))
	depth := 0
	var start int64
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			break
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				start = off
			}
		case xml.EndElement:
			if depth == 2 {
				add(fuzzProlog + string(small[start:d.InputOffset()]) + "\n</HealthData>\n")
			}
			depth--
		}
	}
	var synth bytes.Buffer
	if err := WriteSynthetic(&synth, 3, 3); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(synth.Bytes(), []byte("<HealthData"))
	add(fuzzProlog + string(synth.Bytes()[bytes.IndexByte(synth.Bytes()[i:], '\n')+i+1:]))
	for _, s := range []string{
		doc(rec(hkHeartRate, "count/min", "73", t0, t0, "")),
		doc(withMeta(hkBloodGlucose, "mmol&lt;180.1558800000541&gt;/L", "5.6", t0, "HKBloodGlucoseMealTime", "1", "HKWasUserEntered", "1")),
		doc(rec(hkStepCount, "count", "612", "2024-03-14 08:00:00 -0400", "2024-03-14 08:10:00 -0400", "")),
		doc(rec(hkOxygenSaturation, "%", "0.975", t0, t0, "")),
		doc(rec(hkBodyMass, "st", "11.1", t0, t0, "")),
		doc(withMeta(hkBodyTemperature, "degF", "99.1", t0, "HKBodyTemperatureSensorLocation", "6")),
		doc(rec(hkRespiratoryRate, "count/min", "14.5", "2024-03-14 03:12:07", "2024-03-14 03:14:22", "")),
		doc(rec(hkSleepAnalysis, "", "HKCategoryValueSleepAnalysisAsleepREM", "2024-03-14 01:00:00 +05:30", "2024-03-14 01:30:00 +05:30", "")),
		doc(` <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Cuff" startDate="` + t0 + `" endDate="` + t0 + `">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="120"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" unit="mmHg" startDate="` + t0 + `" endDate="` + t0 + `" value="80"/>
 </Correlation>
`),
		"",
		`<HealthData/>`,
		`<HealthData><Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" startDate="2024-01-01 00:00:00" endDate="2024-01-01 00:00:00" value="-0.0e-0"/></HealthData>`,
	} {
		add(s)
	}
	return seeds
}

// FuzzParse: Parse keeps what every parser promises (ingesttest.Fuzz), and
// no point has a uuid: an export has none.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := ingesttest.Fuzz(t, Parse, data, ingest.Options{Location: fuzzLoc})
		if c == nil {
			return
		}
		for i, it := range c.Items {
			if it.Point.UUID != "" {
				t.Fatalf("point %d has a uuid", i)
			}
		}
	})
}

// fuzzLoc is a fixed zone with an odd offset, so the no-offset path is
// exercised without time zone data.
var fuzzLoc = time.FixedZone("IST", 5*3600+30*60)
