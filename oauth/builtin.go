package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jupyterhealth/vault/oauth/oauthstore"
)

// Built-in clients: the apps the vault serves itself (the care-team
// report app, package carereport) register with the provider at every
// start, through EnsureClient.
//
// The registration keeps its secret inside its record, which is sealed
// under the master keyset like every other OAuth record (the store holds
// only ciphertext, never the secret or its hash in the clear). Every
// process that serves the app opens the record and signs in with the same
// secret: the replicas on one PostgreSQL database agree, and a start
// writes nothing when the registration is already there. Of the two ways
// to share one secret (derive it from a key the replicas hold, or keep it
// sealed and unseal it everywhere) this is the second: the master keyset
// is an AEAD keyset with no derivation key, and a sealed record needs no
// new key material. A master key rotation adds a primary and keeps the
// old keys, so the record sealed under an old one still opens (a replica
// that lacks the new key reloads the stored keyset when it meets it), and
// the secret does not change. A root change re-wraps the keyset only. On
// bbolt (one process) the same path runs: the secret stays the same from
// one start to the next.
//
// The registration's id is derived from its name and URLs (builtinID), so
// replicas starting at once on an empty database cannot make two: the
// store refuses a second row with the same id (oauthstore.ErrExists), and
// the replica that lost reads the winner's record and its secret. A new
// base URL gives a new id: the old registration is removed and a new one
// made with a new secret, as before.

// builtinIDLabel separates a built-in client's id derivation from any other
// hash of the same strings.
const builtinIDLabel = "jhvault/builtin-client/v1"

// builtinID is the id of a built-in client's registration: prefixClient
// and 10 bytes of the SHA-256 of its name, launch URL and redirect URIs
// (each length-prefixed), in the lower-case base32 of the ids NewID makes.
// It is public, as every client id is; it only has to be the same on
// every replica and different when the URLs change.
func builtinID(n NewClient) string {
	h := sha256.New()
	for _, s := range append([]string{builtinIDLabel, n.Name, n.LaunchURI}, n.RedirectURIs...) {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		h.Write([]byte(s))
	}
	sum := h.Sum(nil)
	return prefixClient + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10]))
}

// EnsureClient keeps one registration for a client the vault itself
// serves (the care-team report app): a confidential client with a secret,
// marked built-in, one per name, and returns it with its secret. A
// registration with the same name and URLs is kept as it is (its id, so
// the clinicians' remembered answers stay, and its secret, which every
// replica shares); nothing is written. When the base URL changed, or the
// registration was made by a version that kept the secret in memory only,
// the old one is removed and a new one made (created is true: the caller
// writes the admin entry in the ledger). Several processes may call it at
// once on one database: exactly one creates, the others return its
// registration. A client an admin registered is never touched, whatever
// its name.
func (p *Provider) EnsureClient(ctx context.Context, n NewClient) (info ClientInfo, secret string, created bool, err error) {
	n.Confidential, n.builtin = true, true
	if len(n.JWKS) > 0 || n.JWKSURI != "" {
		return ClientInfo{}, "", false, badClient("bad_client_keys", "a built-in client authenticates with a secret")
	}
	if err := checkNewClient(&n); err != nil {
		return ClientInfo{}, "", false, err
	}
	id := builtinID(n)
	rows, err := p.store.Clients(ctx)
	if err != nil {
		return ClientInfo{}, "", false, err
	}
	for _, row := range rows {
		c, err := p.loadClient(ctx, row.ID)
		if errors.Is(err, oauthstore.ErrNotFound) {
			continue // removed since the list, by another replica's start
		}
		if err != nil {
			return ClientInfo{}, "", false, err
		}
		if !c.Builtin || c.Name != n.Name {
			continue
		}
		if c.ID == id && c.current(n) {
			return c.info(), c.Secret, false, nil
		}
		if err := p.RemoveClient(ctx, c.ID); err != nil && !errors.Is(err, ErrNoClient) {
			return ClientInfo{}, "", false, err
		}
	}
	info, secret, err = p.addClient(ctx, n, id)
	if !errors.Is(err, oauthstore.ErrExists) {
		return info, secret, err == nil, err
	}
	// Another process registered it between the list and here.
	c, err := p.loadClient(ctx, id)
	if err != nil {
		return ClientInfo{}, "", false, fmt.Errorf("reading the registration another process made: %w", err)
	}
	if !c.Builtin || c.Name != n.Name || !c.current(n) {
		return ClientInfo{}, "", false, errors.New("the built-in client's registration made by another process is not this one")
	}
	return c.info(), c.Secret, false, nil
}

// current reports whether a built-in client's record is n's as this
// version keeps it: the same URLs, and its secret kept.
func (c clientRecord) current(n NewClient) bool {
	h := sha256.Sum256([]byte(c.Secret))
	return c.LaunchURI == n.LaunchURI && slices.Equal(c.RedirectURIs, n.RedirectURIs) &&
		c.Secret != "" && slices.Equal(c.SecretHash, h[:])
}
