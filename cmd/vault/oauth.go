package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web"
)

// newOAuth builds the OAuth 2 / OpenID Connect provider (issuer
// BASE/fhir) over the vault's file. A patient app's token is good only
// while the ledger holds its app grant active: the provider asks the
// ledger on every use, so a revoke in the web UI ends it at once.
func newOAuth(ctx context.Context, st *boltstore.Store, v *vault.Vault, led *consent.Ledger, base *url.URL, accessTTL time.Duration, log *slog.Logger) (*oauth.Provider, error) {
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
	u, err := a.p.Approve(ctx, id, oauth.Approval{UserID: ap.UserID, GrantID: ap.GrantID, Schemas: ap.Schemas})
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
