package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

//go:embed templates static
var assets embed.FS

// staticFile is one embedded asset, served with a content hash for cache
// busting.
type staticFile struct {
	body  []byte
	ctype string
	hash  string
}

type pageSet struct {
	pages  map[string]*template.Template
	static map[string]staticFile
}

// loadPages reads the embedded assets and parses each page
// (templates/*.html) with the layout and the partials pages share
// (templates/partials/*.html).
func loadPages() (*pageSet, error) {
	ps := &pageSet{pages: map[string]*template.Template{}, static: map[string]staticFile{}}
	err := fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		ps.static[strings.TrimPrefix(p, "static/")] = staticFile{body: b, ctype: ct, hash: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"grantTable": grantTable,
		"postButton": newPostButton,
		"asset": func(name string) string {
			if f, ok := ps.static[name]; ok {
				return "/static/" + name + "?v=" + f.hash
			}
			return "/static/" + name
		},
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials/*.html", n)
		if err != nil {
			return nil, err
		}
		ps.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return ps, nil
}

// static serves the embedded assets. A request naming the current content
// hash (?v=) may be cached for a year.
func (s *Server) static(w http.ResponseWriter, r *http.Request, _ session) error {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	f, ok := s.pages.static[name]
	if !ok {
		return errNotFound
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("ETag", `"`+f.hash+`"`)
	if r.URL.Query().Get("v") == f.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == `"`+f.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Write(f.body)
	return nil
}

// postButton is what the danger-button partial reads: a one-button POST
// form.
type postButton struct {
	Action, CSRF, Label, Aria string
}

func newPostButton(action, csrf, label, aria string) postButton {
	return postButton{Action: action, CSRF: csrf, Label: label, Aria: aria}
}

// pageData is what the layout reads; Body is the page's own.
type pageData struct {
	Title        string
	Nav          string
	Signed       bool
	Clinician    bool
	UserName     string
	CSRF         string
	CloneWarning bool
	Script       bool     // the page runs the WebAuthn script
	Scripts      []string // further embedded scripts (under static/), run after the WebAuthn one
	Notice       string
	Error        string
	ErrorCode    string // the error page's stable code (errors.go)
	Body         any
	// Refresh, when set, sends the browser on to this URL at once (a
	// meta refresh: not a form's redirect, which form-action would stop).
	Refresh string
}

// signinBody is the sign-in page's: where to go once signed in.
type signinBody struct{ Next string }

// render writes a page. The template runs into a buffer first, so a
// template that fails has written nothing, and its error (returned) is
// answered as any internal one.
func (s *Server) render(w http.ResponseWriter, status int, page string, d pageData) error {
	t, ok := s.pages.pages[page]
	if !ok {
		return fmt.Errorf("no template %q", page)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return fmt.Errorf("template %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// signedData fills the layout's part for a signed-in page.
func (s *Server) signedData(ctx context.Context, sess session, title, nav string) pageData {
	d := pageData{Title: title, Nav: nav, Signed: true, CSRF: sess.CSRF, CloneWarning: sess.CloneWarning, Clinician: sess.Role == vault.RoleClinician}
	if u, err := s.vault.User(ctx, sess.UserID); err == nil {
		d.UserName = u.Name
	}
	return d
}

// notFound answers every path no route serves.
func (s *Server) notFound(http.ResponseWriter, *http.Request, session) error { return errNotFound }

// hasSession reports whether a route open to anyone (access maybe) found a
// session.
func hasSession(sess session) bool { return sess.UserID != "" }

// home is the dashboard for a patient, the patient list for a clinician,
// and the sign-in page for anyone else.
func (s *Server) home(w http.ResponseWriter, r *http.Request, sess session) error {
	switch {
	case !hasSession(sess):
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return nil
	case sess.Role == vault.RoleClinician:
		return s.patientsPage(w, r, sess)
	}
	return s.dashboard(w, r, sess)
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request, sess session) error {
	next, _ := safeNext(r.URL.Query().Get("next"))
	if hasSession(sess) {
		if next == "" {
			next = "/"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	d := pageData{Title: "Sign in", Script: true, Body: signinBody{Next: next}}
	if r.URL.Query().Get("bye") == "1" {
		d.Notice = "You have signed out."
	}
	return s.render(w, http.StatusOK, "signin", d)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, sess session) error {
	if err := s.sessions.delete(r.Context(), cookieValue(r, SessionCookie)); err != nil {
		// The cookie stays, so the browser can try again.
		return unavailable("Not signed out", "You could not be signed out just now. Try again shortly.", err)
	}
	s.clearCookie(w, SessionCookie)
	s.log.Info("web sign-out", "user", sess.UserID)
	http.Redirect(w, r, "/signin?bye=1", http.StatusSeeOther)
	return nil
}

type enrolBody struct {
	Token string
	Name  string
}

func (s *Server) enrolPage(w http.ResponseWriter, r *http.Request, _ session) error {
	token := r.PathValue("token")
	u, err := s.invitee(r.Context(), hashOf(token))
	if err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "enrol", pageData{Title: "Create your passkey", Script: true, Body: enrolBody{Token: token, Name: u.Name}})
}

// ---- passkeys ----

type passkeyView struct {
	ID           string
	Label        string
	Created      string
	LastUsed     string
	CloneWarning bool
	Current      bool
	LedgerIndex  int64
}

type passkeysBody struct {
	Passkeys []passkeyView
	Max      int
	CanAdd   bool
	MaxLabel int
}

func (s *Server) passkeysPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Passkeys", "passkeys")
	switch {
	case r.URL.Query().Get("added") == "1":
		d.Notice = "Your new passkey is saved."
	case r.URL.Query().Get("renamed") == "1":
		d.Notice = "The passkey was renamed."
	case r.URL.Query().Get("removed") == "1":
		d.Notice = "The passkey was removed. It can no longer sign in to this vault."
	}
	return s.renderPasskeys(r.Context(), w, sess, http.StatusOK, d)
}

func (s *Server) renderPasskeys(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData) error {
	recs, err := s.creds.list(ctx, sess.UserID)
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Passkeys unavailable", Message: "Your passkeys could not be read. Try again shortly.", Cause: err}
	}
	u, _ := s.vault.User(ctx, sess.UserID)
	loc := u.Location()
	b := passkeysBody{Max: MaxPasskeysPerUser, CanAdd: len(recs) < MaxPasskeysPerUser, MaxLabel: MaxLabelLength}
	for _, c := range recs {
		v := passkeyView{ID: base64.RawURLEncoding.EncodeToString(c.ID), Label: c.Label, Created: fmtTime(c.Created, loc), LastUsed: "never",
			CloneWarning: c.CloneWarning, Current: bytes.Equal(c.ID, sess.Credential), LedgerIndex: c.LedgerIndex}
		if !c.LastUsed.IsZero() {
			v.LastUsed = fmtTime(c.LastUsed, loc)
		}
		b.Passkeys = append(b.Passkeys, v)
	}
	d.Body, d.Script = b, true
	return s.render(w, status, "passkeys", d)
}

func credIDParam(r *http.Request) ([]byte, bool) {
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	return id, err == nil && len(id) > 0 && len(id) <= 1023
}

func (s *Server) renamePasskey(w http.ResponseWriter, r *http.Request, sess session) error {
	id, ok := credIDParam(r)
	if !ok {
		return errNotFound
	}
	if err := r.ParseForm(); err != nil {
		return errBadForm.because(err)
	}
	label, ok := cleanLabel(r.PostForm.Get("label"))
	if !ok || label == "" {
		d := s.signedData(r.Context(), sess, "Passkeys", "passkeys")
		d.Error = "A passkey's name is 1 to 60 characters, without control characters."
		return s.renderPasskeys(r.Context(), w, sess, http.StatusBadRequest, d)
	}
	err := s.creds.modify(r.Context(), sess.UserID, id, func(c *credRecord) error { c.Label = label; return nil })
	if errors.Is(err, errNoCredential) {
		return errNotFound
	}
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Not renamed", Message: "The passkey could not be renamed. Try again shortly.", Cause: err}
	}
	http.Redirect(w, r, "/passkeys?renamed=1", http.StatusSeeOther)
	return nil
}

func (s *Server) removePasskey(w http.ResponseWriter, r *http.Request, sess session) error {
	id, ok := credIDParam(r)
	if !ok {
		return errNotFound
	}
	err := s.creds.remove(r.Context(), sess.UserID, id)
	if err == nil {
		// On the record: from here on, vault ledger verify refuses any
		// grant or key confirmation signed with this passkey.
		e := consent.New(consent.KindPasskeyRemoved, sess.UserID, s.now())
		switch vault.RoleOf(sess.UserID) {
		case vault.RolePatient:
			e.Patient = sess.UserID
		case vault.RoleClinician:
			e.Clinician = sess.UserID
		}
		e.Passkey = &consent.Passkey{CredentialID: id}
		if _, lerr := s.ledger.Append(e); lerr != nil {
			s.log.Error("passkey removal not logged", "user", sess.UserID, "cause", lerr.Error())
		}
	}
	switch {
	case errors.Is(err, errNoCredential):
		return errNotFound
	case errors.Is(err, errLastPasskey):
		d := s.signedData(r.Context(), sess, "Passkeys", "passkeys")
		d.Error = "This is your only passkey, so it can't be removed: you could not sign in again. Add another passkey first."
		return s.renderPasskeys(r.Context(), w, sess, http.StatusConflict, d)
	case err != nil:
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Not removed", Message: "The passkey could not be removed. Try again shortly.", Cause: err}
	}
	// A session that signed in with the removed passkey (a lost phone's)
	// ends with it.
	if err := s.sessions.deleteCredential(r.Context(), sess.UserID, id); err != nil {
		s.log.Error("web sessions of a removed passkey remain", "user", sess.UserID, "cause", err.Error())
	}
	s.log.Info("passkey removed", "user", sess.UserID)
	http.Redirect(w, r, "/passkeys?removed=1", http.StatusSeeOther)
	return nil
}

// ---- clinician ----

type grantView struct {
	Schemas string
	Window  string
	Expires string
	Purpose string
	Signed  bool
	FHIR    bool // readable through the FHIR API too
}

type patientView struct {
	ID     string
	Name   string
	Grants []grantView
	Apps   []launchButton // "Open in app" (launch.go)
}

// patientsPage lists the patients with an active grant to the signed-in
// clinician, with each grant's scope (the API's clinician/patients, read
// from the ledger's grant index).
func (s *Server) patientsPage(w http.ResponseWriter, r *http.Request, sess session) error {
	now := s.now()
	u, _ := s.vault.User(r.Context(), sess.UserID)
	loc := u.Location()
	byPatient := map[string]*patientView{}
	var order []string
	gs, err := s.ledger.Grants("", sess.UserID)
	if err != nil {
		return grantsUnavailable(err)
	}
	for _, g := range gs {
		if !g.Active(now) {
			continue
		}
		p := byPatient[g.Patient]
		if p == nil {
			pu, err := s.vault.User(r.Context(), g.Patient)
			if err != nil {
				continue // a deleted patient
			}
			p = &patientView{ID: pu.ID, Name: pu.Name}
			byPatient[g.Patient] = p
			order = append(order, g.Patient)
		}
		p.Grants = append(p.Grants, grantViewOf(g, loc))
	}
	var list []patientView
	for _, id := range order {
		p := *byPatient[id]
		p.Apps = s.launchButtons(r.Context(), sess, p.ID)
		list = append(list, p)
	}
	slices.SortStableFunc(list, func(a, b patientView) int { return strings.Compare(a.Name, b.Name) })
	d := s.signedData(r.Context(), sess, "Patients", "patients")
	d.Body = list
	return s.render(w, http.StatusOK, "patients", d)
}

// grantViewOf is a grant as the patient's and the clinician's pages both
// show it: data types and purpose in words, days and times in the
// reader's zone, in the one format of every page (fmtTime, expiryText).
func grantViewOf(g consent.GrantState, loc *time.Location) grantView {
	v := grantView{Schemas: schemaList(g.Schemas), Expires: expiryText(g.Expires, loc), Purpose: purposeLabel(g.Purpose), Signed: g.Signed, FHIR: g.FHIR}
	v.Window = windowText(g.DataFrom, g.DataTo, loc)
	return v
}

// fmtTime is how every page writes a time: "2 Jan 2006, 15:04 EST", in
// the reader's zone. A day alone is "2 Jan 2006".
func fmtTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2 Jan 2006, 15:04 MST")
}

// ---- patient dashboard ----

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, sess session) error {
	u, err := s.vault.User(r.Context(), sess.UserID)
	if err != nil {
		return errNoAccount.because(err)
	}
	days, err := agpDays(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	now := s.now()
	b, err := s.buildDashboard(ctx, u, now)
	var agp agpView
	if err == nil {
		agp, err = s.dashboardAGP(ctx, u, days, now) // agp.go
	}
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Dashboard unavailable", Message: "Your readings could not be read just now. Try again shortly.", Cause: err}
	}
	d := s.signedData(r.Context(), sess, "Dashboard", "dashboard")
	d.Body = dashboardPage{dashboardBody: b, AGP: agp}
	return s.render(w, http.StatusOK, "dashboard", d)
}
