package oauth

import (
	"context"
	"crypto/sha256"
	"slices"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
)

// EnsureClient keeps one registration for a client the vault itself
// serves (the care-team report app): a confidential client with a secret,
// marked built-in, one per name. The registration is kept while its
// launch URL and redirect URIs stay the same (its id, so the clinicians'
// remembered answers stay) and given a new secret, which replaces the old
// one at once (the tokens issued to it under the old one go: the app kept
// them in memory only, and that memory is gone): the secret lives only in
// the serving process's memory, never on disk. When the base URL changed,
// the old registration is removed and a new one made (created is true:
// the caller writes the admin entry in the ledger). A client an admin
// registered is never touched, whatever its name.
func (p *Provider) EnsureClient(ctx context.Context, n NewClient) (info ClientInfo, secret string, created bool, err error) {
	n.Confidential, n.builtin = true, true
	if len(n.JWKS) > 0 || n.JWKSURI != "" {
		return ClientInfo{}, "", false, badClient("bad_client_keys", "a built-in client authenticates with a secret")
	}
	rows, err := p.store.Clients(ctx)
	if err != nil {
		return ClientInfo{}, "", false, err
	}
	for _, row := range rows {
		c, err := p.loadClient(ctx, row.ID)
		if err != nil {
			return ClientInfo{}, "", false, err
		}
		if !c.Builtin || c.Name != n.Name {
			continue
		}
		if c.LaunchURI != n.LaunchURI || !slices.Equal(c.RedirectURIs, n.RedirectURIs) {
			if err := p.RemoveClient(ctx, c.ID); err != nil {
				return ClientInfo{}, "", false, err
			}
			continue
		}
		secret = newSecret(prefixSecret)
		h := sha256.Sum256([]byte(secret))
		c.SecretHash = h[:]
		if err := p.saveClient(ctx, c); err != nil {
			return ClientInfo{}, "", false, err
		}
		return c.info(), secret, false, nil
	}
	info, secret, err = p.AddClient(ctx, n)
	return info, secret, err == nil, err
}

// saveClient replaces a stored client record: the store has no update,
// so the row goes (with its pending requests and tokens, which the app
// that held them forgot when it stopped) and comes back under the same id.
// A crash in between leaves no client; the next start registers a new one.
func (p *Provider) saveClient(ctx context.Context, c clientRecord) error {
	sealed, err := p.seal(c, clientAD(c.ID))
	if err != nil {
		return err
	}
	if err := p.store.DeleteClient(ctx, c.ID); err != nil {
		return err
	}
	p.origins.reset()
	return p.store.PutClient(ctx, oauthstore.Client{ID: c.ID, Created: c.Created, Sealed: sealed})
}
