package cgmcsv

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
)

// fuzzCheck runs parse on in: besides what every parser promises
// (ingesttest.Fuzz), no skip may carry a type the parser did not choose
// itself (a type copied from the file could be a name).
func fuzzCheck(t *testing.T, parse ingest.Parser, in []byte) {
	c := ingesttest.Fuzz(t, parse, in, ingest.Options{Location: ingesttest.NewYork(t)})
	if c == nil {
		return
	}
	for _, s := range c.Skips {
		if !knownSkipType(s.Type) {
			t.Fatalf("skip type %q was not chosen by the parser", s.Type)
		}
	}
}

func knownSkipType(s string) bool {
	if s == typeUnknown {
		return true
	}
	for _, ev := range dexEvents {
		if s == ev.name {
			return true
		}
	}
	if n, ok := strings.CutPrefix(s, "record type "); ok {
		_, ok := recordType(n)
		return ok
	}
	return false
}

func seedFuzz(f *testing.F, files ...string) {
	for _, name := range files {
		b := ingesttest.ReadFile(f, name)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte(","), []byte(";")))
		f.Add(utf16le(string(b)))
	}
}

// go test ./ingest/cgmcsv -run '^$' -fuzz '^FuzzDexcom$' -fuzztime 60s
func FuzzDexcom(f *testing.F) {
	seedFuzz(f, "dexcom_mgdl.csv", "dexcom_mmol.csv")
	const h = "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,Glucose Value (mg/dL)\n"
	f.Add([]byte(h + "1,2020-02-13 7:23:32,EGV,,,,iPhone G6,61.0\n"))
	f.Add([]byte(h + "1,0000-01-01T00:00:00,EGV,,,,,\"5,5\"\n2,9999-12-31T23:59:59.999999999+14:00,Calibration,,,,\x00,7\n"))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCheck(t, ParseDexcom, in) })
}

// go test ./ingest/cgmcsv -run '^$' -fuzz '^FuzzLibre$' -fuzztime 60s
func FuzzLibre(f *testing.F) {
	seedFuzz(f, "libre_us.csv", "libre_eu_mmol.csv", "libre_de.csv")
	const h = "Device,Serial Number,Device Timestamp,Record Type,Historic Glucose mmol/L,Scan Glucose mmol/L,Strip Glucose mg/dL\n"
	f.Add([]byte(h + "FreeStyle Libre,X,01-02-2026 08:00,0,5.6,,\nFreeStyle Libre,X,2026-01-05T08:00:00+01:00,2,,,99\nL,X,13-01-2026 8:00,1,,\"6,1\",\n"))
	f.Add([]byte("Meter Timestamp,Record Type,Historic Glucose(mg/dL)\n2017/03/05 08:19,0,101\n"))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCheck(t, ParseLibre, in) })
}
