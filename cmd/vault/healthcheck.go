package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// cmdHealthcheck asks a running server's /healthz and exits 0 only on 200:
// the container health check (a distroless image has no curl).
func cmdHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	sv := registerServe(fs)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*sv.addr)
	if err != nil {
		return fmt.Errorf("--addr must be HOST:PORT")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: *timeout}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return fmt.Errorf("unhealthy: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /healthz answered %s", resp.Status)
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}
