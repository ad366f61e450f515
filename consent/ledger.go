package consent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Store is where the ledger keeps its log: entries, Merkle hashes, the
// grant index, checkpoints and metadata, read and written in transactions.
// Package ledgerstore states the contract; (*boltstore.Store).Ledger is the
// bbolt one. The store sees sealed bytes, ids, indexes and hashes only.
type Store = ledgerstore.Store

// Sealer encrypts what the ledger keeps secret (entry contents, the log's
// signing key) with associated data. The vault's master keyset implements it.
type Sealer interface {
	Encrypt(plaintext, ad []byte) ([]byte, error)
	Decrypt(ciphertext, ad []byte) ([]byte, error)
}

// Ledger is the append-only consent log.
type Ledger struct {
	store  Store
	shared ledgerstore.Shared // the store, when other processes append to it too
	// locked is set while this process holds the store's cross-process
	// append lock with its index caught up (updateCaughtUp): no other
	// process can commit meanwhile, so index need not read the size.
	locked atomic.Bool
	sealer Sealer
	origin string
	signer note.Signer
	vkey   string
	now    func() time.Time

	mu       sync.Mutex                 // serialises commits
	grants   atomic.Pointer[grantIndex] // swapped whole by Open and Rebuild
	indexBad atomic.Pointer[error]      // set when the stored index is not trusted
	dkey     []byte                     // MAC key of the index digest
	// ownRebuilds are the announcements of this ledger's own rebuilds
	// not yet come back to RebuiltElsewhere (guarded by mu).
	ownRebuilds map[int64]bool
	// accessRows keeps the access rows AccessPage opened (accesscache.go).
	accessRows accessCache

	qmu   sync.Mutex
	queue []*appendReq // appends waiting for the next group commit

	cpMu       sync.Mutex // guards the checkpoint fields below
	cp         []byte     // the newest checkpoint signed (stored or not)
	cpSize     int64      // its tree size
	cpRound    *signRound // the signing in flight, if any
	lastSigned time.Time  // when a checkpoint was last stored, or seen stored by another replica
	seenStored int64      // the largest stored checkpoint size this ledger has seen (-1: none)
}

// Options configure Open.
type Options struct {
	// Origin names the log in its checkpoints, such as the vault's host.
	Origin string
	Now    func() time.Time
}

func entryAD(i int64) []byte { return []byte("jhvault/ledger-entry/v1|" + strconv.FormatInt(i, 10)) }

var skeyAD = []byte("jhvault/ledger-signing-key/v1")

// Metadata names in the store.
const (
	metaSigningKey  = "skey" // sealed
	metaVerifierKey = "vkey"
)

