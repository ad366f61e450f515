package export_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/export"
)

// points yields n OMH-shaped lines of about 300 bytes, then err if set.
func points(n int, err error) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := range n {
			p := fmt.Appendf(nil, `{"header":{"uuid":"00000000-0000-4000-8000-%012d"},"body":{"blood_glucose":{"value":%d,"unit":"mg/dL"},"pad":%q}}`, i, 70+i%100, bytes.Repeat([]byte("x"), 180))
			if !yield(p, nil) {
				return
			}
		}
		if err != nil {
			yield(nil, err)
		}
	}
}

func sign(text string) ([]byte, error) { return []byte("signed:" + text), nil }

// TestWrite checks the payload: the manifest line, every data line in
// order, and a trailer whose counts and hashes are those of the lines as
// written, over many flushes.
func TestWrite(t *testing.T) {
	enc, err := export.NewEncoder("omh", "pt_test")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m := &export.Manifest{Manifest: 1, Patient: "pt_test", AccessStart: 42}
	const n = 5000 // about 1.6 MB: many 64 KiB flushes through the three buffers
	st, err := export.Write(&out, m, enc, points(n, nil), sign)
	if err != nil || st.Records != n {
		t.Fatalf("Write: %+v %v", st, err)
	}
	checkPayload(t, out.Bytes(), n, st)
	// A pool, used again and again: the same payload each time, and one
	// smaller than a buffer, one of a buffer and a bit.
	var pool export.Pool
	for _, n := range []int{n, 1, 0, 250, n} {
		out.Reset()
		st, err := pool.Write(&out, m, enc, points(n, nil), sign)
		if err != nil || st.Records != int64(n) {
			t.Fatalf("Pool.Write: %+v %v", st, err)
		}
		checkPayload(t, out.Bytes(), n, st)
	}
}

// checkPayload checks an export of points(n, nil) with access start 42.
func checkPayload(t *testing.T, payload []byte, n int, st export.Stats) {
	t.Helper()
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append(bytes.Clone(sc.Bytes()), '\n'))
	}
	if len(lines) != n+2 {
		t.Fatalf("%d lines, want %d", len(lines), n+2)
	}
	i := 0
	for p := range points(n, nil) {
		if !bytes.Equal(lines[1+i], append(p, '\n')) {
			t.Fatalf("data line %d differs", i)
		}
		i++
	}
	h := sha256.New()
	for _, l := range lines[1 : n+1] {
		h.Write(l)
	}
	ms := sha256.Sum256(lines[0])
	var tr export.Trailer
	if err := json.Unmarshal(lines[n+1], &tr); err != nil {
		t.Fatal(err)
	}
	want := export.TrailerText(42, hex.EncodeToString(ms[:]), int64(n), hex.EncodeToString(h.Sum(nil)))
	if tr.Records != int64(n) || st.Records != int64(n) || tr.SHA256 != hex.EncodeToString(h.Sum(nil)) || tr.ManifestSHA256 != hex.EncodeToString(ms[:]) || tr.Signature != "signed:"+want || !bytes.Equal(st.SHA256, h.Sum(nil)) {
		t.Fatalf("trailer %+v", tr)
	}
}

// failAfter accepts `ok` writes, then fails every one.
type failAfter struct{ ok int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.ok == 0 {
		return 0, errors.New("connection reset")
	}
	f.ok--
	return len(p), nil
}

// TestWriteFails: a writer that fails at any flush, a points error and a
// signing error each end Write with that error, write no trailer, and
// leave no goroutine behind.
func TestWriteFails(t *testing.T) {
	enc, err := export.NewEncoder("omh", "pt_test")
	if err != nil {
		t.Fatal(err)
	}
	m := &export.Manifest{Manifest: 1}
	base := runtime.NumGoroutine()
	for _, ok := range []int{0, 1, 2, 3, 10} {
		if _, err := export.Write(&failAfter{ok: ok}, m, enc, points(3000, nil), sign); err == nil {
			t.Errorf("writer failing after %d writes: no error", ok)
		}
	}
	scanErr := errors.New("record 77 does not decrypt")
	var out bytes.Buffer
	if _, err := export.Write(&out, m, enc, points(1000, scanErr), sign); !errors.Is(err, scanErr) {
		t.Errorf("points error: %v", err)
	}
	if bytes.Contains(out.Bytes(), []byte(`"trailer"`)) {
		t.Error("a trailer was written after a points error")
	}
	out.Reset()
	signErr := errors.New("log key unavailable")
	if _, err := export.Write(&out, m, enc, points(10, nil), func(string) ([]byte, error) { return nil, signErr }); !errors.Is(err, signErr) {
		t.Errorf("sign error: %v", err)
	}
	if bytes.Contains(out.Bytes(), []byte(`"trailer"`)) {
		t.Error("a trailer was written without a signature")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Fatalf("%d goroutines left (was %d)", g, base)
	}
}

