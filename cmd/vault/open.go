package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// storeFlags are the flags every command that opens the vault shares.
type storeFlags struct {
	data    string
	keyFile string
	// database is a PostgreSQL connection string (serve's --database,
	// VAULT_DATABASE_URL or VAULT_DATABASE_URL_FILE); empty for bbolt in
	// data. With PostgreSQL, data still holds the admin socket, the
	// upload spool and the demo's credentials.
	database string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", "./vault-data", "data directory")
	fs.StringVar(&f.keyFile, "root-key-file", defaultKeyFile(), "root key file, kept outside the data directory")
}

func defaultKeyFile() string {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "root.key"
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "jupyterhealth-vault", "root.key")
}

func dbPath(dir string) string   { return filepath.Join(dir, "vault.db") }
func sockPath(dir string) string { return filepath.Join(dir, "admin.sock") }

// passphrase returns the root passphrase from the environment, if any.
func passphrase() ([]byte, error) {
	if v := os.Getenv("VAULT_ROOT_PASSPHRASE"); v != "" {
		return []byte(v), nil
	}
	if f := os.Getenv("VAULT_ROOT_PASSPHRASE_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("VAULT_ROOT_PASSPHRASE_FILE: %v", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return nil, errors.New("VAULT_ROOT_PASSPHRASE_FILE is empty")
		}
		return []byte(p), nil
	}
	return nil, nil
}

// inside reports whether path lies inside dir, after resolving both.
func inside(path, dir string) bool {
	resolve := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		// Resolve the longest existing prefix so a symlinked DIR is caught.
		for d, rest := a, ""; ; {
			if r, err := filepath.EvalSymlinks(d); err == nil {
				return filepath.Join(r, rest)
			}
			parent := filepath.Dir(d)
			if parent == d {
				return a
			}
			rest = filepath.Join(filepath.Base(d), rest)
			d = parent
		}
	}
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// openVault opens the store in f.data and unwraps the master with the root
// key. On a wrong root it returns keys.ErrWrongRoot having written nothing.
// insecureTestArgon2 makes new passphrase vaults use test-only Argon2id
// costs. Only the tests set it (from TestMain); the shipped binary cannot.
var insecureTestArgon2 bool

// openMode says whether a command may create a new vault.
type openMode int

const (
	openExisting openMode = iota // admin: a typo in --data must not make a new vault
	openOrCreate                 // serve, bench
)

func openVault(ctx context.Context, f storeFlags, mode openMode, demo bool, lockTimeout time.Duration, log *slog.Logger) (*vault.Vault, backend, *keys.Root, error) {
	return openVaultWith(ctx, f, mode, demo, boltstore.Options{LockTimeout: lockTimeout}, log)
}

