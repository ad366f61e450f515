package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/jupyterhealth/vault/export"
	"golang.org/x/mod/sumdb/note"
)

// cmdDecrypt opens an export:
//
//	vault decrypt -i IDENTITY [--verify-key KEY [--data-only]] [-o OUT] [FILE]
//
// It reads X25519 (AGE-SECRET-KEY-1…) and hybrid post-quantum
// (AGE-SECRET-KEY-PQ-1…) identities, which Debian's age 1.1 cannot. With
// --verify-key it checks the payload against the vault's pinned log key
// before it writes anything (see verifyExport); with --data-only it then
// writes only the data lines: a plain CSV, or NDJSON of OMH points or FHIR
// Observations.
func cmdDecrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("decrypt", stderr)
	idPath := fs.String("i", "", "identity file (age-keygen format)")
	outPath := fs.String("o", "", "write the plaintext here instead of standard output (a new file; an existing one is not replaced)")
	verifyKey := fs.String("verify-key", "", "the vault's log verifier key, pinned out of band ('vault admin ledger-key'): check the export's signed trailer before writing")
	dataOnly := fs.Bool("data-only", false, "with --verify-key: write only the data lines (no manifest line, no trailer line)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *idPath == "" || fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	if *dataOnly && *verifyKey == "" {
		fmt.Fprintln(stderr, "vault decrypt: --data-only needs --verify-key KEY (from 'vault admin ledger-key'): without the trailer's check, a cut or altered export would pass as a whole file")
		return errUsage
	}
	var verifier note.Verifier
	if *verifyKey != "" {
		v, err := note.NewVerifier(strings.TrimSpace(*verifyKey))
		if err != nil {
			fmt.Fprintln(stderr, "vault decrypt: --verify-key is not a log verifier key such as 'vault admin ledger-key' prints (NAME+HASH+KEY)")
			return errUsage
		}
		verifier = v
	}
	idf, err := os.Open(*idPath)
	if err != nil {
		return fmt.Errorf("identity: %v", err)
	}
	ids, err := age.ParseIdentities(idf)
	idf.Close()
	if err != nil {
		return fmt.Errorf("identity file %s: %v", *idPath, err)
	}
	in := stdin
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReader(in)
	var src io.Reader = br
	if head, _ := br.Peek(len(armor.Header)); bytes.Equal(head, []byte(armor.Header)) {
		src = armor.NewReader(br)
	}
	r, err := age.Decrypt(src, ids...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return errors.New("no identity in the file can open this export: was it encrypted to another key?")
	}
	if err != nil {
		return fmt.Errorf("not a valid age file: %v", err)
	}
	if verifier == nil {
		return writeOut(*outPath, stdout, func(w io.Writer) error {
			if _, err := io.Copy(w, r); err != nil {
				return fmt.Errorf("decryption failed part-way (the file is damaged or was altered): %v", err)
			}
			return nil
		})
	}
	var sum exportSummary
	err = writeOut(*outPath, stdout, func(w io.Writer) error {
		var err error
		sum, err = verifyExport(r, verifier, *dataOnly, w, *outPath == "")
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "verified: %s export of %s for %s, %d records, signed by %s\n", sum.format, sum.patient, sum.clinician, sum.records, verifier.Name())
	return nil
}

// maxStdoutExport bounds a verified export held in memory until its
// trailer checks out, when it goes to standard output; -o has no bound.
const maxStdoutExport = 256 << 20

