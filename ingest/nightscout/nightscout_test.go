package nightscout

// The test files follow Nightscout's entries as its own sources give them
// (cgm-remote-monitor): the Entry schema in lib/server/swagger.yaml (type,
// date, dateString, sgv, direction, noise, filtered, unfiltered, rssi),
// the members the server adds on upload in lib/server/entries.js (sysTime,
// utcOffset, dateString rewritten to UTC), the openaps fixtures in
// tests/fixtures/openaps-storage (an sgv with a -07:00 dateString and no
// utcOffset, a "cal" entry with slope, intercept and scale), the error
// codes below 39 in lib/plugins/errorcodes.js and the LOW/HIGH markers 39
// and 401 in lib/sandbox.js, and the UUID _id Trio sends
// (docs/data-schemas/entries-schema.md). entries.ndjson has mongoexport's
// extended JSON ({"$oid": ...}, {"$numberLong": ...}). Ids and values are
// placeholders.

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/omh"
)

type want struct {
	pos      ingest.Pos
	at       string
	value    float64
	specimen string
	modality string
	device   string
	uuid     string
	sourceID string
}

func checkPoints(t *testing.T, items []ingest.Item, wants []want) {
	t.Helper()
	ingesttest.CheckLen(t, items, len(wants))
	for i, w := range wants {
		p := items[i].Point
		bg := p.Body.(*omh.BloodGlucose)
		var dev string
		for _, d := range p.Header().ExternalDatasheets {
			if d.Type == "source_name" {
				dev = d.Reference
			}
		}
		got := want{items[i].Pos, bg.EffectiveTimeFrame.DateTime.Text, bg.BloodGlucose.Value, bg.SpecimenSource,
			p.Header().Modality, dev, p.UUID, p.SourceID}
		if got != w {
			t.Errorf("point %d:\n got %+v\nwant %+v", i, got, w)
		}
		if bg.BloodGlucose.Unit != "mg/dL" {
			t.Errorf("point %d: unit %s", i, bg.BloodGlucose.Unit)
		}
		if at, err := time.Parse(time.RFC3339Nano, w.at); err != nil || !p.Time.Equal(at) {
			t.Errorf("point %d: time %v, want %s (%v)", i, p.Time, w.at, err)
		}
	}
	ingesttest.CheckRoundTrip(t, items)
}

func at(line, i int) ingest.Pos { return ingest.Pos{Line: line, Element: "[" + strconv.Itoa(i) + "]"} }

