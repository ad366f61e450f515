package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	latency      *prometheus.HistogramVec
	ingested     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	signins      *prometheus.CounterVec
	exports      *prometheus.CounterVec
	exported     prometheus.Counter
	imports      *prometheus.CounterVec
	eventLag     *prometheus.HistogramVec
}

// StoreInfo is what the metrics read from the store when scraped. The
// bbolt store implements it.
type StoreInfo interface {
	// Size is the database's size in bytes.
	Size() (int64, error)
	// LastBackup is when the last backup completed, zero if never.
	LastBackup() time.Time
}

// registerGauges adds the gauges an admin alerts on that are read when
// scraped: the ledger's size, the master keyset's unknown-key reloads, the
// database's size, and the time since the last backup.
func (s *Server) registerGauges(reg *prometheus.Registry, st StoreInfo) {
	if s.ledger != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vault_ledger_entries",
			Help: "Entries in the consent ledger.",
		}, func() float64 {
			n, err := s.ledger.Size()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	if s.vault != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vault_master_unknown_key_reloads_total",
			Help: "Reloads of the stored master keyset caused by meeting a key this process lacked: the safety net of a rotation by another replica, 0 while the two-phase rotation works.",
		}, func() float64 { return float64(s.vault.Master().UnknownKeyReloads()) }))
	}
	if st == nil {
		return
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vault_db_size_bytes",
		Help: "Size of the database.",
	}, func() float64 {
		n, err := st.Size()
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vault_last_backup_timestamp_seconds",
		Help: "Unix time of the last completed vault backup, 0 if none. Alert on time() minus this.",
	}, func() float64 {
		t := st.LastBackup()
		if t.IsZero() {
			return 0
		}
		return float64(t.Unix())
	}))
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vault_http_request_duration_seconds",
			Help:    "HTTP request latency by method, route and status class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "route", "status"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_ingest_readings_total",
			Help: "Readings received, by outcome (accepted or duplicate).",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_ingest_rejected_batches_total",
			Help: "Ingest requests refused, by error code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_auth_failures_total",
			Help: "Failed token authentications, by reason.",
		}, []string{"reason"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_signin_failures_total",
			Help: "Refused web UI sign-ins, by method (passkey, recovery_code, rate_limited, bad_challenge, ceremony_full).",
		}, []string{"method"}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_exports_total",
			Help: "Exports started, by format and outcome (complete, incomplete, refused, rate_limited, access_log_unavailable).",
		}, []string{"format", "outcome"}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vault_export_readings_total",
			Help: "Readings sent in exports.",
		}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_imports_total",
			Help: "Imports, by format and outcome (complete, refused, incomplete).",
		}, []string{"format", "outcome"}),
		eventLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vault_replica_event_lag_seconds",
			Help:    "On PostgreSQL, from a change on one replica (a patient's deletion, a ledger rebuild) to this replica acting on its event, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"kind"}),
	}
	reg.MustRegister(m.latency, m.ingested, m.rejected, m.authFailures, m.signins, m.exports, m.exported, m.imports, m.eventLag)
	return m
}

// ObserveReplicaEvent records that this replica acted on another's event
// (store/postgres.Event) lag after the change was made.
func (s *Server) ObserveReplicaEvent(kind string, lag time.Duration) {
	s.metrics.eventLag.WithLabelValues(kind).Observe(max(0, lag.Seconds()))
}

// CountSignInFailure counts a refused web UI sign-in (web.Config's
// OnSignInFailure).
func (s *Server) CountSignInFailure(method string) {
	s.metrics.signins.WithLabelValues(method).Inc()
}
