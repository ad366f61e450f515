package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/jupyterhealth/vault/vault"
)

// SMART EHR launch from the clinician's pages. The vault plays the EHR:
// the patient list and each patient's page carry an "Open in app" button
// for every registered app with a launch URL. The button posts (with the
// session's CSRF token) to /patients/{id}/launch; the web UI checks the
// patient has an active grant to this clinician (else 404, as the patient
// page does), asks the Launcher for a single-use launch id bound to the
// clinician, this session, the app and the patient, and sends the browser
// to the app's launch URL with iss and launch. The app then asks the
// provider for the launch scope; when the clinician answers on
// /oauth/authorize, the answer carries this session's binding, and the
// provider accepts it only if it is the session that opened the launch.

// Launcher is the OAuth provider as the launch buttons need it. cmd/vault
// adapts the provider to it.
type Launcher interface {
	// LaunchApps lists the registered apps that can be launched (those
	// with a launch URL), in a stable order.
	LaunchApps(ctx context.Context) ([]LaunchApp, error)
	// Launch issues a launch id and returns the URL to open (the app's
	// launch URL with iss and launch). ErrAuthClientGone: no such app.
	Launch(ctx context.Context, l LaunchRequest) (string, error)
}

// LaunchApp is an app the clinician can open.
type LaunchApp struct {
	ClientID, Name string
}

// LaunchRequest is what a launch binds its id to.
type LaunchRequest struct {
	UserID   string // the clinician
	Session  string // launchBinding of her session
	ClientID string
	Patient  string
}

// launchBinding is a session's binding for EHR launches: a hash of its
// cookie, so the provider never holds the session id itself.
func launchBinding(r *http.Request) string {
	v := cookieValue(r, SessionCookie)
	if v == "" {
		return ""
	}
	h := sha256.Sum256([]byte("jhvault/launch-session/v1|" + v))
	return hex.EncodeToString(h[:])
}

// launchButton is one "Open in app" form.
type launchButton struct {
	Action, CSRF, ClientID, Name string
}

// launchButtons are the forms for one patient, or none without a Launcher
// (or when the apps cannot be listed: the page still shows, without them).
func (s *Server) launchButtons(ctx context.Context, sess session, patient string) []launchButton {
	if s.launcher == nil {
		return nil
	}
	apps, err := s.launcher.LaunchApps(ctx)
	if err != nil {
		s.log.Warn("web: listing launchable apps", "cause", err.Error())
		return nil
	}
	out := make([]launchButton, 0, len(apps))
	for _, a := range apps {
		out = append(out, launchButton{Action: "/patients/" + patient + "/launch", CSRF: sess.CSRF, ClientID: a.ClientID, Name: a.Name})
	}
	return out
}

var (
	errLaunchOff     = refuse(http.StatusNotFound, "not_found", "Page not found", "This vault opens no apps.")
	errLaunchNoApp   = refuse(http.StatusBadRequest, "launch_no_app", "App not found", "That app is not registered for launching (any more). Go back to your patient list and choose another.")
	errLaunchRefused = refuse(http.StatusBadRequest, "launch_refused", "Not opened", "The vault could not open that app for this patient. Go back to your patient list and try again.")
)

// launchApp is POST /patients/{id}/launch: open an app (form field
// client) for a patient who granted this clinician access.
func (s *Server) launchApp(w http.ResponseWriter, r *http.Request, sess session) error {
	if s.launcher == nil {
		return errLaunchOff
	}
	id := r.PathValue("id")
	if ok, err := s.hasActiveGrant(id, sess.UserID); err != nil {
		return grantsUnavailable(err)
	} else if !ok {
		return errNotFound
	}
	client := r.PostFormValue("client")
	if client == "" || len(client) > 128 {
		return errLaunchNoApp
	}
	bind := launchBinding(r)
	if bind == "" {
		return errSignedOut
	}
	to, err := s.launcher.Launch(r.Context(), LaunchRequest{UserID: sess.UserID, Session: bind, ClientID: client, Patient: id})
	switch {
	case errors.Is(err, ErrAuthClientGone):
		return errLaunchNoApp.because(err)
	case errors.Is(err, ErrAuthRefused):
		return errLaunchRefused.because(err)
	case err != nil:
		return unavailable("Not opened", "The vault could not open the app just now. Try again shortly.", err)
	}
	s.log.Info("app launched", "user", sess.UserID, "client", client, "patient", id)
	return s.render(w, http.StatusOK, "oauth_continue", pageData{Title: "Opening the app", Refresh: to, Body: oauthContinue{URL: to}})
}

// hasActiveGrant reports whether a patient has any active grant to a
// clinician.
func (s *Server) hasActiveGrant(patient, clinician string) (bool, error) {
	if vault.RoleOf(patient) != vault.RolePatient {
		return false, nil
	}
	now := s.now()
	gs, err := s.ledger.Grants(patient, clinician)
	if err != nil {
		return false, err
	}
	for _, g := range gs {
		if g.Active(now) && (!s.requireSigned || g.Signed) {
			return true, nil
		}
	}
	return false, nil
}
