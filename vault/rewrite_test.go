package vault_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// formats counts a patient's raw records by format.
func formats(t *testing.T, e *env, pid string) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, r := range rawRecords(t, e, pid) {
		n[keys.EnvelopeVersion(r.Value)]++
	}
	return n
}

// readAllSchemas reads every reading of a patient, as text.
func readAllSchemas(t *testing.T, v *vault.Vault, pid string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range omh.Supported() {
		got, err := readAll(t, v, pid, id.String())
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		for _, r := range got {
			fmt.Fprintf(&b, "%s %d %s\n", r.Schema, r.Time.UnixNano(), r.JSON)
		}
	}
	return b.String()
}

// TestMixedFormats: a patient's readings of one schema written in all
// three formats, interleaved in time, read back in time order and identical to
// what was sent; a point stored in the old format is a duplicate when it
// is sent again (dedup does not depend on the format).
func TestMixedFormats(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	fs := []int{vault.FormatWrapped, vault.FormatCompact, vault.FormatIdentity}
	by := make([][]*omh.Point, len(fs))
	var all []*omh.Point
	for i := range 42 {
		pt := parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), float64(60+i), "mixed"))
		by[i%3] = append(by[i%3], pt...)
		all = append(all, pt...)
	}
	for k, f := range fs {
		vault.WriteFormat(e.Vault, f)
		if res, err := e.Vault.Ingest(t.Context(), p.ID, by[k]); err != nil || res.Accepted != 14 {
			t.Fatalf("format %d ingest: %+v %v", f, res, err)
		}
	}
	if f := formats(t, e, p.ID); f[vault.FormatWrapped] != 14 || f[vault.FormatCompact] != 14 || f[vault.FormatIdentity] != 14 {
		t.Fatalf("formats on disk: %v", f)
	}
	got, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(got) != 42 {
		t.Fatalf("read %d: %v", len(got), err)
	}
	for i, r := range got {
		if id := extractUUID(r.JSON); id != uuidN(i) || !r.Time.Equal(at.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("reading %d: %s at %v", i, id, r.Time)
		}
		if !strings.Contains(string(r.JSON), fmt.Sprintf(`"value":%d,`, 60+i)) {
			t.Fatalf("reading %d: %s", i, r.JSON)
		}
	}
	// Sent again, in the current format: all duplicates, old ones included.
	vault.WriteFormat(e.Vault, vault.RecordFormat)
	res, err := e.Vault.Ingest(t.Context(), p.ID, all)
	if err != nil || res.Accepted != 0 || res.Duplicates != 42 {
		t.Fatalf("re-send: %+v %v", res, err)
	}
}

