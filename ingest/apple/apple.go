// Package apple imports an Apple Health export: the export.zip the Health
// app writes ("Export All Health Data"), or the export.xml inside it.
//
// [Parse] streams export.xml token by token with encoding/xml, so memory
// stays bounded however large the file is (exports of several GB are
// common). [ParseZip] finds apple_health_export/export.xml inside
// export.zip and streams it out of the archive without unpacking it.
//
// Each supported record becomes one Open mHealth point, built as IEEE 1752
// header JSON and run through omh.Parse:
//
//	HKQuantityTypeIdentifierBloodGlucose       omh:blood-glucose:4.0
//	HKQuantityTypeIdentifierHeartRate          omh:heart-rate:2.0
//	HKQuantityTypeIdentifierStepCount          omh:step-count:3.0
//	HKCorrelationTypeIdentifierBloodPressure   omh:blood-pressure:4.0
//	HKQuantityTypeIdentifierBodyMass           omh:body-weight:3.0
//	HKQuantityTypeIdentifierOxygenSaturation   omh:oxygen-saturation:2.0
//	HKQuantityTypeIdentifierRespiratoryRate    omh:respiratory-rate:2.0
//	HKQuantityTypeIdentifierBodyTemperature    omh:body-temperature:4.0
//	HKCategoryTypeIdentifierSleepAnalysis      omh:sleep-episode:1.1 (Asleep* values)
//
// Everything else (other record types, workouts, activity summaries, the
// Me element, the standalone systolic and diastolic halves of a blood
// pressure) is reported to the sink's Skipped with a reason. The mapping,
// and why each choice was made, is in docs/importers/apple-health.md.
//
// Apple's export has no record ids, so no point gets a uuid: the vault
// derives one from the point's content, and importing the same export twice
// stores nothing new. For that the content is kept deterministic and free
// of anything that changes from one export to the next (the memory address
// Apple writes into every device string is removed).
package apple

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/jupyterhealth/vault/ingest"
)

// exportPath is where the Health app puts export.xml inside export.zip.
const exportPath = "apple_health_export/export.xml"

// Parse reads an Apple Health export.xml from r and hands every reading
// to sink in file order. It returns an *ingest.Error for malformed input,
// the sink's error unchanged, or a read error.
func Parse(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	p := newParser(bufio.NewReaderSize(r, 256<<10), o, sink)
	return p.run()
}

// ParseZip reads an Apple Health export.zip: it finds
// apple_health_export/export.xml (or, failing that, the one entry named
// export.xml in any folder; export_cda.xml is never read) and streams it
// through Parse. Input that is not a zip but starts like XML is parsed as
// export.xml itself, so a caller with random access may hand either file
// here.
func ParseZip(ra io.ReaderAt, size int64, o ingest.Options, sink ingest.Sink) error {
	var head [8]byte
	n, err := ra.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if !bytes.HasPrefix(head[:n], []byte("PK")) {
		if looksLikeXML(head[:n]) {
			return Parse(io.NewSectionReader(ra, 0, size), o, sink)
		}
		return errf(ingest.Pos{}, "unknown_format", "the file is neither a zip archive nor XML; upload the export.zip the Health app wrote, or the export.xml inside it")
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return errf(ingest.Pos{}, "bad_zip", "the zip archive cannot be read (it may be damaged or cut short); export it again from the Health app")
	}
	f, err := findExport(zr.File)
	if err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		return errf(ingest.Pos{Element: f.Name}, "bad_zip", "export.xml cannot be opened in the zip archive (an unsupported compression method, or a damaged archive); export it again from the Health app")
	}
	defer rc.Close()
	return Parse(zipErrReader{rc, f.Name}, o, sink)
}

// findExport picks export.xml among the archive's entries.
func findExport(files []*zip.File) (*zip.File, error) {
	var found *zip.File
	n := 0
	for _, f := range files {
		if f.Name == exportPath {
			return f, nil
		}
		if strings.HasPrefix(f.Name, "__MACOSX/") || f.FileInfo().IsDir() {
			continue
		}
		if path.Base(f.Name) == "export.xml" {
			if found == nil {
				found = f
			}
			n++
		}
	}
	switch n {
	case 0:
		return nil, errf(ingest.Pos{}, "unknown_format", "the zip archive holds no apple_health_export/export.xml; upload the export.zip the Health app wrote")
	case 1:
		return found, nil
	}
	return nil, errf(ingest.Pos{}, "unknown_format", "the zip archive holds more than one export.xml and none at apple_health_export/export.xml; upload one export at a time")
}

// zipErrReader turns a decompression or checksum failure inside the archive
// into an *ingest.Error (the archive is damaged), which encoding/xml hands
// back unchanged.
type zipErrReader struct {
	r    io.Reader
	name string
}

func (z zipErrReader) Read(b []byte) (int, error) {
	n, err := z.r.Read(b)
	if err != nil && err != io.EOF {
		return n, errf(ingest.Pos{Element: z.name}, "bad_zip", "export.xml in the zip archive is damaged (it fails to decompress or its checksum does not match); export it again from the Health app")
	}
	return n, err
}

// Sniff reports whether head, the first bytes of a file, look like an Apple
// Health export: XML whose root element is HealthData (after the XML
// declaration, comments and the DOCTYPE), or a zip archive whose first
// entry lies in apple_health_export/ (as the Health app writes it) or is
// export.xml. head should hold at least the first 512 bytes; Apple's
// DOCTYPE names HealthData at once, so its long internal subset does not
// matter.
func Sniff(head []byte) bool {
	if bytes.HasPrefix(head, []byte("PK\x03\x04")) {
		if len(head) < 30 {
			return false
		}
		n := int(binary.LittleEndian.Uint16(head[26:28]))
		name := head[30:]
		if n < len(name) {
			name = name[:n]
		}
		return bytes.HasPrefix(name, []byte("apple_health_export/")) || string(name) == "export.xml"
	}
	b := skipProlog(head)
	for _, p := range [...]string{"<!DOCTYPE HealthData", "<HealthData"} {
		if bytes.HasPrefix(b, []byte(p)) {
			rest := b[len(p):]
			return len(rest) == 0 || rest[0] == ' ' || rest[0] == '>' || rest[0] == '[' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n' || rest[0] == '/'
		}
	}
	return false
}

// skipProlog skips a byte order mark, white space, the XML declaration,
// processing instructions and comments.
func skipProlog(b []byte) []byte {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			i := bytes.Index(b, []byte("?>"))
			if i < 0 {
				return nil
			}
			b = b[i+2:]
		case bytes.HasPrefix(b, []byte("<!--")):
			i := bytes.Index(b[4:], []byte("-->"))
			if i < 0 {
				return nil
			}
			b = b[4+i+3:]
		default:
			return b
		}
	}
}

func looksLikeXML(head []byte) bool {
	b := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(b) > 0 && b[0] == '<'
}
