package api

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	latency      *prometheus.HistogramVec
	ingested     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
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
	}
	reg.MustRegister(m.latency, m.ingested, m.rejected, m.authFailures)
	return m
}
