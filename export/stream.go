package export

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"sync"

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

// firstFlushAt is where the first flush of an export happens instead. The
// age writer gathers each 64 KiB chunk in a buffer that grows as it is
// written and then needs 16 bytes more to seal the chunk in place: filled
// by writes of 64 KiB it allocates 64 KiB, then 128 KiB, for every export.
// A first write of 32 to 40 KiB makes it allocate 40 KiB, then 80 KiB,
// which holds a sealed chunk: about 70 KiB less per export. (Only
// allocation depends on this, never the bytes written.)
const firstFlushAt = 36 << 10

// bufCap is the capacity of a buffer: flushAt and room for the record that
// crosses it. A buffer that had to grow past it (a record longer than
// 4 KiB at the boundary) is not kept.
const bufCap = flushAt + 4096

// hashBuffers is the most buffers one export cycles through.
const hashBuffers = 3

// Pool keeps the buffers exports gather their data lines in, so that an
// export takes them from the exports before it instead of allocating
// about 200 KiB of its own. A server keeps one Pool for all its exports;
// the zero value is ready, and it is safe for concurrent use. It must not
// be copied after first use.
//
// The buffers hold plaintext. Each one is cleared, over its whole
// capacity, before it goes back to the pool, so no reading of one export
// is in a buffer another export takes, and none stays in memory after its
// export ends. The pool holds buffers of one size only ([sync.Pool]
// drops them when memory is collected), and an export never holds more
// than hashBuffers of them, whatever its size.
type Pool struct {
	bufs sync.Pool // of *[]byte, len 0, cap bufCap, all zero
}

func (p *Pool) get() *[]byte {
	if b, ok := p.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, bufCap)
	return &b
}

// put clears b and keeps it if it still has the standard size.
func (p *Pool) put(b *[]byte) {
	full := (*b)[:cap(*b)]
	clear(full)
	if cap(full) != bufCap {
		return
	}
	*b = full[:0]
	p.bufs.Put(b)
}

// Write streams one export to w with buffers of its own; see [Pool.Write].
func Write(w io.Writer, m *Manifest, enc Encoder, points iter.Seq2[[]byte, error], sign func(text string) ([]byte, error)) (Stats, error) {
	var p Pool
	return p.Write(w, m, enc, points, sign)
}

// Write streams one export to w (normally an age encrypting writer): the
// manifest line, enc's header, one line per point, and a trailer whose
// statement sign signs with the log key. On an error the trailer is not
// written, so a payload cut short never verifies.
//
// It gathers the data lines in buffers of about flushAt bytes taken from
// p (one for an export that fits in it, at most hashBuffers), whatever the
// size of the export, and gives them back, cleared, before it returns.
// w sees each buffer only for the length of its Write call, and only the
// bytes of this export.
func (p *Pool) Write(w io.Writer, m *Manifest, enc Encoder, points iter.Seq2[[]byte, error], sign func(text string) ([]byte, error)) (Stats, error) {
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
	toHash := make(chan *[]byte, hashBuffers)
	free := make(chan *[]byte, hashBuffers)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(*b)
			*b = (*b)[:0]
			free <- b
		}
	}()
	buf, taken := p.get(), 1
	flush := func() error {
		b := *buf // read before the hash goroutine may reset it
		toHash <- buf
		_, err := w.Write(b)
		select {
		case buf = <-free:
		default:
			if taken < hashBuffers {
				buf, taken = p.get(), taken+1
			} else {
				buf = <-free
			}
		}
		return err
	}
	err = func() error {
		defer func() { close(toHash); <-hashed }()
		*buf = append(*buf, enc.Header()...)
		limit := firstFlushAt
		for pt, err := range points {
			if err != nil {
				return err
			}
			b, err := enc.AppendRecord(*buf, pt)
			if err != nil {
				return err
			}
			if cap(b) != cap(*buf) {
				// A long record moved the lines to a bigger array: the
				// one left behind is cleared like any buffer.
				clear((*buf)[:cap(*buf)])
			}
			*buf = b
			st.Records++
			if len(*buf) >= limit {
				if err := flush(); err != nil {
					return err
				}
				limit = flushAt
			}
		}
		return flush()
	}()
	// The hash is done and the writer has returned: every buffer taken is
	// buf or waits in free.
	p.put(buf)
	for range taken - 1 {
		p.put(<-free)
	}
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
