package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/mod/sumdb/tlog"
)

// metaMigrating marks a PostgreSQL database that 'vault migrate' is
// filling, or left unfinished: serve refuses it, and only 'vault migrate
// --restart' empties it. It is the first row written and the last one
// removed.
const metaMigrating = "migrating"

// migrateBatch is how many readings one insert of the copy carries.
const migrateBatch = 5000

// cmdMigrate copies a stopped bbolt vault into an empty PostgreSQL
// database, then checks the copy row by row. Restartable, not resumable:
// a copy that stops half-way leaves the database marked, serve refuses
// it, and a run with --restart empties it and copies again from the start.
func cmdMigrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var sf storeFlags
	sf.register(fs)
	database := fs.String("database", "", "the PostgreSQL database to copy into (postgres://…); better in VAULT_DATABASE_URL or VAULT_DATABASE_URL_FILE")
	restart := fs.Bool("restart", false, "empty a database that an earlier 'vault migrate' left unfinished, and copy again")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dsn, err := databaseURL(*database)
	if err != nil {
		return err
	}
	if dsn == "" {
		fmt.Fprintln(stderr, "usage: vault migrate --data DIR --database postgres://… (or VAULT_DATABASE_URL[_FILE])")
		return errUsage
	}
	if err := refuseLive(sf.data, "the copy must see a vault nobody writes"); err != nil {
		return err
	}
	if _, err := os.Stat(dbPath(sf.data)); err != nil {
		return fmt.Errorf("no vault in %s (no %s): check --data", sf.data, dbPath(sf.data))
	}
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Read-only: the source is never changed, whatever happens.
	src, err := boltstore.Open(dbPath(sf.data), boltstore.Options{ReadOnly: true, LockTimeout: 2 * time.Second})
	if errors.Is(err, boltstore.ErrLocked) {
		return fmt.Errorf("the database in %s is in use by another process: stop the server first", sf.data)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	pass, err := passphrase()
	if err != nil {
		return err
	}
	// The root key must open the source: the copy is sealed under it.
	v, _, err := unlock(ctx, src, sf, pass, log)
	if err != nil {
		return err
	}
	dst, err := openPostgres(ctx, dsn)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := migrateTarget(ctx, dst, *restart); err != nil {
		return err
	}
	start := time.Now()
	m := &migration{src: src, dst: dst, stderr: stderr}
	if err := m.copy(ctx); err != nil {
		return redact(fmt.Errorf("the copy stopped, and the database is marked unfinished (serve refuses it; run 'vault migrate --restart' to start over): %w", err), dsn)
	}
	if err := m.verify(ctx, v); err != nil {
		return redact(fmt.Errorf("the copy does not match the vault, and the database stays marked unfinished (serve refuses it): %w", err), dsn)
	}
	mark, err := dst.Meta(ctx, metaMigrating)
	if err != nil {
		return err
	}
	if err := dst.SwapMeta(ctx, []vault.MetaSwap{{Key: metaMigrating, Old: mark}}, false); err != nil {
		return fmt.Errorf("unmark the database: %w", err)
	}
	fmt.Fprintf(stdout, "migrated %s to PostgreSQL in %.1f s and verified it record by record: %s\n", sf.data, time.Since(start).Seconds(), m.summary())
	fmt.Fprintf(stdout, "start it with 'vault serve --database … --data %s' (the same root key); keep %s until you no longer need to go back\n", sf.data, dbPath(sf.data))
	return nil
}

