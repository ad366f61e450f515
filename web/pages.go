package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
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
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		ps.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return ps, nil
}

// static serves the embedded assets. A request naming the current content
// hash (?v=) may be cached for a year.
func (s *Server) static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		f, ok := s.pages.static[name]
		if !ok {
			s.notFound(w, r)
			return
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
			return
		}
		w.Write(f.body)
	})
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
	Body         any
}

func (s *Server) render(w http.ResponseWriter, status int, page string, d pageData) {
	t := s.pages.pages[page]
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		s.log.Error("web template failed", "page", page, "cause", err.Error())
		http.Error(w, "Something went wrong on the vault.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// signedData fills the layout's part for a signed-in page.
func (s *Server) signedData(sess session, title, nav string) pageData {
	d := pageData{Title: title, Nav: nav, Signed: true, CSRF: sess.CSRF, CloneWarning: sess.CloneWarning, Clinician: sess.Role == vault.RoleClinician}
	if u, err := s.vault.User(sess.UserID); err == nil {
		d.UserName = u.Name
	}
	return d
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	d := pageData{Title: title, Error: msg}
	if sess, ok := s.currentSession(r); ok {
		d = s.signedData(sess, title, "")
		d.Error = msg
	}
	s.render(w, status, "error", d)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no page at this address, or it is not yours to see.")
}

// home is the dashboard for a patient, the patient list for a clinician,
// and the sign-in page for anyone else.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.currentSession(r)
	if !ok {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	if sess.Role == vault.RoleClinician {
		s.patientsPage(w, r, sess)
		return
	}
	s.dashboard(w, r, sess)
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.currentSession(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d := pageData{Title: "Sign in", Script: true}
	if r.URL.Query().Get("bye") == "1" {
		d.Notice = "You have signed out."
	}
	s.render(w, http.StatusOK, "signin", d)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, sess session) {
	if err := s.sessions.delete(r.Context(), cookieValue(r, SessionCookie)); err != nil {
		// The cookie stays, so the browser can try again.
		s.log.Error("web sign-out", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusServiceUnavailable, "Not signed out", "You could not be signed out just now. Try again shortly.")
		return
	}
	s.clearCookie(w, SessionCookie)
	s.log.Info("web sign-out", "user", sess.UserID)
	http.Redirect(w, r, "/signin?bye=1", http.StatusSeeOther)
}

type enrolBody struct {
	Token string
	Name  string
}

func (s *Server) enrolPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	inv, err := s.invites.get(r.Context(), hashOf(token), s.now())
	if err != nil {
		s.errorPage(w, r, http.StatusGone, "Enrolment link not valid", inviteInvalidMessage)
		return
	}
	u, err := s.vault.User(inv.UserID)
	if err != nil {
		s.errorPage(w, r, http.StatusGone, "Enrolment link not valid", inviteInvalidMessage)
		return
	}
	s.render(w, http.StatusOK, "enrol", pageData{Title: "Create your passkey", Script: true, Body: enrolBody{Token: token, Name: u.Name}})
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

func (s *Server) passkeysPage(w http.ResponseWriter, r *http.Request, sess session) {
	d := s.signedData(sess, "Passkeys", "passkeys")
	switch {
	case r.URL.Query().Get("added") == "1":
		d.Notice = "Your new passkey is saved."
	case r.URL.Query().Get("renamed") == "1":
		d.Notice = "The passkey was renamed."
	case r.URL.Query().Get("removed") == "1":
		d.Notice = "The passkey was removed. It can no longer sign in to this vault."
	}
	s.renderPasskeys(r.Context(), w, sess, http.StatusOK, d)
}

func (s *Server) renderPasskeys(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData) {
	recs, err := s.creds.list(ctx, sess.UserID)
	if err != nil {
		s.log.Error("web passkeys", "user", sess.UserID, "cause", err.Error())
		status, d.Error = http.StatusInternalServerError, "Your passkeys could not be read. Try again shortly."
	}
	u, _ := s.vault.User(sess.UserID)
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
	s.render(w, status, "passkeys", d)
}

func credIDParam(r *http.Request) ([]byte, bool) {
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	return id, err == nil && len(id) > 0 && len(id) <= 1023
}

func (s *Server) renamePasskey(w http.ResponseWriter, r *http.Request, sess session) {
	id, ok := credIDParam(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	r.ParseForm()
	label, ok := cleanLabel(r.PostForm.Get("label"))
	if !ok || label == "" {
		d := s.signedData(sess, "Passkeys", "passkeys")
		d.Error = "A passkey's name is 1 to 60 characters, without control characters."
		s.renderPasskeys(r.Context(), w, sess, http.StatusBadRequest, d)
		return
	}
	err := s.creds.modify(r.Context(), sess.UserID, id, func(c *credRecord) error { c.Label = label; return nil })
	if errors.Is(err, errNoCredential) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.log.Error("web rename passkey", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusInternalServerError, "Not renamed", "The passkey could not be renamed. Try again shortly.")
		return
	}
	http.Redirect(w, r, "/passkeys?renamed=1", http.StatusSeeOther)
}

func (s *Server) removePasskey(w http.ResponseWriter, r *http.Request, sess session) {
	id, ok := credIDParam(r)
	if !ok {
		s.notFound(w, r)
		return
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
		s.notFound(w, r)
		return
	case errors.Is(err, errLastPasskey):
		d := s.signedData(sess, "Passkeys", "passkeys")
		d.Error = "This is your only passkey, so it can't be removed: you could not sign in again. Add another passkey first."
		s.renderPasskeys(r.Context(), w, sess, http.StatusConflict, d)
		return
	case err != nil:
		s.log.Error("web remove passkey", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusInternalServerError, "Not removed", "The passkey could not be removed. Try again shortly.")
		return
	}
	// A session that signed in with the removed passkey (a lost phone's)
	// ends with it.
	if err := s.sessions.deleteCredential(r.Context(), sess.UserID, id); err != nil {
		s.log.Error("web sessions of a removed passkey remain", "user", sess.UserID, "cause", err.Error())
	}
	s.log.Info("passkey removed", "user", sess.UserID)
	http.Redirect(w, r, "/passkeys?removed=1", http.StatusSeeOther)
}

// ---- clinician ----

type grantView struct {
	Schemas string
	Window  string
	Expires string
	Purpose string
	Signed  bool
}

type patientView struct {
	ID     string
	Name   string
	Grants []grantView
}

// patientsPage lists the patients with an active grant to the signed-in
// clinician, with each grant's scope (the API's clinician/patients, read
// from the ledger's grant index).
func (s *Server) patientsPage(w http.ResponseWriter, r *http.Request, sess session) {
	if sess.Role != vault.RoleClinician {
		s.notFound(w, r)
		return
	}
	now := s.now()
	u, _ := s.vault.User(sess.UserID)
	loc := u.Location()
	byPatient := map[string]*patientView{}
	var order []string
	for _, g := range s.ledger.Grants("", sess.UserID) {
		if !g.Active(now) {
			continue
		}
		p := byPatient[g.Patient]
		if p == nil {
			pu, err := s.vault.User(g.Patient)
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
		list = append(list, *byPatient[id])
	}
	slices.SortStableFunc(list, func(a, b patientView) int { return strings.Compare(a.Name, b.Name) })
	d := s.signedData(sess, "Patients", "patients")
	d.Body = list
	s.render(w, http.StatusOK, "patients", d)
}

func grantViewOf(g consent.GrantState, loc *time.Location) grantView {
	v := grantView{Schemas: strings.Join(g.Schemas, ", "), Expires: fmtTime(g.Expires, loc), Purpose: g.Purpose, Signed: g.Signed}
	v.Window = windowText(g.DataFrom, g.DataTo, loc)
	return v
}

func fmtTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2 Jan 2006, 15:04 MST")
}

// ---- patient dashboard ----

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, sess session) {
	u, err := s.vault.User(sess.UserID)
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "No account", "This account no longer exists.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := s.buildDashboard(ctx, u, s.now())
	if err != nil {
		s.log.Error("web dashboard", "user", sess.UserID, "cause", err.Error())
		s.errorPage(w, r, http.StatusInternalServerError, "Dashboard unavailable", "Your readings could not be read just now. Try again shortly.")
		return
	}
	d := s.signedData(sess, "Dashboard", "dashboard")
	d.Body = b
	s.render(w, http.StatusOK, "dashboard", d)
}