func TestArray(t *testing.T) {
	c := ingesttest.MustParse(t, Parse, ingesttest.ReadFile(t, "entries.json"), ingest.Options{Location: ingesttest.NewYork(t)})
	checkPoints(t, c.Items, []want{
		{at(2, 0), "2024-01-15T06:05:00-05:00", 112, "interstitial fluid", "sensed", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345601"},
		{at(6, 4), "2024-01-15T06:22:03.456-05:00", 131, "capillary blood", "self-reported", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345605"},
		// No utcOffset: the patient's zone (daylight saving time then).
		{at(8, 6), "2016-10-23T14:33:36-04:00", 102, "interstitial fluid", "sensed", "openaps://indy-e1/cgm", "", "65a5171a2b0c6d0012345607"},
		// A UUID _id is the point's uuid; a numeric string value is read.
		{at(11, 9), "2024-01-15T06:35:00-05:00", 104, "interstitial fluid", "sensed", "Trio", "d5f2b6a1-8e3c-4f57-9a2b-3c4d5e6f7a8b", ""},
		// No id: the vault derives one from the content.
		{at(12, 10), "2024-01-15T06:40:00-05:00", 108, "interstitial fluid", "sensed", "share2", "", ""},
	})
	ingesttest.CheckSkips(t, c.Skips, []ingest.Skip{
		{Pos: at(3, 1), Type: "sgv", Reason: reasonLow},
		{Pos: at(4, 2), Type: "sgv", Reason: reasonHigh},
		{Pos: at(5, 3), Type: "sgv", Reason: reasonError},
		{Pos: at(7, 5), Type: "cal", Reason: reasonCal},
		{Pos: at(9, 7), Type: "etc", Reason: reasonOther},
		{Pos: at(10, 8), Type: typeNone, Reason: reasonNoType},
	})
}

func TestNDJSON(t *testing.T) {
	c := ingesttest.MustParse(t, Parse, ingesttest.ReadFile(t, "entries.ndjson"), ingest.Options{Location: ingesttest.NewYork(t)})
	checkPoints(t, c.Items, []want{
		{ingest.Pos{Line: 1}, "2024-01-15T06:05:00-05:00", 112, "interstitial fluid", "sensed", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345601"},
		{ingest.Pos{Line: 2}, "2024-01-15T06:22:03.456-05:00", 131, "capillary blood", "self-reported", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345605"},
		// dateString only, with an offset without a colon.
		{ingest.Pos{Line: 4}, "2024-01-15T06:30:00-05:00", 140, "interstitial fluid", "sensed", "", "", "65a5171a2b0c6d0012345610"},
	})
}

func TestSingleObjectAndLayout(t *testing.T) {
	const e = `{"_id":"a1","type":"sgv","sgv":120,"date":1704067200000}`
	for _, tc := range []struct {
		name, in string
		pos      ingest.Pos
	}{
		{"object", e, ingest.Pos{Line: 1}},
		{"bom and blank lines", "\xef\xbb\xbf\n\n  " + e, ingest.Pos{Line: 3}},
		{"pretty array", "[\n  " + strings.ReplaceAll(e, ",", ",\n  ") + "\n]", at(2, 0)},
		{"array on one line", "[" + e + "]", at(1, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ingesttest.MustParse(t, Parse, []byte(tc.in), ingest.Options{})
			checkPoints(t, c.Items, []want{{tc.pos, "2024-01-01T00:00:00Z", 120, "interstitial fluid", "sensed", "", "", "a1"}})
		})
	}
	c, err := ingesttest.Parse(Parse, []byte("[]"), ingest.Options{})
	if err != nil || len(c.Items)+len(c.Skips) != 0 {
		t.Fatalf("empty array: %v", err)
	}
}

func TestErrors(t *testing.T) {
	const ok = `{"_id":"a1","type":"sgv","sgv":120,"date":1704067200000}`
	for _, tc := range []struct {
		name, in string
		code     string
		pos      ingest.Pos
		secrets  []string
	}{
		{"empty", "", "bad_json", ingest.Pos{Line: 1}, nil},
		{"white space", " \n ", "bad_json", ingest.Pos{Line: 2}, nil},
		{"a number", "42", "bad_json", ingest.Pos{Line: 1}, nil},
		{"syntax", "[" + ok + ",\n{\"type\":\"sgv\",\"sgv\":12secret}]", "bad_json", ingest.Pos{Line: 2}, []string{"secret", "'s'"}},
		{"cut short", "[" + ok + ",\n{\"type\":\"sgv\"", "bad_json", ingest.Pos{Line: 2}, nil},
		{"not an object", "[" + ok + ",\n\"Jane\"]", "bad_json", at(2, 1), []string{"Jane"}},
		{"data after array", "[" + ok + "]\n[1]", "bad_json", ingest.Pos{Line: 2}, nil},
		{"garbage after array", "[" + ok + "]\nJane", "bad_json", ingest.Pos{Line: 2}, []string{"Jane"}},
		{"type not a string", "[" + ok + ",\n{\"type\":7}]", "bad_value", at(2, 1), nil},
		{"sgv missing", "[\n{\"type\":\"sgv\",\"date\":1}]", "bad_value", at(2, 0), nil},
		{"sgv a word", "[\n{\"type\":\"sgv\",\"sgv\":\"Jane\",\"date\":1}]", "bad_value", at(2, 0), []string{"Jane"}},
		{"sgv negative", "[\n{\"type\":\"sgv\",\"sgv\":-120,\"date\":1}]", "bad_value", at(2, 0), []string{"120"}},
		{"mbg NaN string", "[\n{\"type\":\"mbg\",\"mbg\":\"NaN\",\"date\":1}]", "bad_value", at(2, 0), []string{"NaN"}},
		{"huge number", "[\n{\"type\":\"mbg\",\"mbg\":1e999,\"date\":1}]", "bad_value", at(2, 0), []string{"999"}},
		{"no date", "[\n{\"type\":\"sgv\",\"sgv\":100}]", "bad_time", at(2, 0), nil},
		{"date a word", "[\n{\"type\":\"sgv\",\"sgv\":100,\"date\":\"Jane\"}]", "bad_value", at(2, 0), []string{"Jane"}},
		{"date out of range", "[\n{\"type\":\"sgv\",\"sgv\":100,\"date\":1e20}]", "bad_time", at(2, 0), nil},
		{"dateString garbage", "[\n{\"type\":\"sgv\",\"sgv\":100,\"dateString\":\"Jan 15 2024 Jane\"}]", "bad_time", at(2, 0), []string{"Jane"}},
		{"utcOffset fraction", "[\n{\"type\":\"sgv\",\"sgv\":100,\"date\":1,\"utcOffset\":30.5}]", "bad_time", at(2, 0), []string{"30.5"}},
		{"utcOffset too big", "[\n{\"type\":\"sgv\",\"sgv\":100,\"date\":1,\"utcOffset\":6000}]", "bad_time", at(2, 0), []string{"6000"}},
		{"_id a number", "[\n{\"_id\":12345,\"type\":\"sgv\",\"sgv\":100,\"date\":1}]", "bad_value", at(2, 0), []string{"12345"}},
		{"device an object", "[\n{\"type\":\"sgv\",\"sgv\":100,\"date\":1,\"device\":{\"n\":\"Jane\"}}]", "bad_value", at(2, 0), []string{"Jane"}},
		{"ndjson bad line", ok + "\n" + ok + "\n{\"type\":\"sgv\",\"sgv\":1O0,\"date\":1}\n", "bad_json", ingest.Pos{Line: 3}, []string{"1O0"}},
		{"ndjson array line", ok + "\n[1]\n", "bad_json", ingest.Pos{Line: 2}, nil},
		{"api v3", `{"status":200,"result":[{"type":"sgv","sgv":100,"date":1}]}`, "unknown_format", ingest.Pos{Line: 1}, nil},
		{"huge entry", "[{\"type\":\"sgv\",\"notes\":\"" + strings.Repeat("x", maxEntry+1<<20) + "\"}]", "bad_json", ingest.Pos{Line: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ingesttest.Parse(Parse, []byte(tc.in), ingest.Options{})
			ingesttest.CheckErr(t, err, tc.code, tc.pos, tc.secrets...)
			ingesttest.NoLeak(t, c.Skips, nil, append(tc.secrets, "Jane")...)
		})
	}
}

// A type Nightscout does not define is named in the skip only when it is a
// plain word.
func TestSkipType(t *testing.T) {
	in := `[{"type":"Jane Placeholder","date":1},{"type":"sensor","date":1}]`
	c := ingesttest.MustParse(t, Parse, []byte(in), ingest.Options{})
	ingesttest.CheckSkips(t, c.Skips, []ingest.Skip{{Pos: at(1, 0), Type: typeUnknown, Reason: reasonOther}, {Pos: at(1, 1), Type: "sensor", Reason: reasonOther}})
}

func TestDeterministic(t *testing.T) {
	in := ingesttest.ReadFile(t, "entries.json")
	o := ingest.Options{Location: ingesttest.NewYork(t)}
	a := ingesttest.CheckDeterministic(t, Parse, in, o)
	// The same entry as NDJSON (mongoexport) is the same point.
	n := ingesttest.MustParse(t, Parse, ingesttest.ReadFile(t, "entries.ndjson"), o)
	if x, y := n.Items[0].Point.AppendJSON(nil), a.Items[0].Point.AppendJSON(nil); !bytes.Equal(x, y) {
		t.Fatalf("array and NDJSON differ:\n%s\n%s", x, y)
	}
}

func TestStops(t *testing.T) {
	ingesttest.CheckStops(t, Parse, ingesttest.ReadFile(t, "entries.json"), 0, 1, 300)
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string
		want bool
	}{
		{"array", string(ingesttest.ReadFile(t, "entries.json")), true},
		{"ndjson", string(ingesttest.ReadFile(t, "entries.ndjson")), true},
		{"fhir", `{"resourceType":"Observation","valueQuantity":{"value":100},"sgv":1,"date":2}`, false},
		{"csv", "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type\n", false},
		{"treatments", `[{"eventType":"Meal Bolus","created_at":"2024-01-01"}]`, false},
		{"empty", "", false},
	} {
		if got := Sniff([]byte(tc.head)); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}
