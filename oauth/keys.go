package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jupyterhealth/vault/oauth/oauthstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// signingKey is an RS256 ID-token signing key. The private key is stored
// PKCS#8, sealed under the master keyset with the key id as associated
// data.
type signingKey struct {
	id      string
	created time.Time
	priv    *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.priv }
func (k signingKey) ID() string                                  { return k.id }

// publicKey is a key as the JWKS lists it.
type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.priv.PublicKey }

var _ op.Key = publicKey{}

// rsaBits is the signing keys' size.
const rsaBits = 2048

// loadKeys reads the signing keys; create makes the first one when there
// is none.
func (p *Provider) loadKeys(ctx context.Context, create bool) error {
	rows, err := p.store.Keys(ctx)
	if err != nil {
		return err
	}
	if len(rows) == 0 && create {
		if _, err := p.RotateKey(ctx); err != nil {
			return err
		}
		return nil
	}
	keys := make([]signingKey, 0, len(rows))
	for _, row := range rows {
		der, err := p.sealer.Decrypt(row.Sealed, keyAD(row.ID))
		if err != nil {
			return errors.New("an OpenID signing key does not decrypt")
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return err
		}
		priv, ok := k.(*rsa.PrivateKey)
		if !ok {
			return errors.New("an OpenID signing key is not RSA")
		}
		keys = append(keys, signingKey{id: row.ID, created: row.Created, priv: priv})
	}
	if len(keys) == 0 {
		return errors.New("no OpenID signing key")
	}
	p.keysMu.Lock()
	p.keys = keys
	p.keysMu.Unlock()
	return nil
}

// KeyInfo describes a signing key.
type KeyInfo struct {
	ID      string    `json:"kid"`
	Created time.Time `json:"created"`
}

// RotateKey makes a new signing key current. The JWKS keeps listing the
// previous one, so ID tokens it signed still verify; the one before that
// goes.
func (p *Provider) RotateKey(ctx context.Context) (KeyInfo, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return KeyInfo{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return KeyInfo{}, err
	}
	id := vault.NewID("k_")
	sealed, err := p.sealer.Encrypt(der, keyAD(id))
	if err != nil {
		return KeyInfo{}, err
	}
	now := p.now().UTC()
	// Keys sort by creation time: the new one must come after the
	// current one even when the clock has not moved (a coarse or frozen
	// clock), or the previous key would stay current.
	p.keysMu.RLock()
	if n := len(p.keys); n > 0 && !now.After(p.keys[n-1].created) {
		now = p.keys[n-1].created.Add(time.Microsecond)
	}
	p.keysMu.RUnlock()
	if err := p.store.AddKey(ctx, oauthstore.Key{ID: id, Created: now, Sealed: sealed}, keepKeys); err != nil {
		return KeyInfo{}, err
	}
	if err := p.loadKeys(ctx, false); err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{ID: id, Created: now}, nil
}

// Keys lists the signing keys, oldest first; the last is current.
func (p *Provider) Keys() []KeyInfo {
	p.keysMu.RLock()
	defer p.keysMu.RUnlock()
	out := make([]KeyInfo, len(p.keys))
	for i, k := range p.keys {
		out[i] = KeyInfo{ID: k.id, Created: k.created}
	}
	return out
}

func (p *Provider) currentKey() signingKey {
	p.keysMu.RLock()
	defer p.keysMu.RUnlock()
	return p.keys[len(p.keys)-1]
}

func (p *Provider) publicKeys() []op.Key {
	p.keysMu.RLock()
	defer p.keysMu.RUnlock()
	out := make([]op.Key, 0, len(p.keys))
	for i := len(p.keys) - 1; i >= 0; i-- {
		out = append(out, publicKey{p.keys[i]})
	}
	return out
}
