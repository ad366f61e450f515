package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/sys/unix"
)

// compactGrowth is the slack a new bbolt file may take beyond its pages:
// bbolt grows a file in steps of its allocation size (16 MiB).
const compactGrowth = 16 << 20

// compactStopAt names a step of 'vault admin compact' at which the command
// stops and waits to be killed ("copied": the copy is written and fsynced,
// not yet checked; "checked": checked, not yet swapped; "swapped": renamed
// over the old file). Only the tests set it (from TestMain), to SIGKILL a
// real process there; the shipped binary cannot.
var compactStopAt string

// stopForTest waits forever at step if the tests asked for it, having
// said so on stderr.
func stopForTest(step string, stderr io.Writer) {
	if compactStopAt != step {
		return
	}
	fmt.Fprintf(stderr, "compact: stopped after step %q for the test\n", step)
	for {
		time.Sleep(time.Hour)
	}
}

// adminCompact copies the live pages of a stopped vault's file into a new
// file beside it, checks the copy (bbolt's page check, every patient's
// readings read identically, the ledger verifies to the same tree head)
// and renames it over the old file. A crash at any point leaves the old
// file or the new one, whole.
func adminCompact(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin compact", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if postgresConfigured() {
		return errors.New("this vault's database is PostgreSQL (VAULT_DATABASE_URL[_FILE] is set): 'vault admin compact' is for the bbolt file; PostgreSQL gives space back with VACUUM FULL (docs/scaling.md)")
	}
	if _, live := dialSocket(sf.data); live {
		return fmt.Errorf("a server is running on %s: stop it first (compaction swaps the database file, so it runs only offline)", sf.data)
	}
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, be, root, err := openVault(ctx, sf, openExisting, false, 2*time.Second, log)
	if errors.Is(err, boltstore.ErrLocked) {
		return fmt.Errorf("the database in %s is in use by another process: stop the server first (compaction runs only offline)", sf.data)
	}
	if err != nil {
		return err
	}
	defer be.Close()
	st, ok := be.(*boltstore.Store)
	if !ok {
		return errors.New("'vault admin compact' is for the bbolt file")
	}
	start := time.Now()
	path := dbPath(sf.data)
	before, err := fileSize(path)
	if err != nil {
		return err
	}
	// What a compaction cut short left would count against the room.
	os.Remove(st.CompactPath())
	live, err := st.LiveBytes()
	if err != nil {
		return err
	}
	if err := checkRoom(sf.data, live); err != nil {
		return err
	}
	led, err := openLedger(be, v, "")
	if err != nil {
		return err
	}
	want, err := digestVault(ctx, v, be)
	if err != nil {
		return fmt.Errorf("reading the vault before compacting it: %w", err)
	}
	wantLedger, err := led.Verify(nil)
	if err != nil {
		return fmt.Errorf("the ledger does not verify, so the vault was not compacted (run 'vault ledger verify'): %v", err)
	}
	fmt.Fprintf(stderr, "compact: copying %s of data out of %s (%s) into %s\n", mb(live), path, mb(before), filepath.Base(st.CompactPath()))
	err = st.CompactChecked(func(tmp string) error {
		stopForTest("copied", stderr)
		// Run as root on a service account's vault, the copy would be
		// root's: it keeps the old file's owner and group.
		if err := sameOwner(tmp, path); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "compact: copied in %.1f s; checking the copy\n", time.Since(start).Seconds())
		sum, err := fileHash(tmp)
		if err != nil {
			return err
		}
		if err := checkCompacted(ctx, tmp, root, want, wantLedger, log); err != nil {
			return err
		}
		if err := boltstore.Check(tmp); err != nil {
			return fmt.Errorf("the compacted copy fails bbolt's page check: %v", err)
		}
		// The checks write nothing: the file swapped in is the one checked.
		if after, err := fileHash(tmp); err != nil || after != sum {
			return fmt.Errorf("the compacted copy changed while it was checked (%v)", err)
		}
		stopForTest("checked", stderr)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; %s is unchanged", err, path)
	}
	stopForTest("swapped", stderr)
	after, err := fileSize(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s in %.1f s: %s before, %s after (%s given back)\n", path, time.Since(start).Seconds(), mb(before), mb(after), mb(before-after))
	fmt.Fprintf(stdout, "checked: bbolt's page check; %d patients' %d readings read identically; the ledger verifies to the same tree head (%d entries)\n", want.patients, want.readings, wantLedger.Size)
	return nil
}

// compactNeed is the room a compacted copy of live bytes of data may
// take: bbolt's Compact fills its pages, but a page ends where the next
// element does not fit, and the file grows in 16 MiB steps. (Measured on
// a year of demo data rewritten to format 2: 48.3 MB of data made a 46.9 MB copy.)
func compactNeed(live int64) int64 { return live + live/4 + compactGrowth }

// checkRoom refuses when the file system of dir has less room than a
// compacted copy of live bytes may take.
func checkRoom(dir string, live int64) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("free space of %s: %v", dir, err)
	}
	free := int64(fs.Bavail) * fs.Bsize
	need := compactNeed(live)
	if free < need {
		return fmt.Errorf("not enough room to compact: the copy needs up to %s beside the old file (%s of data in its pages, a quarter more for the copy's part-filled pages, and bbolt's 16 MiB growth step), and the file system of %s has %s free; free %s there (or move the data directory to a bigger disk) and run it again; nothing was changed",
			mb(need), mb(live), dir, mb(free), mb(need-free))
	}
	return nil
}

