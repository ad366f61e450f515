package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) healthz(c echo.Context) error {
	if err := s.vault.Backend().Ping(c.Request().Context()); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unhealthy", Message: "the database does not answer", Cause: err}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
