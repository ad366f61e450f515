// Package importer runs an import: it parses a file twice, first to check
// all of it, then to store it, so a malformed file stores nothing.
//
// A file of up to [OneTransaction] readings is stored in one transaction:
// it imports whole or not at all. A bigger one (a multi-GB Apple Health
// export holds millions) is stored in transactions of [Chunk] readings,
// in file order, after the whole file has been checked. Only a
// storage failure (a full disk, a shutdown) can stop it half way; the
// answer then says how far it got, and running the same import again
// finishes it: every reading already stored is a duplicate and costs a
// lookup, so no import id has to be kept.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// OneTransaction is the size of the biggest file (in readings) that is
// stored in one transaction, atomically.
const OneTransaction = 20000

// Chunk is the size of the transactions a bigger file is stored in. It is
// smaller than OneTransaction: a transaction's readings are held in memory
// until it commits, and a big file gains nothing from big ones.
const Chunk = 5000

// MaxSkipRows is how many skipped rows an answer lists one by one.
const MaxSkipRows = 20

// Store is what an import writes to: a *vault.Vault.
type Store interface {
	Ingest(ctx context.Context, patientID string, pts []*omh.Point) (vault.IngestResult, error)
}

// Input is a file to import. Open is called once per pass and must give
// the same bytes each time.
type Input struct {
	// Open returns a reader over the whole file.
	Open func() (io.ReadCloser, error)
	// ReaderAt and Size give random access, for formats that need it (a
	// zip). Either may be unset for a format that only streams.
	ReaderAt io.ReaderAt
	Size     int64
}

// Format is one importable format.
type Format struct {
	Name string
	// Parse streams the format. ParseAt, when set, is used instead for
	// input with random access (Apple's export.zip).
	Parse   ingest.Parser
	ParseAt func(ra io.ReaderAt, size int64, o ingest.Options, sink ingest.Sink) error
}

// Counts are one type's numbers.
type Counts struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// Result is what an import did.
type Result struct {
	Format     string            `json:"format"`
	Readings   int               `json:"readings"` // found in the file
	Accepted   int               `json:"accepted"`
	Duplicates int               `json:"duplicates"`
	Skipped    int               `json:"skipped"`
	BySchema   map[string]Counts `json:"by_schema"`       // by canonical schema id
	SkippedBy  map[string]int    `json:"skipped_by_type"` // by the source's own type
	SkipRows   []ingest.Skip     `json:"skipped_rows"`    // the first MaxSkipRows
	// Transactions is how many transactions stored the readings: 1 means
	// the file was stored atomically.
	Transactions int  `json:"transactions"`
	Complete     bool `json:"complete"`
}

// ErrStopped wraps a storage failure after some readings were stored; the
// Result says how many.
var ErrStopped = errors.New("the import stopped part way")

// Run imports in into patientID's records.
func Run(ctx context.Context, st Store, patientID string, f Format, in Input, o ingest.Options) (Result, error) {
	res := Result{Format: f.Name, BySchema: map[string]Counts{}, SkippedBy: map[string]int{}, SkipRows: []ingest.Skip{}}
	check := &checkSink{ctx: ctx, res: &res}
	if err := parse(f, in, o, check); err != nil {
		return Result{Format: f.Name}, err
	}
	if res.Readings == 0 {
		res.Complete = true
		return res, nil
	}
	size := OneTransaction
	if res.Readings > OneTransaction {
		size = Chunk
	}
	store := &storeSink{ctx: ctx, st: st, patient: patientID, res: &res, size: size}
	err := parse(f, in, o, store)
	if err == nil && store.seen != res.Readings {
		// Checked before the last transaction, so a small file that
		// changed between the passes stores nothing.
		return res, fmt.Errorf("%w: the file changed during the import (%d readings, then %d); %d were stored", ErrStopped, res.Readings, store.seen, res.Accepted+res.Duplicates)
	}
	if err == nil {
		err = store.flush()
	}
	var pe *ingest.Error
	switch {
	case err == nil:
	case errors.As(err, &pe):
		// The file parsed in the first pass; a second parse that fails
		// means it changed under us.
		return res, fmt.Errorf("%w after %d of %d readings: the file changed during the import (%v)", ErrStopped, res.Accepted+res.Duplicates, res.Readings, err)
	default:
		return res, fmt.Errorf("%w after %d of %d readings; run the same import again to finish it: %w", ErrStopped, res.Accepted+res.Duplicates, res.Readings, err)
	}
	res.Complete = true
	return res, nil
}

func parse(f Format, in Input, o ingest.Options, sink ingest.Sink) error {
	if f.ParseAt != nil && in.ReaderAt != nil {
		return f.ParseAt(in.ReaderAt, in.Size, o, sink)
	}
	if f.Parse == nil {
		return &ingest.Error{Code: "bad_input", Message: "this format needs a file the vault can read at random (a zip); upload it as a file"}
	}
	r, err := in.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	return f.Parse(r, o, sink)
}

