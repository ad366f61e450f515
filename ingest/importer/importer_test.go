package importer_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/ingest/ingesttest"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// lines is a small format for these tests: "minute,value" per line makes a
// CGM reading at 2025-01-01 plus that many minutes; "event,NAME" is a row
// that is not a reading. The real formats have their own tests; this one
// exercises the two passes and the transactions.
var lines = importer.Format{Name: "lines", Parse: func(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	sc := bufio.NewScanner(r)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, o.Loc())
	for n := 1; sc.Scan(); n++ {
		pos := ingest.Pos{Line: n}
		a, b, ok := strings.Cut(sc.Text(), ",")
		if !ok {
			return ingest.Errorf(pos, "bad_csv", "want two columns")
		}
		if a == "event" {
			if err := sink.Skipped(ingest.Skip{Pos: pos, Type: b, Reason: "not a reading"}); err != nil {
				return err
			}
			continue
		}
		m, err1 := strconv.Atoi(a)
		v, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil {
			return ingest.Errorf(pos, "bad_value", "minute and value must be numbers")
		}
		ts := base.Add(time.Duration(m) * time.Minute).Format(time.RFC3339)
		p, err := omh.Parse(fmt.Appendf(nil, `{"header":{"schema_id":{"namespace":"omh","name":"blood-glucose","version":"4.0"},"modality":"sensed"},"body":{"blood_glucose":{"value":%v,"unit":"mg/dL"},"effective_time_frame":{"date_time":%q}}}`, v, ts))
		if err != nil {
			return ingest.PointError(pos, err)
		}
		if err := sink.Reading(ingest.Item{Point: p, Pos: pos}); err != nil {
			return err
		}
	}
	return sc.Err()
}}

