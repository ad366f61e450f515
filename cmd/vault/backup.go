package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// Backup streams a snapshot from the running server.
func (s *socketAdmin) Backup(w io.Writer, size func(int64)) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://vault/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	c := *s.c
	c.Timeout = 0 // a big database takes as long as it takes
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin socket: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("admin socket answered %s", resp.Status)
	}
	if size != nil {
		size(resp.ContentLength)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("the snapshot stopped after %d of %d bytes", n, resp.ContentLength)
	}
	return n, err
}

// cmdBackup writes a consistent snapshot of the vault to --out: through
// the running server's socket (bbolt allows one process), or from the file
// directly when no server runs. The snapshot is checked page by page
// before it takes its name; it never holds the root key.
func cmdBackup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	var sf storeFlags
	sf.register(fs)
	out := fs.String("out", "", "the backup file to write (must not exist)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "usage: vault backup --out FILE")
		return errUsage
	}
	if postgresConfigured() {
		return errPostgresBackup
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists; choose a new name (a backup never overwrites)", *out)
	}
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	start := time.Now()
	var n int64
	if s, live := dialSocket(sf.data); live {
		n, err = s.Backup(f, nil)
	} else {
		n, err = backupFile(sf, f)
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := boltstore.Check(tmp); err != nil {
		return fmt.Errorf("the snapshot does not check out, so it was not kept: %v", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	ok = true
	syncDir(filepath.Dir(*out))
	fmt.Fprintf(stdout, "backup %s: %.1f MiB in %.1f s; it holds encrypted data only: keep the root key (or passphrase) apart from it\n",
		*out, float64(n)/(1<<20), time.Since(start).Seconds())
	return nil
}

// errPostgresBackup is what backup and restore say on a PostgreSQL vault:
// the database's own tools replace them.
var errPostgresBackup = errors.New("this vault's database is PostgreSQL (VAULT_DATABASE_URL[_FILE] is set): back it up with pg_dump or base backups with WAL archiving, restore with pg_restore or point-in-time recovery into a new database, then run 'vault ledger verify --checkpoint' through a server on it (docs/scaling.md#backups-and-restores)")

// backupFile snapshots the database file with no server running.
func backupFile(sf storeFlags, w io.Writer) (int64, error) {
	path := dbPath(sf.data)
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("no vault in %s", sf.data)
	}
	st, err := boltstore.Open(path, boltstore.Options{ReadOnly: true, LockTimeout: 2 * time.Second})
	if errors.Is(err, boltstore.ErrLocked) {
		return 0, fmt.Errorf("the database in %s is locked by another process, and no server answers on %s", sf.data, sockPath(sf.data))
	}
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Backup(w, nil)
}

// cmdRestore makes a new data directory from a backup, and reports success
// only once the copy opens with the root key, every page checks out, the
// ledger verifies and every record decrypts. It never overwrites data.
func cmdRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	var sf storeFlags
	sf.register(fs)
	in := fs.String("in", "", "the backup file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		fmt.Fprintln(stderr, "usage: vault restore --in FILE --data DIR")
		return errUsage
	}
	if postgresConfigured() {
		return errPostgresBackup
	}
	dst := dbPath(sf.data)
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s already holds a vault; restore into a new directory (restore never overwrites data)", sf.data)
	}
	_, statErr := os.Stat(sf.data)
	created := os.IsNotExist(statErr)
	if err := os.MkdirAll(sf.data, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(sf.data, 0o700); err != nil {
		return err
	}
	tmp := dst + ".restoring"
	os.Remove(tmp) // what an interrupted restore left
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
			if created {
				os.Remove(sf.data) // only if still empty
			}
		}
	}()
	if err := copyFile(*in, tmp); err != nil {
		return err
	}
	start := time.Now()
	if err := boltstore.Check(tmp); err != nil {
		return fmt.Errorf("the backup is damaged (bbolt check): %v", err)
	}
	summary, err := verifyRestored(tmp, sf, stderr)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	syncDir(sf.data)
	fmt.Fprintf(stdout, "restored %s into %s in %.1f s: %s\n", *in, sf.data, time.Since(start).Seconds(), summary)
	return nil
}

// verifyRestored opens the restored file with the root key and checks the
// ledger and every record.
func verifyRestored(path string, sf storeFlags, stderr io.Writer) (string, error) {
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := boltstore.Open(path, boltstore.Options{LockTimeout: time.Second})
	if err != nil {
		return "", err
	}
	defer st.Close()
	if m, err := st.Meta(ctx, vault.MetaMaster); err != nil || m == nil {
		return "", errors.New("the backup holds no vault (no master keyset)")
	}
	pass, err := passphrase()
	if err != nil {
		return "", err
	}
	v, _, err := unlock(ctx, st, sf, pass, log)
	if err != nil {
		return "", err
	}
	led, err := consent.Open(st.Ledger(), v.Master(), consent.Options{})
	if err != nil {
		return "", fmt.Errorf("consent ledger: %v", err)
	}
	res, err := led.Verify(nil)
	var te *consent.TamperError
	if errors.As(err, &te) {
		return "", fmt.Errorf("the backup's ledger does not verify: %v", err)
	}
	if err != nil {
		return "", err
	}
	rs, err := v.VerifyRecords(ctx)
	if err != nil {
		return "", fmt.Errorf("the backup's records do not verify: %v", err)
	}
	return strconv.Itoa(rs.Patients) + " patients, " + strconv.Itoa(rs.Records) + " readings decrypted, ledger of " +
		strconv.FormatInt(res.Size, 10) + " entries verified (verifier key " + led.VerifierKey() + ")", nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

var _ api.AdminOps = (*socketAdmin)(nil)
