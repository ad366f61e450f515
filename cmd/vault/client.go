package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/demo"
	"github.com/jupyterhealth/vault/oauth"
)

// demoOAuthClient makes sure the demo's JupyterHub (on
// http://localhost:8000) has a confidential OAuth client, and that its id,
// secret and redirect URI are in DIR/demo/credentials.json under
// oidc_clients.jupyterhub. A client still registered is kept, with the
// secret the file holds, so a restart changes nothing; one removed since
// (vault admin client remove) is registered afresh. The registration is an
// admin entry in the ledger (the client id only).
func demoOAuthClient(ctx context.Context, prov *oauth.Provider, led *consent.Ledger, data string) (demo.OIDCClient, error) {
	c, err := demo.ReadCredentials(data)
	if err != nil {
		return demo.OIDCClient{}, err
	}
	hub, ok := c.OIDCClients[demo.JupyterHubClient]
	if ok && hub.ClientID != "" && hub.ClientSecret != "" {
		info, err := prov.Client(ctx, hub.ClientID)
		switch {
		case err == nil && slices.Contains(info.RedirectURIs, demo.JupyterHubRedirectURI) && info.AuthMethod == "client_secret_basic":
			if hub.Issuer == prov.Issuer() && hub.RedirectURI == demo.JupyterHubRedirectURI {
				return hub, nil
			}
			// The base URL changed: the same client, at the new issuer.
			hub.Issuer, hub.RedirectURI = prov.Issuer(), demo.JupyterHubRedirectURI
			return hub, writeDemoClient(data, c, hub)
		case err != nil && !errors.Is(err, oauth.ErrNoClient):
			return demo.OIDCClient{}, err
		}
	}
	info, secret, err := prov.AddClient(ctx, oauth.NewClient{Name: demo.JupyterHubName, RedirectURIs: []string{demo.JupyterHubRedirectURI}, Confidential: true})
	if err != nil {
		return demo.OIDCClient{}, err
	}
	if _, err := led.Append(consent.NewAdmin("client-add", info.ID, clientDetail(info)+" (demo)", time.Now())); err != nil {
		// Nothing half-done: the client goes again.
		if rerr := prov.RemoveClient(ctx, info.ID); rerr != nil {
			return demo.OIDCClient{}, errors.Join(err, rerr)
		}
		return demo.OIDCClient{}, fmt.Errorf("the demo client's ledger entry failed: %v", err)
	}
	hub = demo.OIDCClient{Issuer: prov.Issuer(), ClientID: info.ID, ClientSecret: secret, RedirectURI: demo.JupyterHubRedirectURI}
	return hub, writeDemoClient(data, c, hub)
}

func writeDemoClient(data string, c demo.Credentials, hub demo.OIDCClient) error {
	if c.OIDCClients == nil {
		c.OIDCClients = map[string]demo.OIDCClient{}
	}
	c.OIDCClients[demo.JupyterHubClient] = hub
	return demo.WriteCredentials(data, c)
}

// clientDetail is a client's ledger detail: its kind and how it
// authenticates, never its name or URIs.
func clientDetail(c oauth.ClientInfo) string {
	kind := "public"
	if c.Confidential {
		kind = "confidential"
	}
	return kind + " " + c.AuthMethod
}

// demoHubLine is serve --demo's short human line on pointing a JupyterHub
// at the vault.
func demoHubLine(w io.Writer, issuer, data string) {
	fmt.Fprintf(w, "vault: JupyterHub sign-in: issuer %s; the JupyterHub client (http://localhost:8000) is in %s under oidc_clients.jupyterhub, see docs/jupyterhub.md\n",
		issuer, filepath.Join(data, "demo", "credentials.json"))
}
