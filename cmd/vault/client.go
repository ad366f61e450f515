package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/internal/demo"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// vault admin client add | list | remove, and vault keys rotate-oidc:
// the OAuth provider's clients and its ID-token signing key, through the
// running server's admin socket or on the file (withAdmin), like every
// admin command.

// adminClient dispatches 'vault admin client'.
func adminClientCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "add":
		return adminClientAdd(args[1:], stdout, stderr)
	case "list":
		return adminClientList(args[1:], stdout, stderr)
	case "remove":
		return adminClientRemove(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "vault admin client: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// uriList is a repeatable flag.
type uriList []string

func (l *uriList) String() string     { return strings.Join(*l, " ") }
func (l *uriList) Set(s string) error { *l = append(*l, s); return nil }

var _ flag.Value = (*uriList)(nil)

// maxJWKSFile is the largest JWK Set file read (the provider's own limit).
const maxJWKSFile = 64 << 10

func adminClientAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin client add", stderr)
	var sf storeFlags
	sf.register(fs)
	name := fs.String("name", "", "the client's name, shown to users on the consent page")
	var redirects uriList
	fs.Var(&redirects, "redirect-uri", "a redirect URI, matched exactly: https, or http on localhost, 127.0.0.1 or ::1 (repeat for several, at most 10)")
	confidential := fs.Bool("confidential", false, "a confidential client (a server such as JupyterHub): it gets a secret, or authenticates with --jwks-file / --jwks-uri")
	jwksFile := fs.String("jwks-file", "", "a file with the client's public JWK Set (private_key_jwt instead of a secret)")
	jwksURI := fs.String("jwks-uri", "", "the URL of the client's public JWK Set (private_key_jwt instead of a secret)")
	launch := fs.String("launch-uri", "", "the app's launch URL (informational)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*name) == "":
		fmt.Fprintln(stderr, "vault admin client add: --name is required")
		return errUsage
	case len(redirects) == 0:
		fmt.Fprintln(stderr, "vault admin client add: at least one --redirect-uri is required")
		return errUsage
	case *jwksFile != "" && *jwksURI != "":
		fmt.Fprintln(stderr, "vault admin client add: give --jwks-file or --jwks-uri, not both")
		return errUsage
	case (*jwksFile != "" || *jwksURI != "") && !*confidential:
		fmt.Fprintln(stderr, "vault admin client add: --jwks-file and --jwks-uri are for a confidential client: add --confidential")
		return errUsage
	}
	req := api.AdminClientRequest{Name: *name, RedirectURIs: redirects, Confidential: *confidential, JWKSURI: *jwksURI, LaunchURI: *launch}
	if *jwksFile != "" {
		b, err := readJWKSFile(*jwksFile)
		if err != nil {
			return err
		}
		req.JWKS = b
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		out, err := ops.AddClient(context.Background(), req)
		if err != nil {
			return err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		if out.Secret != "" {
			fmt.Fprintln(stderr, "client_secret is shown only this once (the vault keeps its hash): give it to the client's admin by a channel you trust")
		}
		return nil
	})
}

// readJWKSFile reads a JWK Set file, at most maxJWKSFile bytes of JSON.
func readJWKSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--jwks-file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJWKSFile+1))
	if err != nil {
		return nil, fmt.Errorf("--jwks-file: %v", err)
	}
	if len(b) > maxJWKSFile {
		return nil, fmt.Errorf("--jwks-file %s is larger than %d bytes", path, maxJWKSFile)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--jwks-file %s is not JSON (it must hold a JWK Set, {\"keys\": [...]})", path)
	}
	return b, nil
}

func adminClientList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin client list", stderr)
	var sf storeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object a line instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		cs, err := ops.Clients(context.Background())
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, c := range cs {
				if err := enc.Encode(c); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tNAME\tCONFIDENTIAL\tAUTH METHOD\tCREATED\tREDIRECT URIS")
		for _, c := range cs {
			name := oneLine(c.Name)
			if c.Builtin {
				name += " (built-in)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", c.ID, name, c.Confidential, c.AuthMethod, c.Created.UTC().Format(time.RFC3339), strings.Join(c.RedirectURIs, " "))
		}
		return tw.Flush()
	})
}

func adminClientRemove(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin client remove", stderr)
	var sf storeFlags
	sf.register(fs)
	id := fs.String("client", "", "the client's id (oc_…, see vault admin client list)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		fmt.Fprintln(stderr, "vault admin client remove: --client is required")
		return errUsage
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		if err := ops.RemoveClient(context.Background(), *id); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "removed", *id, "(its pending sign-ins and every token it held have ended)")
		return nil
	})
}

// keysRotateOIDC makes a new ID-token signing key current. It sits with
// the other key commands (vault keys), not under admin: it is key upkeep,
// like 'vault keys rotate' for the master keyset.
func keysRotateOIDC(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys rotate-oidc", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		out, err := ops.RotateOIDCKey(context.Background())
		if err != nil {
			return err
		}
		kids := make([]string, len(out.Keys))
		for i, k := range out.Keys {
			kids[i] = k.ID
		}
		fmt.Fprintf(stdout, "rotated the OpenID signing key: %s is current; the JWKS lists %s (ID tokens signed with %s still verify)\n", out.Current.ID, strings.Join(kids, " "), out.Previous)
		return nil
	})
}

// The admin socket's client side of the OAuth actions.

func (s *socketAdmin) AddClient(ctx context.Context, r api.AdminClientRequest) (api.AdminClientResponse, error) {
	var out api.AdminClientResponse
	return out, s.call(ctx, http.MethodPost, "/admin/oauth/clients", r, &out)
}

func (s *socketAdmin) Clients(ctx context.Context) ([]api.AdminClient, error) {
	var out []api.AdminClient
	return out, s.call(ctx, http.MethodGet, "/admin/oauth/clients", nil, &out)
}

