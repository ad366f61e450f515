package export

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"

	"github.com/jupyterhealth/vault/consent"
)

// Manifest is the first line of a decrypted export. It says what was asked,
// what the grants allowed, and where the access sits in the ledger, with the
// proofs a client checks against the checkpoint.
type Manifest struct {
	Manifest    int                         `json:"manifest"` // format version, 1
	Patient     string                      `json:"patient"`
	Clinician   string                      `json:"clinician"`
	Format      string                      `json:"format"`
	Filters     Filters                     `json:"filters"`
	Windows     map[string][]consent.Window `json:"windows"` // per schema: the filters clipped to the grants
	Grants      []Grant                     `json:"grants"`
	AccessStart int64                       `json:"access_start"`
	Recipient   string                      `json:"recipient"`
	Checkpoint  string                      `json:"checkpoint"` // a signed note; verify with the pinned log key
	// Proofs holds, by ledger index, an inclusion proof for each grant and
	// for the access-start, against the checkpoint.
	Proofs map[string]consent.Proof `json:"proofs"`
	// Entries holds, by the same indexes, the canonical entry bytes, so a
	// client computes each leaf hash itself and reads what was logged.
	Entries map[string][]byte `json:"entries"`
}

// Filters are the request's filters.
type Filters struct {
	Schemas []string `json:"schemas"`
	From    string   `json:"from,omitempty"`
	To      string   `json:"to,omitempty"`
}

// Grant names a covering grant.
type Grant struct {
	ID    string `json:"id"`
	Index int64  `json:"index"`
	// Signed says the patient signed the grant with her passkey (its
	// ledger entry carries the WebAuthn assertion); false means it was
	// made with an API token.
	Signed bool `json:"signed"`
}

// Trailer is the last line of a decrypted export.
type Trailer struct {
	Trailer        int    `json:"trailer"` // format version, 1
	Records        int64  `json:"records"`
	ManifestSHA256 string `json:"manifest_sha256"` // of the manifest line, with its newline
	SHA256         string `json:"sha256"`          // of the data lines, each with its newline
	AccessStart    int64  `json:"access_start"`
	Signature      string `json:"signature"` // a signed note over TrailerText, by the log key
}

// TrailerText is the statement a trailer's signature covers.
func TrailerText(accessStart int64, manifestSHA string, records int64, dataSHA string) string {
	return fmt.Sprintf("jupyterhealth-vault export trailer v1\naccess_start %d\nmanifest %s\nrecords %d\nsha256 %s\n", accessStart, manifestSHA, records, dataSHA)
}

// Stats is what Write wrote.
type Stats struct {
	Records int64
	SHA256  []byte // of the data lines
}

// flushAt is how much Write gathers before it hashes and writes: big enough
// that the hash and the age writer run on long runs of bytes.
const flushAt = 64 << 10

// hashBuffers is how many flushAt buffers one export cycles through.
const hashBuffers = 3

// Write streams one export to w (normally an age encrypting writer): the
// manifest line, enc's header, one line per point, and a trailer whose
// statement sign signs with the log key. On an error the trailer is not written, so a
// payload cut short never verifies.
//
// It holds hashBuffers buffers of about flushAt bytes each, whatever the
// size of the export.
func Write(w io.Writer, m *Manifest, enc Encoder, points iter.Seq2[[]byte, error], sign func(text string) ([]byte, error)) (Stats, error) {
	var st Stats
	mb, err := json.Marshal(m)
	if err != nil {
		return st, err
	}
	mb = append(mb, '\n')
	msum := sha256.Sum256(mb)
	if _, err := w.Write(mb); err != nil {
		return st, err
	}
	// The data lines are hashed on their own goroutine while the writer
	// encrypts them: both only read a buffer, and a buffer is reused only
	// once the hash is done with it (the writer is done with it by then).
	h := sha256.New()
	toHash := make(chan []byte, hashBuffers)
	free := make(chan []byte, hashBuffers)
	for range hashBuffers {
		free <- make([]byte, 0, flushAt+4096)
	}
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(b)
			free <- b[:0]
		}
	}()
	buf := <-free
	flush := func() error {
		toHash <- buf
		_, err := w.Write(buf)
		buf = <-free
		return err
	}
	err = func() error {
		defer func() { close(toHash); <-hashed }()
		buf = append(buf, enc.Header()...)
		for p, err := range points {
			if err != nil {
				return err
			}
			if buf, err = enc.AppendRecord(buf, p); err != nil {
				return err
			}
			st.Records++
			if len(buf) >= flushAt {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	}()
	if err != nil {
		return st, err
	}
	st.SHA256 = h.Sum(nil)
	dsum := hex.EncodeToString(st.SHA256)
	signed, err := sign(TrailerText(m.AccessStart, hex.EncodeToString(msum[:]), st.Records, dsum))
	if err != nil {
		return st, err
	}
	tb, err := json.Marshal(Trailer{Trailer: 1, Records: st.Records, ManifestSHA256: hex.EncodeToString(msum[:]), SHA256: dsum, AccessStart: m.AccessStart, Signature: string(signed)})
	if err != nil {
		return st, err
	}
	_, err = w.Write(append(tb, '\n'))
	return st, err
}
