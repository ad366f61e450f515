package pointdict

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	d, err := Load(V1)
	if err != nil {
		t.Fatal(err)
	}
	dict := synthetic(t)
	for _, tc := range []struct {
		name  string
		point []byte
		max   int // bytes compressed, at most
	}{
		{"empty", nil, 1},
		{"short", []byte(`{}`), 4},
		{"dictionary point", dict[:300], 40},
		{"a glucose point", []byte(`{"header":{"uuid":"9d3b2e1f-6a7c-4b8d-9e0f-1a2b3c4d5e6f","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2025-01-01T00:05:00Z","modality":"sensed"},"body":{"blood_glucose":{"value":143,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-01-01T00:05:00Z"}}}`), 90},
		{"not JSON", bytes.Repeat([]byte{0xff, 0x00, 0x80}, 200), 620},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			c := d.Append(bytes.Clone(prefix), tc.point)
			if !bytes.HasPrefix(c, prefix) || len(c)-len(prefix) > tc.max {
				t.Fatalf("compressed to %d bytes (at most %d), prefix kept: %v", len(c)-len(prefix), tc.max, bytes.HasPrefix(c, prefix))
			}
			got, err := d.Decode([]byte("x"), c[len(prefix):])
			if err != nil || !bytes.Equal(got[1:], tc.point) || got[0] != 'x' {
				t.Fatalf("round trip: %q, %v", got, err)
			}
		})
	}
	if _, err := Load(2); err == nil {
		t.Fatal("an unknown dictionary version loads")
	}
}

func TestDecodeRefusesCorrupt(t *testing.T) {
	d, err := Load(V1)
	if err != nil {
		t.Fatal(err)
	}
	good := d.Append(nil, synthetic(t)[:400])
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"length too big", append([]byte{0xff, 0xff, 0xff, 0x7f}, good[2:]...)},
		{"trailing byte", append(bytes.Clone(good), 0)},
	} {
		if _, err := d.Decode(nil, tc.src); err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
}

// FuzzRoundTrip: whatever goes in comes out, byte for byte.
func FuzzRoundTrip(f *testing.F) {
	f.Add(synthetic(f)[:500])
	f.Add([]byte(`{"header":{}}`))
	d, err := Load(V1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, point []byte) {
		got, err := d.Decode(nil, d.Append(nil, point))
		if err != nil || !bytes.Equal(got, point) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzDecode: arbitrary bytes decode or fail, never panic or overrun.
func FuzzDecode(f *testing.F) {
	d, err := Load(V1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d.Append(nil, synthetic(f)[:300]))
	f.Add([]byte{0x05, 0x10, 'a', 'b'})
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := d.Decode(nil, src)
		if err == nil && len(out) > MaxPoint {
			t.Fatalf("decoded %d bytes", len(out))
		}
	})
}

// benchPoint is a canonical 300-byte CGM point not in the dictionary.
var benchPoint = []byte(`{"header":{"uuid":"9d3b2e1f-6a7c-4b8d-9e0f-1a2b3c4d5e6f","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":"2025-01-01T00:05:00Z","modality":"sensed"},"body":{"blood_glucose":{"value":143,"unit":"mg/dL"},"effective_time_frame":{"date_time":"2025-01-01T00:05:00Z"}}}`)

var sink []byte

func BenchmarkAppend(b *testing.B) {
	d, err := Load(V1)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchPoint)))
	b.ReportAllocs()
	for b.Loop() {
		sink = d.Append(sink[:0], benchPoint)
	}
	b.ReportMetric(float64(len(sink)), "bytes/point")
}

func BenchmarkDecode(b *testing.B) {
	d, err := Load(V1)
	if err != nil {
		b.Fatal(err)
	}
	c := d.Append(nil, benchPoint)
	b.SetBytes(int64(len(benchPoint)))
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = d.Decode(sink[:0], c)
	}
}
