package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
)

// backend is what a command needs of the database, whichever it is:
// bbolt in the data directory (store/boltstore, the default) or
// PostgreSQL (store/postgres, with --database). This package is the only
// one that picks.
type backend interface {
	vault.Backend
	Ledger() ledgerstore.Store
	Web() webstore.Store
	OAuth() oauthstore.Store
}

// allowUnsafeDurability opens PostgreSQL servers that run with fsync or
// synchronous_commit off. Only the tests set it (from TestMain, for their
// throwaway clusters); the shipped binary cannot.
var allowUnsafeDurability bool

// databaseURL returns the PostgreSQL connection string serve runs on:
// --database, else VAULT_DATABASE_URL, else the contents of the file
// VAULT_DATABASE_URL_FILE names (so the password need not sit in the
// environment or on a command line); "" for the default, bbolt.
func databaseURL(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv("VAULT_DATABASE_URL"); v != "" {
		return v, nil
	}
	if f := os.Getenv("VAULT_DATABASE_URL_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("VAULT_DATABASE_URL_FILE: %v", err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", errors.New("VAULT_DATABASE_URL_FILE is empty")
		}
		return dsn, nil
	}
	return "", nil
}

// checkDSN refuses what is not a PostgreSQL connection string (a
// postgres:// or postgresql:// URL, or libpq's key=value form). Its
// messages never quote the string, which can hold a password.
func checkDSN(dsn string) error {
	const hint = "; give a URL such as postgres://vault@db.example.org:5432/vault (the password in VAULT_DATABASE_URL_FILE or ~/.pgpass, not on the command line)"
	isURL := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	if strings.Contains(dsn, "://") && !isURL {
		return errors.New("the database address is not a PostgreSQL URL (it must start with postgres:// or postgresql://)" + hint)
	}
	if !isURL && !strings.Contains(dsn, "=") {
		return errors.New("the database address is not a PostgreSQL connection string" + hint)
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return errors.New("the database address is not a valid PostgreSQL connection string" + hint)
	}
	return nil
}

// openPostgres opens the PostgreSQL backend. Its errors never carry the
// connection string's password.
func openPostgres(ctx context.Context, dsn string) (*postgres.Store, error) {
	if err := checkDSN(dsn); err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, dsn, postgres.Options{AllowUnsafeDurability: allowUnsafeDurability})
	if err != nil {
		return nil, redact(fmt.Errorf("PostgreSQL: %w", err), dsn)
	}
	return st, nil
}

// redact replaces the password of dsn in err's message, should a driver
// message ever quote it.
func redact(err error, dsn string) error {
	cfg, perr := pgconn.ParseConfig(dsn)
	if perr != nil || cfg.Password == "" || !strings.Contains(err.Error(), cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), cfg.Password, "[password]"))
}

// snapshotter is the backend's online backup, when it has one: bbolt's.
// On PostgreSQL there is none (the operator's pg_dump or base backups
// replace it), and the admin backup says so.
func snapshotter(st backend) api.Snapshotter {
	if s, ok := st.(api.Snapshotter); ok {
		return s
	}
	return nil
}

// storeInfo is the backend's size and last-backup gauges, when it has
// them: bbolt's.
func storeInfo(st backend) api.StoreInfo {
	if s, ok := st.(api.StoreInfo); ok {
		return s
	}
	return nil
}