// writeOut runs fill against the output and keeps what it wrote only if
// it succeeds. To a file (-o), it writes a new 0600 file beside it and
// links it into place at the end, so a failure leaves nothing at OUT and
// an existing OUT is never replaced. To standard output, a plain
// decryption streams; a verified one is held in memory (up to
// maxStdoutExport) and written only once verified.
func writeOut(path string, stdout io.Writer, fill func(io.Writer) error) error {
	if path == "" {
		return fill(stdout)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; choose a new file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vault-decrypt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = fill(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %v", path, err)
	}
	return nil
}

// exportSummary is what a verified export holds.
type exportSummary struct {
	format, patient, clinician string
	records                    int64
}

// maxExportLine bounds one line of a decrypted export: the manifest, with
// its proofs and entries, is the longest.
const maxExportLine = 64 << 20

// verifyExport reads a decrypted export (a manifest line, data lines, a
// trailer line) and checks what needs only the pinned log key: the
// manifest's checkpoint and the trailer are signed by it; the trailer's
// signed text is its own numbers; its manifest hash is that of the
// manifest line; its data hash and count are those of the data lines (a
// CSV's header row is a data line but not a record); and it names the
// manifest's access. It writes the data lines (dataOnly) or every line to
// w; with hold (standard output) it keeps them in memory and writes
// nothing unless all of that holds (writeOut deals with a file). The inclusion proofs and the consistency with a checkpoint kept
// from before are jhvault's (docs/export.md); this check does not replay
// them.
func verifyExport(r io.Reader, v note.Verifier, dataOnly bool, w io.Writer, hold bool) (exportSummary, error) {
	var sum exportSummary
	bad := func(format string, a ...any) error {
		return fmt.Errorf("not a verified export: "+format+"; nothing was written", a...)
	}
	held := &bytes.Buffer{}
	out := w
	if hold {
		out = held
	}
	br := bufio.NewReaderSize(r, 64<<10)
	readLine := func() ([]byte, error) {
		var line []byte
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxExportLine {
				return nil, bad("a line is longer than %d MiB", maxExportLine>>20)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return nil, bad("the last line has no newline (the export is cut short)")
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("decryption failed part-way (the file is damaged or was altered): %v; nothing was written", err)
			}
			return line, err
		}
	}
	mline, err := readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return sum, bad("the payload is empty")
		}
		return sum, err
	}
	var m export.Manifest
	if json.Unmarshal(mline, &m) != nil || m.Manifest != 1 {
		return sum, bad("line 1 is not an export manifest (is this an export file?)")
	}
	if _, err := note.Open([]byte(m.Checkpoint), note.VerifierList(v)); err != nil {
		return sum, bad("the manifest's checkpoint is not signed by the pinned log key %s", v.Name())
	}
	msum := sha256.Sum256(mline)
	if !dataOnly {
		if _, err := out.Write(mline); err != nil {
			return sum, err
		}
	}
	h := sha256.New()
	var lines int64
	prev, err := readLine()
	if errors.Is(err, io.EOF) {
		return sum, bad("there is no trailer (the export is cut short)")
	}
	if err != nil {
		return sum, err
	}
	for {
		next, err := readLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, err
		}
		h.Write(prev)
		lines++
		if _, err := out.Write(prev); err != nil {
			return sum, err
		}
		if hold && held.Len() > maxStdoutExport {
			return sum, fmt.Errorf("the export is over %d MiB, too big to hold until it is verified: use -o FILE", maxStdoutExport>>20)
		}
		prev = next
	}
	var tr export.Trailer
	if json.Unmarshal(prev, &tr) != nil || tr.Trailer != 1 {
		return sum, bad("the last line is not a trailer (the export is cut short)")
	}
	n, err := note.Open([]byte(tr.Signature), note.VerifierList(v))
	if err != nil {
		return sum, bad("the trailer is not signed by the pinned log key %s", v.Name())
	}
	records := lines
	if m.Format == "csv" && lines > 0 {
		records-- // the header row
	}
	dsum := hex.EncodeToString(h.Sum(nil))
	switch {
	case n.Text != export.TrailerText(tr.AccessStart, tr.ManifestSHA256, tr.Records, tr.SHA256):
		return sum, bad("the trailer's signed text does not match its numbers")
	case tr.ManifestSHA256 != hex.EncodeToString(msum[:]):
		return sum, bad("the manifest is not the one the trailer signs")
	case tr.AccessStart != m.AccessStart:
		return sum, bad("the trailer is for access %d, the manifest for %d", tr.AccessStart, m.AccessStart)
	case tr.SHA256 != dsum:
		return sum, bad("the data lines do not hash to the signed SHA-256")
	case tr.Records != records:
		return sum, bad("%d records read, %d signed", records, tr.Records)
	}
	if !dataOnly {
		if _, err := out.Write(prev); err != nil {
			return sum, err
		}
	}
	if hold {
		if _, err := w.Write(held.Bytes()); err != nil {
			return sum, err
		}
	}
	return exportSummary{format: m.Format, patient: m.Patient, clinician: m.Clinician, records: tr.Records}, nil
}
