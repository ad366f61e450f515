package api

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/labstack/echo/v4"
)

// MaxClinicianKeys bounds a clinician's registered (not removed) keys.
const MaxClinicianKeys = 10

// KeyRequest is the body of POST /api/v1/clinician/keys.
type KeyRequest struct {
	Label     string `json:"label"`
	Recipient string `json:"recipient"`
}

// KeyResponse is a registered key with its status now.
type KeyResponse struct {
	consent.KeyState
	Status string `json:"status"` // pending (in its activation delay), active or removed
}

func keyResponse(k consent.KeyState, now time.Time) KeyResponse {
	st := "active"
	switch {
	case k.RemoveIndex != nil:
		st = "removed"
	case now.Before(k.ActiveFrom):
		st = "pending"
	}
	return KeyResponse{KeyState: k, Status: st}
}

// parseRecipient accepts an age X25519 (age1…) or hybrid post-quantum
// (age1pq1…) recipient (export.ParseRecipient, shared with the web UI's
// key page).
func parseRecipient(s string) (age.Recipient, string, error) { return export.ParseRecipient(s) }

func (s *Server) postClinicianKey(c echo.Context) error {
	tok := principal(c)
	var r KeyRequest
	if err := decodeJSON(c, &r); err != nil {
		return err
	}
	r.Label = strings.TrimSpace(r.Label)
	if r.Label == "" || len(r.Label) > 100 || !utf8.ValidString(r.Label) {
		return newError(http.StatusBadRequest, "bad_label", "label must be 1 to 100 characters, such as the hub's name")
	}
	_, recipient, err := parseRecipient(r.Recipient)
	if err != nil {
		return newError(http.StatusBadRequest, "bad_recipient", "recipient must be an age X25519 (age1…) or post-quantum (age1pq1…) public key")
	}
	now := time.Now()
	live := 0
	for _, k := range s.ledger.ClinicianKeys(tok.UserID) {
		if k.RemoveIndex == nil {
			live++
		}
	}
	if live >= MaxClinicianKeys {
		return newError(http.StatusConflict, "too_many_keys", "remove a key before adding another; at most %d are kept", MaxClinicianKeys)
	}
	// A key added with an API token waits out the activation delay, so a
	// stolen token alone cannot redirect exports at once.
	e := consent.New(consent.KindClinicianKeyAdd, tok.UserID, now)
	e.Clinician = tok.UserID
	e.Key = &consent.ClinicianKey{Fingerprint: consent.Fingerprint(recipient), Recipient: recipient, Label: r.Label,
		ActiveFrom: now.Add(s.keyDelay).UTC().Format(time.RFC3339Nano)}
	if _, err := s.ledger.Append(e); err != nil {
		if errors.Is(err, consent.ErrKeyExists) {
			return newError(http.StatusConflict, "key_exists", "this key is already registered")
		}
		return internal(err)
	}
	for _, k := range s.ledger.ClinicianKeys(tok.UserID) {
		if k.Fingerprint == e.Key.Fingerprint {
			return c.JSON(http.StatusCreated, keyResponse(k, now))
		}
	}
	return internal(errors.New("registered key not in the index"))
}

func (s *Server) getClinicianKeys(c echo.Context) error {
	tok := principal(c)
	now := time.Now()
	out := []KeyResponse{}
	for _, k := range s.ledger.ClinicianKeys(tok.UserID) {
		out = append(out, keyResponse(k, now))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) deleteClinicianKey(c echo.Context) error {
	tok := principal(c)
	fp := c.Param("fingerprint")
	e := consent.New(consent.KindClinicianKeyDel, tok.UserID, time.Now())
	e.Clinician = tok.UserID
	e.Key = &consent.ClinicianKey{Fingerprint: fp}
	if !fingerprintRE.MatchString(fp) {
		return newError(http.StatusNotFound, "no_key", "no registered key has that fingerprint")
	}
	if _, err := s.ledger.Append(e); err != nil {
		switch {
		case errors.Is(err, consent.ErrNoKey), errors.Is(err, consent.ErrKeyRemoved):
			return newError(http.StatusNotFound, "no_key", "no registered key has that fingerprint")
		}
		return internal(err)
	}
	return c.NoContent(http.StatusNoContent)
}