// Open opens the ledger in store, creating its Ed25519 log key and the
// grant index's digest key on first use; both private keys are stored
// sealed. Creating them is one transaction that looks again before it
// writes, so ledgers opened at once on one empty store end with one key
// each, and every one opens what the first wrote.
func Open(store Store, sealer Sealer, o Options) (*Ledger, error) {
	if o.Origin == "" {
		o.Origin = "jupyterhealth-vault"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Ledger{store: store, sealer: sealer, origin: o.Origin, now: o.Now}
	l.shared, _ = store.(ledgerstore.Shared)
	var skey string
	err := store.Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		created, err := l.loadDigestKey(tx)
		if err != nil {
			return err
		}
		d, err := tx.Meta(metaDigest)
		if err != nil {
			return err
		}
		if created && d == nil {
			// A new ledger, or one from before the digest: start it from
			// the index as it stands. A digest missing beside its key was
			// removed, and the index stays untrusted.
			n, err := tx.Size()
			if err != nil {
				return err
			}
			digest, err := l.computeDigest(tx)
			if err != nil {
				return err
			}
			if err := l.writeDigest(tx, n, digest); err != nil {
				return err
			}
		}
		sealed, err := tx.Meta(metaSigningKey)
		if err != nil {
			return err
		}
		if sealed != nil {
			b, err := sealer.Decrypt(sealed, skeyAD)
			if err != nil {
				return errors.New("the ledger's signing key does not decrypt")
			}
			vk, err := tx.Meta(metaVerifierKey)
			if err != nil {
				return err
			}
			skey, l.vkey = string(b), string(vk)
			return nil
		}
		sk, vk, err := note.GenerateKey(rand.Reader, o.Origin)
		if err != nil {
			return err
		}
		if sealed, err = sealer.Encrypt([]byte(sk), skeyAD); err != nil {
			return err
		}
		if err := tx.PutMeta(metaSigningKey, sealed); err != nil {
			return err
		}
		skey, l.vkey = sk, vk
		return tx.PutMeta(metaVerifierKey, []byte(vk))
	})
	if err != nil {
		return nil, err
	}
	if l.signer, err = note.NewSigner(skey); err != nil {
		return nil, fmt.Errorf("ledger signing key: %v", err)
	}
	// The origin is fixed when the key is made: checkpoints keep naming
	// the same log even if the vault's base URL changes later.
	l.origin = l.signer.Name()
	// The stored verifier key must be the signing key's: a swapped one
	// would have clients pin a key the vault does not sign with.
	probe, err := note.Sign(&note.Note{Text: "jhvault key check\n"}, l.signer)
	if err == nil {
		var v note.Verifier
		if v, err = note.NewVerifier(l.vkey); err == nil {
			_, err = note.Open(probe, note.VerifierList(v))
		}
	}
	if err != nil {
		return nil, errors.New("the ledger's stored verifier key does not match its signing key (the file was altered)")
	}
	// An untrusted index does not stop the ledger opening (verify and
	// rebuild must still run), but every decision fails closed until a
	// rebuild.
	var x *grantIndex
	var size int64
	l.seenStored = -1
	ierr := l.view(func(tx ledgerstore.ReadTx) error {
		var err error
		if size, err = tx.Size(); err != nil {
			return err
		}
		if l.seenStored, _, err = tx.LatestCheckpoint(); err != nil {
			return err
		}
		if err := l.checkDigest(tx); err != nil {
			return err
		}
		x, err = l.readIndex(tx)
		return err
	})
	if ierr != nil {
		l.indexBad.Store(&ierr)
		x = newGrantIndex()
	}
	x.applied = size
	l.grants.Store(x)
	return l, nil
}

// IndexError reports why the grant index is not trusted (decisions then
// deny with reason index_untrusted), or nil.
func (l *Ledger) IndexError() error {
	if p := l.indexBad.Load(); p != nil {
		return *p
	}
	return nil
}

// VerifierKey is the log's public key in note verifier form
// (name+hash+key). Clients pin it out of band.
func (l *Ledger) VerifierKey() string { return l.vkey }

// Origin is the log's name in its checkpoints.
func (l *Ledger) Origin() string { return l.origin }

// Append validates and stores entries in one durable transaction, with their
// Merkle hashes and their effect on the grant index, and returns the index
// of the first. A revoke of an unknown or revoked grant fails the whole
// append (ErrNoGrant, ErrRevoked). It returns only after the fsync.
//
// Concurrent appends are group-committed: while one transaction commits,
// the appends that arrive queue up, and the next one to take the lock
// commits them all in one transaction (each caller's entries still commit
// or fail together).
func (l *Ledger) Append(entries ...Entry) (int64, error) {
	return l.AppendChecked(nil, entries...)
}

// AppendChecked is Append with a check that runs inside the transaction,
// before the entries, with the index the first entry will get; its error
// refuses the append. The export issue's access-start uses it, so that the
// consent decision and the append happen in one serialised step. It is
// group-committed too, but only behind access entries: anything else
// queued before it (a revoke, say) commits and is published first, so the
// check decides on everything logged before its entry.
func (l *Ledger) AppendChecked(check func(next int64) error, entries ...Entry) (int64, error) {
	return l.appendChecked(check, false, entries)
}