// migrateTarget refuses a database that holds anything, but one an
// unfinished migrate left when --restart is given, which it empties; then
// it marks the database.
func migrateTarget(ctx context.Context, dst *postgres.Store, restart bool) error {
	full, err := dst.NonEmpty(ctx)
	if err != nil {
		return err
	}
	if len(full) > 0 {
		mark, err := dst.Meta(ctx, metaMigrating)
		if err != nil {
			return err
		}
		switch {
		case mark == nil:
			return fmt.Errorf("the PostgreSQL database is not empty (rows in %v): migrate copies into an empty database only", full)
		case !restart:
			return errors.New("an earlier 'vault migrate' into this database did not finish: run it again with --restart to empty the database and start over")
		}
		if err := dst.Empty(ctx); err != nil {
			return fmt.Errorf("empty the database: %w", err)
		}
	}
	return dst.PutMeta(ctx, metaMigrating, []byte(time.Now().UTC().Format(time.RFC3339)))
}

// migration copies one vault and counts what it copied.
type migration struct {
	src    *boltstore.Store
	dst    *postgres.Store
	stderr io.Writer

	meta, users, tokens, patients, readings int
	ledgerSize                              int64
	web, oauth                              int
}

func (m *migration) summary() string {
	return fmt.Sprintf("%d patients' keys, %d readings, %d accounts, %d API tokens, %d meta values, a ledger of %d entries, %d web and %d OAuth rows",
		m.patients, m.readings, m.users, m.tokens, m.meta, m.ledgerSize, m.web, m.oauth)
}

func (m *migration) copy(ctx context.Context) error {
	meta, err := m.src.MetaRows(ctx)
	if err != nil {
		return err
	}
	for k, val := range meta {
		if k == metaMigrating {
			return errors.New("the bbolt vault holds a meta value named \"migrating\"")
		}
		if err := m.dst.PutMeta(ctx, k, val); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		m.meta++
	}
	users, err := m.src.Users(ctx, "")
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := m.dst.CreateUser(ctx, u.ID, u.Blob); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		m.users++
	}
	toks, err := m.src.AllTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if err := m.dst.PutToken(ctx, t); err != nil {
			return fmt.Errorf("API tokens: %w", err)
		}
		m.tokens++
	}
	for p, err := range patientKeys(ctx, m.src) {
		if err != nil {
			return err
		}
		if err := m.dst.CreatePatientKeys(ctx, p.PatientID, p.Blob); err != nil {
			return fmt.Errorf("patient keys: %w", err)
		}
		m.patients++
	}
	if err := m.copyReadings(ctx); err != nil {
		return err
	}
	if err := m.copyLedger(ctx); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := m.copyWeb(ctx); err != nil {
		return fmt.Errorf("web UI rows: %w", err)
	}
	if err := m.copyOAuth(ctx); err != nil {
		return fmt.Errorf("OAuth rows: %w", err)
	}
	return nil
}

// patientKeys pages through every wrapped patient key.
func patientKeys(ctx context.Context, b vault.Backend) iter.Seq2[vault.PatientKeyBlob, error] {
	return func(yield func(vault.PatientKeyBlob, error) bool) {
		after := ""
		for {
			page, err := b.PatientKeyBlobs(ctx, after, 1000)
			if err != nil {
				yield(vault.PatientKeyBlob{}, err)
				return
			}
			for _, p := range page {
				if !yield(p, nil) {
					return
				}
			}
			if len(page) < 1000 {
				return
			}
			after = page[len(page)-1].PatientID
		}
	}
}

