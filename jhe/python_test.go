package jhe_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
)

const debianPython = "/usr/bin/python3"

// requirePandas skips (fails under CI=true) without Debian's python3,
// python3-requests and python3-pandas.
func requirePandas(t *testing.T) {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import pandas, requests").Run(); err != nil {
		msg := "the notebook test needs Debian's python3 with pandas and requests: apt-get install -y python3-pandas python3-requests"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
}

// TestNotebookDataFrame: what a notebook does with jupyterhealth-client
// (testdata/notebook_client.py, under Debian's python3 with requests and
// pandas) gives a DataFrame of exactly the vault's readings in the grant's
// window: same count, same uuids, values and times, parsed date_time
// columns. Five days of CGM in a four-day window: 1152 readings, two
// pages of 1000; and the food entries (ieee:food-entry:0.1, stored without
// a typed model) in the window: 96 of 120, their body members as columns.
func TestNotebookDataFrame(t *testing.T) {
	requirePandas(t)
	f := newFixture(t, 5)
	f.ingestFood(t, f.start, 120)
	from, to := f.start.Add(12*time.Hour), f.start.Add(108*time.Hour)
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose", "ieee:food-entry"}, from, to, true)
	inWindow := func(schema string, n int) []json.RawMessage {
		var points []json.RawMessage
		for r, err := range f.v.Readings(t.Context(), f.patient.ID, schema, from, to) {
			if err != nil {
				t.Fatal(err)
			}
			points = append(points, r.JSON)
		}
		slices.Reverse(points) // the surface serves newest first
		if len(points) != n {
			t.Fatalf("%d %s readings in the window, want %d", len(points), schema, n)
		}
		return points
	}
	exp, err := json.Marshal(map[string]any{"patient": oauth.FHIRID(f.patient.ID), "code": "omh:blood-glucose:4.0", "points": inWindow("omh:blood-glucose:4.0", 1152),
		"food_code": "ieee:food-entry:0.1", "food_points": inWindow("ieee:food-entry:0.1", 96)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "expected.json")
	if err := os.WriteFile(path, exp, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianPython, filepath.Join("testdata", "notebook_client.py"))
	cmd.Env = append(os.Environ(), "JHE_URL="+f.jhe, "JHE_TOKEN="+f.vc, "EXPECTED="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok 96 food rows") || !strings.Contains(string(out), "ok 1152 rows") {
		t.Fatalf("the notebook: %v\n%s", err, out)
	}
}
