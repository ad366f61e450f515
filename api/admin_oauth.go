package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/labstack/echo/v4"
)

// The OAuth provider's admin actions: registering, listing and removing
// clients, rotating the ID-token signing key.
type (
	// AdminClientRequest registers an OAuth client (vault admin client
	// add). JWKS (a JWK Set) or JWKSURI makes a confidential client
	// authenticate with private_key_jwt instead of a secret.
	AdminClientRequest struct {
		Name         string          `json:"name"`
		RedirectURIs []string        `json:"redirect_uris"`
		Confidential bool            `json:"confidential,omitempty"`
		JWKS         json.RawMessage `json:"jwks,omitempty"`
		JWKSURI      string          `json:"jwks_uri,omitempty"`
		LaunchURI    string          `json:"launch_uri,omitempty"`
	}
	// AdminClient is a registered client: never its secret.
	AdminClient struct {
		ID           string    `json:"client_id"`
		Name         string    `json:"name"`
		RedirectURIs []string  `json:"redirect_uris"`
		Confidential bool      `json:"confidential"`
		AuthMethod   string    `json:"token_endpoint_auth_method"`
		JWKSURI      string    `json:"jwks_uri,omitempty"`
		LaunchURI    string    `json:"launch_uri,omitempty"`
		Builtin      bool      `json:"builtin,omitempty"` // an app the vault itself serves
		Created      time.Time `json:"created"`
	}
	// AdminClientResponse is a new client; Secret (a confidential client
	// without keys) is shown this once: the provider keeps only its hash.
	AdminClientResponse struct {
		AdminClient
		Secret string `json:"client_secret,omitempty"`
	}
	// AdminOIDCKey is an ID-token signing key: its id and creation only.
	AdminOIDCKey struct {
		ID      string    `json:"kid"`
		Created time.Time `json:"created"`
	}
	// AdminOIDCKeys answers a rotation: the new current key and every key
	// the JWKS lists now, oldest first.
	AdminOIDCKeys struct {
		Current  AdminOIDCKey   `json:"current"`
		Previous string         `json:"previous,omitempty"`
		Keys     []AdminOIDCKey `json:"keys"`
	}
)

// OAuthAdmin is the OAuth provider as the admin actions use it (cmd/vault
// adapts oauth.Provider). AddClient reports a registration the provider
// refuses as a *vault.InputError with the provider's code; RemoveClient
// reports an unknown client as ErrNoClient.
type OAuthAdmin interface {
	AddClient(ctx context.Context, r AdminClientRequest) (AdminClientResponse, error)
	Clients(ctx context.Context) ([]AdminClient, error)
	RemoveClient(ctx context.Context, id string) error
	// RotateKey makes a new signing key current at once (the provider
	// signs with it from the next token on); the JWKS lists it and the
	// previous one.
	RotateKey(ctx context.Context) (AdminOIDCKeys, error)
}

// ErrNoClient: no OAuth client has that id.
var ErrNoClient = errors.New("no such OAuth client")

func (a LocalAdmin) oauth() (OAuthAdmin, error) {
	if a.OAuth == nil {
		return nil, newError(http.StatusNotImplemented, "no_oauth", "this vault runs no OAuth provider")
	}
	return a.OAuth, nil
}

// AddClient registers an OAuth client and records it in the ledger: its
// id, whether it is confidential and how it authenticates; never its name,
// URIs or secret. If the entry cannot be written the client goes again, so
// there is never a client the ledger does not know of.
func (a LocalAdmin) AddClient(ctx context.Context, r AdminClientRequest) (AdminClientResponse, error) {
	o, err := a.oauth()
	if err != nil {
		return AdminClientResponse{}, err
	}
	out, err := o.AddClient(ctx, r)
	if err != nil {
		return AdminClientResponse{}, err
	}
	if _, err := a.Ledger.Append(consent.NewAdmin("client-add", out.ID, ClientDetail(out.AdminClient), time.Now())); err != nil {
		if rerr := o.RemoveClient(context.WithoutCancel(ctx), out.ID); rerr != nil {
			a.Log.Error("a client whose ledger entry failed could not be removed", "client", out.ID, "cause", rerr.Error())
		}
		return AdminClientResponse{}, fmt.Errorf("the client's ledger entry failed, so it is not registered: %v", err)
	}
	a.Log.Info("admin action", "action", "client-add", "client", out.ID, "auth_method", out.AuthMethod)
	return out, nil
}

// ClientDetail is a client's ledger detail: its kind and how it
// authenticates, never its name or URIs.
func ClientDetail(c AdminClient) string {
	kind := "public"
	if c.Confidential {
		kind = "confidential"
	}
	return kind + " " + c.AuthMethod
}

// Clients lists the registered OAuth clients (no secrets: only their
// hashes are kept).
func (a LocalAdmin) Clients(ctx context.Context) ([]AdminClient, error) {
	o, err := a.oauth()
	if err != nil {
		return nil, err
	}
	return o.Clients(ctx)
}

// RemoveClient removes an OAuth client, its pending requests and every
// token it holds, and records it in the ledger.
func (a LocalAdmin) RemoveClient(ctx context.Context, id string) error {
	o, err := a.oauth()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(id, "oc_") {
		return newError(http.StatusBadRequest, "bad_client", "a client id starts with oc_ (see vault admin client list)")
	}
	if err := o.RemoveClient(ctx, id); err != nil {
		return err
	}
	a.Log.Info("admin action", "action", "client-remove", "client", id)
	return a.record("client-remove", id, "its tokens ended")
}

// RotateOIDCKey makes a new ID-token signing key current and records it
// in the ledger (key ids only). ID tokens signed with the previous key
// still verify: the JWKS keeps listing it.
func (a LocalAdmin) RotateOIDCKey(ctx context.Context) (AdminOIDCKeys, error) {
	o, err := a.oauth()
	if err != nil {
		return AdminOIDCKeys{}, err
	}
	out, err := o.RotateKey(context.WithoutCancel(ctx))
	if err != nil {
		return AdminOIDCKeys{}, err
	}
	a.Log.Info("admin action", "action", "oidc-key-rotate", "kid", out.Current.ID, "previous", out.Previous)
	return out, a.record("oidc-key-rotate", "", fmt.Sprintf("kid %s -> %s", out.Previous, out.Current.ID))
}

// routeOAuthAdmin adds the OAuth admin actions to the admin socket.
func routeOAuthAdmin(e *echo.Echo, ops AdminOps) {
	e.POST("/admin/oauth/clients", func(c echo.Context) error {
		var r AdminClientRequest
		if err := c.Bind(&r); err != nil {
			return newError(http.StatusBadRequest, "bad_request", "the request is not valid JSON")
		}
		out, err := ops.AddClient(c.Request().Context(), r)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusCreated, out)
	})
	e.GET("/admin/oauth/clients", func(c echo.Context) error {
		out, err := ops.Clients(c.Request().Context())
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.DELETE("/admin/oauth/clients/:id", func(c echo.Context) error {
		if err := ops.RemoveClient(c.Request().Context(), c.Param("id")); err != nil {
			return AdminError(err)
		}
		return c.NoContent(http.StatusNoContent)
	})
	e.POST("/admin/oauth/keys/rotate", func(c echo.Context) error {
		out, err := ops.RotateOIDCKey(c.Request().Context())
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
}
