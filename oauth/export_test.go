package oauth

import (
	"context"
	"crypto/sha256"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
)

// AddPerProcessBuiltin registers n as a built-in client the way versions
// before the shared secret did (a random id, only the secret's hash kept,
// the secret returned and then held in memory only), for the test of
// EnsureClient meeting such a registration.
func (p *Provider) AddPerProcessBuiltin(ctx context.Context, n NewClient) (ClientInfo, string, error) {
	secret := newSecret(prefixSecret)
	h := sha256.Sum256([]byte(secret))
	rec := clientRecord{ID: vault.NewID(prefixClient), Name: n.Name, RedirectURIs: n.RedirectURIs, Confidential: true,
		LaunchURI: n.LaunchURI, Created: p.now().UTC(), Builtin: true, SecretHash: h[:]}
	sealed, err := p.seal(rec, clientAD(rec.ID))
	if err != nil {
		return ClientInfo{}, "", err
	}
	if err := p.store.PutClient(ctx, oauthstore.Client{ID: rec.ID, Created: rec.Created, Sealed: sealed}); err != nil {
		return ClientInfo{}, "", err
	}
	return rec.info(), secret, nil
}
