package vault

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
)

func keysForPatient(v *Vault, id string) (*keys.PatientKeys, []byte, error) {
	return keys.NewPatientKeys(v.master, id)
}

// Storable time range: a reading's time is kept as int64 nanoseconds.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TimeInRange reports whether a reading's time can be stored.
func TimeInRange(t time.Time) bool { return !t.Before(MinTime) && t.Before(MaxTime) }

// Record formats (docs/architecture.md, "Record formats"). RecordFormat
// is the one new readings are sealed in; every format listed opens.
const (
	// FormatWrapped (v1): canonical JSON padded to 32 bytes, sealed under
	// a random DEK that is wrapped under the patient's KEK and stored
	// beside it (keys.PatientKeys.Seal).
	FormatWrapped = keys.EnvelopeWrapped
	// FormatCompact (v2): canonical JSON compressed with point dictionary
	// 1 (internal/pointdict), padded to 8 bytes, sealed under a key
	// derived from the patient's key and the record's identity
	// (keys.PatientKeys.SealDerived).
	FormatCompact = keys.EnvelopeDerived
	// FormatIdentity (v3): format 2 with the nonce prefix (the input of
	// the record's subkey) made from the record's identity by recordID
	// instead of a SHA-256 of its AD, and a binary AD
	// (keys.PatientKeys.SealIdentity).
	FormatIdentity = keys.EnvelopeIdentity

	RecordFormat = FormatIdentity
)

// recordAD binds a sealed reading to its patient, schema, time and uuid
// tag; the record format's version is part of it. Formats 1 and 2 write
// the time in decimal and the tag in hex; format 3 writes both as they
// are, 24 bytes at the end (a patient id and a schema id hold no '|').
func recordAD(dst []byte, format int, patient, schema string, t int64, tag [keys.TagSize]byte) []byte {
	switch format {
	case FormatIdentity:
		dst = append(dst, "jhvault/record/v3|"...)
	case FormatCompact:
		dst = append(dst, "jhvault/record/v2|"...)
	default:
		dst = append(dst, "jhvault/record/v1|"...)
	}
	dst = append(dst, patient...)
	dst = append(dst, '|')
	dst = append(dst, schema...)
	dst = append(dst, '|')
	if format == FormatIdentity {
		dst = binary.BigEndian.AppendUint64(dst, uint64(t))
		return append(dst, tag[:]...)
	}
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, '|')
	return hex.AppendEncode(dst, tag[:])
}

// recordID is a format 3 record's identity, the input of its subkey (its
// nonce prefix): its dedup tag XOR (its time, 8 bytes big-endian ‖ its
// schema's code). The patient is not in it: her record root key is
// hers alone. Two records of one patient get one id only if
//   - they have the same uuid (so the same tag), time and schema code:
//     the same identity, since schema codes differ (TestSchemaCodes), or
//   - their uuids differ and the XOR of their tags equals the XOR of
//     their (time ‖ code): tags are AES-CMAC outputs under the
//     patient's PRF key, so that happens with a chance of 2^-128 per
//     pair (someone who uploads and reads the stored tags can choose a
//     time to match half of it; the schema-code half still takes a
//     birthday search over about 2^26 uploaded uuids per pair).
//
// Either way a shared id costs what sealing one identity twice costs in
// format 2: one subkey, two seals, told apart by 64 random nonce bits.
func recordID(code schemaCode, t int64, tag [keys.TagSize]byte) [keys.IDSize]byte {
	var id [keys.IDSize]byte
	binary.BigEndian.PutUint64(id[:8], uint64(t))
	copy(id[8:], code[:])
	for i := range id {
		id[i] ^= tag[i]
	}
	return id
}

// schemaCode is 8 bytes of SHA-256 of a schema id, computed once per
// schema a goroutine seals or opens (schemaCodes).
type schemaCode [8]byte

// schemaCodes remembers the last schema's code: a scan reads one schema,
// and an upload is mostly one.
type schemaCodes struct {
	schema string
	code   schemaCode
}

func (c *schemaCodes) of(schema string) schemaCode {
	if schema != c.schema || c.schema == "" {
		h := sha256.Sum256([]byte("jhvault/record/v3/schema|" + schema))
		c.schema, c.code = schema, schemaCode(h[:8])
	}
	return c.code
}

