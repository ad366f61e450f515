package keys

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/argon2"
)

// rootKeyPrefix starts every root key file, so a scanner (and a person) can
// tell what the file is.
const rootKeyPrefix = "JHVAULT-ROOT-KEY-1-"

// Root is the top of the key hierarchy. It only ever wraps the master keyset.
type Root struct {
	aead tink.AEAD
	kind string
}

// Kind is "key-file" or "passphrase".
func (r *Root) Kind() string { return r.kind }

func newRoot(key []byte, kind string) (*Root, error) {
	a, err := subtle.NewAESGCM(key)
	if err != nil {
		return nil, err
	}
	return &Root{aead: a, kind: kind}, nil
}

// ErrNoKeyFile is returned by LoadKeyFile when the file does not exist.
var ErrNoKeyFile = errors.New("root key file does not exist")

// LoadKeyFile reads a root key file. It refuses a file that others can read.
func LoadKeyFile(path string) (*Root, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoKeyFile
	}
	if err != nil {
		return nil, fmt.Errorf("root key file: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("root key file %s is readable by group or others (mode %v); run chmod 600 on it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("root key file: %v", err)
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, rootKeyPrefix) {
		return nil, fmt.Errorf("root key file %s is not a vault root key", path)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, rootKeyPrefix))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("root key file %s is corrupt", path)
	}
	return newRoot(key, "key-file")
}

// CreateKeyFile writes a new random root key to path with mode 0600, creating
// its directory with mode 0700. It never overwrites an existing file.
func CreateKeyFile(path string) (*Root, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("root key directory: %v", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create root key file: %v", err)
	}
	_, err = f.WriteString(rootKeyPrefix + base64.RawURLEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write root key file: %v", err)
	}
	return newRoot(key, "key-file")
}

// Argon2Params are the stored parameters of a passphrase root.
type Argon2Params struct {
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// NewArgon2Params returns parameters with a fresh salt and the RFC 9106
// second recommended option (t=3, m=64 MiB).
func NewArgon2Params() Argon2Params {
	salt := make([]byte, 16)
	rand.Read(salt)
	return Argon2Params{Salt: salt, Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
}

// InsecureTestArgon2Params returns parameters cheap enough for tests. They
// are stored like any others, so a vault made with them stays weak: never
// use them outside tests.
func InsecureTestArgon2Params() Argon2Params {
	p := NewArgon2Params()
	p.Time, p.MemoryKiB, p.Threads = 1, 64, 1
	return p
}

// RootFromPassphrase stretches a passphrase with Argon2id.
func RootFromPassphrase(pass []byte, p Argon2Params) (*Root, error) {
	if len(pass) == 0 {
		return nil, errors.New("root passphrase is empty")
	}
	if len(p.Salt) < 16 || p.Time == 0 || p.MemoryKiB == 0 || p.Threads == 0 {
		return nil, errors.New("invalid Argon2id parameters")
	}
	return newRoot(argon2.IDKey(pass, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32), "passphrase")
}