func (s *socketAdmin) RemoveClient(ctx context.Context, id string) error {
	return s.call(ctx, http.MethodDelete, "/admin/oauth/clients/"+url.PathEscape(id), nil, nil)
}

func (s *socketAdmin) RotateOIDCKey(ctx context.Context) (api.AdminOIDCKeys, error) {
	var out api.AdminOIDCKeys
	return out, s.call(ctx, http.MethodPost, "/admin/oauth/keys/rotate", nil, &out)
}

// oauthAdmin is the provider as the admin actions use it (api.OAuthAdmin).
type oauthAdmin struct{ p *oauth.Provider }

var _ api.OAuthAdmin = oauthAdmin{}

func adminClient(c oauth.ClientInfo) api.AdminClient {
	return api.AdminClient{ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, Confidential: c.Confidential,
		AuthMethod: c.AuthMethod, JWKSURI: c.JWKSURI, LaunchURI: c.LaunchURI, Created: c.Created, Builtin: c.Builtin}
}

func (o oauthAdmin) AddClient(ctx context.Context, r api.AdminClientRequest) (api.AdminClientResponse, error) {
	info, secret, err := o.p.AddClient(ctx, oauth.NewClient{Name: r.Name, RedirectURIs: r.RedirectURIs, Confidential: r.Confidential,
		JWKS: r.JWKS, JWKSURI: r.JWKSURI, LaunchURI: r.LaunchURI})
	var ce *oauth.ClientInputError
	if errors.As(err, &ce) {
		return api.AdminClientResponse{}, &vault.InputError{Code: ce.Code, Message: ce.Message}
	}
	if err != nil {
		return api.AdminClientResponse{}, err
	}
	return api.AdminClientResponse{AdminClient: adminClient(info), Secret: secret}, nil
}

func (o oauthAdmin) Clients(ctx context.Context) ([]api.AdminClient, error) {
	cs, err := o.p.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.AdminClient, len(cs))
	for i, c := range cs {
		out[i] = adminClient(c)
	}
	return out, nil
}

func (o oauthAdmin) RemoveClient(ctx context.Context, id string) error {
	err := o.p.RemoveClient(ctx, id)
	if errors.Is(err, oauth.ErrNoClient) {
		return api.ErrNoClient
	}
	return err
}

// RotateKey rotates the provider's signing key: the provider signs with
// the new one from the next token on (it asks for its current key at each
// signing), and its JWKS lists the new and the previous one.
func (o oauthAdmin) RotateKey(ctx context.Context) (api.AdminOIDCKeys, error) {
	var out api.AdminOIDCKeys
	if ks := o.p.Keys(); len(ks) > 0 {
		out.Previous = ks[len(ks)-1].ID
	}
	k, err := o.p.RotateKey(ctx)
	if err != nil {
		return out, err
	}
	out.Current = api.AdminOIDCKey{ID: k.ID, Created: k.Created}
	for _, k := range o.p.Keys() {
		out.Keys = append(out.Keys, api.AdminOIDCKey{ID: k.ID, Created: k.Created})
	}
	return out, nil
}

// fileOAuth is the provider over the database file, for the OAuth admin
// actions when no server runs. It is built at its first use only: the
// other admin commands never touch the provider's records.
type fileOAuth struct {
	st   backend
	v    *vault.Vault
	led  *consent.Ledger
	once sync.Once
	p    oauthAdmin
	err  error
}

var _ api.OAuthAdmin = (*fileOAuth)(nil)

// offlineIssuer stands in for the base URL: clients and signing keys do
// not depend on it (the issuer is not stored), and the provider serves no
// request here.
var offlineIssuer = &url.URL{Scheme: "http", Host: "localhost"}

func (f *fileOAuth) get(ctx context.Context) (oauthAdmin, error) {
	f.once.Do(func() {
		var p *oauth.Provider
		p, f.err = oauth.New(ctx, oauth.Config{BaseURL: offlineIssuer, Store: f.st.OAuth(), Sealer: f.v.Master(), Users: f.v, GrantActive: f.led.AppGrantActive})
		f.p = oauthAdmin{p}
	})
	return f.p, f.err
}

func (f *fileOAuth) AddClient(ctx context.Context, r api.AdminClientRequest) (api.AdminClientResponse, error) {
	o, err := f.get(ctx)
	if err != nil {
		return api.AdminClientResponse{}, err
	}
	return o.AddClient(ctx, r)
}

func (f *fileOAuth) Clients(ctx context.Context) ([]api.AdminClient, error) {
	o, err := f.get(ctx)
	if err != nil {
		return nil, err
	}
	return o.Clients(ctx)
}

func (f *fileOAuth) RemoveClient(ctx context.Context, id string) error {
	o, err := f.get(ctx)
	if err != nil {
		return err
	}
	return o.RemoveClient(ctx, id)
}

func (f *fileOAuth) RotateKey(ctx context.Context) (api.AdminOIDCKeys, error) {
	o, err := f.get(ctx)
	if err != nil {
		return api.AdminOIDCKeys{}, err
	}
	return o.RotateKey(ctx)
}

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
	if _, err := led.Append(consent.NewAdmin("client-add", info.ID, api.ClientDetail(adminClient(info))+" (demo)", time.Now())); err != nil {
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

// demoHubText is serve --demo's words on pointing a JupyterHub at the
// vault, a part of the one start line (startLine).
func demoHubText(issuer, data string) string {
	return fmt.Sprintf("JupyterHub sign-in: issuer %s; the JupyterHub client (http://localhost:8000) is in %s under oidc_clients.jupyterhub, see docs/jupyterhub.md",
		issuer, filepath.Join(data, "demo", "credentials.json"))
}