type env struct {
	v       *vault.Vault
	st      *boltstore.Store
	path    string
	patient string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	root, err := keys.CreateKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vault.db")
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := boltstore.Check(path); err != nil {
			t.Errorf("integrity: %v", err)
		}
	})
	v, err := vault.Open(st, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := v.CreateUser(vault.NewUser{Role: vault.RolePatient, Name: "Import Patient", TimeZone: "America/New_York"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{v: v, st: st, path: path, patient: u.ID}
}

func (e *env) count(t *testing.T) int {
	t.Helper()
	n := 0
	for _, err := range e.v.Readings(context.Background(), e.patient, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func input(b []byte) importer.Input {
	return importer.Input{Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func file(n int, events ...int) []byte {
	var b bytes.Buffer
	for i := range n {
		if len(events) > 0 && i == events[0] {
			b.WriteString("event,Calibration\n")
			events = events[1:]
		}
		fmt.Fprintf(&b, "%d,%d\n", i*5, 80+i%100)
	}
	return b.Bytes()
}

func TestImportSmallFileIsOneTransaction(t *testing.T) {
	e := newEnv(t)
	res, err := importer.Run(context.Background(), e.v, e.patient, lines, input(file(100, 10, 50)), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.BySchema["omh:blood-glucose:4.0"]
	if !res.Complete || res.Transactions != 1 || res.Readings != 100 || res.Accepted != 100 || c.Accepted != 100 || res.Skipped != 2 || res.SkippedBy["Calibration"] != 2 || len(res.SkipRows) != 2 || res.SkipRows[0].Pos.Line != 11 {
		t.Fatalf("result %+v", res)
	}
	// The same file again stores nothing new.
	res, err = importer.Run(context.Background(), e.v, e.patient, lines, input(file(100, 10, 50)), ingest.Options{})
	if err != nil || res.Accepted != 0 || res.Duplicates != 100 || res.BySchema["omh:blood-glucose:4.0"].Duplicates != 100 {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	if n := e.count(t); n != 100 {
		t.Fatalf("%d readings stored, want 100", n)
	}
}

func TestImportMalformedStoresNothing(t *testing.T) {
	e := newEnv(t)
	// A bad row near the end of a file bigger than one transaction: the
	// first pass finds it before anything is stored.
	b := append(file(importer.OneTransaction+500), "7,not-a-number\n"...)
	_, err := importer.Run(context.Background(), e.v, e.patient, lines, input(b), ingest.Options{})
	var ie *ingest.Error
	if !errors.As(err, &ie) || ie.Pos.Line != importer.OneTransaction+501 || ie.Code != "bad_value" {
		t.Fatalf("err %v, want bad_value at line %d", err, importer.OneTransaction+501)
	}
	if strings.Contains(err.Error(), "not-a-number") {
		t.Fatal("the error repeats the value")
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d readings stored from a malformed file", n)
	}
}

func TestImportBigFileInTransactions(t *testing.T) {
	e := newEnv(t)
	n := importer.OneTransaction + 7
	res, err := importer.Run(context.Background(), e.v, e.patient, lines, input(file(n)), ingest.Options{})
	if want := (n + importer.Chunk - 1) / importer.Chunk; err != nil || !res.Complete || res.Transactions != want || res.Accepted != n {
		t.Fatalf("%+v %v", res, err)
	}
	if got := e.count(t); got != n {
		t.Fatalf("%d stored, want %d", got, n)
	}
}

// failing stores its first `ok` transactions in the real vault, then fails
// as a full disk would: the one way to stop an import half way on demand.
type failing struct {
	*vault.Vault
	ok int
}

func (f *failing) Ingest(ctx context.Context, patient string, pts []*omh.Point) (vault.IngestResult, error) {
	if f.ok == 0 {
		return vault.IngestResult{}, errors.New("no space left on device")
	}
	f.ok--
	return f.Vault.Ingest(ctx, patient, pts)
}

func TestImportStoppedHalfWayResumes(t *testing.T) {
	e := newEnv(t)
	n := 3 * importer.OneTransaction
	b := file(n)
	res, err := importer.Run(context.Background(), &failing{Vault: e.v, ok: 1}, e.patient, lines, input(b), ingest.Options{})
	if !errors.Is(err, importer.ErrStopped) || res.Complete || res.Accepted != importer.Chunk {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(err.Error(), "run the same import again") {
		t.Fatalf("the error does not say how to finish: %v", err)
	}
	if got := e.count(t); got != importer.Chunk {
		t.Fatalf("%d stored after the failure, want the first transaction's %d", got, importer.Chunk)
	}
	// Run again: the stored part counts as duplicates, the rest is stored.
	res, err = importer.Run(context.Background(), e.v, e.patient, lines, input(b), ingest.Options{})
	if err != nil || !res.Complete || res.Duplicates != importer.Chunk || res.Accepted != n-importer.Chunk {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if got := e.count(t); got != n {
		t.Fatalf("%d stored, want %d", got, n)
	}
}

func TestImportLocalTimes(t *testing.T) {
	e := newEnv(t)
	ny := ingesttest.NewYork(t)
	if _, err := importer.Run(context.Background(), e.v, e.patient, lines, input([]byte("0,100\n")), ingest.Options{Location: ny}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for r, err := range e.v.Readings(context.Background(), e.patient, "omh:blood-glucose:4.0", time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2025, 1, 1, 5, 0, 0, 0, time.UTC); !r.Time.Equal(want) {
			t.Fatalf("time %v, want %v (midnight in New York)", r.Time, want)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d readings stored, want 1", n)
	}
}

// TestImportFileChangedBetweenPasses: a file that changes after the check
// (only a local file can) stores nothing when it fits one transaction.
func TestImportFileChangedBetweenPasses(t *testing.T) {
	e := newEnv(t)
	opens := 0
	in := importer.Input{Open: func() (io.ReadCloser, error) {
		opens++
		if opens == 1 {
			return io.NopCloser(bytes.NewReader(file(100))), nil
		}
		return io.NopCloser(bytes.NewReader(file(60))), nil
	}}
	_, err := importer.Run(context.Background(), e.v, e.patient, lines, in, ingest.Options{})
	if !errors.Is(err, importer.ErrStopped) || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("err %v", err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d readings stored from a file that changed", n)
	}
}

// TestImportSkipTypesBounded: a file with many made-up types can't grow
// the answer without bound.
func TestImportSkipTypesBounded(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&b, "event,Type%d\n", i)
	}
	fmt.Fprintf(&b, "event,%s\n", strings.Repeat("x", 1000))
	b.WriteString("0,100\n")
	res, err := importer.Run(context.Background(), e.v, e.patient, lines, input(b.Bytes()), ingest.Options{})
	if err != nil || res.Skipped != 501 || len(res.SkippedBy) > 65 || res.SkippedBy["(other types)"] != 501-64 {
		t.Fatalf("%d types, %d skipped, other %d: %v", len(res.SkippedBy), res.Skipped, res.SkippedBy["(other types)"], err)
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	plain := []byte(strings.Repeat("0,123.456 canary-d41d8cd9\n", 20000))
	s, err := importer.Spool(bytes.NewReader(plain), dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	ents := readDir(t, dir)
	if len(ents) != 1 {
		t.Fatalf("%d files in the spool directory", len(ents))
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk, []byte("canary-d41d8cd9")) || bytes.Contains(onDisk, []byte("123.456")) {
		t.Fatal("the spooled upload is on disk in plaintext")
	}
	in, err := s.Input()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // both passes read the same bytes
		r, err := in.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if head, err := s.Head(8); err != nil || string(head) != "0,123.45" || s.Size() != int64(len(plain)) {
		t.Fatalf("head %q size %d: %v", head, s.Size(), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(readDir(t, dir)) != 0 {
		t.Fatal("Close left the spool file")
	}
	// Over the limit: refused, and nothing left behind.
	if _, err := importer.Spool(bytes.NewReader(plain), dir, 1000); !errors.Is(err, importer.ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if len(readDir(t, dir)) != 0 {
		t.Fatal("a refused upload left its spool file")
	}
}

func readDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}
