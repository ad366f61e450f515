package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for localhost and its key,
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestServeTLS: with --tls-cert and --tls-key, serve answers HTTPS for
// localhost (the certificate verified by a client that trusts it), sends
// HSTS on the web pages, and refuses plain HTTP on the port; the settings
// are checked both-or-neither before anything starts.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, pool := selfSigned(t, dir)
	data, key := filepath.Join(dir, "data"), filepath.Join(dir, "keys", "root.key")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert only", []string{"--tls-cert", certPath, "--base-url", "https://localhost:8443"}, "go together"},
		{"key only", []string{"--tls-key", keyPath, "--base-url", "https://localhost:8443"}, "go together"},
		{"swapped", []string{"--tls-cert", keyPath, "--tls-key", certPath, "--base-url", "https://localhost:8443"}, "do not load"},
		{"http base url", []string{"--tls-cert", certPath, "--tls-key", keyPath}, "must be the https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runVault(t, 20*time.Second, append([]string{"config", "--data", data, "--root-key-file", key}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("config: %v, want it refused saying %q:\n%s", err, tc.want, out)
			}
			if strings.Contains(out, "PRIVATE KEY") {
				t.Fatal("the key's contents reached the output")
			}
		})
	}

	initVault(t, data, key)
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://localhost:" + port
	cmd := exec.Command("vault", "serve", "--data", data, "--root-key-file", key, "--addr", addr, "--base-url", base, "--tls-cert", certPath, "--tls-key", keyPath)
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	var resp *http.Response
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err = client.Get(base + "/healthz")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no https answer: %v\n%s", err, log.String())
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET /healthz over https: %d", resp.StatusCode)
	}
	resp, err = client.Get(base + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("GET /signin over https: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	// Plain http to the TLS port is not served.
	if r, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("plain http answered 200 on the TLS port")
		}
	}
}
