package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Events between replicas.
//
// Several vault processes on one database share every table, but each
// keeps some things in memory: a patient's unwrapped key (vault.Vault's
// key cache) and her decrypted daily figures (the web UI's page cache).
// What one replica does that makes those stale elsewhere is appended to
// vault_events in the same transaction as the change itself, so an event
// exists exactly when its change committed. Every replica runs
// [Store.WatchEvents], which hands it each new event once, in order:
//
//   - NOTIFY vault_events, sent by the appending transaction and
//     delivered at its commit, wakes the watchers at once (a hint: a
//     notification is lost while a watcher's connection is down);
//   - every EventPoll the watcher reads the events above the last it saw
//     anyway, so a lost notification, a dropped connection or a replica
//     that was restarting delays an event by at most a poll, and never
//     loses it (the rows are the truth; after a reconnect the watcher
//     replays everything above the last id it handled).
//
// Appends take a transaction-scoped advisory lock held to the commit, so
// ids commit in order: a watcher that has seen id n cannot later find an
// id below n committed.
//
// The events are not pruned yet: a deletion adds one row of a few dozen
// bytes (the patient id, a kind and a time).

// Event kinds.
const (
	// EventPatientDeleted: a patient was deleted (her key, readings,
	// account and tokens are gone); Subject is her id. Replicas forget her
	// unwrapped key and her cached figures.
	EventPatientDeleted = "patient-deleted"
)

// EventLedgerRebuilt: the consent ledger's stored grant index was rebuilt
// from the log (vault ledger rebuild), in the transaction that appended
// it; Subject is the log size it replayed. Each replica but the one that
// rebuilt rebuilds its in-memory index from the log too
// (consent.Ledger.RebuiltElsewhere), denying every decision meanwhile.
const EventLedgerRebuilt = "ledger-rebuilt"

// EventPoll is how often a watcher reads vault_events whatever it was
// told: the longest a lost notification delays an event.
const EventPoll = time.Second

// eventChannel is the NOTIFY channel of vault_events.
const eventChannel = "vault_events"

// Event is one row of vault_events.
type Event struct {
	ID      int64
	Kind    string
	Subject string
	// At is when the appending process made the change (its clock).
	At time.Time
}

// appendEvent adds an event in tx, and a notification delivered at its
// commit.
func appendEvent(ctx context.Context, tx pgx.Tx, kind, subject string) error {
	_, err := appendEventID(ctx, tx, kind, subject)
	return err
}

// appendEventID is appendEvent, returning the new event's id.
func appendEventID(ctx context.Context, tx pgx.Tx, kind, subject string) (int64, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockEvents); err != nil {
		return 0, err
	}
	var id int64
	if err := tx.QueryRow(ctx, "INSERT INTO vault_events (kind, subject, at) VALUES ($1, $2, $3) RETURNING id", kind, subject, time.Now().UnixNano()).Scan(&id); err != nil {
		return 0, err
	}
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", eventChannel)
	return id, err
}

// LastEvent is the newest event's id, 0 when there is none: where a
// watcher starting now begins (what happened before it started is not in
// its memory).
func (s *Store) LastEvent(ctx context.Context) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM vault_events").Scan(&id)
	return id, err
}

// eventPage bounds the events one read returns.
const eventPage = 1000

// EventsAfter returns the events above id after, oldest first, at most
// eventPage of them.
func (s *Store) EventsAfter(ctx context.Context, after int64) ([]Event, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, kind, subject, at FROM vault_events WHERE id > $1 ORDER BY id LIMIT $2", after, eventPage)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		var at int64
		err := r.Scan(&e.ID, &e.Kind, &e.Subject, &at)
		e.At = time.Unix(0, at)
		return e, err
	})
}

// WatchEvents calls fn with every event above id after, in order, once
// each, as they are appended, until ctx ends. It listens for the
// notification on a connection of its own (not the pool's) and reads the
// events through the pool at each notification and every EventPoll. A
// failure (the database restarting, a lost connection) goes to onErr and
// the watch carries on: it reconnects at the next poll and replays what it
// missed. fn runs on the watcher's goroutine: keep it quick.
func (s *Store) WatchEvents(ctx context.Context, after int64, fn func(Event), onErr func(error)) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil {
			c, err := s.listen(ctx)
			if err != nil && ctx.Err() == nil {
				onErr(err)
			}
			conn = c
		}
		// Read after LISTEN, so an event committed in between is either
		// read here or notified.
		evs, err := s.EventsAfter(ctx, after)
		if err != nil && ctx.Err() == nil {
			onErr(err)
		}
		for _, e := range evs {
			fn(e)
			after = e.ID
		}
		if len(evs) == eventPage {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, EventPoll)
		if conn != nil {
			_, err = conn.WaitForNotification(wctx)
			if err != nil && ctx.Err() == nil && !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded) {
				onErr(err)
				conn.Close(context.Background())
				conn = nil
				<-wctx.Done() // reconnect at the next poll, not in a tight loop
			}
		} else {
			<-wctx.Done()
		}
		cancel()
	}
}

// listen opens a connection of its own, with the pool's settings, that
// listens on the events channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+eventChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}