// IngestResult counts what an ingest stored.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	// BySchema splits the counts by canonical schema id.
	BySchema map[string]Counts `json:"-"`
	// Stored says, point by point in the order given, whether the point
	// was stored now (true) or was already there (a duplicate).
	Stored []bool `json:"-"`
}

// Counts are one schema's share of an IngestResult.
type Counts struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// parallelMin is the batch size from which sealing is spread over all cores.
const parallelMin = 256

// Ingest seals and stores validated points for one patient, atomically. A
// point without a uuid gets one derived under the patient's dedup key from
// its content (or its original OMH 1.x id), so re-sending it is a duplicate.
// It is Seal, then Store.
func (v *Vault) Ingest(ctx context.Context, patientID string, pts []*omh.Point) (IngestResult, error) {
	b, err := v.Seal(ctx, patientID, pts)
	if err != nil {
		return IngestResult{}, err
	}
	return v.Store(ctx, b)
}

// A SealedBatch is a batch of points sealed for one patient by Seal, ready
// for Store.
type SealedBatch struct {
	patient string
	recs    []Record
}

// Seal is the work of Ingest done on the CPU: it derives each point's
// uuid if it has none (setting it on the point) and its tag, and seals it.
// Nothing is stored. A caller that bounds how many ingests compute at once
// (the API's ingest slots) bounds Seal, and lets Store wait for the disk
// outside that bound, where the store's group commit merges the batches
// waiting into one transaction.
func (v *Vault) Seal(ctx context.Context, patientID string, pts []*omh.Point) (*SealedBatch, error) {
	pk, err := v.patientKeys(ctx, patientID)
	if err != nil {
		return nil, err
	}
	for _, p := range pts {
		if !TimeInRange(p.Time) {
			return nil, errors.New("reading time out of range")
		}
	}
	recs := make([]Record, len(pts))
	seal := func(lo, hi int) error {
		var buf, ad, comp []byte
		var codes schemaCodes
		for i := lo; i < hi; i++ {
			p := pts[i]
			if p.UUID == "" {
				var src []byte
				if p.SourceID != "" {
					src = append([]byte("source-id|"+p.Schema.String()+"|"), p.SourceID...)
				} else {
					src = p.AppendJSON(buf[:0])
				}
				u, err := pk.DeriveUUID(src)
				if err != nil {
					return err
				}
				p.SetUUID(u)
			}
			tag, err := pk.Tag(p.UUID)
			if err != nil {
				return err
			}
			r := &recs[i]
			r.Schema, r.Time, r.Tag = p.Schema.String(), p.Time.UnixNano(), tag
			buf = p.AppendJSON(buf[:0])
			if r.Value, err = v.sealRecord(pk, v.writeFormat, patientID, r, buf, &ad, &comp, &codes); err != nil {
				return err
			}
		}
		return nil
	}
	if err := parallel(len(pts), seal); err != nil {
		return nil, err
	}
	return &SealedBatch{patient: patientID, recs: recs}, nil
}

// Store stores a batch Seal made, atomically: every new record or none. A
// record stored before is a duplicate.
func (v *Vault) Store(ctx context.Context, b *SealedBatch) (IngestResult, error) {
	recs := b.recs
	n, err := v.b.Insert(ctx, b.patient, recs)
	if errors.Is(err, ErrNotFound) {
		return IngestResult{}, ErrNoPatient
	}
	if err != nil {
		return IngestResult{}, err
	}
	res := IngestResult{Accepted: n, Duplicates: len(recs) - n, BySchema: map[string]Counts{}, Stored: make([]bool, len(recs))}
	for i := range recs {
		res.Stored[i] = recs[i].Stored
		c := res.BySchema[recs[i].Schema]
		if recs[i].Stored {
			c.Accepted++
		} else {
			c.Duplicates++
		}
		res.BySchema[recs[i].Schema] = c
	}
	return res, nil
}