// AppendAccess appends an access-start and its access-end in one
// transaction, with one fsync: the end's Access.Start is set to the
// start's index inside it. check is AppendChecked's. A read that renders
// its answer in memory before sending it (a FHIR page) logs both after
// rendering and before a byte leaves, instead of two commits.
func (l *Ledger) AppendAccess(check func(next int64) error, start, end Entry) (int64, error) {
	if start.Kind != KindAccessStart || end.Kind != KindAccessEnd || end.Access == nil {
		return 0, errors.New("AppendAccess takes an access-start and an access-end")
	}
	a := *end.Access
	a.Start = new(int64) // set in the transaction
	end.Access = &a
	return l.appendChecked(check, true, []Entry{start, end})
}

func (l *Ledger) appendChecked(check func(next int64) error, linkEnd bool, entries []Entry) (int64, error) {
	req := &appendReq{check: check, linkEnd: linkEnd, done: make(chan struct{})}
	req.encoded = make([][]byte, len(entries))
	req.entries = make([]Entry, len(entries))
	for i := range entries {
		b, err := entries[i].Marshal()
		if err != nil {
			return 0, err
		}
		// The index is updated from the stored bytes, parsed back, so it
		// always equals a replay; bytes that do not parse back (invalid
		// UTF-8, say) are refused here rather than failing Verify later.
		if req.entries[i], err = Parse(b); err != nil {
			return 0, err
		}
		req.encoded[i] = b
	}
	l.qmu.Lock()
	l.queue = append(l.queue, req)
	l.qmu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-req.done: // an earlier leader committed it
		return req.first, req.err
	default:
	}
	l.qmu.Lock()
	batch := l.queue
	l.queue = nil
	l.qmu.Unlock()
	// Runs of requests share a transaction. A checked request decides
	// against the published index, which a batch's earlier requests have
	// not changed yet; so it may join a run only while every request
	// before it in the run is access entries alone, which change access
	// rows and nothing a check reads (grants, keys). Otherwise it starts
	// the next run, after the run before it has committed and been
	// published.
	for len(batch) > 0 {
		k, quiet := 1, batch[0].accessOnly()
		for k < len(batch) && (batch[k].check == nil || quiet) {
			quiet = quiet && batch[k].accessOnly()
			k++
		}
		l.commitBatch(batch[:k])
		batch = batch[k:]
	}
	select {
	case <-req.done:
		return req.first, req.err
	default:
		return 0, errors.New("ledger append was not committed")
	}
}

type appendReq struct {
	entries []Entry
	encoded [][]byte
	check   func(next int64) error
	linkEnd bool  // entries are an access-start and its end (AppendAccess)
	refused error // the check's refusal, in a batch that commits without it
	first   int64
	changed []indexRow
	err     error
	done    chan struct{}
}

// accessOnly reports whether every entry is an access-start or an
// access-end: appending them changes no grant or key, so no check decides
// differently before and after them.
func (r *appendReq) accessOnly() bool {
	for k := range r.entries {
		if kind := r.entries[k].Kind; kind != KindAccessStart && kind != KindAccessEnd {
			return false
		}
	}
	return true
}

