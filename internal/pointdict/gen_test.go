package pointdict

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/omh"
)

// synthetic returns the points dictionary 1 is made of: made-up readings
// of the common schemas in both header dialects, rendered canonically by
// omh. None is anyone's data. Blood glucose, the most frequent, comes
// last, nearest to the point being compressed.
func synthetic(t testing.TB) []byte {
	at := time.Date(2024, 2, 29, 12, 34, 56, 0, time.UTC)
	ts := func(d time.Duration) string { return at.Add(d).Format(time.RFC3339) }
	raws := []string{
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000001","schema_id":{"namespace":"omh","name":"body-weight","version":"2.0"},"source_creation_date_time":%q},"body":{"body_weight":{"value":70.5,"unit":"kg"},"effective_time_frame":{"date_time":%q}}}`, ts(0), ts(0)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000002","schema_id":{"namespace":"omh","name":"blood-pressure","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"systolic_blood_pressure":{"value":120,"unit":"mmHg"},"diastolic_blood_pressure":{"value":80,"unit":"mmHg"},"effective_time_frame":{"date_time":%q},"body_posture":"sitting"}}`, ts(time.Hour), ts(time.Hour)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000003","schema_id":{"namespace":"omh","name":"step-count","version":"3.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"step_count":{"value":1234,"unit":"steps"},"effective_time_frame":{"time_interval":{"start_date_time":%q,"end_date_time":%q}}}}`, ts(0), ts(0), ts(time.Hour)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000004","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"synthetic-watch"}]},"body":{"heart_rate":{"value":64,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`, ts(time.Minute), ts(time.Minute)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000005","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":%q},"body":{"heart_rate":{"value":71,"unit":"beats/min"},"effective_time_frame":{"date_time":%q}}}`, ts(2*time.Minute), ts(2*time.Minute)),
		fmt.Sprintf(`{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q},"body":{"blood_glucose":{"value":5.5,"unit":"mmol/L"},"effective_time_frame":{"date_time":%q}}}`, ts(3*time.Minute), ts(3*time.Minute)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000006","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed","external_datasheets":[{"datasheet_type":"manufacturer","datasheet_reference":"synthetic-cgm"}]},"body":{"blood_glucose":{"value":98,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q},"specimen_source":"interstitial fluid"}}`, ts(4*time.Minute), ts(4*time.Minute)),
		fmt.Sprintf(`{"header":{"uuid":"00000000-0000-4000-8000-000000000007","schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"source_creation_date_time":%q,"modality":"sensed"},"body":{"blood_glucose":{"value":112,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, ts(5*time.Minute), ts(5*time.Minute)),
	}
	var dict []byte
	for _, r := range raws {
		p, err := omh.Parse([]byte(r))
		if err != nil {
			t.Fatalf("synthetic point %s: %v", r, err)
		}
		dict = p.AppendJSON(dict)
	}
	return dict
}

// TestDictionaryIsGenerated checks that dict-v1.bin is what the generator
// makes, so the committed dictionary is reproducible and unchanged; with
// VAULT_WRITE_POINT_DICT=1 it writes it (only ever for a new version).
func TestDictionaryIsGenerated(t *testing.T) {
	want := synthetic(t)
	if os.Getenv("VAULT_WRITE_POINT_DICT") == "1" {
		if err := os.WriteFile("dict-v1.bin", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("dict-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.Equal(dictV1, want) {
		t.Fatal("dict-v1.bin is not what the generator makes: a dictionary of a stored format must never change")
	}
}
