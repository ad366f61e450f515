package consent

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the body of a signed checkpoint, in the C2SP
// tlog-checkpoint form:
//
//	<origin>
//	<tree size, decimal>
//	<root hash, standard base64>
//
// It is signed as a C2SP signed note with the log's Ed25519 key.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// Marshal returns the checkpoint body.
func (c Checkpoint) Marshal() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint body. Only the canonical form is
// accepted (no extension lines), so parsing then marshalling returns the
// same bytes.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, errors.New("checkpoint must be three lines: origin, size, root hash")
	}
	origin := lines[0]
	if origin == "" || strings.ContainsFunc(origin, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return Checkpoint{}, errors.New("checkpoint origin is empty or has spaces or control characters")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, errors.New("checkpoint size is not a canonical non-negative decimal")
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, errors.New("checkpoint root hash is not 32 bytes of base64")
	}
	c := Checkpoint{Origin: origin, Size: n}
	copy(c.Hash[:], h)
	if !bytes.Equal(c.Marshal(), text) {
		return Checkpoint{}, errors.New("checkpoint is not in canonical form")
	}
	return c, nil
}

// OpenCheckpoint verifies a signed checkpoint against a pinned verifier key
// and parses it.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %v", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature does not verify: %v", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's log %q", c.Origin, v.Name())
	}
	return c, nil
}

// SignInterval is the most often Run signs a checkpoint.
const SignInterval = time.Second

// LatestCheckpoint returns the newest signed checkpoint, or nil if none.
func (l *Ledger) LatestCheckpoint() ([]byte, error) {
	var out []byte
	err := l.view(func(tx ledgerstore.ReadTx) error {
		_, v, err := tx.LatestCheckpoint()
		out = bytes.Clone(v)
		return err
	})
	return out, err
}

// Sign signs a checkpoint of the whole log now (unless the newest one
// already covers it) and returns it. A caller that needs a proof against
// the latest entries calls it; otherwise Run signs about once a second.
func (l *Ledger) Sign() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.signLocked()
}

func (l *Ledger) signLocked() ([]byte, error) {
	var out []byte
	err := l.update(func(tx ledgerstore.WriteTx) error {
		n, err := tx.Size()
		if err != nil {
			return err
		}
		size, v, err := tx.LatestCheckpoint()
		if err != nil {
			return err
		}
		if v != nil && size == n {
			out = bytes.Clone(v)
			return nil
		}
		h, err := tlog.TreeHash(n, tx)
		if err != nil {
			return err
		}
		signed, err := note.Sign(&note.Note{Text: string(Checkpoint{Origin: l.origin, Size: n, Hash: h}.Marshal())}, l.signer)
		if err != nil {
			return err
		}
		out = signed
		return tx.PutCheckpoint(n, signed)
	})
	if err == nil {
		l.lastSigned = l.now()
	}
	return out, err
}

// SignIfDue signs when entries arrived since the last checkpoint and at
// least SignInterval has passed. Run calls it.
func (l *Ledger) SignIfDue() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.now().Sub(l.lastSigned) < SignInterval {
		return nil
	}
	_, err := l.signLocked()
	return err
}

// SignNote signs text (which must end in a newline) with the log key as a
// C2SP signed note, for statements such as an export's trailer.
func (l *Ledger) SignNote(text string) ([]byte, error) {
	return note.Sign(&note.Note{Text: text}, l.signer)
}