// commitBatch commits a batch in one transaction; if that fails, each
// request is retried alone so one caller's refusal fails only that caller.
// A request whose check refuses it is left out of the transaction (the
// check runs before it writes anything), and the others commit.
func (l *Ledger) commitBatch(batch []*appendReq) {
	defer func() {
		// A panic (in a check, say) must not leave batchmates waiting, or
		// let them report success for entries that never committed.
		if p := recover(); p != nil {
			for _, r := range batch {
				select {
				case <-r.done:
				default:
					r.err, r.changed = errors.New("ledger append aborted"), nil
					close(r.done)
				}
			}
			panic(p)
		}
	}()
	err := l.updateCaughtUp(func(tx ledgerstore.WriteTx) error {
		for _, r := range batch {
			if err := l.appendTx(tx, r); err != nil && r.refused == nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			r.err = l.updateCaughtUp(func(tx ledgerstore.WriteTx) error { return l.appendTx(tx, r) })
			if r.refused != nil {
				r.err = r.refused
			}
			l.finish(r)
		}
		return
	}
	for _, r := range batch {
		r.err = err
		if r.refused != nil {
			r.err = r.refused
		}
		l.finish(r)
	}
}

// update and view run fn in one of the store's transactions. The ledger's
// public methods take no context (yet), so neither do these.
func (l *Ledger) update(fn func(tx ledgerstore.WriteTx) error) error {
	return l.store.Update(context.Background(), fn)
}

func (l *Ledger) view(fn func(tx ledgerstore.ReadTx) error) error {
	return l.store.View(context.Background(), fn)
}

// finish publishes a committed request's index changes and wakes it.
// The index applies them only if it stands exactly at the request's first
// entry; if a decision's catch-up (catchup.go) has already read them from
// the store, and perhaps later entries from other replicas too, they are
// not applied again over newer states.
func (l *Ledger) finish(r *appendReq) {
	if r.err == nil {
		// Committed: decisions see the change from now on.
		x := l.grants.Load()
		x.mu.Lock()
		if x.applied == r.first {
			for _, row := range r.changed {
				x.putRow(row)
			}
			x.applied = r.first + int64(len(r.entries))
		}
		x.mu.Unlock()
	}
	close(r.done)
}

func (l *Ledger) appendTx(tx ledgerstore.WriteTx, r *appendReq) error {
	r.changed, r.refused = r.changed[:0], nil
	n, err := tx.Size()
	if err != nil {
		return err
	}
	r.first = n
	if r.check != nil {
		// Before anything is written: a refused request leaves the
		// transaction as it found it.
		if err := r.check(n); err != nil {
			r.refused = err
			return err
		}
	}
	if r.linkEnd {
		end := r.entries[1]
		a := *end.Access
		a.Start = &n
		end.Access = &a
		b, err := end.Marshal()
		if err != nil {
			return err
		}
		if r.entries[1], err = Parse(b); err != nil {
			return err
		}
		r.encoded[1] = b
	}
	digest, err := l.readDigest(tx, n)
	if err != nil {
		return err
	}
	for k, b := range r.encoded {
		var old []byte
		id := rowIDAt(&r.entries[k], n)
		if id != "" {
			if err := l.IndexError(); err != nil {
				return fmt.Errorf("grants and keys cannot change while %v", err)
			}
			v, err := tx.IndexRow(id)
			if err != nil {
				return err
			}
			old = bytes.Clone(v)
		}
		if g := r.entries[k].Grant; g != nil && g.Assertion != nil {
			if err := l.checkSignedGrant(tx, n, &r.entries[k]); err != nil {
				return err
			}
		}
		if ck := r.entries[k].Key; ck != nil && ck.Assertion != nil {
			if err := l.checkConfirmedKey(tx, n, &r.entries[k]); err != nil {
				return err
			}
		}
		row, sealedRow, err := l.applyTx(tx, n, &r.entries[k])
		if err != nil {
			return err
		}
		if !row.empty() {
			r.changed = append(r.changed, row)
			if old != nil {
				digest.toggle(l.rowMAC([]byte(id), old))
			}
			digest.toggle(l.rowMAC([]byte(id), sealedRow))
		}
		sealed, err := l.sealer.Encrypt(b, entryAD(n))
		if err != nil {
			return err
		}
		if err := tx.PutEntry(n, sealed); err != nil {
			return err
		}
		hs, err := tlog.StoredHashes(n, b, tx)
		if err != nil {
			return err
		}
		if err := tx.PutHashes(tlog.StoredHashIndex(0, n), hs); err != nil {
			return err
		}
		n++
	}
	if err := l.writeDigest(tx, n, digest); err != nil {
		return err
	}
	return tx.SetSize(n)
}

// Size is the number of entries.
func (l *Ledger) Size() (int64, error) {
	var n int64
	err := l.view(func(tx ledgerstore.ReadTx) error {
		var err error
		n, err = tx.Size()
		return err
	})
	return n, err
}

// Entry returns the entry at index i and its canonical bytes.
func (l *Ledger) Entry(i int64) (Entry, []byte, error) {
	var raw []byte
	err := l.view(func(tx ledgerstore.ReadTx) error {
		var err error
		raw, err = sized(tx, func(n int64) ([]byte, error) { return l.entryTx(tx, n, i) })
		return err
	})
	if err != nil {
		return Entry{}, nil, err
	}
	e, err := Parse(raw)
	return e, raw, err
}

// entryTx opens entry i of a log of size n: its canonical bytes.
func (l *Ledger) entryTx(tx ledgerstore.ReadTx, n, i int64) ([]byte, error) {
	if i < 0 || i >= n {
		return nil, ErrNoEntry
	}
	sealed, err := tx.Entry(i)
	if err != nil {
		return nil, err
	}
	if sealed == nil {
		return nil, fmt.Errorf("entry %d is missing", i)
	}
	b, err := l.sealer.Decrypt(sealed, entryAD(i))
	if err != nil {
		return nil, fmt.Errorf("entry %d does not decrypt", i)
	}
	return b, nil
}

// ErrNoEntry is returned for an index beyond the log.
var ErrNoEntry = errors.New("no such ledger entry")

// LeafHash returns the Merkle leaf hash of entry i.
func (l *Ledger) LeafHash(i int64) (h tlog.Hash, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		h, err = sized(tx, func(size int64) (tlog.Hash, error) { return leafHashTx(tx, size, i) })
		return err
	})
	return h, err
}