// spyWriter accepts every write and shows each to check, whole capacity
// included: what a writer could read of the buffer it is handed.
type spyWriter struct {
	check func(p []byte)
	bufs  map[*byte]bool // the arrays of the writes, by their first byte
	n     int
}

func (s *spyWriter) Write(p []byte) (int, error) {
	if s.check != nil {
		s.check(p[:cap(p)])
	}
	if cap(p) > 0 {
		if s.bufs == nil {
			s.bufs = map[*byte]bool{}
		}
		s.bufs[&p[:cap(p)][0]] = true
	}
	s.n += len(p)
	return len(p), nil
}

// secretPoints yields n lines that carry marker, about 300 bytes each.
func secretPoints(n int, marker string) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := range n {
			if !yield(fmt.Appendf(nil, `{"header":{"uuid":"00000000-0000-4000-8000-%012d"},"body":{"note":%q}}`, i, strings.Repeat(marker, 30)), nil) {
				return
			}
		}
	}
}

// TestPoolClearsBuffers: an export that takes a pooled buffer after a
// bigger export never hands its writer any byte of the one before, not
// even past the length of a write (the buffer's spare capacity). It
// repeats until a buffer was seen to pass from one export to the next
// (sync.Pool may drop any), and fails if that never happens, since the
// check would then prove nothing.
func TestPoolClearsBuffers(t *testing.T) {
	enc, err := export.NewEncoder("omh", "pt_test")
	if err != nil {
		t.Fatal(err)
	}
	m := &export.Manifest{Manifest: 1, Patient: "pt_test"}
	const secret = "PREVIOUS-EXPORT-PLAINTEXT"
	var pool export.Pool
	handedOn := 0
	for range 20 {
		a := &spyWriter{}
		// About 240 KB: every buffer of the export filled with the secret.
		if st, err := pool.Write(a, m, enc, secretPoints(300, secret), sign); err != nil || st.Records != 300 {
			t.Fatalf("first export: %+v %v", st, err)
		}
		var out bytes.Buffer
		b := &spyWriter{check: func(p []byte) {
			if bytes.Contains(p, []byte(secret)) {
				t.Fatal("a later export's writer was handed bytes of the export before it")
			}
			out.Write(p)
		}}
		if st, err := pool.Write(b, m, enc, points(3, nil), sign); err != nil || st.Records != 3 {
			t.Fatalf("second export: %+v %v", st, err)
		}
		for p := range b.bufs {
			if a.bufs[p] {
				handedOn++
			}
		}
	}
	if handedOn == 0 {
		t.Fatal("no buffer passed from one export to the next in 20 pairs: the pool does not pool")
	}
	t.Logf("%d buffers handed on from one export to the next", handedOn)
}

// TestPoolAfterFailures: exports that fail (the writer, the points, the
// signature) give their buffers back in a state the next export uses
// cleanly: its payload is exactly right.
func TestPoolAfterFailures(t *testing.T) {
	enc, err := export.NewEncoder("omh", "pt_test")
	if err != nil {
		t.Fatal(err)
	}
	m := &export.Manifest{Manifest: 1, Patient: "pt_test", AccessStart: 42}
	var pool export.Pool
	for _, ok := range []int{0, 1, 2, 3, 10} {
		if _, err := pool.Write(&failAfter{ok: ok}, m, enc, secretPoints(3000, "FAILED-EXPORT"), sign); err == nil {
			t.Errorf("writer failing after %d writes: no error", ok)
		}
	}
	if _, err := pool.Write(io.Discard, m, enc, points(1000, errors.New("record 77 does not decrypt")), sign); err == nil {
		t.Error("points error: none")
	}
	for range 3 {
		var out bytes.Buffer
		st, err := pool.Write(&out, m, enc, points(700, nil), sign)
		if err != nil || st.Records != 700 {
			t.Fatalf("Write: %+v %v", st, err)
		}
		if bytes.Contains(out.Bytes(), []byte("FAILED-EXPORT")) {
			t.Fatal("bytes of a failed export in a later one")
		}
		checkPayload(t, out.Bytes(), 700, st)
	}
}
