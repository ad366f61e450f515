package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jupyterhealth/vault/vault"
)

// The master keyset across replicas.
//
// A master key rotation (vault.RotateMaster) runs in two phases on a
// shared database: the new key is stored first, not primary, and
// promoted only once every live replica holds it, so no replica meets a
// secret sealed under a key it has not loaded. This file is the
// database's part:
//
//   - every change of the stored keyset (meta "master", SwapMeta) appends
//     an [EventMasterChanged] in its own transaction, on which every
//     replica reloads the keyset ([Replica.Kick]); each also reads it
//     every [ReplicaBeat], so a lost notification costs at most that;
//   - every replica writes a heartbeat to vault_replicas every
//     ReplicaBeat and at once after a reload: its id, the master key ids
//     it runs with and the database's clock ([Store.JoinReplicas]);
//   - [Store.ReplicasLacking] lists the live replicas (a heartbeat newer
//     than [ReplicaStale]) whose keys lack an id: the rotation promotes
//     when it is empty;
//   - [Store.TryRotationLock], a session advisory lock on a connection of
//     its own, lets one process at a time run a rotation (or resume one a
//     crash cut short); the others skip it.

// EventMasterChanged: the stored master keyset changed (a rotation added
// or promoted a key, a root change re-wrapped it). Subject is empty.
// Replicas reload the keyset.
const EventMasterChanged = "master-changed"

// ReplicaBeat is how often a replica reloads the stored master keyset and
// writes its heartbeat, whatever it was told.
const ReplicaBeat = EventPoll

// ReplicaStale is how old a heartbeat may be for its replica to count as
// live: two beats and a second of grace (a slow transaction, a pause of
// the process). A replica whose last beat is older has stopped, or cannot
// reach the database, and so cannot serve anything sealed under a new key
// until it can again; when it can, it reads the keyset before its next
// beat, and the reload on an unknown key covers the requests in between.
const ReplicaStale = 2*ReplicaBeat + time.Second

// replicaForget is how long a heartbeat row is kept after its replica
// stopped beating (a process killed without removing its row), for
// 'vault keys status'-like inspection; older rows are deleted.
const replicaForget = 24 * time.Hour

// TryRotationLock implements vault.Replicas: pg_try_advisory_lock on a
// connection opened for it (not the pool's, which the rotation's own
// work needs), held until unlock closes it. A process that dies, or loses
// that connection, releases the lock with it.
func (s *Store) TryRotationLock(ctx context.Context) (unlock func(), ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, false, err
	}
	if err := conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", lockRotation).Scan(&ok); err != nil || !ok {
		conn.Close(context.Background())
		return nil, false, err
	}
	return func() { conn.Close(context.Background()) }, true, nil
}

// ReplicasLacking implements vault.Replicas: the live replicas (a
// heartbeat within ReplicaStale, by the database's clock) whose running
// master keyset lacks key id, in id order.
func (s *Store) ReplicasLacking(ctx context.Context, id uint32) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM vault_replicas
		WHERE seen > now() - make_interval(secs => $1) AND NOT ($2 = ANY(master_keys)) ORDER BY id`,
		ReplicaStale.Seconds(), int64(id))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Heartbeat records that replica id runs with the master keys ids, primary
// primary, now (the database's clock).
func (s *Store) Heartbeat(ctx context.Context, id string, ids []uint32, primary uint32) error {
	keys := make([]int64, len(ids))
	for i, k := range ids {
		keys[i] = int64(k)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO vault_replicas (id, master_keys, master_primary, seen) VALUES ($1, $2, $3, now())
		ON CONFLICT (id) DO UPDATE SET master_keys = EXCLUDED.master_keys, master_primary = EXCLUDED.master_primary, seen = EXCLUDED.seen`,
		id, keys, int64(primary))
	return err
}

// KeyHolder is a replica's running master keyset (a *keys.Master).
type KeyHolder interface {
	// Reload adopts the stored keyset if it is newer than the running one.
	Reload() (bool, error)
	KeyIDs() []uint32
	PrimaryID() uint32
}

// Replica is one process's membership of the replicas on the database
// (JoinReplicas).
type Replica struct {
	s     *Store
	id    string
	keys  KeyHolder
	kick  chan struct{}
	onErr func(error)
}

// JoinReplicas makes this process a replica called id (unique per
// process: a restarted process joins under a new id): it reloads the
// stored master keyset into keys and writes its first heartbeat before it
// returns, so a rotation that begins from then on waits for it, and
// whatever it serves afterwards was sealed under keys it holds. Then, until
// ctx ends, it reloads and beats every ReplicaBeat and at each Kick; at
// the end it removes its row, so a rotation stops waiting for it at once.
// Failures after the first (the database restarting) go to onErr and the
// beats carry on.
func (s *Store) JoinReplicas(ctx context.Context, id string, keys KeyHolder, onErr func(error)) (*Replica, error) {
	r := &Replica{s: s, id: id, keys: keys, kick: make(chan struct{}, 1), onErr: onErr}
	if _, err := s.pool.Exec(ctx, "DELETE FROM vault_replicas WHERE seen < now() - make_interval(secs => $1)", replicaForget.Seconds()); err != nil {
		return nil, err
	}
	if err := r.beat(ctx); err != nil {
		return nil, fmt.Errorf("the replica heartbeat: %w", err)
	}
	go r.run(ctx)
	return r, nil
}

// Kick makes the replica reload the keyset and beat now (an
// EventMasterChanged arrived). It never blocks.
func (r *Replica) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// ID is the replica's id in vault_replicas.
func (r *Replica) ID() string { return r.id }

func (r *Replica) beat(ctx context.Context) error {
	if _, err := r.keys.Reload(); err != nil {
		return fmt.Errorf("reload the master keyset: %w", err)
	}
	return r.s.Heartbeat(ctx, r.id, r.keys.KeyIDs(), r.keys.PrimaryID())
}

func (r *Replica) run(ctx context.Context) {
	t := time.NewTicker(ReplicaBeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.s.pool.Exec(dctx, "DELETE FROM vault_replicas WHERE id = $1", r.id) //nolint:errcheck // stale rows stop counting anyway
			cancel()
			return
		case <-t.C:
		case <-r.kick:
		}
		if err := r.beat(ctx); err != nil && ctx.Err() == nil {
			r.onErr(err)
		}
	}
}

var _ vault.Replicas = (*Store)(nil)
