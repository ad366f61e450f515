package export

import "testing"

// TestSourceCellGuardsAfterCleaning: a control character in front of a
// formula becomes a space, and the guard still applies to what a
// spreadsheet reads once it trims spaces.
func TestSourceCellGuardsAfterCleaning(t *testing.T) {
	for in, want := range map[string]string{
		"\x00=HYPERLINK(\"x\")": "' =HYPERLINK(\"x\")",
		"  @SUM(A1)":            "'  @SUM(A1)",
		"\t=1":                  "' =1",
		"\rDexcom":              "' Dexcom",
		"Dexcom G7":             "Dexcom G7",
		"Dexcom\u2028G7":        "Dexcom G7",
	} {
		if got := sourceCell(in); got != want {
			t.Errorf("sourceCell(%q) = %q, want %q", in, got, want)
		}
	}
}