// sealRecord seals one canonical point for r's identity in format. ad,
// comp and codes are the caller's scratch.
func (v *Vault) sealRecord(pk *keys.PatientKeys, format int, patientID string, r *Record, point []byte, ad, comp *[]byte, codes *schemaCodes) ([]byte, error) {
	*ad = recordAD((*ad)[:0], format, patientID, r.Schema, r.Time, r.Tag)
	if format == FormatWrapped {
		return pk.Seal(point, *ad)
	}
	*comp = v.dict.Append((*comp)[:0], point)
	if format == FormatCompact {
		return pk.SealDerived(nil, *comp, *ad)
	}
	return pk.SealIdentity(nil, *comp, *ad, recordID(codes.of(r.Schema), r.Time, r.Tag))
}

// openRecord opens a sealed record of any format in place and returns
// its canonical point, appended to arena for a compact record (so the
// point stays valid while the arena's block lives).
func (v *Vault) openRecord(pk *keys.PatientKeys, patientID string, r *Record, s *openScratch) ([]byte, error) {
	format := keys.EnvelopeVersion(r.Value)
	s.ad = recordAD(s.ad[:0], format, patientID, r.Schema, r.Time, r.Tag)
	var id [keys.IDSize]byte
	if format == FormatIdentity {
		id = recordID(s.codes.of(r.Schema), r.Time, r.Tag)
	}
	pt, err := pk.OpenInPlaceID(r.Value, s.ad, id, &s.keys)
	if err != nil || format == FormatWrapped {
		return pt, err
	}
	// Points already returned keep the block they are in; Decode moves
	// to a new block when this one is too short.
	if cap(s.arena)-len(s.arena) < 8*len(pt)+64 {
		s.arena = make([]byte, 0, max(16<<10, 8*len(pt)+64))
	}
	start := len(s.arena)
	out, err := v.dict.Decode(s.arena, pt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", keys.ErrDecrypt, err)
	}
	s.arena = out
	return out[start:len(out):len(out)], nil
}

// openScratch is the working space of one goroutine that opens records:
// the AD, the key package's scratch, and the arena block that decompressed
// points are appended to.
type openScratch struct {
	ad, arena []byte
	keys      keys.OpenScratch
	codes     schemaCodes
}

