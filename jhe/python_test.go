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
// pages of 1000.
func TestNotebookDataFrame(t *testing.T) {
	requirePandas(t)
	f := newFixture(t, 5)
	from, to := f.start.Add(12*time.Hour), f.start.Add(108*time.Hour)
	f.grant(t, f.patient.ID, []string{"omh:blood-glucose"}, from, to, true)
	var points []json.RawMessage
	for r, err := range f.v.Readings(t.Context(), f.patient.ID, "omh:blood-glucose:4.0", from, to) {
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, r.JSON)
	}
	slices.Reverse(points) // the surface serves newest first
	if len(points) != 1152 {
		t.Fatalf("%d readings in the window, want 1152", len(points))
	}
	exp, err := json.Marshal(map[string]any{"patient": oauth.FHIRID(f.patient.ID), "code": "omh:blood-glucose:4.0", "points": points})
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
	if err != nil || !strings.Contains(string(out), "ok 1152 rows") {
		t.Fatalf("the notebook: %v\n%s", err, out)
	}
}
