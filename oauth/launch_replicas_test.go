package oauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/internal/vaulttest"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/store/postgres"
	"github.com/jupyterhealth/vault/store/postgres/pgtest"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/oauth2"
)

// launchReplicas is two providers on one store, as two replicas on one
// database are (on bbolt: two providers on one open file, in one
// process), behind one URL whose requests go to the provider route names.
// Nothing but the store and the master keyset is shared, so an EHR launch
// made by one and finished by the other works only if the launch id needs
// nothing of the provider that made it.
type launchReplicas struct {
	ps        [2]*oauth.Provider
	vs        [2]*vault.Vault
	route     atomic.Int32
	iss       string
	clinician vault.User
	patients  [2]vault.User

	mu  sync.Mutex
	now time.Time
}

func (r *launchReplicas) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *launchReplicas) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// newLaunchReplicas starts the two providers on backend ("bbolt" or
// "postgres"), with a clinician and two patients.
func newLaunchReplicas(t *testing.T, backend string) *launchReplicas {
	t.Helper()
	r := &launchReplicas{now: time.Now()}
	type opened struct {
		st oauthstore.Store
		v  *vault.Vault
	}
	var ops [2]opened
	switch backend {
	case "bbolt":
		env := vaulttest.New(t, vaulttest.Options{})
		ops[0] = opened{env.Store.OAuth(), env.Vault}
		ops[1] = ops[0]
	case "postgres":
		dsn := pgtest.New(t)
		root, err := keys.CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range ops {
			s, err := postgres.Open(t.Context(), dsn, postgres.Options{AllowUnsafeDurability: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			v, err := vault.Open(t.Context(), s, root, vault.RootInfo{Kind: root.Kind()}, vault.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ops[i] = opened{s.OAuth(), v}
		}
	default:
		t.Fatalf("backend %q", backend)
	}
	var hs [2]http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hs[r.route.Load()].ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range ops {
		p, err := oauth.New(t.Context(), oauth.Config{BaseURL: base, Store: o.st, Sealer: o.v.Master(), Users: o.v,
			GrantActive: func(string, string, string, time.Time) bool { return false }, Now: r.clock})
		if err != nil {
			t.Fatal(err)
		}
		r.ps[i], r.vs[i], hs[i] = p, o.v, p.Handler()
	}
	r.iss = r.ps[0].Issuer()
	user := func(role, name string) vault.User {
		u, err := ops[0].v.CreateUser(t.Context(), vault.NewUser{Role: role, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	r.clinician = user(vault.RoleClinician, "Dr. Rivera")
	r.patients = [2]vault.User{user(vault.RolePatient, "Ada"), user(vault.RolePatient, "Grace")}
	return r
}

// app registers a confidential client with a launch URL through provider 0.
func (r *launchReplicas) app(t *testing.T, name string) *oauth2.Config {
	t.Helper()
	info, secret, err := r.ps[0].AddClient(t.Context(), oauth.NewClient{Name: name, RedirectURIs: []string{redirectURI},
		Confidential: true, LaunchURI: "http://127.0.0.1:8000/launch"})
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{ClientID: info.ID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: []string{"launch", "openid", "fhirUser", "user/Observation.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: r.iss + "/auth/authorize", TokenURL: r.iss + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// launch makes a launch id on provider on, for the clinician in session.
func (r *launchReplicas) launch(t *testing.T, on int, cfg *oauth2.Config, session string, patient vault.User) string {
	t.Helper()
	to, err := r.ps[on].NewLaunch(t.Context(), oauth.LaunchContext{UserID: r.clinician.ID, Session: session, ClientID: cfg.ClientID, Patient: patient.ID})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("launch")
}

// authorize sends the app's authorization request with the launch id to
// provider on and returns where it sends the browser.
func (r *launchReplicas) authorize(t *testing.T, on int, cfg *oauth2.Config, id string) *url.URL {
	t.Helper()
	r.route.Store(int32(on))
	return location(t, cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("aud", r.iss), oauth2.SetAuthURLParam("launch", id)))
}

// refused fails the test unless the authorization request was refused
// before anyone was asked, with invalid_request.
func refused(t *testing.T, what string, loc *url.URL) {
	t.Helper()
	if loc.Path == "/oauth/authorize" || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "state-123" {
		t.Fatalf("%s: authorize sent the browser to %s, want invalid_request", what, loc)
	}
}

// pending is the request id of an accepted authorization request.
func pending(t *testing.T, loc *url.URL) string {
	t.Helper()
	if loc.Path != "/oauth/authorize" || loc.Query().Get("id") == "" {
		t.Fatalf("authorize sent the browser to %s, want the web UI's /oauth/authorize?id=", loc)
	}
	return loc.Query().Get("id")
}

// TestLaunchAcrossProviders, on bbolt and on PostgreSQL: a launch id made
// by one provider is checked by the other's authorize endpoint and spent
// by an approval on either, and the token names the patient it was made
// for; once spent, it is refused (invalid_request, before anyone is asked)
// by both, and a second approval of another request that named it fails on
// both; two approvals racing on the two providers spend it once. Tampered ids (every byte of the seal flipped in turn), ids sealed
// by another vault, expired ids and another client's ids are refused by
// both; an approval by another clinician or from another session is
// refused and spends the id.
func TestLaunchAcrossProviders(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			r := newLaunchReplicas(t, backend)
			ctx := context.Background()
			app, other := r.app(t, "Care report"), r.app(t, "Other app")

			// Made on one, authorized on the other, approved on the first;
			// each token names its own patient.
			for i, pt := range r.patients {
				made, checked, approved := i, 1-i, i
				id := r.launch(t, made, app, "sess-1", pt)
				verifier := oauth2.GenerateVerifier()
				r.route.Store(int32(checked))
				loc := location(t, app.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", r.iss), oauth2.SetAuthURLParam("launch", id)))
				// A second request naming the same live id is accepted too
				// (the approval, not the request, spends it).
				second := pending(t, r.authorize(t, made, app, id))
				cb, err := r.ps[approved].Approve(ctx, pending(t, loc), oauth.Approval{UserID: r.clinician.ID, Session: "sess-1"})
				if err != nil {
					t.Fatalf("approval on provider %d of a launch made on %d: %v", approved, made, err)
				}
				r.route.Store(int32(checked))
				code := location(t, cb).Query().Get("code")
				status, _, tok := post(t, r.iss+"/auth/token", app, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}})
				if status != http.StatusOK || tok["patient"] != oauth.FHIRID(pt.ID) || tok["need_patient_banner"] != true {
					t.Fatalf("token for patient %s: %d %v", pt.ID, status, tok)
				}
				for p := range r.ps {
					refused(t, fmt.Sprintf("a spent id on provider %d", p), r.authorize(t, p, app, id))
					if _, err := r.ps[p].Approve(ctx, second, oauth.Approval{UserID: r.clinician.ID, Session: "sess-1"}); !errors.Is(err, oauth.ErrNoRequest) {
						t.Fatalf("approval on provider %d of a second request naming a spent id: %v, want ErrNoRequest", p, err)
					}
				}
			}

			// Two approvals of one launch id racing on the two providers
			// (two requests naming it, one accepted by each): one wins.
			id := r.launch(t, 0, app, "sess-1", r.patients[0])
			reqs := [2]string{pending(t, r.authorize(t, 0, app, id)), pending(t, r.authorize(t, 1, app, id))}
			var errs [2]error
			var wg sync.WaitGroup
			for p := range r.ps {
				wg.Go(func() {
					_, errs[p] = r.ps[p].Approve(ctx, reqs[p], oauth.Approval{UserID: r.clinician.ID, Session: "sess-1"})
				})
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs[:]...), oauth.ErrNoRequest) {
				t.Fatalf("two approvals of one launch id at once: %v, want one nil and one ErrNoRequest", errs)
			}

			id = r.launch(t, 0, app, "sess-1", r.patients[0])
			ct, err := base64.RawURLEncoding.DecodeString(id[3:])
			if err != nil {
				t.Fatal(err)
			}
			for i := range ct {
				b := append([]byte(nil), ct...)
				b[i] ^= 0x01
				refused(t, fmt.Sprintf("a tampered id (byte %d)", i), r.authorize(t, i%2, app, "vl_"+base64.RawURLEncoding.EncodeToString(b)))
			}
			// The untouched id still works after all that.
			pending(t, r.authorize(t, 1, app, id))

			// Another vault's launch id (its own master keyset) for the same
			// client id does not open here.
			elsewhere := newLaunchReplicas(t, "bbolt")
			info, _, err := elsewhere.ps[0].AddClient(ctx, oauth.NewClient{Name: "Care report", RedirectURIs: []string{redirectURI}, Confidential: true, LaunchURI: "http://127.0.0.1:8000/launch"})
			if err != nil {
				t.Fatal(err)
			}
			foreign, err := elsewhere.ps[0].NewLaunch(ctx, oauth.LaunchContext{UserID: elsewhere.clinician.ID, Session: "sess-1", ClientID: info.ID, Patient: elsewhere.patients[0].ID})
			if err != nil {
				t.Fatal(err)
			}
			fu, err := url.Parse(foreign)
			if err != nil {
				t.Fatal(err)
			}
			for p := range r.ps {
				refused(t, "another vault's id", r.authorize(t, p, app, fu.Query().Get("launch")))
				refused(t, "another client's id", r.authorize(t, p, other, id))
			}

			// Another clinician's approval, or one from another session, is
			// refused, on either provider, and spends the id on both.
			dr2, err := r.vs[0].CreateUser(ctx, vault.NewUser{Role: vault.RoleClinician, Name: "Dr. Okafor"})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []oauth.Approval{{UserID: dr2.ID, Session: "sess-1"}, {UserID: r.clinician.ID, Session: "sess-2"}} {
				for p := range r.ps {
					id := r.launch(t, p, app, "sess-1", r.patients[1])
					req := pending(t, r.authorize(t, 1-p, app, id))
					if _, err := r.ps[p].Approve(ctx, req, a); !errors.Is(err, oauth.ErrBadApproval) {
						t.Fatalf("approval %+v on provider %d: %v, want ErrBadApproval", a, p, err)
					}
					for q := range r.ps {
						refused(t, "an id refused at approval", r.authorize(t, q, app, id))
					}
				}
			}

			// Expired: refused by the authorize endpoint of both, and an
			// approval of a request accepted before it expired fails.
			id = r.launch(t, 1, app, "sess-1", r.patients[0])
			req := pending(t, r.authorize(t, 0, app, id))
			r.advance(oauth.LaunchTTL)
			for p := range r.ps {
				refused(t, "an expired id", r.authorize(t, p, app, id))
			}
			if _, err := r.ps[0].Approve(ctx, req, oauth.Approval{UserID: r.clinician.ID, Session: "sess-1"}); !errors.Is(err, oauth.ErrNoRequest) {
				t.Fatalf("approval after the launch expired: %v, want ErrNoRequest", err)
			}
		})
	}
}
