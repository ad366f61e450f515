package cgmcsv

// The Dexcom test files follow the Clarity export as public sources
// describe and show it (Dexcom publishes no specification):
//
//   - the 14-column header and its mmol/L variant, the untimed preamble
//     (FirstName, LastName, DateOfBirth, a Device row, seven Alert rows),
//     ragged rows (EGV and Calibration rows have 14 fields, the others 13),
//     Low/High in the value column, a BOM and every field quoted in exports
//     since 2023, device ids such as "iOS G6" and "android G7": the
//     mirobody-gen device-format notes, which measured about twelve public
//     exports, and public parsers (BloodSugarAnalyser, qh-charts'
//     DexcomClarityCsvParser);
//   - the timestamp "YYYY-MM-DD hh:mm:ss" with a space, and a one-digit
//     hour: BIG IDEAS Lab Glycemic Variability data set loaders.
//
// Names, dates of birth, transmitter ids and values are placeholders.

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

func TestDexcomFiles(t *testing.T) {
	const g6, g7 = "manufacturer=Dexcom;source_name=iOS G6", "manufacturer=Dexcom;source_name=android G7"
	for _, tc := range []sample{
		{file: "dexcom_mgdl.csv", loc: ingesttest.NewYork(t),
			points: []want{
				{13, "2024-03-09T23:57:13-05:00", 112, "mg/dL", "interstitial fluid", "sensed", g6},
				{14, "2024-03-10T00:02:13-05:00", 108, "mg/dL", "interstitial fluid", "sensed", g6},
				// After the change to daylight saving time at 02:00.
				{17, "2024-03-10T03:02:13-04:00", 97, "mg/dL", "interstitial fluid", "sensed", g6},
				{18, "2024-03-10T07:30:00-04:00", 131, "mg/dL", "capillary blood", "self-reported", g6},
			},
			skips: []skipWant{
				{2, "FirstName", "metadata"},
				{3, "LastName", "metadata"},
				{4, "DateOfBirth", "metadata"},
				{5, "Device", "metadata"},
				{6, "Alert", "metadata"},
				{7, "Alert", "metadata"},
				{8, "Alert", "metadata"},
				{9, "Alert", "metadata"},
				{10, "Alert", "metadata"},
				{11, "Alert", "metadata"},
				{12, "Alert", "metadata"},
				{15, "EGV", reasonLow},
				{16, "EGV", reasonHigh},
				{19, "Insulin", "insulin"},
				{20, "Carbs", "carbohydrate"},
				{21, "Exercise", "exercise"},
				{22, "Health", "health"},
				{23, "Alert", "alert"},
			},
			secrets: []string{"Jane", "Placeholder", "1980", "8AB0CD"}},
		// mmol/L, a BOM and every field quoted.
		{file: "dexcom_mmol.csv",
			points: []want{
				{6, "2025-06-01T08:00:04Z", 6.2, "mmol/L", "interstitial fluid", "sensed", g7},
				{7, "2025-06-01T08:05:04Z", 6.4, "mmol/L", "interstitial fluid", "sensed", g7},
				{9, "2025-06-01T08:12:00Z", 5.9, "mmol/L", "capillary blood", "self-reported", g7},
			},
			skips: []skipWant{
				{2, "FirstName", "metadata"}, {3, "LastName", "metadata"}, {4, "Device", "metadata"},
				{5, "Alert", "metadata"}, {8, "EGV", reasonLow},
			},
			secrets: []string{"Jane", "Placeholder"}},
	} {
		t.Run(tc.file, func(t *testing.T) { checkSample(t, ParseDexcom, tc) })
	}
}

// Variants seen in the wild: a space instead of T and a one-digit hour
// (BIG IDEAS loaders), a semicolon delimiter with decimal commas (a German
// spreadsheet's re-save), the German header, the device name when there is
// no Source Device ID, and a short row.
func TestDexcomVariants(t *testing.T) {
	const h = "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,Glucose Value (mg/dL)\n"
	for _, tc := range []struct {
		name, in string
		want     []want
	}{
		{"space and one-digit hour", h + "1,2020-02-13 7:23:32,EGV,,,,iPhone G6,61.0\n",
			[]want{{2, "2020-02-13T07:23:32Z", 61, "mg/dL", "interstitial fluid", "sensed", "manufacturer=Dexcom;source_name=iPhone G6"}}},
		{"no seconds", h + "1,2020-02-13T17:23,EGV,,,,,61\n",
			[]want{{2, "2020-02-13T17:23:00Z", 61, "mg/dL", "interstitial fluid", "sensed", "manufacturer=Dexcom"}}},
		{"device info only", h + "1,2020-02-13T17:23:00,EGV,,,Dexcom G6 Receiver,,61\n",
			[]want{{2, "2020-02-13T17:23:00Z", 61, "mg/dL", "interstitial fluid", "sensed", "manufacturer=Dexcom;source_name=Dexcom G6 Receiver"}}},
		{"german semicolons", "Index;Zeitstempel (JJJJ-MM-TTThh:mm:ss);Ereignisart;Ereignis-Subtyp;Patienteninfo;Geräteinfo;Quellgeräte-ID;Glukosewert (mmol/l)\n" +
			"1;;FirstName;;Jane;;;\n2;2026-06-02T00:00:00;EGV;;;;iOS G7;5,8\n",
			[]want{{3, "2026-06-02T00:00:00Z", 5.8, "mmol/L", "interstitial fluid", "sensed", "manufacturer=Dexcom;source_name=iOS G7"}}},
		{"latin-1 header", "Index;Zeitstempel (JJJJ-MM-TTThh:mm:ss);Ereignisart;Ger\xe4teinfo;Glukosewert (mg/dl)\n1;2026-06-02T00:00:00;EGV;G\xe4r\xe4t;99\n",
			[]want{{2, "2026-06-02T00:00:00Z", 99, "mg/dL", "interstitial fluid", "sensed", "manufacturer=Dexcom;source_name=Gärät"}}},
		{"short row", h + "1,2020-02-13T17:23:00,EGV\n", nil},
		{"blank lines", h + "\n\n1,2020-02-13T17:23:00,EGV,,,,,61\n,,,,,,,\n   \n",
			[]want{{4, "2020-02-13T17:23:00Z", 61, "mg/dL", "interstitial fluid", "sensed", "manufacturer=Dexcom"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, ParseDexcom, []byte(tc.in), ingest.Options{})
			checkPoints(t, c.Items, tc.want)
			ingesttest.CheckRoundTrip(t, c.Items)
		})
	}
}

