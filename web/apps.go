package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web/webstore"
)

// MaxAppConsentsPerUser bounds the clients one user lets sign her in.
const MaxAppConsentsPerUser = 100

// appConsentStore keeps the remembered consents: which OAuth clients a
// user let sign her in. A row is keyed by SHA-256 of the user and the
// client id; its sealed value (under the master, with the key as
// associated data) holds the client's id and name and when she allowed it.
type appConsentStore struct {
	store  Store
	sealer sealer
	now    func() time.Time
}

type appConsent struct {
	UserID   string    `json:"user"`
	ClientID string    `json:"client"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
}

func appConsentKey(userID, clientID string) [32]byte {
	return sha256.Sum256([]byte("jhvault/web-app-consent/v1|" + userID + "\x00" + clientID))
}

func appConsentAD(h [32]byte) []byte {
	return []byte("jhvault/web-app-consent/v1|" + hex.EncodeToString(h[:]))
}

var errAppsFull = refuse(http.StatusConflict, "too_many_apps", "Too many applications", "You have allowed the most applications the vault keeps. Remove one on your Apps page first.")

// put remembers that userID allowed clientID (again: the time moves on).
func (st *appConsentStore) put(ctx context.Context, userID, clientID, name string) error {
	h := appConsentKey(userID, clientID)
	now := st.now().UTC()
	sealed, err := st.sealer.Encrypt(mustJSON(appConsent{UserID: userID, ClientID: clientID, Name: name, Created: now}), appConsentAD(h))
	if err != nil {
		return err
	}
	err = st.store.PutAppConsent(ctx, webstore.AppConsent{Hash: h, UserID: userID, Created: now, Sealed: sealed}, MaxAppConsentsPerUser)
	if errors.Is(err, webstore.ErrTooMany) {
		return errAppsFull
	}
	return err
}

// has reports whether userID allowed clientID and has not removed it.
func (st *appConsentStore) has(ctx context.Context, userID, clientID string) (bool, error) {
	row, err := st.store.AppConsent(ctx, appConsentKey(userID, clientID))
	if errors.Is(err, webstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c, err := st.open(row)
	if err != nil {
		return false, err
	}
	return c.UserID == userID && c.ClientID == clientID, nil
}

func (st *appConsentStore) open(row webstore.AppConsent) (appConsent, error) {
	var c appConsent
	pt, err := st.sealer.Decrypt(row.Sealed, appConsentAD(row.Hash))
	if err != nil {
		return c, errors.New("remembered consent does not decrypt")
	}
	if err := json.Unmarshal(pt, &c); err != nil {
		return c, err
	}
	if c.UserID != row.UserID || appConsentKey(c.UserID, c.ClientID) != row.Hash {
		return c, errors.New("remembered consent does not match its row")
	}
	return c, nil
}

// list returns a user's remembered consents, newest first; one that does
// not open is left out (and logged by the caller's count).
func (st *appConsentStore) list(ctx context.Context, userID string) ([]appConsent, int, error) {
	rows, err := st.store.AppConsents(ctx, userID)
	if err != nil {
		return nil, 0, err
	}
	var out []appConsent
	bad := 0
	for _, row := range rows {
		c, err := st.open(row)
		if err != nil {
			bad++
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b appConsent) int { return b.Created.Compare(a.Created) })
	return out, bad, nil
}

// ---- the apps page ----

type appView struct {
	Key, Name, ClientID, Since string
}

type appsBody struct {
	SignIn  []appView
	Grants  []appGrantView // a patient's active app grants
	Patient bool
}

// appsPage is GET /apps: the applications the user lets sign her in (each
// with Remove) and, for a patient, the applications that can read her
// data (revoked on the consent page).
func (s *Server) appsPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Apps", "apps")
	if r.URL.Query().Get("removed") == "1" {
		d.Notice = "The application is removed. It must ask you again before it can sign you in."
	}
	return s.renderApps(r.Context(), w, sess, http.StatusOK, d)
}

func (s *Server) renderApps(ctx context.Context, w http.ResponseWriter, sess session, status int, d pageData) error {
	u, err := s.vault.User(ctx, sess.UserID)
	if err != nil {
		return errNoAccount.because(err)
	}
	loc := u.Location()
	cs, bad, err := s.appConsents.list(ctx, sess.UserID)
	if err != nil {
		return unavailable("Apps unavailable", "Your applications could not be read just now. Try again shortly.", err)
	}
	if bad > 0 {
		s.log.Error("web remembered consents do not open", "user", sess.UserID, "count", bad)
	}
	b := appsBody{Patient: sess.Role == vault.RolePatient}
	for _, c := range cs {
		k := appConsentKey(c.UserID, c.ClientID)
		name := c.Name
		if name == "" {
			name = c.ClientID
		}
		b.SignIn = append(b.SignIn, appView{Key: hex.EncodeToString(k[:]), Name: name, ClientID: c.ClientID, Since: fmtTime(c.Created, loc)})
	}
	if b.Patient {
		views, err := s.appGrantViews(ctx, sess.UserID, loc)
		if err != nil {
			return grantsUnavailable(err)
		}
		for _, g := range views {
			if g.Active {
				b.Grants = append(b.Grants, g)
			}
		}
	}
	d.Body = b
	return s.render(w, status, "apps", d)
}

// removeApp is POST /apps/{key}/remove: forget that the user allowed a
// client, and end the tokens it holds for her.
func (s *Server) removeApp(w http.ResponseWriter, r *http.Request, sess session) error {
	raw, err := hex.DecodeString(r.PathValue("key"))
	if err != nil || len(raw) != 32 || strings.ToLower(r.PathValue("key")) != r.PathValue("key") {
		return errNotFound
	}
	h := [32]byte(raw)
	row, err := s.store.AppConsent(r.Context(), h)
	if errors.Is(err, webstore.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return unavailable("Not removed", "The application could not be removed just now. Try again shortly.", err)
	}
	if row.UserID != sess.UserID {
		return errNotFound
	}
	c, err := s.appConsents.open(row)
	if err != nil {
		return err
	}
	// Its tokens end first: if that fails, the row stays for a retry.
	if s.auth != nil {
		if err := s.auth.RevokeUserClient(r.Context(), sess.UserID, c.ClientID); err != nil {
			return unavailable("Not removed", "The application could not be removed just now. Try again shortly.", err)
		}
	}
	err = s.store.DeleteAppConsent(r.Context(), sess.UserID, h)
	if err != nil && !errors.Is(err, webstore.ErrNotFound) {
		return unavailable("Not removed", "The application could not be removed just now. Try again shortly.", err)
	}
	s.log.Info("oauth client removed", "user", sess.UserID, "client", c.ClientID)
	http.Redirect(w, r, "/apps?removed=1", http.StatusSeeOther)
	return nil
}
