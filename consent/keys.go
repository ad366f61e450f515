package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"
)

// KeyState is a clinician's registered export recipient, as the index holds
// it. Adds and removals are ledger entries (key transparency).
type KeyState struct {
	Clinician   string     `json:"clinician"`
	Fingerprint string     `json:"fingerprint"`
	Recipient   string     `json:"recipient"`
	Label       string     `json:"label,omitempty"`
	Index       int64      `json:"index"` // the clinician-key-added entry
	Added       time.Time  `json:"added"`
	ActiveFrom  time.Time  `json:"active_from"`
	RemoveIndex *int64     `json:"remove_index,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
	// Confirmed: the clinician-key-added entry carries a passkey
	// assertion (the key was registered in the web UI).
	Confirmed bool `json:"confirmed,omitempty"`
}

// Active reports whether the key may receive exports at now: not removed,
// and past its activation delay.
func (k *KeyState) Active(now time.Time) bool {
	return k.RemoveIndex == nil && !now.Before(k.ActiveFrom)
}

// Fingerprint names an age recipient: "fp_" and the first 16 bytes of the
// SHA-256 of its canonical string, in hex. Grants pin recipients by it.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return "fp_" + hex.EncodeToString(sum[:16])
}

// Key errors.
var (
	ErrNoKey      = errors.New("no such clinician key")
	ErrKeyExists  = errors.New("the clinician already has this key")
	ErrKeyRemoved = errors.New("the key is already removed")
)

const keyRowPrefix = "key/"

func keyRowID(clinician, fingerprint string) string {
	return keyRowPrefix + clinician + "/" + fingerprint
}

func isKeyRow(id string) bool { return strings.HasPrefix(id, keyRowPrefix) }

// nextKeyState is what a key entry at index i makes of the key's state.
func nextKeyState(prev *KeyState, i int64, e *Entry) (*KeyState, error) {
	k := e.Key
	if e.Clinician == "" || k.Fingerprint == "" {
		return nil, errors.New("a key entry names a clinician and a fingerprint")
	}
	at, _ := parseTime(e.Time)
	switch e.Kind {
	case KindClinicianKeyAdd:
		if prev != nil && prev.RemoveIndex == nil {
			return nil, ErrKeyExists
		}
		if k.Recipient == "" {
			return nil, errors.New("a key added names its recipient")
		}
		from, err := parseTime(k.ActiveFrom)
		if err != nil {
			return nil, errors.New("key active_from is not RFC 3339")
		}
		if from.IsZero() {
			from = at
		}
		return &KeyState{Clinician: e.Clinician, Fingerprint: k.Fingerprint, Recipient: k.Recipient, Label: k.Label, Index: i, Added: at, ActiveFrom: from, Confirmed: k.Assertion != nil}, nil
	case KindClinicianKeyDel:
		if prev == nil {
			return nil, ErrNoKey
		}
		if prev.RemoveIndex != nil {
			return nil, ErrKeyRemoved
		}
		st := *prev
		st.RemoveIndex, st.RemovedAt = &i, &at
		return &st, nil
	}
	return nil, nil
}

// ClinicianKeys returns a clinician's keys (removed ones too), oldest first;
// none when the index cannot be brought up to date (see Ledger.index).
func (l *Ledger) ClinicianKeys(clinician string) []KeyState {
	x, err := l.index()
	if err != nil {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []KeyState
	for _, k := range x.keys {
		if k.Clinician == clinician {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b KeyState) int { return int(a.Index - b.Index) })
	return out
}
