package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/oauth2"
)

// launchClient registers a confidential client with a launch URL.
func (f *fixture) launchClient(t *testing.T, name string) *oauth2.Config {
	t.Helper()
	info, secret, err := f.p.AddClient(context.Background(), oauth.NewClient{Name: name, RedirectURIs: []string{redirectURI},
		Confidential: true, LaunchURI: "http://127.0.0.1:8000/launch?app=1"})
	if err != nil {
		t.Fatal(err)
	}
	iss := f.p.Issuer()
	return &oauth2.Config{ClientID: info.ID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: []string{"launch", "openid", "fhirUser", "offline_access", "user/Observation.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/auth/authorize", TokenURL: iss + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// launchID issues a launch and returns its id, checking the URL to open.
func (f *fixture) launchID(t *testing.T, cfg *oauth2.Config, session string) string {
	t.Helper()
	to, err := f.p.NewLaunch(context.Background(), oauth.LaunchContext{UserID: f.clinician.ID, Session: session, ClientID: cfg.ClientID, Patient: f.patient.ID})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "127.0.0.1:8000" || u.Path != "/launch" || q.Get("app") != "1" || q.Get("iss") != f.p.Issuer() || len(q.Get("launch")) < 40 {
		t.Fatalf("launch URL %s", to)
	}
	return q.Get("launch")
}

// authErr sends an authorization request and returns the error the
// client is sent back with (failing if the request was accepted).
func (f *fixture) authErr(t *testing.T, cfg *oauth2.Config, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	opts = append(opts, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", f.p.Issuer()))
	loc := location(t, cfg.AuthCodeURL("state-123", opts...))
	if loc.Path == "/oauth/authorize" {
		t.Fatalf("authorize accepted the request: %s", loc)
	}
	if loc.Query().Get("state") != "state-123" {
		t.Fatalf("error redirect without the state: %s", loc)
	}
	return loc.Query()
}

// TestEHRLaunch: a clinician's launch id opens a confidential app for a
// patient; the app's authorization request carries the launch scope and
// id, the clinician's approval (from the session the launch was issued
// in) spends it, and the token response carries patient and
// need_patient_banner, as do introspection and the refresh. A spent, an
// expired, another client's or a missing launch id is refused before
// anyone is asked; an approval from another session or by another user
// is refused and spends the id; launch with patient/ scopes is refused.
func TestEHRLaunch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	app := f.launchClient(t, "Care report")
	other := f.launchClient(t, "Other app")

	id := f.launchID(t, app, "sess-1")
	verifier := oauth2.GenerateVerifier()
	pending := f.begin(t, app, verifier, oauth2.SetAuthURLParam("launch", id))
	code := f.code(t, pending, oauth.Approval{UserID: f.clinician.ID, Session: "sess-1"})
	status, _, tok := f.exchange(t, app, code, verifier)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if tok["patient"] != oauth.FHIRID(f.patient.ID) || tok["need_patient_banner"] != true || tok["refresh_token"] == nil {
		t.Fatalf("token response %v, want patient %s and need_patient_banner", tok, oauth.FHIRID(f.patient.ID))
	}
	if in := f.introspect(t, app, tok["access_token"].(string)); in["patient"] != oauth.FHIRID(f.patient.ID) || in["sub"] != f.clinician.ID {
		t.Fatalf("introspection %v", in)
	}
	status, _, ref := post(t, f.p.Issuer()+"/auth/token", app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if status != http.StatusOK || ref["patient"] != oauth.FHIRID(f.patient.ID) || ref["need_patient_banner"] != true {
		t.Fatalf("refresh: %d %v", status, ref)
	}

	// The same id again: spent.
	if q := f.authErr(t, app, oauth2.SetAuthURLParam("launch", id)); q.Get("error") != "invalid_request" {
		t.Fatalf("a reused launch id: %v", q)
	}

	for _, tc := range []struct {
		name string
		run  func(t *testing.T) url.Values
		want string
	}{
		{"another client's id", func(t *testing.T) url.Values {
			return f.authErr(t, other, oauth2.SetAuthURLParam("launch", f.launchID(t, app, "sess-1")))
		}, "invalid_request"},
		{"expired", func(t *testing.T) url.Values {
			id := f.launchID(t, app, "sess-1")
			f.advance(oauth.LaunchTTL + time.Second)
			return f.authErr(t, app, oauth2.SetAuthURLParam("launch", id))
		}, "invalid_request"},
		{"no launch id", func(t *testing.T) url.Values { return f.authErr(t, app) }, "invalid_request"},
		{"forged id", func(t *testing.T) url.Values {
			return f.authErr(t, app, oauth2.SetAuthURLParam("launch", "vl_"+id[3:len(id)-2]+"AA"))
		}, "invalid_request"},
		{"patient scopes", func(t *testing.T) url.Values {
			cfg := *app
			cfg.Scopes = []string{"launch", "patient/Observation.rs"}
			return f.authErr(t, &cfg, oauth2.SetAuthURLParam("launch", f.launchID(t, app, "sess-1")))
		}, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if q := tc.run(t); q.Get("error") != tc.want || q.Get("code") != "" {
				t.Fatalf("got %v, want error %s", q, tc.want)
			}
		})
	}

	// Another session's approval is refused, and the id is spent with it.
	id = f.launchID(t, app, "sess-1")
	pending = f.begin(t, app, verifier, oauth2.SetAuthURLParam("launch", id))
	if _, err := f.p.Approve(ctx, pending, oauth.Approval{UserID: f.clinician.ID, Session: "sess-2"}); !errors.Is(err, oauth.ErrBadApproval) {
		t.Fatalf("approval from another session: %v", err)
	}
	if q := f.authErr(t, app, oauth2.SetAuthURLParam("launch", id)); q.Get("error") != "invalid_request" {
		t.Fatalf("the launch id refused at approval is still usable: %v", q)
	}
	// Another clinician's approval is refused too.
	dr2 := f.env.User(t, vault.RoleClinician, "Dr. Okafor")
	pending = f.begin(t, app, verifier, oauth2.SetAuthURLParam("launch", f.launchID(t, app, "sess-1")))
	if _, err := f.p.Approve(ctx, pending, oauth.Approval{UserID: dr2.ID, Session: "sess-1"}); !errors.Is(err, oauth.ErrBadApproval) {
		t.Fatalf("approval by another clinician: %v", err)
	}
	// A launch needs a clinician, her session, a patient and a client with a launch URL.
	plain := f.client(t, true, "openid")
	for _, lc := range []oauth.LaunchContext{
		{UserID: f.patient.ID, Session: "s", ClientID: app.ClientID, Patient: f.patient.ID},
		{UserID: f.clinician.ID, ClientID: app.ClientID, Patient: f.patient.ID},
		{UserID: f.clinician.ID, Session: "s", ClientID: app.ClientID, Patient: f.clinician.ID},
		{UserID: f.clinician.ID, Session: "s", ClientID: plain.ClientID, Patient: f.patient.ID},
		{UserID: f.clinician.ID, Session: "s", ClientID: "oc_nobody", Patient: f.patient.ID},
	} {
		if to, err := f.p.NewLaunch(ctx, lc); err == nil {
			t.Fatalf("NewLaunch(%+v) = %s", lc, to)
		}
	}
}