func TestDexcomErrors(t *testing.T) {
	const h = "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,Glucose Value (mg/dL)\n"
	const pre = "1,,FirstName,,Jane,,,\n"
	for _, tc := range []struct {
		name, in string
		code     string
		line     int
		secrets  []string
	}{
		{"not clarity", "Device,Serial Number,Device Timestamp\n", "unknown_format", 1, nil},
		{"empty", "", "unknown_format", 1, nil},
		{"header too late", "a\nb\nc\nd\ne\n" + h, "unknown_format", 1, nil},
		{"no unit", strings.Replace(h, " (mg/dL)", "", 1) + "1,2020-01-01T00:00:00,EGV,,,,,5\n", "bad_unit", 1, nil},
		{"value not a number", h + pre + "2,2024-01-01T00:00:00,EGV,,,,,12x7\n", "bad_value", 3, []string{"12x7"}},
		{"negative value", h + pre + "2,2024-01-01T00:00:00,EGV,,,,,-5\n", "bad_value", 3, []string{"-5"}},
		{"NaN", h + pre + "2,2024-01-01T00:00:00,EGV,,,,,NaN\n", "bad_value", 3, []string{"NaN"}},
		{"thousands comma", h + pre + "2,2024-01-01T00:00:00,EGV,,,,,\"1,234\"\n", "bad_value", 3, []string{"1,234"}},
		{"bad month", h + pre + "2,2024-13-01T00:00:00,EGV,,,,,100\n", "bad_time", 3, []string{"2024-13"}},
		{"feb 30", h + pre + "2,2023-02-29T00:00:00,EGV,,,,,100\n", "bad_time", 3, []string{"2023-02-29"}},
		{"spreadsheet date", h + pre + "2,3/10/2024 0:02,EGV,,,,,100\n", "bad_time", 3, []string{"3/10/2024"}},
		{"EGV without time", h + pre + "2,,EGV,,,,,100\n", "bad_time", 3, nil},
		{"calibration garbage", h + pre + "2,2024-01-01T00:00:00,Calibration,,,,,Jane\n", "bad_value", 3, []string{"Jane"}},
		{"long row", h + "1,\"" + strings.Repeat("x", maxRecord+1<<20), "bad_csv", 2, []string{"xxx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ingesttest.Parse(ParseDexcom, []byte(tc.in), ingest.Options{})
			ingesttest.CheckErr(t, err, tc.code, ingest.Pos{Line: tc.line}, tc.secrets...)
			ingesttest.NoLeak(t, c.Skips, err, "Jane")
		})
	}
}

// Metadata rows are skipped by their event type only; unknown event types
// (or a name where the type belongs) are not copied into the skip.
func TestDexcomUnknownEventType(t *testing.T) {
	in := "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Patient Info,Glucose Value (mg/dL)\n" +
		"1,,Jane,Jane,\n2,2024-01-01T00:00:00,Something New,,5\n"
	c := ingesttest.MustParse(t, ParseDexcom, []byte(in), ingest.Options{})
	checkSkips(t, c.Skips, []skipWant{{2, typeUnknown, reasonUnknown}, {3, typeUnknown, reasonUnknown}})
	ingesttest.NoLeak(t, c.Skips, nil, "Jane", "Something")
}

func TestDexcomDeterministic(t *testing.T) {
	in := ingesttest.ReadFile(t, "dexcom_mgdl.csv")
	o := ingest.Options{Location: ingesttest.NewYork(t)}
	a := ingesttest.CheckDeterministic(t, ParseDexcom, in, o)
	// The same row in another export (other Index, other neighbours) gives
	// the same point.
	const h = "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),Duration (hh:mm:ss),Glucose Rate of Change (mg/dL/min),Transmitter Time (Long Integer),Transmitter ID\n"
	c := ingesttest.MustParse(t, ParseDexcom, []byte(h+"99,2024-03-09T23:57:13,EGV,,,,iOS G6,112,,,,0.7,1,8ZZZZZ\n"), o)
	if x, y := ingesttest.Canonical(c.Items), ingesttest.Canonical(a.Items[:1]); !bytes.Equal(x, y) {
		t.Fatalf("same reading, other export:\n%s\n%s", x, y)
	}
}

func TestDexcomStops(t *testing.T) {
	ingesttest.CheckStops(t, ParseDexcom, ingesttest.ReadFile(t, "dexcom_mgdl.csv"), 0, 400)
}

func TestSniffDexcom(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want bool
	}{
		{"mg/dL", ingesttest.ReadFile(t, "dexcom_mgdl.csv"), true},
		{"mmol/L with BOM, quoted", ingesttest.ReadFile(t, "dexcom_mmol.csv"), true},
		{"libre", ingesttest.ReadFile(t, "libre_us.csv"), false},
		{"json", []byte(`[{"sgv":100}]`), false},
		{"empty", nil, false},
	} {
		if got := SniffDexcom(tc.head); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}
