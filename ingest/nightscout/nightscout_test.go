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
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
)

type collect struct {
	items  []ingest.Item
	skips  []ingest.Skip
	failAt int
	err    error
}

func (c *collect) Reading(it ingest.Item) error {
	c.items = append(c.items, it)
	if c.failAt > 0 && len(c.items) == c.failAt {
		return c.err
	}
	return nil
}

func (c *collect) Skipped(s ingest.Skip) error { c.skips = append(c.skips, s); return nil }

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	return loc
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, in []byte, o ingest.Options) (*collect, error) {
	c := &collect{}
	err := Parse(bytes.NewReader(in), o, c)
	return c, err
}

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
	if len(items) != len(wants) {
		for _, it := range items {
			t.Logf("%v: %s", it.Pos, it.Point.AppendJSON(nil))
		}
		t.Fatalf("got %d points, want %d", len(items), len(wants))
	}
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
		at, _ := time.Parse(time.RFC3339Nano, w.at)
		if !p.Time.Equal(at) {
			t.Errorf("point %d: time %v", i, p.Time)
		}
		out := p.AppendJSON(nil)
		p2, err := omh.Parse(out)
		if err != nil || !bytes.Equal(p2.AppendJSON(nil), out) {
			t.Errorf("point %d does not round-trip: %v", i, err)
		}
	}
}

type skipWant struct {
	pos    ingest.Pos
	typ    string
	reason string
}

func checkSkips(t *testing.T, skips []ingest.Skip, wants []skipWant) {
	t.Helper()
	if len(skips) != len(wants) {
		t.Fatalf("got %d skips %+v, want %d", len(skips), skips, len(wants))
	}
	for i, w := range wants {
		if s := skips[i]; s.Pos != w.pos || s.Type != w.typ || s.Reason != w.reason {
			t.Errorf("skip %d: got %+v, want %+v", i, s, w)
		}
	}
}

func at(line, i int) ingest.Pos { return ingest.Pos{Line: line, Element: "[" + strconv.Itoa(i) + "]"} }

func TestArray(t *testing.T) {
	c, err := parse(t, readFile(t, "entries.json"), ingest.Options{Location: newYork(t)})
	if err != nil {
		t.Fatal(err)
	}
	checkPoints(t, c.items, []want{
		{at(2, 0), "2024-01-15T06:05:00-05:00", 112, "interstitial fluid", "sensed", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345601"},
		{at(6, 4), "2024-01-15T06:22:03.456-05:00", 131, "capillary blood", "self-reported", "xDrip-DexcomG6", "", "65a5171a2b0c6d0012345605"},
		// No utcOffset: the patient's zone (daylight saving time then).
		{at(8, 6), "2016-10-23T14:33:36-04:00", 102, "interstitial fluid", "sensed", "openaps://indy-e1/cgm", "", "65a5171a2b0c6d0012345607"},
		// A UUID _id is the point's uuid; a numeric string value is read.
		{at(11, 9), "2024-01-15T06:35:00-05:00", 104, "interstitial fluid", "sensed", "Trio", "d5f2b6a1-8e3c-4f57-9a2b-3c4d5e6f7a8b", ""},
		// No id: the vault derives one from the content.
		{at(12, 10), "2024-01-15T06:40:00-05:00", 108, "interstitial fluid", "sensed", "share2", "", ""},
	})
	checkSkips(t, c.skips, []skipWant{
		{at(3, 1), "sgv", reasonLow},
		{at(4, 2), "sgv", reasonHigh},
		{at(5, 3), "sgv", reasonError},
		{at(7, 5), "cal", reasonCal},
		{at(9, 7), "etc", reasonOther},
		{at(10, 8), typeNone, reasonNoType},
	})
}

func TestNDJSON(t *testing.T) {
	c, err := parse(t, readFile(t, "entries.ndjson"), ingest.Options{Location: newYork(t)})
	if err != nil {
		t.Fatal(err)
	}
	checkPoints(t, c.items, []want{
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
			c, err := parse(t, []byte(tc.in), ingest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkPoints(t, c.items, []want{{tc.pos, "2024-01-01T00:00:00Z", 120, "interstitial fluid", "sensed", "", "", "a1"}})
		})
	}
	c, err := parse(t, []byte("[]"), ingest.Options{})
	if err != nil || len(c.items)+len(c.skips) != 0 {
		t.Fatalf("empty array: %v", err)
	}
}

func checkErr(t *testing.T, err error, code string, pos ingest.Pos, secrets ...string) {
	t.Helper()
	var e *ingest.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want *ingest.Error %s", err, err, code)
	}
	if e.Code != code || e.Pos != pos {
		t.Errorf("got %s at %+v (%v), want %s at %+v", e.Code, e.Pos, e, code, pos)
	}
	for _, s := range secrets {
		if strings.Contains(e.Message, s) {
			t.Errorf("message %q repeats %q", e.Message, s)
		}
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
			c, err := parse(t, []byte(tc.in), ingest.Options{})
			checkErr(t, err, tc.code, tc.pos, tc.secrets...)
			for _, s := range c.skips {
				for _, secret := range append(tc.secrets, "Jane") {
					if strings.Contains(s.Type+s.Reason, secret) {
						t.Errorf("skip %+v leaks %q", s, secret)
					}
				}
			}
		})
	}
}

// A type Nightscout does not define is named in the skip only when it is a
// plain word.
func TestSkipType(t *testing.T) {
	in := `[{"type":"Jane Placeholder","date":1},{"type":"sensor","date":1}]`
	c, err := parse(t, []byte(in), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkSkips(t, c.skips, []skipWant{{at(1, 0), typeUnknown, reasonOther}, {at(1, 1), "sensor", reasonOther}})
}

func TestDeterministic(t *testing.T) {
	in := readFile(t, "entries.json")
	o := ingest.Options{Location: newYork(t)}
	a, err := parse(t, in, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parse(t, in, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.items) == 0 || len(a.items) != len(b.items) {
		t.Fatal("no points")
	}
	for i := range a.items {
		if x, y := a.items[i].Point.AppendJSON(nil), b.items[i].Point.AppendJSON(nil); !bytes.Equal(x, y) {
			t.Fatalf("two parses differ:\n%s\n%s", x, y)
		}
	}
	// The same entry as NDJSON (mongoexport) is the same point.
	n, err := parse(t, readFile(t, "entries.ndjson"), o)
	if err != nil {
		t.Fatal(err)
	}
	if x, y := n.items[0].Point.AppendJSON(nil), a.items[0].Point.AppendJSON(nil); !bytes.Equal(x, y) {
		t.Fatalf("array and NDJSON differ:\n%s\n%s", x, y)
	}
}

func TestSinkAndReadErrors(t *testing.T) {
	in := readFile(t, "entries.json")
	stop := errors.New("stop")
	c := &collect{failAt: 2, err: stop}
	if err := Parse(bytes.NewReader(in), ingest.Options{}, c); err != stop {
		t.Fatalf("got %v, want the sink's error", err)
	}
	if len(c.items) != 2 {
		t.Fatalf("parse went on after the sink failed: %d", len(c.items))
	}
	broken := errors.New("disk on fire")
	for _, n := range []int{0, 1, 300} {
		if err := Parse(&failReader{data: in[:n], err: broken}, ingest.Options{}, &collect{}); err != broken {
			t.Fatalf("after %d bytes: got %v, want the read error", n, err)
		}
	}
}

type failReader struct {
	data []byte
	err  error
}

func (f *failReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string
		want bool
	}{
		{"array", string(readFile(t, "entries.json")), true},
		{"ndjson", string(readFile(t, "entries.ndjson")), true},
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
