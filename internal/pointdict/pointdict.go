// Package pointdict compresses canonical Open mHealth points one at a
// time, for the vault's compact records (formats 2 and 3,
// docs/architecture.md).
//
// A sealed record is one reading, so nothing can compress across records;
// what makes a 300-byte point small is a dictionary of what every point
// repeats (the header's field names, schema ids, units, time frames). The
// dictionary is built from synthetic points only, by the generator in
// gen_test.go, and committed as dict-v1.bin:
//
//	VAULT_WRITE_POINT_DICT=1 go test -run TestDictionaryIsGenerated ./internal/pointdict/
//
// A dictionary is part of the record format: records compressed with
// dictionary 1 need dictionary 1 to open, forever. A new dictionary is a
// new version beside this one (dict-v2.bin, V2), never a change to this
// one; TestDictionaryIsGenerated fails if dict-v1.bin changes.
//
// The codec is S2 (github.com/klauspost/compress/s2) with a dictionary:
// measured on 300- and 444-byte CGM points it makes about 60 bytes of
// each, in about 1 µs, and decodes in 0.2-0.5 µs. zstd from the same
// library with a dictionary made 66-72 bytes, but took 25-50 µs per point
// to compress, which would cost more than the rest of ingest together.
package pointdict

import (
	_ "embed"
	"errors"

	"github.com/klauspost/compress/s2"
)

//go:embed dict-v1.bin
var dictV1 []byte

// V1 is the first dictionary's version, the one format 2 and 3 records
// use.
const V1 = 1

// MaxPoint is the largest decompressed point accepted: a stored point
// claiming more is corrupt (the API refuses bodies long before).
const MaxPoint = 1 << 20

// ErrCorrupt is returned for bytes that are not a compressed point.
var ErrCorrupt = errors.New("compressed point is corrupt")

// Dict is a loaded dictionary. It is safe for concurrent use.
type Dict struct{ d *s2.Dict }

// Load returns the dictionary of version v.
func Load(v int) (*Dict, error) {
	if v != V1 {
		return nil, errors.New("unknown point dictionary version")
	}
	d := s2.MakeDict(dictV1, nil)
	if d == nil {
		return nil, errors.New("point dictionary does not load")
	}
	return &Dict{d}, nil
}

// Append appends the compressed form of point to dst.
func (d *Dict) Append(dst, point []byte) []byte {
	n := s2.MaxEncodedLen(len(point))
	start := len(dst)
	if cap(dst)-start < n {
		dst = append(dst[:cap(dst)], make([]byte, start+n-cap(dst))...)
	}
	out := d.d.Encode(dst[start:start+n:start+n], point)
	return dst[:start+len(out)]
}

// Decode appends the point that Append compressed into src to dst.
func (d *Dict) Decode(dst, src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil || n > MaxPoint {
		return nil, ErrCorrupt
	}
	start := len(dst)
	if cap(dst)-start < n {
		dst = append(dst[:cap(dst)], make([]byte, start+n-cap(dst))...)
	}
	out, err := d.d.Decode(dst[start:start+n:start+n], src)
	if err != nil || len(out) != n {
		return nil, ErrCorrupt
	}
	return dst[:start+n], nil
}
