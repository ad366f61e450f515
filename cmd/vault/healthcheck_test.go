package main

import (
	"strings"
	"testing"
	"time"
)

// TestHealthcheck: the container health check passes against a live
// server and fails, quickly, where none listens.
func TestHealthcheck(t *testing.T) {
	s := sharedServer(t)
	if out, errs, err := runVault(t, 10*time.Second, "healthcheck", "--addr", s.addr); err != nil || out != "healthy" {
		t.Fatalf("healthcheck of a live server: %v %q %s", err, out, errs)
	}
	dead, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, errs, err := runVault(t, 10*time.Second, "healthcheck", "--addr", dead, "--timeout", "1s")
	if err == nil || !strings.Contains(errs, "unhealthy") {
		t.Fatalf("healthcheck where nothing listens: %v %s", err, errs)
	}
}