// Bounds on what a file can make the answer hold: the source's own type
// names are the file's text.
const (
	maxSkipTypes   = 64
	maxSkipTypeLen = 128
	otherTypes     = "(other types)"
)

// checkSink is the first pass: it counts and checks, storing nothing.
type checkSink struct {
	ctx context.Context
	res *Result
	n   int
}

// tick checks for cancellation now and then: a client gone mid-upload
// stops a long first pass too.
func (c *checkSink) tick() error {
	if c.n++; c.n%4096 == 0 {
		return c.ctx.Err()
	}
	return nil
}

func (c *checkSink) Reading(it ingest.Item) error {
	if !vault.TimeInRange(it.Point.Time) {
		return ingest.Errorf(it.Pos, "bad_time", "the reading's time is outside the years the vault stores (1900 to 2199)")
	}
	c.res.Readings++
	return c.tick()
}

func (c *checkSink) Skipped(s ingest.Skip) error {
	c.res.Skipped++
	typ := s.Type
	if len(typ) > maxSkipTypeLen {
		typ = otherTypes
	}
	if _, ok := c.res.SkippedBy[typ]; !ok && len(c.res.SkippedBy) >= maxSkipTypes {
		typ = otherTypes
	}
	c.res.SkippedBy[typ]++
	if len(c.res.SkipRows) < MaxSkipRows {
		if len(s.Type) > maxSkipTypeLen {
			s.Type = otherTypes
		}
		c.res.SkipRows = append(c.res.SkipRows, s)
	}
	return c.tick()
}

// storeSink is the second pass: it stores readings in transactions of
// size readings, in file order.
type storeSink struct {
	ctx     context.Context
	st      Store
	patient string
	res     *Result
	batch   []*omh.Point
	seen    int
	size    int // readings per transaction
}

func (s *storeSink) Reading(it ingest.Item) error {
	s.seen++
	s.batch = append(s.batch, it.Point)
	if len(s.batch) >= s.size {
		return s.flush()
	}
	return nil
}

func (s *storeSink) Skipped(ingest.Skip) error { return nil }

func (s *storeSink) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	r, err := s.st.Ingest(s.ctx, s.patient, s.batch)
	if err != nil {
		return err
	}
	s.res.Transactions++
	s.res.Accepted += r.Accepted
	s.res.Duplicates += r.Duplicates
	for schema, c := range r.BySchema {
		sc := s.res.BySchema[schema]
		sc.Accepted += c.Accepted
		sc.Duplicates += c.Duplicates
		s.res.BySchema[schema] = sc
	}
	clear(s.batch)
	s.batch = s.batch[:0]
	return nil
}

// Schemas lists a result's schemas in order, for display.
func (r Result) Schemas() []string {
	var out []string
	for s := range r.BySchema {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Registry is the set of import formats (ingest/formats).
type Registry interface {
	Lookup(name string) (Format, bool)
	Sniff(head []byte) (Format, bool)
	Names() []string
}

// Why Import refuses before reading a file.
var (
	ErrBadDateOrder = errors.New("the date order must be " + ingest.DateMonthFirst + " or " + ingest.DateDayFirst)
	ErrNotPatient   = errors.New("only a patient's records can be imported")
	ErrUnrecognised = errors.New("the file's format was not recognised")
)

// SniffBytes is how much of a file recognising its format reads.
const SniffBytes = 8 << 10

// Import imports src into a patient's records: in format f, or in the
// format recognised from the file's start when f is unnamed, reading
// timestamps without an offset in the patient's time zone. It is what the
// API, the CLI and the web UI's upload form share.
func Import(ctx context.Context, v *vault.Vault, reg Registry, patientID string, f Format, dateOrder string, src Source) (Result, error) {
	switch dateOrder {
	case "", ingest.DateMonthFirst, ingest.DateDayFirst:
	default:
		return Result{}, ErrBadDateOrder
	}
	u, err := v.User(ctx, patientID)
	if err != nil {
		return Result{}, err
	}
	if u.Role != vault.RolePatient {
		return Result{}, ErrNotPatient
	}
	loc := time.UTC
	if u.TimeZone != "" {
		// The binary embeds the zone database (time/tzdata), so a zone
		// that doesn't load is a broken account, not a missing file: local
		// times read in UTC would all be off.
		if loc, err = time.LoadLocation(u.TimeZone); err != nil {
			return Result{}, fmt.Errorf("the patient's time zone does not load: %v", err)
		}
	}
	if f.Name == "" {
		head, err := src.Head(SniffBytes)
		if err != nil {
			return Result{}, err
		}
		var ok bool
		if f, ok = reg.Sniff(head); !ok {
			return Result{}, ErrUnrecognised
		}
	}
	in, err := src.Input()
	if err != nil {
		return Result{}, err
	}
	return Run(ctx, v, patientID, f, in, ingest.Options{Location: loc, DateOrder: dateOrder})
}