func (m *migration) copyReadings(ctx context.Context) error {
	sets, err := m.src.ReadingSets(ctx)
	if err != nil {
		return err
	}
	batch := make([]vault.Record, 0, migrateBatch)
	for _, set := range sets {
		flush := func() error {
			n, err := m.dst.Insert(ctx, set.Patient, batch)
			if err != nil {
				return fmt.Errorf("readings of %s: %w", set.Patient, err)
			}
			if n != len(batch) {
				return fmt.Errorf("readings of %s: %d of %d stored", set.Patient, n, len(batch))
			}
			m.readings += n
			batch = batch[:0]
			return nil
		}
		for r, err := range m.src.Scan(ctx, set.Patient, set.Schema, math.MinInt64, math.MaxInt64) {
			if err != nil {
				return err
			}
			batch = append(batch, r)
			if len(batch) == migrateBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ledgerCopy is the whole ledger store, read in one transaction.
type ledgerCopy struct {
	size        int64
	meta        map[string][]byte
	entries     [][]byte
	hashes      []tlog.Hash
	index       map[string][]byte
	checkpoints map[int64][]byte
}

func readLedger(ctx context.Context, s ledgerstore.Store) (*ledgerCopy, error) {
	c := &ledgerCopy{meta: map[string][]byte{}, index: map[string][]byte{}, checkpoints: map[int64][]byte{}}
	err := s.View(ctx, func(tx ledgerstore.ReadTx) error {
		var err error
		if c.size, err = tx.Size(); err != nil {
			return err
		}
		if err := tx.MetaKeys(func(k string) error {
			v, err := tx.Meta(k)
			c.meta[k] = bytes.Clone(v)
			return err
		}); err != nil {
			return err
		}
		ext, err := tx.Extent()
		if err != nil {
			return err
		}
		if ext.Entries != c.size || ext.LastEntry != c.size-1 {
			return fmt.Errorf("the ledger records %d entries but stores %d (up to index %d): run 'vault ledger verify' on it first", c.size, ext.Entries, ext.LastEntry)
		}
		for i := range c.size {
			e, err := tx.Entry(i)
			if err != nil {
				return err
			}
			c.entries = append(c.entries, bytes.Clone(e))
		}
		idx := make([]int64, ext.LastHash+1)
		for i := range idx {
			idx[i] = int64(i)
		}
		if c.hashes, err = tx.ReadHashes(idx); err != nil {
			return err
		}
		if err := tx.IndexRows(func(id string, sealed []byte) error {
			c.index[id] = bytes.Clone(sealed)
			return nil
		}); err != nil {
			return err
		}
		return tx.Checkpoints(func(size int64, signed []byte) error {
			c.checkpoints[size] = bytes.Clone(signed)
			return nil
		})
	})
	return c, err
}

func (m *migration) copyLedger(ctx context.Context) error {
	c, err := readLedger(ctx, m.src.Ledger())
	if err != nil {
		return err
	}
	err = m.dst.Ledger().Update(ctx, func(tx ledgerstore.WriteTx) error {
		for k, v := range c.meta {
			if err := tx.PutMeta(k, v); err != nil {
				return err
			}
		}
		for i, e := range c.entries {
			if err := tx.PutEntry(int64(i), e); err != nil {
				return err
			}
		}
		for i := 0; i < len(c.hashes); i += 10000 {
			if err := tx.PutHashes(int64(i), c.hashes[i:min(i+10000, len(c.hashes))]); err != nil {
				return err
			}
		}
		for id, sealed := range c.index {
			if err := tx.PutIndexRow(id, sealed); err != nil {
				return err
			}
		}
		for size, signed := range c.checkpoints {
			if err := tx.PutCheckpoint(size, signed); err != nil {
				return err
			}
		}
		return tx.SetSize(c.size)
	})
	m.ledgerSize = c.size
	return err
}

// maxRows lifts a per-user or per-table limit for the copy: the source
// kept within its own.
const maxRows = math.MaxInt32

func (m *migration) copyWeb(ctx context.Context) error {
	rows, err := m.src.AllWeb(ctx)
	if err != nil {
		return err
	}
	w := m.dst.Web()
	for _, inv := range rows.Invites {
		if err := w.PutInvite(ctx, inv, time.Time{}); err != nil {
			return err
		}
		m.web++
	}
	for _, c := range rows.Credentials {
		if err := w.AddCredential(ctx, c.UserID, c.Credential, maxRows); err != nil {
			return err
		}
		m.web++
	}
	for user, codes := range rows.Recovery {
		if err := w.ReplaceRecoveryCodes(ctx, user, codes); err != nil {
			return err
		}
		m.web += len(codes)
	}
	for _, s := range rows.Sessions {
		if err := w.CreateSession(ctx, s, maxRows); err != nil {
			return err
		}
		m.web++
	}
	for _, c := range rows.Ceremonies {
		if err := w.PutCeremony(ctx, c, maxRows); err != nil {
			return err
		}
		m.web++
	}
	for _, sp := range rows.Spent {
		if err := w.SpendChallenge(ctx, sp, maxRows); err != nil {
			return err
		}
		m.web++
	}
	for _, c := range rows.AppConsents {
		if err := w.PutAppConsent(ctx, c, maxRows); err != nil {
			return err
		}
		m.web++
	}
	return nil
}

func (m *migration) copyOAuth(ctx context.Context) error {
	rows, err := m.src.AllOAuth(ctx)
	if err != nil {
		return err
	}
	o := m.dst.OAuth()
	for _, c := range rows.Clients {
		if err := o.PutClient(ctx, c); err != nil {
			return err
		}
	}
	for _, r := range rows.Requests {
		if err := o.PutRequest(ctx, r); err != nil {
			return err
		}
	}
	for _, c := range rows.Codes {
		if err := o.PutCode(ctx, c); err != nil {
			return err
		}
	}
	if len(rows.Tokens) > 0 {
		if err := o.PutTokens(ctx, rows.Tokens...); err != nil {
			return err
		}
	}
	for _, j := range rows.JTIs {
		if err := o.SpendJTI(ctx, j.Hash, j.Expires); err != nil {
			return err
		}
	}
	for _, k := range rows.Keys {
		if err := o.AddKey(ctx, k, len(rows.Keys)); err != nil {
			return err
		}
	}
	m.oauth = len(rows.Clients) + len(rows.Requests) + len(rows.Codes) + len(rows.Tokens) + len(rows.JTIs) + len(rows.Keys)
	return nil
}

// verify reads the copy back and compares it with the source: every meta
// value, account, token and patient key byte for byte; every reading of
// every patient and schema, in order, byte for byte, and the counts; the
// ledger's rows and tree head, and a full replay of the copied ledger that
// must extend the source's newest signed checkpoint; the web and OAuth
// rows that can be read without being spent.
func (m *migration) verify(ctx context.Context, v *vault.Vault) error {
	meta, err := m.src.MetaRows(ctx)
	if err != nil {
		return err
	}
	for k, want := range meta {
		got, err := m.dst.Meta(ctx, k)
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("meta %q differs (%v)", k, err)
		}
	}
	su, err := m.src.Users(ctx, "")
	if err != nil {
		return err
	}
	du, err := m.dst.Users(ctx, "")
	if err != nil {
		return err
	}
	if !slices.EqualFunc(su, du, func(a, b vault.UserRow) bool { return a.ID == b.ID && bytes.Equal(a.Blob, b.Blob) }) {
		return fmt.Errorf("accounts differ (%d in bbolt, %d copied)", len(su), len(du))
	}
	toks, err := m.src.AllTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		got, err := m.dst.Token(ctx, t.ID)
		if err != nil || !sameJSON(t, got) {
			return fmt.Errorf("API token %s differs (%v)", t.ID, err)
		}
	}
	var sk, dk []vault.PatientKeyBlob
	for p, err := range patientKeys(ctx, m.src) {
		if err != nil {
			return err
		}
		sk = append(sk, p)
	}
	for p, err := range patientKeys(ctx, m.dst) {
		if err != nil {
			return err
		}
		dk = append(dk, p)
	}
	if !slices.EqualFunc(sk, dk, func(a, b vault.PatientKeyBlob) bool {
		return a.PatientID == b.PatientID && bytes.Equal(a.Blob, b.Blob)
	}) {
		return fmt.Errorf("patient keys differ (%d in bbolt, %d copied)", len(sk), len(dk))
	}
	if err := m.verifyReadings(ctx, sk); err != nil {
		return err
	}
	if err := m.verifyLedger(ctx, v); err != nil {
		return err
	}
	return m.verifyWebOAuth(ctx)
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func (m *migration) verifyReadings(ctx context.Context, patients []vault.PatientKeyBlob) error {
	sets, err := m.src.ReadingSets(ctx)
	if err != nil {
		return err
	}
	total := 0
	for _, set := range sets {
		next, stop := iter.Pull2(m.dst.Scan(ctx, set.Patient, set.Schema, math.MinInt64, math.MaxInt64))
		n := 0
		for want, err := range m.src.Scan(ctx, set.Patient, set.Schema, math.MinInt64, math.MaxInt64) {
			if err != nil {
				stop()
				return err
			}
			got, gerr, ok := next()
			if gerr != nil || !ok {
				stop()
				return fmt.Errorf("readings of %s (%s): the copy ends after %d (%v)", set.Patient, set.Schema, n, gerr)
			}
			if got.Time != want.Time || got.Tag != want.Tag || !bytes.Equal(got.Value, want.Value) {
				stop()
				return fmt.Errorf("readings of %s (%s): record %d differs", set.Patient, set.Schema, n)
			}
			n++
		}
		_, _, more := next()
		stop()
		if more {
			return fmt.Errorf("readings of %s (%s): the copy holds more than %d", set.Patient, set.Schema, n)
		}
		total += n
	}
	sum := 0
	for _, p := range patients {
		sc, err := m.src.Count(ctx, p.PatientID)
		if err != nil {
			return err
		}
		dc, err := m.dst.Count(ctx, p.PatientID)
		if err != nil {
			return err
		}
		if sc != dc {
			return fmt.Errorf("readings of %s: %d in bbolt, %d copied", p.PatientID, sc, dc)
		}
		sum += dc
	}
	if total != m.readings || sum != total {
		return fmt.Errorf("%d readings copied, %d compared, %d counted", m.readings, total, sum)
	}
	return nil
}

func (m *migration) verifyLedger(ctx context.Context, v *vault.Vault) error {
	sc, err := readLedger(ctx, m.src.Ledger())
	if err != nil {
		return err
	}
	dc, err := readLedger(ctx, m.dst.Ledger())
	if err != nil {
		return err
	}
	if dc.size != sc.size || len(dc.entries) != len(sc.entries) || len(dc.hashes) != len(sc.hashes) ||
		len(dc.index) != len(sc.index) || len(dc.checkpoints) != len(sc.checkpoints) || len(dc.meta) != len(sc.meta) {
		return errors.New("the copied ledger's rows differ in number")
	}
	for i := range sc.entries {
		if !bytes.Equal(sc.entries[i], dc.entries[i]) {
			return fmt.Errorf("ledger entry %d differs", i)
		}
	}
	if !slices.Equal(sc.hashes, dc.hashes) {
		return errors.New("the copied ledger's tree hashes differ")
	}
	for k, want := range sc.meta {
		if !bytes.Equal(dc.meta[k], want) {
			return fmt.Errorf("ledger meta %q differs", k)
		}
	}
	for k, want := range sc.index {
		if !bytes.Equal(dc.index[k], want) {
			return fmt.Errorf("ledger index row %q differs", k)
		}
	}
	for k, want := range sc.checkpoints {
		if !bytes.Equal(dc.checkpoints[k], want) {
			return fmt.Errorf("ledger checkpoint %d differs", k)
		}
	}
	var head, dhead tlog.Hash
	if err := m.src.Ledger().View(ctx, func(tx ledgerstore.ReadTx) (err error) {
		head, err = tlog.TreeHash(sc.size, hashReader{tx})
		return err
	}); err != nil {
		return err
	}
	// The copy replays in full, and extends the source's newest checkpoint.
	led, err := consent.Open(m.dst.Ledger(), v.Master(), consent.Options{})
	if err != nil {
		return err
	}
	var prior []byte
	if size := slices.Max(append(slices.Collect(mapKeys(sc.checkpoints)), -1)); size >= 0 {
		prior = sc.checkpoints[size]
	}
	res, err := led.Verify(prior)
	if err != nil {
		return fmt.Errorf("the copied ledger does not verify: %w", err)
	}
	if err := m.dst.Ledger().View(ctx, func(tx ledgerstore.ReadTx) (err error) {
		dhead, err = tlog.TreeHash(dc.size, hashReader{tx})
		return err
	}); err != nil {
		return err
	}
	if res.Size != sc.size || dhead != head {
		return errors.New("the copied ledger's tree head differs from the vault's")
	}
	return nil
}

func mapKeys[K comparable, V any](m map[K]V) iter.Seq[K] {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// hashReader is a ledger transaction as a tlog.HashReader.
type hashReader struct{ tx ledgerstore.ReadTx }

func (h hashReader) ReadHashes(idx []int64) ([]tlog.Hash, error) { return h.tx.ReadHashes(idx) }

func (m *migration) verifyWebOAuth(ctx context.Context) error {
	rows, err := m.src.AllWeb(ctx)
	if err != nil {
		return err
	}
	w := m.dst.Web()
	for _, inv := range rows.Invites {
		got, err := w.Invite(ctx, inv.Hash)
		if err != nil || !bytes.Equal(got.Sealed, inv.Sealed) || got.UserID != inv.UserID || !got.Expires.Equal(inv.Expires) {
			return fmt.Errorf("an invite differs (%v)", err)
		}
	}
	for _, c := range rows.Credentials {
		got, err := w.Credential(ctx, c.ID)
		if err != nil || !bytes.Equal(got.Sealed, c.Sealed) {
			return fmt.Errorf("a passkey of %s differs (%v)", c.UserID, err)
		}
	}
	for user, codes := range rows.Recovery {
		n, err := w.RecoveryCodesLeft(ctx, user)
		if err != nil || n != len(codes) {
			return fmt.Errorf("recovery codes of %s: %d copied of %d (%v)", user, n, len(codes), err)
		}
	}
	for _, s := range rows.Sessions {
		got, err := w.Session(ctx, s.Hash)
		if err != nil || !bytes.Equal(got.Sealed, s.Sealed) || got.UserID != s.UserID || !got.Expires.Equal(s.Expires) {
			return fmt.Errorf("a session of %s differs (%v)", s.UserID, err)
		}
	}
	for _, c := range rows.AppConsents {
		got, err := w.AppConsent(ctx, c.Hash)
		if err != nil || !bytes.Equal(got.Sealed, c.Sealed) {
			return fmt.Errorf("an app consent of %s differs (%v)", c.UserID, err)
		}
	}
	orows, err := m.src.AllOAuth(ctx)
	if err != nil {
		return err
	}
	o := m.dst.OAuth()
	for _, c := range orows.Clients {
		got, err := o.Client(ctx, c.ID)
		if err != nil || !bytes.Equal(got.Sealed, c.Sealed) {
			return fmt.Errorf("OAuth client %s differs (%v)", c.ID, err)
		}
	}
	for _, r := range orows.Requests {
		got, err := o.Request(ctx, r.Hash)
		if err != nil || !bytes.Equal(got.Sealed, r.Sealed) {
			return fmt.Errorf("an OAuth request differs (%v)", err)
		}
	}
	for _, t := range orows.Tokens {
		got, err := o.Token(ctx, t.Hash)
		if err != nil || !bytes.Equal(got.Sealed, t.Sealed) || got.Rotated != t.Rotated || got.Family != t.Family {
			return fmt.Errorf("an OAuth token differs (%v)", err)
		}
	}
	keys, err := o.Keys(ctx)
	if err != nil || len(keys) != len(orows.Keys) {
		return fmt.Errorf("OAuth signing keys: %d copied of %d (%v)", len(keys), len(orows.Keys), err)
	}
	return nil
}