// TestRewriteRecordsResumable makes a vault of old-format records for
// three patients (two in format 1, the third in format 2), rewrites it with a context cancelled after the fourth
// transaction (a kill half-way: the first patient's 250 records in three,
// then 100 of the second's), restarts the vault, and resumes: every
// record ends in the new format, each rewritten once, and every reading
// reads as before. A second run finds nothing to do.
func TestRewriteRecordsResumable(t *testing.T) {
	e := newEnv(t)
	vault.WriteFormat(e.Vault, vault.FormatWrapped)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var pids []string
	for k := range 3 {
		if k == 2 {
			vault.WriteFormat(e.Vault, vault.FormatCompact)
		}
		p := e.patient(t)
		pids = append(pids, p.ID)
		var pts []*omh.Point
		for i := range 250 {
			pts = append(pts, parse(t, glucose(uuidN(k*1000+i), at.Add(time.Duration(i)*time.Minute), float64(70+i%50), "rw"))...)
		}
		if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
			t.Fatal(err)
		}
	}
	// One reading of another schema, in the current format already.
	vault.WriteFormat(e.Vault, vault.RecordFormat)
	hr := fmt.Appendf(nil, `{"header":{"uuid":%q,"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":"2025-06-01T00:00:00Z"},"body":{"heart_rate":{"value":61,"unit":"beats/min"},"effective_time_frame":{"date_time":"2025-06-01T00:00:00Z"}}}`, uuidN(9999))
	if _, err := e.Vault.Ingest(t.Context(), pids[0], parse(t, hr)); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, id := range pids {
		before[id] = readAllSchemas(t, e.Vault, id)
	}
	st, err := e.Vault.RecordStatus(t.Context())
	if err != nil || st.Patients != 3 || st.Formats[vault.FormatWrapped] != 500 || st.Formats[vault.FormatCompact] != 250 || st.Formats[vault.RecordFormat] != 1 {
		t.Fatalf("status before: %+v %v", st, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen []vault.RewriteResult
	res, err := e.Vault.RewriteRecords(ctx, vault.RewriteOptions{Batch: 100, Progress: func(r vault.RewriteResult) {
		seen = append(seen, r)
		if r.Batches == 4 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cut-short rewrite: %+v %v, want context.Canceled", res, err)
	}
	if res.Rewritten != 350 || res.Batches != 4 || len(seen) != 4 || res.Patients != 2 {
		t.Fatalf("cut short after 4 transactions: %+v (%d progress calls)", res, len(seen))
	}
	// The restart: nothing of the first run survives but the file.
	e.Close(t)
	e.Open(t)
	st, err = e.Vault.RecordStatus(t.Context())
	// (Patients are rewritten in the store's order, so which old format
	// the 400 left are in depends on the ids.)
	if err != nil || st.Formats[vault.FormatWrapped]+st.Formats[vault.FormatCompact] != 400 || st.Formats[vault.RecordFormat] != 351 {
		t.Fatalf("status after the kill: %+v %v", st, err)
	}
	for _, id := range pids {
		if got := readAllSchemas(t, e.Vault, id); got != before[id] {
			t.Fatalf("patient %s reads differently half-way through the rewrite", id)
		}
	}

	res, err = e.Vault.RewriteRecords(t.Context(), vault.RewriteOptions{Batch: 100})
	if err != nil || res.Rewritten != 400 || res.Current != 351 || res.Records != 751 || res.Patients != 3 {
		t.Fatalf("resumed rewrite: %+v %v", res, err)
	}
	for _, id := range pids {
		if f := formats(t, e, id); f[vault.FormatWrapped] != 0 || f[vault.FormatCompact] != 0 {
			t.Fatalf("patient %s still has old records: %v", id, f)
		}
		if got := readAllSchemas(t, e.Vault, id); got != before[id] {
			t.Fatalf("patient %s reads differently after the rewrite", id)
		}
	}
	if vs, err := e.Vault.VerifyRecords(t.Context()); err != nil || vs.Records != 751 {
		t.Fatalf("verify: %+v %v", vs, err)
	}
	res, err = e.Vault.RewriteRecords(t.Context(), vault.RewriteOptions{})
	if err != nil || res.Rewritten != 0 || res.Batches != 0 || res.Current != 751 {
		t.Fatalf("a second run: %+v %v", res, err)
	}
}

// TestRewriteStopsAtCorruptRecord: a record that does not open stops the
// rewrite with ErrDecrypt and stays as it was; nothing after it in its
// batch is swapped.
func TestRewriteStopsAtCorruptRecord(t *testing.T) {
	e := newEnv(t)
	vault.WriteFormat(e.Vault, vault.FormatWrapped)
	p := e.patient(t)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var pts []*omh.Point
	for i := range 10 {
		pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), 90, "c"))...)
	}
	if _, err := e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
		t.Fatal(err)
	}
	recs := rawRecords(t, e, p.ID)
	bad := withValue(recs[5], append([]byte(nil), recs[5].Value...))
	bad.Value[len(bad.Value)-1] ^= 1
	putRaw(t, e, p.ID, bad)
	_, err := e.Vault.RewriteRecords(t.Context(), vault.RewriteOptions{})
	if !errors.Is(err, keys.ErrDecrypt) {
		t.Fatalf("rewrite over a damaged record: %v, want ErrDecrypt", err)
	}
	if f := formats(t, e, p.ID); f[vault.FormatWrapped] != 10 {
		t.Fatalf("formats after the refused rewrite: %v", f)
	}
}

