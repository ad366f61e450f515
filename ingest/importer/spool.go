package importer

import (
	"errors"
	"io"
	"os"

	"filippo.io/age"
)

// ErrTooLarge is returned by Spool for input over its limit.
var ErrTooLarge = errors.New("the upload is larger than the import limit")

// Spooled is an upload kept on disk for the two passes of an import,
// age-encrypted to a key that exists only in this process's memory: the
// plaintext never reaches the disk, and a file left behind by a crash can't
// be read by anyone.
type Spooled struct {
	f    *os.File
	id   *age.X25519Identity
	size int64 // plaintext size
}

// Spool copies r, up to max bytes, into an encrypted temporary file in dir.
func Spool(r io.Reader, dir string, max int64) (*Spooled, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "import-*.age")
	if err != nil {
		return nil, err
	}
	s := &Spooled{f: f, id: id}
	fail := func(err error) (*Spooled, error) {
		s.Close()
		return nil, err
	}
	w, err := age.Encrypt(f, id.Recipient())
	if err != nil {
		return fail(err)
	}
	n, err := io.Copy(w, io.LimitReader(r, max+1))
	if err != nil {
		return fail(err)
	}
	if n > max {
		return fail(ErrTooLarge)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	s.size = n
	return s, nil
}

// Input returns the spooled bytes as an import's input.
func (s *Spooled) Input() (Input, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return Input{}, err
	}
	ra, size, err := age.DecryptReaderAt(s.f, fi.Size(), s.id)
	if err != nil {
		return Input{}, err
	}
	return Input{
		Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(ra, 0, size)), nil
		},
		ReaderAt: ra,
		Size:     size,
	}, nil
}

// Head returns up to n bytes from the start, for sniffing the format.
func (s *Spooled) Head(n int) ([]byte, error) {
	in, err := s.Input()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, min(int64(n), in.Size))
	_, err = io.ReadFull(io.NewSectionReader(in.ReaderAt, 0, in.Size), buf)
	return buf, err
}

// Size is the plaintext size.
func (s *Spooled) Size() int64 { return s.size }

// Close removes the file.
func (s *Spooled) Close() error {
	s.f.Close()
	return os.Remove(s.f.Name())
}

// Source is an import's file: a spooled upload or a file on disk.
type Source interface {
	Input() (Input, error)
	Head(n int) ([]byte, error)
}

// File is a file on disk as an import's source (the CLI with no server
// running: the file is the user's own, read where it is).
type File struct{ F *os.File }

// Input implements Source.
func (f File) Input() (Input, error) {
	fi, err := f.F.Stat()
	if err != nil {
		return Input{}, err
	}
	return Input{
		Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(f.F, 0, fi.Size())), nil
		},
		ReaderAt: f.F,
		Size:     fi.Size(),
	}, nil
}

// Head implements Source.
func (f File) Head(n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := f.F.ReadAt(buf, 0)
	if err == io.EOF {
		err = nil
	}
	return buf[:m], err
}