func openVaultWith(ctx context.Context, f storeFlags, mode openMode, demo bool, so boltstore.Options, log *slog.Logger) (*vault.Vault, backend, *keys.Root, error) {
	if f.database == "" && mode == openExisting && postgresConfigured() {
		return nil, nil, nil, errors.New("this vault's database is PostgreSQL (VAULT_DATABASE_URL[_FILE] is set) and no server answers on the admin socket in --data: admin commands on a PostgreSQL vault go through a running 'vault serve --database … --data DIR' (same --data); they cannot open the database themselves yet")
	}
	if mode == openExisting && f.database == "" {
		if _, err := os.Stat(dbPath(f.data)); err != nil {
			return nil, nil, nil, fmt.Errorf("no vault in %s (no %s); check --data, or create the vault by starting it once with 'vault serve --data %s'", f.data, filepath.Base(dbPath(f.data)), f.data)
		}
	}
	pass, err := passphrase()
	if err != nil {
		return nil, nil, nil, err
	}
	if pass == nil && inside(f.keyFile, f.data) && !demo {
		return nil, nil, nil, fmt.Errorf("the root key file %s is inside the data directory %s; keep it elsewhere so a copy of the data alone reveals nothing (only --demo allows this)", f.keyFile, f.data)
	}
	// Nothing of an existing PostgreSQL vault is in --data: a command on
	// one (ledger verify, keys change-root) makes no directory.
	if f.database == "" || mode != openExisting {
		if err := os.MkdirAll(f.data, 0o700); err != nil {
			return nil, nil, nil, fmt.Errorf("data directory: %v", err)
		}
	}
	if fi, err := os.Stat(f.data); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is readable by group or others; run chmod 700 on it", "dir", f.data, "mode", fi.Mode().Perm().String())
	}
	var st backend
	if f.database != "" {
		st, err = openPostgres(ctx, f.database)
	} else {
		st, err = boltstore.Open(dbPath(f.data), so)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if f.database != "" {
		if mark, err := st.Meta(ctx, metaMigrating); err != nil || mark != nil {
			st.Close()
			if err != nil {
				return nil, nil, nil, err
			}
			return nil, nil, nil, errors.New("a 'vault migrate' into this PostgreSQL database did not finish: run it again with --restart (from the bbolt vault) before serving it")
		}
		if mode == openExisting {
			// As with --data: a wrong database must not become a new vault.
			if m, err := st.Meta(ctx, vault.MetaMaster); err != nil || m == nil {
				st.Close()
				if err != nil {
					return nil, nil, nil, redact(fmt.Errorf("PostgreSQL: %w", err), f.database)
				}
				return nil, nil, nil, errors.New("no vault in this PostgreSQL database (it holds no master keyset); check --database, or create the vault by starting 'vault serve --database …' once")
			}
		}
	}
	v, root, err := unlock(ctx, st, f, pass, log)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return v, st, root, nil
}

func unlock(ctx context.Context, st backend, f storeFlags, pass []byte, log *slog.Logger) (*vault.Vault, *keys.Root, error) {
	info, err := vault.ReadRootInfo(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	existing, err := st.Meta(ctx, vault.MetaMaster)
	if err != nil {
		return nil, nil, err
	}
	var root *keys.Root
	newInfo := vault.RootInfo{}
	switch {
	case pass != nil:
		var p keys.Argon2Params
		switch {
		case info != nil && info.Argon2 != nil:
			p = *info.Argon2
		case insecureTestArgon2:
			p = keys.InsecureTestArgon2Params()
		default:
			p = keys.NewArgon2Params()
		}
		if root, err = keys.RootFromPassphrase(pass, p); err != nil {
			return nil, nil, err
		}
		newInfo = vault.RootInfo{Kind: root.Kind(), Argon2: &p}
	default:
		root, err = keys.LoadKeyFile(f.keyFile)
		if errors.Is(err, keys.ErrNoKeyFile) {
			if existing != nil {
				return nil, nil, fmt.Errorf("the root key file %s does not exist, but this vault was sealed with one; restore that file (or set VAULT_ROOT_PASSPHRASE if the vault uses a passphrase)", f.keyFile)
			}
			root, err = keys.CreateKeyFile(f.keyFile)
			if err == nil {
				log.Info("created a new root key file; back it up apart from the data directory", "path", f.keyFile)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		newInfo = vault.RootInfo{Kind: root.Kind()}
	}
	v, err := vault.Open(ctx, st, root, newInfo, vault.Options{Logger: log})
	if errors.Is(err, keys.ErrWrongRoot) {
		return nil, nil, fmt.Errorf("refusing to start: %w; check --root-key-file or VAULT_ROOT_PASSPHRASE", err)
	}
	return v, root, err
}

// openLedger opens the consent ledger in the vault's database. origin names
// a new log (the base URL's host); an existing log keeps its own.
func openLedger(st backend, v *vault.Vault, origin string) (*consent.Ledger, error) {
	l, err := consent.Open(st.Ledger(), v.Master(), consent.Options{Origin: origin})
	if err != nil {
		return nil, fmt.Errorf("consent ledger: %v", err)
	}
	return l, nil
}

// postgresConfigured reports whether the environment names a PostgreSQL
// database, so that a command that would open bbolt in --data instead
// refuses.
func postgresConfigured() bool {
	return os.Getenv("VAULT_DATABASE_URL") != "" || os.Getenv("VAULT_DATABASE_URL_FILE") != ""
}