// TestRewriteDuringIngest rewrites a patient's old records while new
// readings for her keep arriving: every reading is stored once and reads
// back, and afterwards none is in the old format.
func TestRewriteDuringIngest(t *testing.T) {
	e := newEnv(t)
	vault.WriteFormat(e.Vault, vault.FormatWrapped)
	p := e.patient(t)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	batch := func(first int) []*omh.Point {
		var pts []*omh.Point
		for i := first; i < first+100; i++ {
			pts = append(pts, parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), 80, "live"))...)
		}
		return pts
	}
	for k := range 5 {
		if _, err := e.Vault.Ingest(t.Context(), p.ID, batch(k*100)); err != nil {
			t.Fatal(err)
		}
	}
	vault.WriteFormat(e.Vault, vault.RecordFormat)
	// Parsed before the race: t.Fatal belongs to the test's goroutine.
	var more [][]*omh.Point
	for k := 5; k < 15; k++ {
		more = append(more, batch(k*100))
	}
	errs := make(chan error, 1)
	go func() {
		var err error
		for _, pts := range more {
			if _, err = e.Vault.Ingest(t.Context(), p.ID, pts); err != nil {
				break
			}
		}
		errs <- err
	}()
	res, err := e.Vault.RewriteRecords(t.Context(), vault.RewriteOptions{Batch: 50})
	if err != nil || res.Rewritten != 500 {
		t.Fatalf("rewrite beside ingest: %+v %v", res, err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(got) != 1500 {
		t.Fatalf("read %d of 1500: %v", len(got), err)
	}
	if f := formats(t, e, p.ID); f[vault.FormatWrapped] != 0 || f[vault.RecordFormat] != 1500 {
		t.Fatalf("formats: %v", f)
	}
}

// TestReadingsStream reads a mixed vault of many batches with
// ReadingsStream and with Readings: each point the stream's loop gets
// must be the one Readings read at that place. The stream decompresses
// later batches into the memory of earlier ones, so a block handed back
// before its caller was done with it would show here as a point
// overwritten by another; a stop half-way must also end cleanly.
func TestReadingsStream(t *testing.T) {
	e := newEnv(t)
	p := e.patient(t)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	const n = 6000 // over 20 batches of 256
	// Every fifth reading in format 1, every fifth in format 2, the rest
	// in format 3.
	fs := []int{vault.FormatWrapped, vault.FormatCompact, vault.FormatIdentity}
	by := make([][]*omh.Point, len(fs))
	for i := range n {
		pt := parse(t, glucose(uuidN(i), at.Add(time.Duration(i)*time.Minute), float64(60+i%200), "stream"))
		k := min(i%5, 2)
		by[k] = append(by[k], pt...)
	}
	for k, f := range fs {
		vault.WriteFormat(e.Vault, f)
		if _, err := e.Vault.Ingest(t.Context(), p.ID, by[k]); err != nil {
			t.Fatal(err)
		}
	}
	want, err := readAll(t, e.Vault, p.ID, bg)
	if err != nil || len(want) != n {
		t.Fatalf("Readings: %d, %v", len(want), err)
	}
	i := 0
	for r, err := range e.Vault.ReadingsStream(t.Context(), p.ID, bg, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		if i >= n || string(r.JSON) != string(want[i].JSON) || !r.Time.Equal(want[i].Time) || r.Tag != want[i].Tag {
			t.Fatalf("stream reading %d differs: %s, want %s", i, r.JSON, want[i].JSON)
		}
		i++
	}
	if i != n {
		t.Fatalf("the stream read %d readings, want %d", i, n)
	}
	i = 0
	for _, err := range e.Vault.ReadingsStream(t.Context(), p.ID, bg, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		if i++; i == 1000 {
			break
		}
	}
}
