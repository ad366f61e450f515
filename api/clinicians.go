package api

import (
	"net/http"

	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// ClinicianEntry is one row of the clinician directory.
type ClinicianEntry struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Organization string `json:"organization,omitempty"`
}

func (s *Server) getClinicians(c echo.Context) error {
	us, err := s.vault.Users(c.Request().Context(), vault.RoleClinician)
	if err != nil {
		return internal(err)
	}
	out := make([]ClinicianEntry, 0, len(us))
	for _, u := range us {
		out = append(out, ClinicianEntry{ID: u.ID, Name: u.Name, Organization: u.Organization})
	}
	return c.JSON(http.StatusOK, out)
}
