package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web"
)

// Several replicas on one PostgreSQL database (docs/scaling.md): what
// serve adds on PostgreSQL so that what one replica does reaches what the
// others keep in memory, and so that they share one sign-in limit. On
// bbolt (one process) none of this runs.

// webAuthScope names the shared sign-in and enrolment limit's buckets.
const webAuthScope = "web-auth"

// sharedAttemptLimiter is the web UI's sign-in and enrolment limit that
// every replica on the database shares; nil (the web UI's own, in memory)
// on bbolt.
func sharedAttemptLimiter(st backend) (web.AttemptLimiter, error) {
	pg, ok := st.(*postgres.Store)
	if !ok {
		return nil, nil
	}
	l, err := pg.Limiter(webAuthScope, web.DefaultAuthPerMinute)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// eventsFrom is where this replica's watch of the replica events starts:
// the newest event when it opened the database, before its caches hold
// anything. 0 and false on bbolt.
func eventsFrom(ctx context.Context, st backend) (int64, bool, error) {
	pg, ok := st.(*postgres.Store)
	if !ok {
		return 0, false, nil
	}
	id, err := pg.LastEvent(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("PostgreSQL: read the replica events: %w", err)
	}
	return id, true, nil
}

// joinReplicas makes this process one of the replicas on the database
// (store/postgres.JoinReplicas): it reloads the stored master keyset and
// writes its first heartbeat before serve serves anything, then beats
// every second, so a master key rotation promotes its new key only once
// this process holds it. nil on bbolt.
func joinReplicas(ctx context.Context, st backend, v *vault.Vault, log *slog.Logger, dsn string) (*postgres.Replica, error) {
	pg, ok := st.(*postgres.Store)
	if !ok {
		return nil, nil
	}
	host, err := os.Hostname()
	if err != nil {
		host = "replica"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s:%d:%x", host, os.Getpid(), b)
	r, err := pg.JoinReplicas(ctx, id, v.Master(), func(err error) {
		log.Warn("replica heartbeat failed; retrying", "cause", redact(err, dsn).Error())
	})
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	log.Info("joined the replicas", "replica", id)
	return r, nil
}

// eventTargets are what a replica event changes in this process.
type eventTargets struct {
	replica *postgres.Replica
	vault   *vault.Vault
	web     *web.Server
	metrics *api.Server
	ledger  *consent.Ledger
	log     *slog.Logger
	dsn     string // for redacting a connection error
}

// watchEvents acts on every replica event above after until ctx ends
// (within postgres.EventPoll, at once when the notification arrives): a
// patient deleted on any replica leaves this one's key cache and page
// cache; a grant index rebuilt on another replica is rebuilt here too,
// from the log, every decision denying until it is done (on the watcher's
// goroutine: events behind it wait for the replay).
func watchEvents(ctx context.Context, st backend, after int64, t eventTargets) {
	pg, ok := st.(*postgres.Store)
	if !ok {
		return
	}
	pg.WatchEvents(ctx, after, t.apply, func(err error) {
		t.log.Warn("replica events: reading them failed; retrying", "cause", redact(err, t.dsn).Error())
	})
}

func (t eventTargets) apply(e postgres.Event) {
	var attrs []any
	switch e.Kind {
	case postgres.EventPatientDeleted:
		// Whether her key was in this process's memory: the tests check
		// that the eviction found it.
		attrs = append(attrs, "key_evicted", t.vault.ForgetPatientKeys(e.Subject))
		t.web.EvictPatient(e.Subject)
	case postgres.EventMasterChanged:
		// Reload the keyset and report the keys held, now rather than at
		// the next beat: a rotation waits for it.
		t.replica.Kick()
	case postgres.EventLedgerRebuilt:
		// Whether this replica rebuilt (false for its own rebuild, come
		// back): the tests count them.
		start := time.Now()
		rebuilt, err := t.ledger.RebuiltElsewhere(e.ID)
		if err != nil {
			t.log.Error("the grant index, rebuilt on another replica, does not match the log here: every access is denied until 'vault ledger verify' and 'vault ledger rebuild'", "event", e.ID, "cause", err.Error())
		}
		attrs = append(attrs, "index_rebuilt", rebuilt && err == nil, "rebuild_ms", time.Since(start).Milliseconds())
	default:
		// A newer binary's event: nothing this one caches depends on it.
		t.log.Warn("replica event of an unknown kind ignored", "kind", e.Kind, "event", e.ID)
		return
	}
	lag := time.Since(e.At)
	t.metrics.ObserveReplicaEvent(e.Kind, lag)
	t.log.Info("replica event applied", append([]any{"kind", e.Kind, "event", e.ID, "lag_ms", lag.Milliseconds()}, attrs...)...)
}