// sized runs fn with the log's size read in tx.
func sized[T any](tx ledgerstore.ReadTx, fn func(size int64) (T, error)) (T, error) {
	size, err := tx.Size()
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(size)
}

// leafHashTx is entry i's leaf hash in a log of size n.
func leafHashTx(tx tlog.HashReader, n, i int64) (tlog.Hash, error) {
	if i < 0 || i >= n {
		return tlog.Hash{}, ErrNoEntry
	}
	hs, err := tx.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		return tlog.Hash{}, err
	}
	return hs[0], nil
}

// TreeHash returns the root hash of the first n entries.
func (l *Ledger) TreeHash(n int64) (h tlog.Hash, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		h, err = sized(tx, func(size int64) (tlog.Hash, error) { return treeHashTx(tx, size, n) })
		return err
	})
	return h, err
}

// treeHashTx is the root hash of the first n entries of a log of size.
func treeHashTx(tx tlog.HashReader, size, n int64) (tlog.Hash, error) {
	if n < 0 || n > size {
		return tlog.Hash{}, fmt.Errorf("tree size %d is beyond the log", n)
	}
	return tlog.TreeHash(n, tx)
}

// ProveInclusion proves that entry i is in the tree of size n.
func (l *Ledger) ProveInclusion(i, n int64) (p tlog.RecordProof, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		p, err = sized(tx, func(size int64) (tlog.RecordProof, error) { return proveInclusionTx(tx, size, i, n) })
		return err
	})
	return p, err
}

// proveInclusionTx proves entry i in the tree of size n, in a log of size.
func proveInclusionTx(tx tlog.HashReader, size, i, n int64) (tlog.RecordProof, error) {
	if n < 1 || n > size || i < 0 || i >= n {
		return nil, fmt.Errorf("need 0 <= index < size <= %d", size)
	}
	return tlog.ProveRecord(n, i, tx)
}

// ProveConsistency proves that the tree of size m is a prefix of size n.
func (l *Ledger) ProveConsistency(m, n int64) (p tlog.TreeProof, err error) {
	err = l.view(func(tx ledgerstore.ReadTx) error {
		p, err = sized(tx, func(size int64) (tlog.TreeProof, error) { return proveConsistencyTx(tx, size, m, n) })
		return err
	})
	return p, err
}

// proveConsistencyTx proves the tree of size m a prefix of size n, in a
// log of size.
func proveConsistencyTx(tx tlog.HashReader, size, m, n int64) (tlog.TreeProof, error) {
	if m < 1 || m > n || n > size {
		return nil, fmt.Errorf("need 1 <= from <= size <= %d", size)
	}
	return tlog.ProveTree(n, m, tx)
}

// Run signs a checkpoint about once a second while entries arrive, until
// ctx ends.
func (l *Ledger) Run(ctx context.Context, log func(error)) {
	t := time.NewTicker(SignInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.SignIfDue(); err != nil && log != nil {
				log(err)
			}
		}
	}
}
