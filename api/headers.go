package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// noStore marks every response of the API, whatever its route or status
// (404 and 405 included), as never to be cached or content-sniffed: most
// carry health data (readings, exports, the access log, grants), and a
// shared or browser cache must keep none of it. It runs before the route's
// handler, so an error answered by the error handler carries it too; a
// handler may only repeat it (no API route is cacheable).
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

// Metrics serves the Prometheus metrics. It is not a route of Echo():
// cmd/vault serves it on its own listener (--metrics-addr, loopback by
// default), so the public listener never shows it.
func (s *Server) Metrics() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}
