package oauth_test

import (
	"testing"

	"github.com/jupyterhealth/vault/oauth"
)

// TestEnsureClient: the built-in app keeps one registration per vault: the
// same id with a fresh secret while its URLs stay, a new one (the old gone)
// when the base URL changes, and an admin's client of the same name is
// never taken over.
func TestEnsureClient(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	admin, _, err := f.p.AddClient(ctx, oauth.NewClient{Name: "Care app", RedirectURIs: []string{"http://localhost:1/apps/care/callback"}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	at := func(base string) oauth.NewClient {
		return oauth.NewClient{Name: "Care app", RedirectURIs: []string{base + "/apps/care/callback"}, LaunchURI: base + "/apps/care/launch"}
	}
	first, s1, created, err := f.p.EnsureClient(ctx, at("http://localhost:1"))
	if err != nil || !created || first.ID == admin.ID || !first.Builtin || s1 == "" {
		t.Fatalf("first start: %+v created %v err %v (the admin's client %s must not be taken)", first, created, err, admin.ID)
	}
	again, s2, created, err := f.p.EnsureClient(ctx, at("http://localhost:1"))
	if err != nil || created || again.ID != first.ID || s2 == s1 {
		t.Fatalf("restart: %+v created %v err %v (same id, new secret)", again, created, err)
	}
	moved, _, created, err := f.p.EnsureClient(ctx, at("https://vault.example.org"))
	if err != nil || !created || moved.ID == first.ID {
		t.Fatalf("new base URL: %+v created %v err %v", moved, created, err)
	}
	cs, err := f.p.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if len(cs) != 2 {
		t.Fatalf("clients after the move: %v, want the admin's and the moved app's only", ids)
	}
	for _, c := range cs {
		if c.ID != admin.ID && c.ID != moved.ID {
			t.Fatalf("clients after the move: %v", ids)
		}
		if c.ID == admin.ID && c.Builtin {
			t.Fatal("the admin's client is marked built-in")
		}
	}
}
