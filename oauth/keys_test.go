package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestRotateKey: with the clock standing still (the fixture's clock moves
// only when told), each rotation still makes the new key current, and the
// JWKS lists exactly the current key and the previous one.
func TestRotateKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.p.Keys()
	if len(first) != 1 {
		t.Fatalf("a new provider has %d keys, want 1", len(first))
	}
	var ids []string
	for range 3 {
		k, err := f.p.RotateKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
		keys := f.p.Keys()
		if len(keys) != 2 || keys[1].ID != k.ID {
			t.Fatalf("after rotating to %s: keys %v, want the new one last (current)", k.ID, keys)
		}
	}
	resp, err := http.Get(f.p.Issuer() + "/auth/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range set.Keys {
		got = append(got, k.Kid)
	}
	slices.Sort(got)
	want := slices.Clone(ids[1:])
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("JWKS kids %v, want the last two rotations %v", got, want)
	}
}