// parallel runs fn over [0,n) in one chunk per core when n is large.
func parallel(n int, fn func(lo, hi int) error) error {
	workers := runtime.GOMAXPROCS(0)
	if n < parallelMin || workers < 2 {
		return fn(0, n)
	}
	chunk := (n + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			break
		}
		wg.Go(func() { errs[w] = fn(lo, hi) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reading is one decrypted reading: its canonical OMH JSON.
type Reading struct {
	Schema string
	Time   time.Time
	JSON   []byte
	// Tag is the record's dedup tag: with Schema and Time it is the
	// record's identity and its place in the store's order (time, then
	// tag), so a cursor can resume exactly after it.
	Tag [keys.TagSize]byte
}

// Readings yields a patient's readings of one schema with from <= time < to,
// in time order. A zero from or to leaves that end open. A record that fails
// to decrypt stops the scan with an error.
//
// Records are decrypted ahead of the caller, a batch at a time, on
// GOMAXPROCS goroutines (at most maxReadWorkers), so a long read (an export) uses every core while
// the caller encrypts and writes. At most a few batches are in flight, so
// memory stays bounded whatever the range. Stopping the loop early stops
// the decryption too.
func (v *Vault) Readings(ctx context.Context, patientID, schema string, from, to time.Time) iter.Seq2[Reading, error] {
	return v.readings(ctx, patientID, schema, from, to, false)
}

// ReadingsStream is Readings for a caller that is done with each reading
// when its loop body returns (it copies the point, or writes it out, as
// an export does): a Reading's JSON is valid only until the loop asks for
// the next reading, and the memory it was decompressed into is used again
// for later readings. That keeps the export's working memory small and in
// cache instead of allocating (and clearing) a new block for every few
// dozen points. The batches' other memory (the scanned records' headers,
// the readings handed to the loop) is used again the same way.
func (v *Vault) ReadingsStream(ctx context.Context, patientID, schema string, from, to time.Time) iter.Seq2[Reading, error] {
	return v.readings(ctx, patientID, schema, from, to, true)
}

// streamArena is the size of the block a batch's points are decompressed
// into when ReadingsStream reuses them: a batch of about 450-byte points.
const streamArena = readBatchSize * 512

func (v *Vault) readings(ctx context.Context, patientID, schema string, from, to time.Time, reuse bool) iter.Seq2[Reading, error] {
	return func(yield func(Reading, error) bool) {
		pk, err := v.patientKeys(ctx, patientID)
		if err != nil {
			yield(Reading{}, err)
			return
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if !from.IsZero() {
			lo = clampNanos(from)
		}
		if !to.IsZero() {
			hi = clampNanos(to)
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()

		workers := max(1, min(runtime.GOMAXPROCS(0), maxReadWorkers))
		work := make(chan *readBatch, workers)
		order := make(chan *readBatch, 2*workers)
		// With reuse, the batches the caller is done with, their arena
		// blocks (for the workers to decompress later batches into) and
		// slices kept, for the producer to fill again.
		free := make(chan *readBatch, 3*workers+2)
		// With reuse and a ValueScanner, the scanned values are copied
		// into blocks of one batch each, used again the same way.
		scan := v.b.Scan
		var vals *valueBlocks
		if vs, ok := v.b.(ValueScanner); ok && reuse {
			vals = &valueBlocks{free: make(chan []byte, 3*workers+2)}
			scan = func(ctx context.Context, patientID, schema string, from, to int64) iter.Seq2[Record, error] {
				return vs.ScanInto(ctx, patientID, schema, from, to, vals.alloc)
			}
		}
		wg.Add(1 + workers)
		go func() {
			defer wg.Done()
			defer close(order)
			defer close(work)
			newBatch := func() *readBatch {
				select {
				case b := <-free:
					b.done = make(chan struct{})
					return b
				default:
				}
				return &readBatch{recs: make([]Record, 0, readBatchSize), done: make(chan struct{})}
			}
			b := newBatch()
			send := func() bool {
				if vals != nil {
					b.vals = vals.next()
				}
				select {
				case order <- b:
				case <-ctx.Done():
					return false
				}
				select {
				case work <- b:
				case <-ctx.Done():
					return false
				}
				b = newBatch()
				return true
			}
			for r, err := range scan(ctx, patientID, schema, lo, hi) {
				if err != nil {
					b.err = err
					break
				}
				b.recs = append(b.recs, r)
				if len(b.recs) == readBatchSize && !send() {
					return
				}
			}
			if len(b.recs) > 0 || b.err != nil {
				send()
			}
		}()
		for range workers {
			go func() {
				defer wg.Done()
				s := new(openScratch)
				for b := range work {
					if ctx.Err() != nil {
						// The read is over: don't decrypt what nobody reads.
						close(b.done)
						continue
					}
					if cap(b.out) < len(b.recs) {
						b.out = make([]Reading, 0, len(b.recs))
					}
					if reuse {
						if s.arena = b.arena[:0]; cap(s.arena) < streamArena {
							s.arena = make([]byte, 0, streamArena)
						}
					}
					for _, r := range b.recs {
						pt, err := v.openRecord(pk, patientID, &r, s)
						if err != nil {
							b.decErr = err
							break
						}
						b.out = append(b.out, Reading{Schema: r.Schema, Time: time.Unix(0, r.Time).UTC(), JSON: pt, Tag: r.Tag})
					}
					if reuse {
						// The batch's points are in this block (and in any
						// block before it that filled up, left to the GC).
						b.arena, s.arena = s.arena, nil
						// The records' slice is filled again later; the
						// values they point to are in b.vals (used again
						// once the loop is done with the batch) or the GC's.
						clear(b.recs)
						b.recs = b.recs[:0]
					} else {
						b.recs = nil
					}
					close(b.done)
				}
			}()
		}
		for b := range order {
			select {
			case <-b.done:
			case <-ctx.Done():
			}
			if err := ctx.Err(); err != nil {
				yield(Reading{}, err)
				return
			}
			for _, r := range b.out {
				if !yield(r, nil) {
					return
				}
			}
			if err := cmp.Or(b.decErr, b.err); err != nil {
				yield(Reading{}, err)
				return
			}
			if reuse {
				// The loop is done with the batch's readings: their
				// memory goes to a later batch.
				clear(b.out)
				b.out = b.out[:0]
				if vals != nil && b.vals != nil {
					select {
					case vals.free <- b.vals:
					default:
					}
					b.vals = nil
				}
				select {
				case free <- b:
				default:
				}
			}
		}
		// The producer stops quietly when the context ends; a cut-short
		// read must still end in an error.
		if err := ctx.Err(); err != nil {
			yield(Reading{}, err)
		}
	}
}

// valueBlock is the size of the blocks valueBlocks hands out: a batch of
// compact records (about 70-110 bytes each for 300-450-byte points). A
// batch of larger values (format 1) has the rest of its values allocated
// one by one.
const valueBlock = readBatchSize * 128

// valueBlocks hands out the memory a ValueScanner copies values into:
// the values of each batch of readBatchSize records in a block of their
// own, so that the block can be used again once the loop is done with the
// batch. The scan calls alloc once per record in order, possibly a page
// ahead of the batches, so the blocks filled wait in done, oldest first,
// until next gives each to its batch. All but free belong to the
// producer's goroutine.
type valueBlocks struct {
	free chan []byte // blocks of batches the loop is done with
	done [][]byte    // filled blocks, not yet given to their batch
	cur  []byte      // the block being filled
	n    int         // values in cur
}

func (vb *valueBlocks) alloc(n int) []byte {
	if vb.n == readBatchSize {
		vb.done = append(vb.done, vb.cur)
		vb.cur, vb.n = nil, 0
	}
	if vb.cur == nil {
		select {
		case b := <-vb.free:
			vb.cur = b[:0]
		default:
			vb.cur = make([]byte, 0, valueBlock)
		}
	}
	vb.n++
	if cap(vb.cur)-len(vb.cur) < n {
		return make([]byte, n) // too big for what is left: a value of its own
	}
	off := len(vb.cur)
	vb.cur = vb.cur[:off+n]
	return vb.cur[off : off+n : off+n]
}

// next returns the block that holds the values of the next batch: the
// oldest filled one, or the one being filled (the last batch, or a batch
// whose last value was the last one copied).
func (vb *valueBlocks) next() []byte {
	if len(vb.done) > 0 {
		b := vb.done[0]
		vb.done = vb.done[1:]
		return b
	}
	b := vb.cur
	vb.cur, vb.n = nil, 0
	return b
}

// readBatchSize is how many records one decryption job holds, and
// maxReadWorkers caps the decrypting goroutines of one scan.
const (
	readBatchSize  = 256
	maxReadWorkers = 4
)

// readBatch is one job of Readings: scanned records in, readings out. done
// closes when out is ready. decErr is a decryption failure (out holds the
// readings before it); err is a scan failure that ended the batch.
type readBatch struct {
	recs   []Record
	out    []Reading
	arena  []byte // with reuse: the block out's points are in (or one to use again)
	vals   []byte // with reuse and a ValueScanner: the block recs' values are in
	decErr error
	err    error
	done   chan struct{}
}

func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(MinTime):
		return MinTime.UnixNano()
	case !t.Before(MaxTime):
		return MaxTime.UnixNano()
	}
	return t.UnixNano()
}

// VerifyStats is what VerifyRecords checked.
type VerifyStats struct {
	Patients int `json:"patients"`
	Records  int `json:"records"`
}

// VerifyRecords decrypts every record of every patient, checking each
// one's integrity and its binding to its patient, schema and time, and that
// no record sits where no known schema reads it. It is for a restore: a
// backup must be whole before it replaces anything.
func (v *Vault) VerifyRecords(ctx context.Context) (VerifyStats, error) {
	var st VerifyStats
	patients, err := v.Users(ctx, RolePatient)
	if err != nil {
		return st, err
	}
	for _, p := range patients {
		st.Patients++
		n := 0
		for _, id := range omh.Accepted() {
			for _, err := range v.Readings(ctx, p.ID, id.String(), time.Time{}, time.Time{}) {
				if err != nil {
					return st, fmt.Errorf("patient %s, %s: %w", p.ID, id, err)
				}
				n++
			}
		}
		stored, err := v.b.Count(ctx, p.ID)
		if err != nil {
			return st, err
		}
		if stored != n {
			return st, fmt.Errorf("patient %s has %d stored records but %d readable ones", p.ID, stored, n)
		}
		st.Records += n
	}
	return st, nil
}
