package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/carereport"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web"
)

// newOAuth builds the OAuth 2 / OpenID Connect provider (issuer
// BASE/fhir) over the vault's file. A patient app's token is good only
// while the ledger holds its app grant active: the provider asks the
// ledger on every use, so a revoke in the web UI ends it at once.
func newOAuth(ctx context.Context, st backend, v *vault.Vault, led *consent.Ledger, base *url.URL, accessTTL time.Duration, log *slog.Logger) (*oauth.Provider, error) {
	return oauth.New(ctx, oauth.Config{BaseURL: base, Store: st.OAuth(), Sealer: v.Master(), Users: v, Logger: log,
		GrantActive: led.AppGrantActive, AccessTTL: accessTTL})
}

// webAuthorizer is the provider as the web UI's consent pages see it
// (web.Authorizer): web defines what it consumes and does not import the
// provider.
type webAuthorizer struct{ p *oauth.Provider }

var _ web.Authorizer = webAuthorizer{}

// webErr maps the provider's refusals to the ones the web UI explains.
func webErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, oauth.ErrNoRequest):
		return fmt.Errorf("%w: %v", web.ErrAuthRequestGone, err)
	case errors.Is(err, oauth.ErrNoClient):
		return fmt.Errorf("%w: %v", web.ErrAuthClientGone, err)
	case errors.Is(err, oauth.ErrWrongRole), errors.Is(err, oauth.ErrBadApproval):
		return fmt.Errorf("%w: %v", web.ErrAuthRefused, err)
	}
	return err
}

func (a webAuthorizer) Pending(ctx context.Context, id string) (web.AuthRequest, error) {
	p, err := a.p.Pending(ctx, id)
	if err != nil {
		return web.AuthRequest{}, webErr(err)
	}
	return web.AuthRequest{ID: p.ID, ClientID: p.Client.ID, ClientName: p.Client.Name, Scopes: p.Scopes,
		Patient: p.Patient, User: p.User, Schemas: p.Schemas, Offline: p.Offline, Expires: p.Expires}, nil
}

func (a webAuthorizer) Approve(ctx context.Context, id string, ap web.AuthApproval) (string, error) {
	u, err := a.p.Approve(ctx, id, oauth.Approval{UserID: ap.UserID, GrantID: ap.GrantID, Schemas: ap.Schemas, Session: ap.Session})
	return u, webErr(err)
}

func (a webAuthorizer) Deny(ctx context.Context, id string) (string, error) {
	u, err := a.p.Deny(ctx, id)
	return u, webErr(err)
}

func (a webAuthorizer) ClientName(ctx context.Context, clientID string) (string, error) {
	c, err := a.p.Client(ctx, clientID)
	if err != nil {
		return "", webErr(err)
	}
	return c.Name, nil
}

func (a webAuthorizer) RevokeUserClient(ctx context.Context, userID, clientID string) error {
	return webErr(a.p.RevokeUserClient(ctx, userID, clientID))
}

var _ web.Launcher = webAuthorizer{}

// LaunchApps lists the clients with a launch URL, by name.
func (a webAuthorizer) LaunchApps(ctx context.Context) ([]web.LaunchApp, error) {
	cs, err := a.p.Clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []web.LaunchApp
	for _, c := range cs {
		if c.LaunchURI != "" {
			out = append(out, web.LaunchApp{ClientID: c.ID, Name: c.Name})
		}
	}
	slices.SortStableFunc(out, func(x, y web.LaunchApp) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// Launch issues an EHR launch id (oauth.Provider.NewLaunch).
func (a webAuthorizer) Launch(ctx context.Context, l web.LaunchRequest) (string, error) {
	to, err := a.p.NewLaunch(ctx, oauth.LaunchContext{UserID: l.UserID, Session: l.Session, ClientID: l.ClientID, Patient: l.Patient})
	if errors.Is(err, oauth.ErrNotLaunchable) {
		return "", fmt.Errorf("%w: %v", web.ErrAuthClientGone, err)
	}
	return to, webErr(err)
}

// careReportApp registers the care-team report app (package carereport)
// as a confidential client with its launch URL, or keeps its registration
// and secret (oauth.Provider.EnsureClient: the secret is kept sealed in
// the registration's record, so every replica on one database signs the
// app in with the same one, and a start changes nothing), and builds it.
// Replicas starting at once do not fight: exactly one of them creates the
// registration, the others read it. A new registration is a client-add
// admin entry in the ledger, undone if the entry fails. The app's
// launches and sessions travel in cookies sealed under the master keyset,
// so a launch begun on one replica finishes on any.
func careReportApp(ctx context.Context, prov *oauth.Provider, led *consent.Ledger, sealer carereport.Sealer, base *url.URL, log *slog.Logger) (*carereport.App, error) {
	n := oauth.NewClient{Name: carereport.Name,
		RedirectURIs: []string{carereport.RedirectURI(base)}, LaunchURI: carereport.LaunchURI(base), Confidential: true}
	info, secret, created, err := prov.EnsureClient(ctx, n)
	if err != nil {
		return nil, err
	}
	if created {
		if _, err := led.Append(consent.NewAdmin("client-add", info.ID, api.ClientDetail(adminClient(info))+" (built-in app)", time.Now())); err != nil {
			if rerr := prov.RemoveClient(ctx, info.ID); rerr != nil {
				return nil, errors.Join(err, rerr)
			}
			return nil, fmt.Errorf("the care report app's ledger entry failed: %v", err)
		}
	}
	return carereport.New(carereport.Config{BaseURL: base, Issuer: prov.Issuer(), ClientID: info.ID, ClientSecret: secret, Sealer: sealer, Logger: log})
}