// vaultDigest sums up what a vault reads: per patient, the stored record
// count and a SHA-256 of every reading (schema, time, canonical point).
type vaultDigest struct {
	patients, readings int
	each               map[string]patientDigest
}

type patientDigest struct {
	stored, read int
	sum          [sha256.Size]byte
}

// counter is the part of the backend digestVault needs.
type counter interface {
	Count(ctx context.Context, patientID string) (int, error)
}

// digestVault reads every reading of every patient through the vault.
func digestVault(ctx context.Context, v *vault.Vault, b counter) (vaultDigest, error) {
	d := vaultDigest{each: map[string]patientDigest{}}
	users, err := v.Users(ctx, vault.RolePatient)
	if err != nil {
		return d, err
	}
	for _, u := range users {
		var p patientDigest
		if p.stored, err = b.Count(ctx, u.ID); err != nil {
			return d, err
		}
		h := sha256.New()
		var n [8]byte
		for _, id := range omh.Accepted() {
			for r, err := range v.Readings(ctx, u.ID, id.String(), time.Time{}, time.Time{}) {
				if err != nil {
					return d, fmt.Errorf("patient %s, %s: %w", u.ID, id, err)
				}
				p.read++
				binary.BigEndian.PutUint64(n[:], uint64(len(r.Schema)))
				h.Write(n[:])
				h.Write([]byte(r.Schema))
				binary.BigEndian.PutUint64(n[:], uint64(r.Time.UnixNano()))
				h.Write(n[:])
				binary.BigEndian.PutUint64(n[:], uint64(len(r.JSON)))
				h.Write(n[:])
				h.Write(r.JSON)
			}
		}
		h.Sum(p.sum[:0])
		d.each[u.ID] = p
		d.patients++
		d.readings += p.read
	}
	return d, nil
}

// checkCompacted opens the copy at path with the root key and checks that
// it reads as want and that its ledger verifies to the same tree head as
// the old file's. It writes nothing: opening a current file writes
// nothing, and the ledger's open, which runs a write transaction, runs it
// on dryLedger.
func checkCompacted(ctx context.Context, path string, root *keys.Root, want vaultDigest, wantLedger consent.VerifyResult, log *slog.Logger) error {
	st, err := boltstore.Open(path, boltstore.Options{LockTimeout: time.Second})
	if err != nil {
		return fmt.Errorf("the compacted copy does not open: %v", err)
	}
	defer st.Close()
	v, err := vault.Open(ctx, st, root, vault.RootInfo{}, vault.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("the compacted copy does not open with the root key: %v", err)
	}
	got, err := digestVault(ctx, v, st)
	if err != nil {
		return fmt.Errorf("the compacted copy does not read: %v", err)
	}
	if got.patients != want.patients {
		return fmt.Errorf("the compacted copy has %d patients, the vault %d", got.patients, want.patients)
	}
	for id, w := range want.each {
		g, ok := got.each[id]
		switch {
		case !ok:
			return fmt.Errorf("the compacted copy lacks patient %s", id)
		case g.stored != w.stored || g.read != w.read:
			return fmt.Errorf("patient %s: the compacted copy holds %d records (%d readable), the vault %d (%d)", id, g.stored, g.read, w.stored, w.read)
		case g.sum != w.sum:
			return fmt.Errorf("patient %s: the compacted copy's readings differ from the vault's", id)
		}
	}
	led, err := consent.Open(dryLedger{st.Ledger()}, v.Master(), consent.Options{})
	if err != nil {
		return fmt.Errorf("the compacted copy's ledger: %v", err)
	}
	res, err := led.Verify(nil)
	if err != nil {
		return fmt.Errorf("the compacted copy's ledger does not verify: %v", err)
	}
	if res.Size != wantLedger.Size || res.Latest != wantLedger.Latest {
		return fmt.Errorf("the compacted copy's ledger has %d entries (tree head %x), the vault's %d (%x)", res.Size, res.Latest.Hash[:8], wantLedger.Size, wantLedger.Latest.Hash[:8])
	}
	return nil
}

// sameOwner gives the file at path the owner and group of the file at
// like, when they differ (only root may).
func sameOwner(path, like string) error {
	var want, got unix.Stat_t
	if err := unix.Stat(like, &want); err != nil {
		return err
	}
	if err := unix.Stat(path, &got); err != nil {
		return err
	}
	if got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	if err := os.Chown(path, int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("the copy cannot take the owner of %s (%d:%d): %v; run the command as that user", like, want.Uid, want.Gid, err)
	}
	return nil
}

// dryLedger is a ledger store whose write transactions all roll back.
type dryLedger struct{ ledgerstore.Store }

var errDryRun = errors.New("dry run: rolled back")

func (d dryLedger) Update(ctx context.Context, fn func(ledgerstore.WriteTx) error) error {
	err := d.Store.Update(ctx, func(tx ledgerstore.WriteTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errDryRun
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

// fileHash is the SHA-256 of the file at path.
func fileHash(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// mb formats n bytes in megabytes (10^6), as docs/self-hosting.md does.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
