package main

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
)

// newOAuth builds the OAuth 2 / OpenID Connect provider (issuer
// BASE/fhir) over the vault's file. GrantActive is not wired yet: until it
// is, every patient app's token is refused (never accepted), and the
// clinicians' sign-in, which carries no app grant, works.
func newOAuth(ctx context.Context, st *boltstore.Store, v *vault.Vault, base *url.URL, log *slog.Logger) (*oauth.Provider, error) {
	return oauth.New(ctx, oauth.Config{BaseURL: base, Store: st.OAuth(), Sealer: v.Master(), Users: v, Logger: log})
}
