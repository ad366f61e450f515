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

// LatestCheckpoint returns the newest signed checkpoint, or nil if none:
// the newest stored one, or one signed since (CheckpointCovering) that Run
// has not stored yet.
func (l *Ledger) LatestCheckpoint() ([]byte, error) {
	var out []byte
	var size int64
	err := l.view(func(tx ledgerstore.ReadTx) error {
		var v []byte
		var err error
		size, v, err = tx.LatestCheckpoint()
		out = bytes.Clone(v)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if l.cp != nil && (out == nil || l.cpSize > size) {
		return l.cp, nil
	}
	return out, nil
}

// signRound is one signing in flight; whoever needs a checkpoint while it
// runs waits for it instead of signing again.
type signRound struct {
	done chan struct{}
	err  error
}

// CheckpointCovering returns a signed checkpoint of size at least n (the
// log must hold n entries, committed) and its size. It costs no write:
// the newest checkpoint signed so far is kept in memory, and one that
// covers n is returned as it is. Otherwise it signs the log as it stands
// now, from a read transaction; at most one signing runs at a time, and
// those who ask while it runs wait for it, so a burst of exports shares a
// signature or two rather than one each. The checkpoints it signs are
// stored on Run's schedule (or by Sign), not per call: each is of a
// committed prefix of the log, so the log stays consistent with it
// whether or not it was stored.
func (l *Ledger) CheckpointCovering(n int64) ([]byte, int64, error) {
	for {
		l.cpMu.Lock()
		if l.cp != nil && l.cpSize >= n {
			cp, size := l.cp, l.cpSize
			l.cpMu.Unlock()
			return cp, size, nil
		}
		if r := l.cpRound; r != nil {
			l.cpMu.Unlock()
			<-r.done
			if r.err != nil {
				return nil, 0, r.err
			}
			continue // it may have signed a tree that is still too small
		}
		r := &signRound{done: make(chan struct{})}
		l.cpRound = r
		l.cpMu.Unlock()

		cp, size, err := l.signView()
		l.cpMu.Lock()
		if err == nil {
			l.noteSigned(cp, size)
			if size < n {
				err = fmt.Errorf("the log holds %d entries, fewer than the %d a checkpoint was asked to cover", size, n)
			}
		}
		r.err = err
		l.cpRound = nil
		l.cpMu.Unlock()
		close(r.done)
		if err != nil {
			return nil, 0, err
		}
	}
}

// noteSigned keeps cp as the newest signed checkpoint if it is newer;
// the caller holds cpMu.
func (l *Ledger) noteSigned(cp []byte, size int64) {
	if l.cp == nil || size > l.cpSize {
		l.cp, l.cpSize = cp, size
	}
}

// signView signs a checkpoint of the committed log, read in one read
// transaction. Ed25519 signatures are deterministic, so signing one tree
// twice gives the same bytes.
func (l *Ledger) signView() (signed []byte, size int64, err error) {
	var h tlog.Hash
	err = l.view(func(tx ledgerstore.ReadTx) error {
		var err error
		if size, err = tx.Size(); err != nil {
			return err
		}
		h, err = tlog.TreeHash(size, tx)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	signed, err = note.Sign(&note.Note{Text: string(Checkpoint{Origin: l.origin, Size: size, Hash: h}.Marshal())}, l.signer)
	return signed, size, err
}

// Sign returns a signed checkpoint of the whole log as it stands, and
// stores it (unless a stored one already covers it). A caller that wants
// the checkpoint kept (a patient's ledger page, serve when it stops)
// calls it; one that needs a proof against its own entries calls
// CheckpointCovering, and Run stores the newest about once a second.
func (l *Ledger) Sign() ([]byte, error) {
	n, err := l.Size()
	if err != nil {
		return nil, err
	}
	cp, size, err := l.CheckpointCovering(n)
	if err != nil {
		return nil, err
	}
	if err := l.storeCheckpoint(cp, size); err != nil {
		return nil, err
	}
	return cp, nil
}

// storeCheckpoint stores a signed checkpoint unless a stored one is as
// new. It takes the store's write transaction but not the ledger's commit
// lock, so it never waits for, or holds up, a group commit beyond the
// store's own serialisation.
func (l *Ledger) storeCheckpoint(cp []byte, size int64) error {
	// Look first in a read transaction: a write one that writes nothing
	// still costs a commit.
	var stored int64
	err := l.view(func(tx ledgerstore.ReadTx) error {
		var err error
		stored, _, err = tx.LatestCheckpoint()
		return err
	})
	if err != nil || stored >= size {
		return err
	}
	err = l.update(func(tx ledgerstore.WriteTx) error {
		stored, _, err := tx.LatestCheckpoint()
		if err != nil || stored >= size {
			return err
		}
		return tx.PutCheckpoint(size, cp)
	})
	if err == nil {
		l.cpMu.Lock()
		l.lastSigned = l.now()
		l.seenStored = max(l.seenStored, size)
		l.cpMu.Unlock()
	}
	return err
}

// SignIfDue signs and stores a checkpoint when entries arrived since the
// last stored one and at least SignInterval has passed. Run calls it.
//
// On a store other replicas append to, every replica runs it, and one
// stores for all: a replica that finds a stored checkpoint it has not
// seen before (another replica stored it within the last interval) skips
// this round and looks again an interval later; when the one storing
// stops, the others find nothing new and take over. Two replicas ticking
// at the same moment may both store; checkpoints are stored by size, once
// each, and only ever larger than the newest, so the log of checkpoints
// stays one growing, consistent log either way.
func (l *Ledger) SignIfDue() error {
	l.cpMu.Lock()
	due := l.now().Sub(l.lastSigned) >= SignInterval
	l.cpMu.Unlock()
	if !due {
		return nil
	}
	if l.shared != nil {
		var stored int64
		err := l.view(func(tx ledgerstore.ReadTx) error {
			var err error
			stored, _, err = tx.LatestCheckpoint()
			return err
		})
		if err != nil {
			return err
		}
		l.cpMu.Lock()
		other := stored > l.seenStored
		if other {
			l.seenStored, l.lastSigned = stored, l.now()
		}
		l.cpMu.Unlock()
		if other {
			return nil
		}
	}
	_, err := l.Sign()
	return err
}

// SignNote signs text (which must end in a newline) with the log key as a
// C2SP signed note, for statements such as an export's trailer.
func (l *Ledger) SignNote(text string) ([]byte, error) {
	return note.Sign(&note.Note{Text: text}, l.signer)
}
